//! The Profile page, `/dashboard/profile`: change one's password, and a tenant user's own
//! tokens for the admin API (`docs/admin.md`, "Tenant tokens"), kept as SHA-256 hashes and
//! shown once.
//!
//! Changing the password ends every session of the account (the store does that) and signs
//! this browser in anew, so a session stolen before the change stops working.

use super::app_edit::Fields;
use super::pages::{forbidden, me, not_found, render, unavailable};
use super::session::{random_token, set_cookie, token_hash, SignedIn, SESSION_COOKIE};
use super::{password, Dashboard};
use crate::store::dashboard::{AdminToken, DashboardSession, DashboardUser};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;
use std::sync::Arc;

/// Signs `user` in: a new session, its cookie, and a redirect to `to`.
pub(super) async fn start_session(
    dashboard: &Dashboard,
    user: &DashboardUser,
    to: &str,
) -> Response {
    let token = random_token();
    let now = super::now();
    let session = DashboardSession {
        token_hash: token_hash(&token),
        user_id: user.id.clone(),
        csrf_token: random_token(),
        created_at: now,
        expires_at: now.saturating_add(dashboard.config.session_ttl_secs as i64),
    };
    if let Err(e) = dashboard.accounts.create_dashboard_session(session).await {
        return unavailable(&e);
    }
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            dashboard,
            SESSION_COOKIE,
            &token,
            dashboard.config.session_ttl_secs,
        ),
    );
    response
}

#[derive(Serialize, Default)]
struct Notice {
    error: Option<String>,
    done: Option<String>,
    token: Option<String>,
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    prefix: String,
    label: Option<String>,
    created_at: i64,
}

async fn page(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    status: StatusCode,
    notice: Notice,
) -> Response {
    let tokens: Vec<TokenRow> = match dashboard
        .accounts
        .list_admin_tokens(&signed_in.user.id)
        .await
    {
        Ok(t) => t
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                prefix: t.prefix,
                label: t.label,
                created_at: t.created_at,
            })
            .collect(),
        Err(e) => return unavailable(&e),
    };
    render(
        status,
        "profile.html",
        context! { nav => "profile", me => me(signed_in), tokens, notice },
    )
}

pub(crate) async fn profile(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    RawQuery(query): RawQuery,
) -> Response {
    let done = (query.as_deref() == Some("changed=password"))
        .then(|| "Password changed. Every other session of this account has ended.".to_owned());
    page(
        &dashboard,
        &signed_in,
        StatusCode::OK,
        Notice {
            done,
            ..Notice::default()
        },
    )
    .await
}

fn error(message: &str) -> Notice {
    Notice {
        error: Some(message.to_owned()),
        ..Notice::default()
    }
}

/// `POST /dashboard/profile/password`: the old password, the new one twice.
pub(crate) async fn change_password(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    body: Bytes,
) -> Response {
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if !fields.csrf_ok(&signed_in) {
        return forbidden();
    }
    let old = fields.get("old_password").unwrap_or("").to_owned();
    let new = fields.get("new_password").unwrap_or("").to_owned();
    if fields.get("confirm_password").unwrap_or("") != new {
        let notice = error("The new password and its confirmation differ.");
        return page(&dashboard, &signed_in, StatusCode::BAD_REQUEST, notice).await;
    }
    if let Err(m) = password::check_strength(&new) {
        return page(&dashboard, &signed_in, StatusCode::BAD_REQUEST, error(&m)).await;
    }
    let stored = signed_in.user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify(&old, &stored))
        .await
        .unwrap_or(false);
    if !ok {
        tracing::info!(email = %signed_in.user.email, "dashboard: password change refused (wrong old password)");
        let notice = error("The current password is wrong.");
        return page(&dashboard, &signed_in, StatusCode::UNAUTHORIZED, notice).await;
    }
    let hash = match tokio::task::spawn_blocking(move || password::hash(&new)).await {
        Ok(Ok(h)) => h,
        _ => {
            let notice = error("The password could not be hashed.");
            return page(
                &dashboard,
                &signed_in,
                StatusCode::INTERNAL_SERVER_ERROR,
                notice,
            )
            .await;
        }
    };
    // Ends every session of the account, this one included; this browser gets a new one.
    if let Err(e) = dashboard
        .accounts
        .set_dashboard_password(&signed_in.user.email, &hash)
        .await
    {
        return unavailable(&e);
    }
    tracing::info!(email = %signed_in.user.email, "dashboard: password changed, other sessions ended");
    start_session(
        &dashboard,
        &signed_in.user,
        "/dashboard/profile?changed=password",
    )
    .await
}

/// `POST /dashboard/profile/tokens`: a new admin-API token for the user's tenant.
pub(crate) async fn create_token(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    body: Bytes,
) -> Response {
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if !fields.csrf_ok(&signed_in) {
        return forbidden();
    }
    let Some(tenant) = signed_in.tenant().map(str::to_owned) else {
        let notice = error("Operators use the operator token; tenant tokens are for tenant users.");
        return page(&dashboard, &signed_in, StatusCode::BAD_REQUEST, notice).await;
    };
    let label = fields.text("label");
    if label.len() > 200 {
        let notice = error("The label is at most 200 bytes.");
        return page(&dashboard, &signed_in, StatusCode::BAD_REQUEST, notice).await;
    }
    let key = crate::secrets::admin_token();
    let token = AdminToken {
        id: format!("at_{}", crate::secrets::id()),
        token_hash: waas_core::app::hash_api_key(&key.key),
        prefix: key.prefix,
        label: Some(label.to_owned()).filter(|l| !l.is_empty()),
        user_id: signed_in.user.id.clone(),
        tenant_id: tenant,
        created_at: super::now(),
    };
    if let Err(e) = dashboard.accounts.create_admin_token(token).await {
        return unavailable(&e);
    }
    tracing::info!(email = %signed_in.user.email, "dashboard: admin token created");
    let notice = Notice {
        token: Some(key.key),
        done: Some("Token created. Copy it now: it is shown only once.".into()),
        ..Notice::default()
    };
    page(&dashboard, &signed_in, StatusCode::CREATED, notice).await
}

/// `POST /dashboard/profile/tokens/revoke`: deletes one of the user's own tokens.
pub(crate) async fn revoke_token(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    body: Bytes,
) -> Response {
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if !fields.csrf_ok(&signed_in) {
        return forbidden();
    }
    match dashboard
        .accounts
        .delete_admin_token(&signed_in.user.id, fields.text("token"))
        .await
    {
        Ok(()) => {
            let notice = Notice {
                done: Some("Token revoked.".into()),
                ..Notice::default()
            };
            page(&dashboard, &signed_in, StatusCode::OK, notice).await
        }
        // Another user's token reads as missing.
        Err(StoreError::NotFound(_)) => not_found(),
        Err(e) => unavailable(&e),
    }
}
