//! Self sign-up, `/dashboard/signup`, when the operator sets `dashboard.self_signup`
//! (`docs/dashboard.md`): a new tenant and its first user, signed in at once. Off by default;
//! then the page does not exist (404).
//!
//! Sign-ups count against the source address's sign-in limit, so one address cannot make
//! tenants without bound. The form is protected by the same double-submit token as sign-in.

use super::app_edit::Fields;
use super::pages::{address, error_page, forbidden, not_found, render, unavailable};
use super::profile::start_session;
use super::session::{cookie, random_token, same, set_cookie, LOGIN_COOKIE};
use super::{accounts, Dashboard};
use crate::store::dashboard::Role;
use crate::store::NewTenant;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use std::sync::Arc;

fn signup_page(
    dashboard: &Dashboard,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
    organisation: &str,
) -> Response {
    let csrf = random_token();
    let mut response = render(
        status,
        "signup.html",
        context! { csrf => csrf.clone(), error, email, organisation },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(dashboard, LOGIN_COOKIE, &csrf, 3600),
    );
    response
}

pub(crate) async fn signup_form(State(dashboard): State<Arc<Dashboard>>) -> Response {
    if !dashboard.config.self_signup {
        return not_found();
    }
    signup_page(&dashboard, StatusCode::OK, None, "", "")
}

pub(crate) async fn signup(
    State(dashboard): State<Arc<Dashboard>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    if !dashboard.config.self_signup {
        return not_found();
    }
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    match (cookie(&headers, LOGIN_COOKIE), fields.get("csrf")) {
        (Some(a), Some(b)) if same(a, b) => {}
        _ => return forbidden(),
    }
    let email = fields.text("email");
    let organisation = fields.text("organisation");
    let again =
        |status, message: &str| signup_page(&dashboard, status, Some(message), email, organisation);
    let address_key = format!("address:{}", address(&extensions));
    if dashboard.by_address.blocked(&address_key) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from this address. Wait a few minutes and try again.",
        );
    }
    if organisation.is_empty() || organisation.len() > 200 {
        return again(
            StatusCode::BAD_REQUEST,
            "The organisation name is 1 to 200 bytes.",
        );
    }
    let password = fields.get("password").unwrap_or("");
    if fields.get("confirm_password").unwrap_or("") != password {
        return again(
            StatusCode::BAD_REQUEST,
            "The password and its confirmation differ.",
        );
    }
    let email = match accounts::check_email(email) {
        Ok(e) => e,
        Err(e) => return again(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Err(m) = super::password::check_strength(password) {
        return again(StatusCode::BAD_REQUEST, &m);
    }
    match dashboard.accounts.dashboard_user_by_email(&email).await {
        Ok(Some(_)) => {
            return again(
                StatusCode::CONFLICT,
                "An account with this email exists: sign in instead.",
            )
        }
        Ok(None) => {}
        Err(e) => return unavailable(&e),
    }
    // Each sign-up counts as an attempt of the address (see the module's doc).
    dashboard.by_address.fail(&address_key);
    let tenant = match dashboard
        .store
        .create_tenant(NewTenant {
            id: None,
            name: organisation.to_owned(),
        })
        .await
    {
        Ok(t) => t,
        Err(e) => return unavailable(&e),
    };
    let password = password.to_owned();
    let created = {
        let accounts = Arc::clone(&dashboard.accounts);
        let (email, tenant) = (email.clone(), tenant.id.clone());
        accounts::create_user(accounts.as_ref(), &email, &password, Role::Tenant(tenant)).await
    };
    let user = match created {
        Ok(u) => u,
        Err(e) => {
            // Taken meanwhile, or the store failed: the tenant made for it goes too.
            let _ = dashboard.store.delete_tenant(&tenant.id).await;
            tracing::info!(email = %email, error = %e, "dashboard sign-up failed");
            return error_page(
                StatusCode::CONFLICT,
                "The account could not be created; try again.",
            );
        }
    };
    tracing::info!(email = %user.email, tenant = %tenant.id, "dashboard: self sign-up");
    let mut response = start_session(&dashboard, &user, "/dashboard/apps").await;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&dashboard, LOGIN_COOKIE, "", 0),
    );
    response
}
