//! The **dashboard store seam**: accounts of the browser dashboard and their sessions
//! (`docs/dashboard.md`), written once over the SQL layer (`store/sql.rs`) and run through
//! `control-plane/tests/store_suite.rs` on both backends.
//!
//! Guarantees: every method is atomic; emails are kept lower-case and are unique; deleting a
//! tenant deletes its users, deleting a user deletes their sessions; a session past its
//! `expires_at` is never returned (and is deleted when asked for).

use super::sql::{on_constraint, Constraint, Sql, SqlRow};
use super::StoreError;
use async_trait::async_trait;

/// What a dashboard account may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Every tenant's apps.
    Operator,
    /// The apps of this tenant only.
    Tenant(String),
}

/// A dashboard account. `Debug` leaves the password hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct DashboardUser {
    pub id: String,
    /// Lower-case.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    pub created_at: i64,
}

impl std::fmt::Debug for DashboardUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct NewDashboardUser {
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

/// A signed-in browser. The cookie holds a token; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    pub token_hash: String,
    pub user_id: String,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait DashboardStore: Send + Sync + 'static {
    /// `Conflict` when the email is taken; `NotFound` when a tenant user's tenant does not
    /// exist. The email is stored lower-case.
    async fn create_dashboard_user(
        &self,
        new: NewDashboardUser,
    ) -> Result<DashboardUser, StoreError>;
    /// By email, whatever its case.
    async fn dashboard_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<DashboardUser>, StoreError>;
    /// Replaces the password hash and ends the user's sessions. `NotFound` when no such user.
    async fn set_dashboard_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<(), StoreError>;
    async fn create_dashboard_session(&self, session: DashboardSession) -> Result<(), StoreError>;
    /// The session and its user, when it exists and `now < expires_at`; an expired one is
    /// deleted.
    async fn dashboard_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(DashboardSession, DashboardUser)>, StoreError>;
    /// Signing out; no error when there was no such session.
    async fn delete_dashboard_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Sessions expired at `now`; returns how many were deleted.
    async fn delete_expired_dashboard_sessions(&self, now: i64) -> Result<u64, StoreError>;

    // ---- invitations and admin-API tokens (`store/dashboard_access.rs`) ----

    /// Every account, or `tenant`'s, ordered by email.
    async fn list_dashboard_users(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<DashboardUser>, StoreError>;
    /// `NotFound` when the tenant does not exist. The email is stored lower-case.
    async fn create_dashboard_invitation(
        &self,
        invitation: DashboardInvitation,
    ) -> Result<(), StoreError>;
    /// The invitation when it exists and `now < expires_at`; an expired one is deleted.
    async fn dashboard_invitation(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<DashboardInvitation>, StoreError>;
    /// Deletes the invitation and creates its tenant user with this password hash, at once.
    /// `NotFound` when the invitation is used, expired or unknown; `Conflict` when the email
    /// has an account (the invitation is then kept).
    async fn accept_dashboard_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<DashboardUser, StoreError>;
    /// `Conflict` on a repeated id or hash; `NotFound` when the user or tenant does not exist.
    async fn create_admin_token(&self, token: AdminToken) -> Result<(), StoreError>;
    /// The token with this SHA-256, if any: how the admin API knows a tenant's caller.
    async fn admin_token_by_hash(&self, token_hash: &str)
        -> Result<Option<AdminToken>, StoreError>;
    /// A user's tokens, oldest first.
    async fn list_admin_tokens(&self, user_id: &str) -> Result<Vec<AdminToken>, StoreError>;
    /// `NotFound` unless the token exists and belongs to `user_id`.
    async fn delete_admin_token(&self, user_id: &str, id: &str) -> Result<(), StoreError>;
}

pub use super::dashboard_access::{AdminToken, DashboardInvitation};

pub(crate) const USER_COLUMNS: &str = "id, email, password_hash, role, tenant_id, created_at";

pub(crate) fn user(row: &impl SqlRow, from: usize) -> Result<DashboardUser, StoreError> {
    let role: String = row.get(from + 3)?;
    let tenant: Option<String> = row.get(from + 4)?;
    let role = match (role.as_str(), tenant) {
        ("operator", None) => Role::Operator,
        ("tenant", Some(t)) => Role::Tenant(t),
        (r, t) => {
            return Err(StoreError::Invalid(format!(
                "stored dashboard role {r:?} with tenant {t:?}"
            )))
        }
    };
    Ok(DashboardUser {
        id: row.get(from)?,
        email: row.get(from + 1)?,
        password_hash: row.get(from + 2)?,
        role,
        created_at: row.get(from + 5)?,
    })
}

pub(crate) async fn create_user<S: Sql>(
    db: &mut S,
    new: NewDashboardUser,
) -> Result<DashboardUser, StoreError> {
    let id = format!("u_{:016x}", rand::random::<u64>());
    let email = new.email.to_lowercase();
    let (role, tenant) = match &new.role {
        Role::Operator => ("operator", None),
        Role::Tenant(t) => ("tenant", Some(t.as_str())),
    };
    let sql = format!(
        "INSERT INTO dashboard_users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
         RETURNING {USER_COLUMNS}"
    );
    let row = db
        .query_opt(
            &sql,
            &[&id, &email, &new.password_hash, &role, &tenant, &new.now],
        )
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                Some(match c {
                    Constraint::Unique => StoreError::Conflict(format!("dashboard user {email}")),
                    Constraint::ForeignKey => {
                        StoreError::tenant_not_found(tenant.unwrap_or_default())
                    }
                })
            })
        })?;
    user(
        &row.ok_or_else(|| StoreError::NotFound(format!("dashboard user {email}")))?,
        0,
    )
}

