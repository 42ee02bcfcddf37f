//! Tenant users by invitation (`docs/dashboard.md`, "Accounts"): an operator invites an email
//! into a tenant on the Users page and gets a link, shown once; the invitee opens it, chooses a
//! password and is signed in. The link's token is single-use (the store deletes it in the
//! transaction that creates the account) and expires after `invitation_ttl_secs`; the store
//! keeps only its SHA-256.
//!
//! The accept form, like the sign-in form, is protected by a double-submit token in the
//! `waas_login` cookie, so another site cannot sign a browser in to an account of its making.

use super::app_edit::Fields;
use super::pages::{error_page, forbidden, me, not_found, render, unavailable};
use super::profile::start_session;
use super::session::{cookie, random_token, same, set_cookie, token_hash, SignedIn, LOGIN_COOKIE};
use super::{accounts, password, Dashboard};
use crate::store::dashboard::{DashboardInvitation, Role};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize)]
struct UserRow {
    email: String,
    tenant: Option<String>,
    created_at: i64,
}

#[derive(Serialize, Default)]
struct Invite {
    email: String,
    tenant: String,
    error: Option<String>,
    /// The link, shown once.
    link: Option<String>,
}

async fn users_page(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    status: StatusCode,
    invite: Invite,
) -> Response {
    let users = match dashboard.accounts.list_dashboard_users(None).await {
        Ok(u) => u,
        Err(e) => return unavailable(&e),
    };
    let tenants: Vec<String> = match dashboard.store.list_tenants().await {
        Ok(t) => t.into_iter().map(|t| t.id).collect(),
        Err(e) => return unavailable(&e),
    };
    let users: Vec<UserRow> = users
        .into_iter()
        .map(|u| UserRow {
            email: u.email,
            tenant: match u.role {
                Role::Operator => None,
                Role::Tenant(t) => Some(t),
            },
            created_at: u.created_at,
        })
        .collect();
    render(
        status,
        "users.html",
        context! {
            nav => "users", me => me(signed_in), users, tenants, invite,
            ttl_days => dashboard.config.invitation_ttl_secs.div_ceil(86_400),
        },
    )
}

/// `GET /dashboard/users`: operators only; a tenant user gets the "no such page" answer.
pub(crate) async fn users(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
) -> Response {
    if signed_in.tenant().is_some() {
        return not_found();
    }
    users_page(&dashboard, &signed_in, StatusCode::OK, Invite::default()).await
}

/// The link's origin, from the request's `Host` (the operator's own browser asked).
fn origin(dashboard: &Dashboard, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if dashboard.config.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `POST /dashboard/users/invite`: email and tenant; answers with the link, shown once.
pub(crate) async fn invite(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if signed_in.tenant().is_some() {
        return not_found();
    }
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if !fields.csrf_ok(&signed_in) {
        return forbidden();
    }
    let mut invite = Invite {
        email: fields.text("email").to_owned(),
        tenant: fields.text("tenant").to_owned(),
        ..Invite::default()
    };
    let email = match accounts::check_email(&invite.email) {
        Ok(e) => e,
        Err(e) => {
            invite.error = Some(e.to_string());
            return users_page(&dashboard, &signed_in, StatusCode::BAD_REQUEST, invite).await;
        }
    };
    match dashboard.accounts.dashboard_user_by_email(&email).await {
        Ok(Some(_)) => {
            invite.error = Some(format!("{email} has an account already."));
            return users_page(&dashboard, &signed_in, StatusCode::CONFLICT, invite).await;
        }
        Ok(None) => {}
        Err(e) => return unavailable(&e),
    }
    let token = random_token();
    let now = super::now();
    let created = dashboard
        .accounts
        .create_dashboard_invitation(DashboardInvitation {
            token_hash: token_hash(&token),
            email: email.clone(),
            tenant_id: invite.tenant.clone(),
            created_at: now,
            expires_at: now.saturating_add(dashboard.config.invitation_ttl_secs as i64),
        })
        .await;
    match created {
        Ok(()) => {
            tracing::info!(email = %email, tenant = %invite.tenant, by = %signed_in.user.email, "dashboard: invitation made");
            let link = format!(
                "{}/dashboard/invitations/{token}",
                origin(&dashboard, &headers)
            );
            let invite = Invite {
                email,
                tenant: invite.tenant,
                error: None,
                link: Some(link),
            };
            users_page(&dashboard, &signed_in, StatusCode::CREATED, invite).await
        }
        Err(StoreError::NotFound(m)) => {
            invite.error = Some(format!("No such tenant ({m})."));
            users_page(&dashboard, &signed_in, StatusCode::NOT_FOUND, invite).await
        }
        Err(e) => unavailable(&e),
    }
}

fn gone() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "This invitation has been used, has expired, or never existed. Ask for a new one.",
    )
}

