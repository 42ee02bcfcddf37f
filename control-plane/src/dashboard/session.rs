//! The session cookie, the signed-in user, and the CSRF check.
//!
//! The cookie holds 32 random bytes; the store keeps only their SHA-256, so reading the table
//! does not give sessions away. Each session has its own CSRF token, put in every form and
//! compared on every POST. The sign-in form, before any session exists, is protected the same
//! way by a token in a cookie of its own (double submit).

use super::Dashboard;
use crate::store::dashboard::{DashboardSession, DashboardUser, Role};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use std::sync::Arc;

pub(crate) const SESSION_COOKIE: &str = "waas_session";
pub(crate) const LOGIN_COOKIE: &str = "waas_login";

/// 32 random bytes, URL-safe base64: session tokens and CSRF tokens.
pub(crate) fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

pub(crate) fn token_hash(token: &str) -> String {
    waas_core::app::hash_api_key(token)
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, scoped to `/dashboard`, `Secure` when
/// configured. `max_age` 0 deletes the cookie.
pub(crate) fn set_cookie(
    dashboard: &Dashboard,
    name: &str,
    value: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if dashboard.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie of token characters")
}

/// Equal strings, compared in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in user, with their session. Without a live session the request is sent to the
/// sign-in page.
pub(crate) struct SignedIn {
    pub session: DashboardSession,
    pub user: DashboardUser,
}

impl SignedIn {
    /// The tenant whose apps the user may see; `None` for an operator (every tenant).
    pub fn tenant(&self) -> Option<&str> {
        match &self.user.role {
            Role::Operator => None,
            Role::Tenant(t) => Some(t),
        }
    }

    /// Whether a form's CSRF token is the session's.
    pub fn csrf_ok(&self, sent: Option<&str>) -> bool {
        sent.is_some_and(|t| same(t, &self.session.csrf_token))
    }
}

impl FromRequestParts<Arc<Dashboard>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Arc<Dashboard>,
    ) -> Result<Self, Response> {
        let to_login = || Redirect::to("/dashboard/login").into_response();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match dashboard
            .accounts
            .dashboard_session(&token_hash(token), super::now())
            .await
        {
            Ok(Some((session, user))) => Ok(SignedIn { session, user }),
            Ok(None) => Err(to_login()),
            Err(e) => Err(super::pages::unavailable(&e)),
        }
    }
}

/// Headers on every dashboard answer: no framing, no inline or foreign scripts, no referrer,
/// and pages never cached (they show per-user data and secrets).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