pub(crate) async fn user_by_email<S: Sql>(
    db: &mut S,
    email: &str,
) -> Result<Option<DashboardUser>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = $1");
    db.query_opt(&sql, &[&email.to_lowercase()])
        .await?
        .map(|row| user(&row, 0))
        .transpose()
}

pub(crate) async fn set_password<S: Sql>(
    db: &mut S,
    email: &str,
    password_hash: &str,
) -> Result<(), StoreError> {
    let email = email.to_lowercase();
    let row = db
        .query_opt(
            "UPDATE dashboard_users SET password_hash = $2 WHERE email = $1 RETURNING id",
            &[&email, &password_hash],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("dashboard user {email}")))?;
    let id: String = row.get(0)?;
    db.execute("DELETE FROM dashboard_sessions WHERE user_id = $1", &[&id])
        .await?;
    Ok(())
}

pub(crate) async fn create_session<S: Sql>(
    db: &mut S,
    s: DashboardSession,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &s.token_hash,
            &s.user_id,
            &s.csrf_token,
            &s.created_at,
            &s.expires_at,
        ],
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            Some(match c {
                Constraint::Unique => StoreError::Conflict("dashboard session".into()),
                Constraint::ForeignKey => {
                    StoreError::NotFound(format!("dashboard user {}", s.user_id))
                }
            })
        })
    })?;
    Ok(())
}

pub(crate) async fn session<S: Sql>(
    db: &mut S,
    token_hash: &str,
    now: i64,
) -> Result<Option<(DashboardSession, DashboardUser)>, StoreError> {
    let sql = format!(
        "SELECT s.token_hash, s.user_id, s.csrf_token, s.created_at, s.expires_at, {} \
         FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id \
         WHERE s.token_hash = $1",
        USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let Some(row) = db.query_opt(&sql, &[&token_hash]).await? else {
        return Ok(None);
    };
    let session = DashboardSession {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        csrf_token: row.get(2)?,
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
    };
    if now >= session.expires_at {
        delete_session(db, token_hash).await?;
        return Ok(None);
    }
    Ok(Some((session, user(&row, 5)?)))
}

pub(crate) async fn delete_session<S: Sql>(db: &mut S, token_hash: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM dashboard_sessions WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete_expired<S: Sql>(db: &mut S, now: i64) -> Result<u64, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM dashboard_sessions WHERE expires_at <= $1",
            &[&now],
        )
        .await?)
}