fn accept_page(
    dashboard: &Dashboard,
    status: StatusCode,
    token: &str,
    invitation: &DashboardInvitation,
    error: Option<&str>,
) -> Response {
    let csrf = random_token();
    let mut response = render(
        status,
        "invitation.html",
        context! {
            csrf => csrf.clone(), token, error,
            email => invitation.email, tenant => invitation.tenant_id,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(dashboard, LOGIN_COOKIE, &csrf, 3600),
    );
    response
}

/// `GET /dashboard/invitations/{token}`: the form to choose a password.
pub(crate) async fn invitation(
    State(dashboard): State<Arc<Dashboard>>,
    Path(token): Path<String>,
) -> Response {
    match dashboard
        .accounts
        .dashboard_invitation(&token_hash(&token), super::now())
        .await
    {
        Ok(Some(inv)) => accept_page(&dashboard, StatusCode::OK, &token, &inv, None),
        Ok(None) => gone(),
        Err(e) => unavailable(&e),
    }
}

/// `POST /dashboard/invitations/{token}`: creates the account and signs it in.
pub(crate) async fn accept(
    State(dashboard): State<Arc<Dashboard>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match (cookie(&headers, LOGIN_COOKIE), fields.get("csrf")) {
        (Some(a), Some(b)) if same(a, b) => {}
        _ => return forbidden(),
    }
    let hash = token_hash(&token);
    let inv = match dashboard
        .accounts
        .dashboard_invitation(&hash, super::now())
        .await
    {
        Ok(Some(inv)) => inv,
        Ok(None) => return gone(),
        Err(e) => return unavailable(&e),
    };
    let new = fields.get("password").unwrap_or("").to_owned();
    if fields.get("confirm_password").unwrap_or("") != new {
        let m = "The password and its confirmation differ.";
        return accept_page(&dashboard, StatusCode::BAD_REQUEST, &token, &inv, Some(m));
    }
    if let Err(m) = password::check_strength(&new) {
        return accept_page(&dashboard, StatusCode::BAD_REQUEST, &token, &inv, Some(&m));
    }
    let password_hash = match tokio::task::spawn_blocking(move || password::hash(&new)).await {
        Ok(Ok(h)) => h,
        _ => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"),
    };
    let user = match dashboard
        .accounts
        .accept_dashboard_invitation(&hash, &password_hash, super::now())
        .await
    {
        Ok(user) => user,
        Err(StoreError::NotFound(_)) => return gone(),
        Err(StoreError::Conflict(_)) => {
            let m = "This email has an account already: sign in instead.";
            return accept_page(&dashboard, StatusCode::CONFLICT, &token, &inv, Some(m));
        }
        Err(e) => return unavailable(&e),
    };
    tracing::info!(email = %user.email, "dashboard: invitation accepted");
    let mut response = start_session(&dashboard, &user, "/dashboard/apps").await;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&dashboard, LOGIN_COOKIE, "", 0),
    );
    response
}
