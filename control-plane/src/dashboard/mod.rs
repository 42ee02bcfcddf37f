//! The browser dashboard, `/dashboard` (`docs/dashboard.md`): HTML rendered here from
//! templates compiled into the binary, a little CSS and JavaScript of our own, no CDN and no
//! build step.
//!
//! - [`config`]: `[dashboard]` settings (session lifetime, cookie flags, sign-in limits).
//! - [`password`]: Argon2id hashes.
//! - [`session`]: the session cookie, the signed-in user and the CSRF check of every form.
//! - [`limiter`]: failed sign-ins per account and per address.
//! - [`pages`]: sign-in, sign-out and the Apps pages.
//! - [`usage`]: the Usage page of an app, its live and history charts.
//! - [`accounts`]: creating accounts (the CLI, the environment, `waas dev`).
//!
//! Accounts and sessions are kept by the [`DashboardStore`](crate::store::DashboardStore).

pub mod accounts;
pub mod config;
mod limiter;
mod pages;
pub mod password;
mod session;
mod templates;
pub(crate) mod usage;

pub use config::DashboardConfig;

use crate::admin::Admin;
use crate::store::{DashboardStore, Store};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// What the dashboard's handlers share.
pub struct Dashboard {
    pub(crate) accounts: Arc<dyn DashboardStore>,
    pub(crate) store: Arc<dyn Store>,
    /// App changes go through the admin API's logic, so both check and announce alike.
    pub(crate) admin: Arc<Admin>,
    pub(crate) config: DashboardConfig,
    pub(crate) by_account: limiter::Limiter,
    pub(crate) by_address: limiter::Limiter,
}

impl Dashboard {
    pub(crate) fn new(
        accounts: Arc<dyn DashboardStore>,
        store: Arc<dyn Store>,
        admin: Arc<Admin>,
        config: DashboardConfig,
    ) -> Arc<Self> {
        Arc::new(Dashboard {
            by_account: limiter::Limiter::new(
                config.login_max_failures_per_account,
                config.login_window(),
            ),
            by_address: limiter::Limiter::new(
                config.login_max_failures_per_address,
                config.login_window(),
            ),
            accounts,
            store,
            admin,
            config,
        })
    }
}

/// Seconds since the Unix epoch, the unit of sessions' times.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/dashboard", get(pages::home))
        .route("/dashboard/", get(pages::home))
        .route(
            "/dashboard/login",
            get(pages::login_form).post(pages::login),
        )
        .route("/dashboard/logout", post(pages::logout))
        .route("/dashboard/apps", get(pages::apps).post(pages::create_app))
        .route("/dashboard/apps/{id}", get(pages::app))
        .route("/dashboard/assets/{name}", get(templates::asset))
        .layer(axum::middleware::map_response(session::security_headers))
        .with_state(dashboard)
}