/// The [`DashboardStore`] of a backend, over its transaction runner (see `store::impl_store`).
macro_rules! impl_dashboard_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use $crate::store::dashboard::{
                self as rules, AdminToken, DashboardInvitation, DashboardSession, DashboardStore,
                DashboardUser, NewDashboardUser,
            };
            use $crate::store::dashboard_access as access;
            use $crate::store::StoreError;

            #[async_trait::async_trait]
            impl DashboardStore for $store {
                async fn create_dashboard_user(
                    &self,
                    new: NewDashboardUser,
                ) -> Result<DashboardUser, StoreError> {
                    $tx!(self, write, |db| rules::create_user(db, new))
                }

                async fn dashboard_user_by_email(
                    &self,
                    email: &str,
                ) -> Result<Option<DashboardUser>, StoreError> {
                    let email = email.to_owned();
                    $tx!(self, read, |db| rules::user_by_email(db, &email))
                }

                async fn set_dashboard_password(
                    &self,
                    email: &str,
                    password_hash: &str,
                ) -> Result<(), StoreError> {
                    let (email, hash) = (email.to_owned(), password_hash.to_owned());
                    $tx!(self, write, |db| rules::set_password(db, &email, &hash))
                }

                async fn create_dashboard_session(
                    &self,
                    session: DashboardSession,
                ) -> Result<(), StoreError> {
                    $tx!(self, write, |db| rules::create_session(db, session))
                }

                async fn dashboard_session(
                    &self,
                    token_hash: &str,
                    now: i64,
                ) -> Result<Option<(DashboardSession, DashboardUser)>, StoreError> {
                    let token_hash = token_hash.to_owned();
                    $tx!(self, write, |db| rules::session(db, &token_hash, now))
                }

                async fn delete_dashboard_session(
                    &self,
                    token_hash: &str,
                ) -> Result<(), StoreError> {
                    let token_hash = token_hash.to_owned();
                    $tx!(self, write, |db| rules::delete_session(db, &token_hash))
                }

                async fn delete_expired_dashboard_sessions(
                    &self,
                    now: i64,
                ) -> Result<u64, StoreError> {
                    $tx!(self, write, |db| rules::delete_expired(db, now))
                }

                async fn list_dashboard_users(
                    &self,
                    tenant: Option<&str>,
                ) -> Result<Vec<DashboardUser>, StoreError> {
                    let tenant = tenant.map(str::to_owned);
                    $tx!(self, read, |db| access::users(db, tenant.as_deref()))
                }

                async fn create_dashboard_invitation(
                    &self,
                    invitation: DashboardInvitation,
                ) -> Result<(), StoreError> {
                    $tx!(self, write, |db| access::create_invitation(db, invitation))
                }

                async fn dashboard_invitation(
                    &self,
                    token_hash: &str,
                    now: i64,
                ) -> Result<Option<DashboardInvitation>, StoreError> {
                    let token_hash = token_hash.to_owned();
                    $tx!(self, write, |db| access::invitation(db, &token_hash, now))
                }

                async fn accept_dashboard_invitation(
                    &self,
                    token_hash: &str,
                    password_hash: &str,
                    now: i64,
                ) -> Result<DashboardUser, StoreError> {
                    let (token_hash, hash) = (token_hash.to_owned(), password_hash.to_owned());
                    $tx!(self, write, |db| access::accept_invitation(
                        db,
                        &token_hash,
                        &hash,
                        now
                    ))
                }

                async fn create_admin_token(&self, token: AdminToken) -> Result<(), StoreError> {
                    $tx!(self, write, |db| access::create_token(db, token))
                }

                async fn admin_token_by_hash(
                    &self,
                    token_hash: &str,
                ) -> Result<Option<AdminToken>, StoreError> {
                    let token_hash = token_hash.to_owned();
                    $tx!(self, read, |db| access::token_by_hash(db, &token_hash))
                }

                async fn list_admin_tokens(
                    &self,
                    user_id: &str,
                ) -> Result<Vec<AdminToken>, StoreError> {
                    let user_id = user_id.to_owned();
                    $tx!(self, read, |db| access::tokens_of(db, &user_id))
                }

                async fn delete_admin_token(
                    &self,
                    user_id: &str,
                    id: &str,
                ) -> Result<(), StoreError> {
                    let (user_id, id) = (user_id.to_owned(), id.to_owned());
                    $tx!(self, write, |db| access::delete_token(db, &user_id, &id))
                }
            }
        };
    };
}
pub(crate) use impl_dashboard_store;
