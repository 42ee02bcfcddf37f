//! The rules behind dashboard invitations and tenants' admin-API tokens (part of the
//! [`DashboardStore`](super::DashboardStore), `docs/dashboard.md`, `docs/admin.md`), written
//! once over the SQL layer and run through `control-plane/tests/store_suite.rs` on both
//! backends.
//!
//! Guarantees: an invitation is used at most once (accepting deletes it in the transaction
//! that creates the account) and never after its `expires_at`; tokens are kept as SHA-256
//! hashes only; deleting a tenant deletes its invitations and tokens, deleting an account its
//! tokens.

use super::dashboard::{create_user, DashboardUser, NewDashboardUser, Role};
use super::sql::{on_constraint, Constraint, Sql, SqlRow};
use super::StoreError;

/// An invitation to become a user of `tenant_id`. The link holds a token; only its SHA-256 is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardInvitation {
    pub token_hash: String,
    /// Lower-case.
    pub email: String,
    pub tenant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A tenant's token for the admin API. The token itself is shown once, when made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub id: String,
    pub token_hash: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub label: Option<String>,
    /// The account that made it.
    pub user_id: String,
    /// The only tenant whose apps it reaches.
    pub tenant_id: String,
    pub created_at: i64,
}

pub(crate) async fn create_invitation<S: Sql>(
    db: &mut S,
    inv: DashboardInvitation,
) -> Result<(), StoreError> {
    let email = inv.email.to_lowercase();
    db.execute(
        "INSERT INTO dashboard_invitations (token_hash, email, tenant_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &inv.token_hash,
            &email,
            &inv.tenant_id,
            &inv.created_at,
            &inv.expires_at,
        ],
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            Some(match c {
                Constraint::Unique => StoreError::Conflict("dashboard invitation".into()),
                Constraint::ForeignKey => StoreError::tenant_not_found(&inv.tenant_id),
            })
        })
    })?;
    Ok(())
}

/// The invitation, unless it does not exist or has expired (then it is deleted).
pub(crate) async fn invitation<S: Sql>(
    db: &mut S,
    token_hash: &str,
    now: i64,
) -> Result<Option<DashboardInvitation>, StoreError> {
    let Some(row) = db
        .query_opt(
            "SELECT token_hash, email, tenant_id, created_at, expires_at \
             FROM dashboard_invitations WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
    else {
        return Ok(None);
    };
    let inv = DashboardInvitation {
        token_hash: row.get(0)?,
        email: row.get(1)?,
        tenant_id: row.get(2)?,
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
    };
    if now >= inv.expires_at {
        db.execute(
            "DELETE FROM dashboard_invitations WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
        return Ok(None);
    }
    Ok(Some(inv))
}

/// Uses the invitation: deletes it and creates its account, in one transaction. `NotFound`
/// when there is no such live invitation (used, expired, never made); `Conflict` when its
/// email has an account meanwhile (the invitation is then kept).
pub(crate) async fn accept_invitation<S: Sql>(
    db: &mut S,
    token_hash: &str,
    password_hash: &str,
    now: i64,
) -> Result<DashboardUser, StoreError> {
    let inv = invitation(db, token_hash, now)
        .await?
        .ok_or_else(|| StoreError::NotFound("dashboard invitation".into()))?;
    db.execute(
        "DELETE FROM dashboard_invitations WHERE token_hash = $1",
        &[&token_hash],
    )
    .await?;
    create_user(
        db,
        NewDashboardUser {
            email: inv.email,
            password_hash: password_hash.to_owned(),
            role: Role::Tenant(inv.tenant_id),
            now,
        },
    )
    .await
}

const TOKEN_COLUMNS: &str = "id, token_hash, prefix, label, user_id, tenant_id, created_at";

fn token(row: &impl SqlRow) -> Result<AdminToken, StoreError> {
    Ok(AdminToken {
        id: row.get(0)?,
        token_hash: row.get(1)?,
        prefix: row.get(2)?,
        label: row.get(3)?,
        user_id: row.get(4)?,
        tenant_id: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(crate) async fn create_token<S: Sql>(db: &mut S, t: AdminToken) -> Result<(), StoreError> {
    db.execute(
        &format!("INSERT INTO admin_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        &[
            &t.id,
            &t.token_hash,
            &t.prefix,
            &t.label,
            &t.user_id,
            &t.tenant_id,
            &t.created_at,
        ],
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            Some(match c {
                Constraint::Unique => StoreError::Conflict(format!("admin token {}", t.id)),
                Constraint::ForeignKey => {
                    StoreError::NotFound(format!("dashboard user {} or tenant", t.user_id))
                }
            })
        })
    })?;
    Ok(())
}

pub(crate) async fn token_by_hash<S: Sql>(
    db: &mut S,
    token_hash: &str,
) -> Result<Option<AdminToken>, StoreError> {
    db.query_opt(
        &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE token_hash = $1"),
        &[&token_hash],
    )
    .await?
    .map(|row| token(&row))
    .transpose()
}

pub(crate) async fn tokens_of<S: Sql>(
    db: &mut S,
    user_id: &str,
) -> Result<Vec<AdminToken>, StoreError> {
    db.query(
        &format!(
            "SELECT {TOKEN_COLUMNS} FROM admin_tokens WHERE user_id = $1 ORDER BY created_at, id"
        ),
        &[&user_id],
    )
    .await?
    .iter()
    .map(token)
    .collect()
}

/// `NotFound` unless the token exists and is the user's.
pub(crate) async fn delete_token<S: Sql>(
    db: &mut S,
    user_id: &str,
    id: &str,
) -> Result<(), StoreError> {
    let n = db
        .execute(
            "DELETE FROM admin_tokens WHERE id = $1 AND user_id = $2",
            &[&id, &user_id],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("admin token {id}")));
    }
    Ok(())
}

/// Every account, or one tenant's, ordered by email.
pub(crate) async fn users<S: Sql>(
    db: &mut S,
    tenant: Option<&str>,
) -> Result<Vec<DashboardUser>, StoreError> {
    let columns = super::dashboard::USER_COLUMNS;
    let rows = match tenant {
        Some(t) => {
            db.query(
                &format!(
                    "SELECT {columns} FROM dashboard_users WHERE tenant_id = $1 ORDER BY email"
                ),
                &[&t],
            )
            .await?
        }
        None => {
            db.query(
                &format!("SELECT {columns} FROM dashboard_users ORDER BY email"),
                &[],
            )
            .await?
        }
    };
    rows.iter().map(|r| super::dashboard::user(r, 0)).collect()
}
