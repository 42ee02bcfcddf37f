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
//! - [`access`]: the app a page is about, if the signed-in user may see it.
//! - [`recordings`]: an app's recordings: start, stop, events, export, replays and their progress.
//! - [`webhooks`]: an app's webhook delivery log, and retrying a dead letter.
//! - [`when`]: times shown in pages.
//! - [`invitations`], [`signup`]: tenant users by an operator's invitation or by sign-up.
//! - [`app_edit`], [`mint`]: an app's settings page, through the admin API's handlers.
//! - [`profile`]: one's password and one's tenant tokens for the admin API.
//! - [`servers`]: the Servers page: tenants' server connections and the gateway nodes, live.
//!
//! Accounts and sessions are kept by the [`DashboardStore`](crate::store::DashboardStore).

mod access;
pub mod accounts;
mod app_edit;
pub mod config;
mod invitations;
mod limiter;
mod mint;
mod pages;
pub mod password;
mod profile;
mod recordings;
mod servers;
mod session;
mod signup;
mod templates;
pub(crate) mod usage;
mod webhooks;
mod when;

pub use config::DashboardConfig;

use crate::admin::Admin;
use crate::recordings::Recordings;
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
    /// Recordings and replays, through the same logic as their admin API.
    pub(crate) recordings: Arc<Recordings>,
    pub(crate) config: DashboardConfig,
    pub(crate) by_account: limiter::Limiter,
    pub(crate) by_address: limiter::Limiter,
    /// Gateways and server connections, for the Servers page.
    pub(crate) servers: Arc<crate::servers::Monitor>,
}

impl Dashboard {
    pub(crate) fn new(
        accounts: Arc<dyn DashboardStore>,
        store: Arc<dyn Store>,
        admin: Arc<Admin>,
        recordings: Arc<Recordings>,
        config: DashboardConfig,
        servers: Arc<crate::servers::Monitor>,
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
            recordings,
            config,
            servers,
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
        .route("/dashboard/apps/{id}/settings", get(app_edit::settings))
        .route(
            "/dashboard/apps/{id}/settings/{action}",
            post(app_edit::change),
        )
        .route("/dashboard/users", get(invitations::users))
        .route("/dashboard/users/invite", post(invitations::invite))
        .route(
            "/dashboard/invitations/{token}",
            get(invitations::invitation).post(invitations::accept),
        )
        .route(
            "/dashboard/signup",
            get(signup::signup_form).post(signup::signup),
        )
        .route("/dashboard/profile", get(profile::profile))
        .route(
            "/dashboard/profile/password",
            post(profile::change_password),
        )
        .route("/dashboard/profile/tokens", post(profile::create_token))
        .route(
            "/dashboard/profile/tokens/revoke",
            post(profile::revoke_token),
        )
        .route("/dashboard/servers", get(servers::page))
        .route("/dashboard/servers.json", get(servers::json))
        .route("/dashboard/assets/{name}", get(templates::asset))
        .merge(recordings::routes())
        .merge(webhooks::routes())
        .layer(axum::middleware::map_response(session::security_headers))
        .with_state(dashboard)
}
