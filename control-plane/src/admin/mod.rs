//! The admin REST API (`/v1/admin/...`), for operators: tenants, apps, keys and limits. Every
//! change is announced to gateways through the directory.

pub(crate) mod apps;
mod error;
pub mod openapi;
pub(crate) mod pusher;
mod tenant_tokens;
mod tenants;
pub(crate) mod usage;
pub(crate) mod webhooks;

pub use error::AdminError;

use crate::directory::Directory;
use crate::store::{DashboardStore, Store};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use waas_protocol::ErrorCode;

/// What the admin handlers share.
pub struct Admin {
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    /// Webhook endpoints and the delivery log.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// SHA-256 of the operator token; compared as hashes so timing reveals nothing useful.
    operator_token_hash: String,
    /// Which literal addresses routes' HTTP upstreams may have (`outbound_allow_*`).
    pub outbound: waas_core::egress::Policy,
    /// Where tenants' admin tokens are kept (made on the dashboard's Profile page).
    pub(crate) tokens: Arc<dyn DashboardStore>,
}

impl Admin {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<Directory>,
        webhooks: Arc<crate::webhooks::Webhooks>,
        operator_token: &str,
        outbound: waas_core::egress::Policy,
        tokens: Arc<dyn DashboardStore>,
    ) -> Arc<Self> {
        Arc::new(Admin {
            tokens,
            store,
            directory,
            outbound,
            webhooks,
            operator_token_hash: waas_core::app::hash_api_key(operator_token),
        })
    }
}

/// Proof that the request may act on what it names: the operator token reaches everything; a
/// tenant's admin token (`docs/admin.md`, "Tenant tokens") only the apps of its tenant, and
/// nothing else (see [`tenant_tokens`]).
pub struct Operator {
    /// `None` for the operator; the tenant of a tenant token.
    pub(crate) tenant: Option<String>,
}

impl Operator {
    /// The operator's own proof, for callers inside the control-plane (the dashboard) that
    /// have checked who may do what themselves.
    pub(crate) fn everything() -> Self {
        Operator { tenant: None }
    }
}

impl FromRequestParts<Arc<Admin>> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, admin: &Arc<Admin>) -> Result<Self, AdminError> {
        let unauthorized = || {
            AdminError::new(
                ErrorCode::Unauthorized,
                "missing or wrong operator token (Authorization: Bearer <operator token>)",
            )
        };
        let hash = waas_core::http::error::bearer(parts)
            .map(waas_core::app::hash_api_key)
            .ok_or_else(unauthorized)?;
        if hash == admin.operator_token_hash {
            return Ok(Operator::everything());
        }
        match admin.tokens.admin_token_by_hash(&hash).await? {
            Some(token) => tenant_tokens::admit(parts, admin, token.tenant_id).await,
            None => Err(unauthorized()),
        }
    }
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route(
            "/v1/admin/tenants",
            post(tenants::create).get(tenants::list),
        )
        .route(
            "/v1/admin/tenants/{id}",
            get(tenants::get)
                .patch(tenants::rename)
                .delete(tenants::delete),
        )
        .route("/v1/admin/apps", post(apps::create).get(apps::list))
        .route(
            "/v1/admin/apps/{id}",
            get(apps::get).patch(apps::update).delete(apps::delete),
        )
        .route("/v1/admin/apps/{id}/keys", post(apps::add_key))
        .route(
            "/v1/admin/apps/{id}/keys/{key_id}",
            axum::routing::delete(apps::revoke_key),
        )
        .route("/v1/admin/apps/{id}/jwt-secret", post(apps::rotate_secret))
        .route(
            "/v1/admin/apps/{id}/pusher-secret",
            post(pusher::rotate_pusher_secret).delete(pusher::remove_pusher_secret),
        )
        .merge(webhooks::routes())
        .layer(axum::middleware::map_response(
            waas_core::http::json_errors::json_errors,
        ))
        .with_state(admin)
}
