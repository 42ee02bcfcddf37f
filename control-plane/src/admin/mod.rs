//! The admin REST API (`/v1/admin/...`), for operators: tenants, apps, keys and limits. Every
//! change is announced to gateways through the directory.

pub(crate) mod apps;
mod error;
pub mod openapi;
mod pusher;
mod tenants;
pub(crate) mod usage;
mod webhooks;

pub use error::AdminError;

use crate::directory::Directory;
use crate::store::Store;
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
}

impl Admin {
    pub fn new(
        store: Arc<dyn Store>,
        directory: Arc<Directory>,
        webhooks: Arc<crate::webhooks::Webhooks>,
        operator_token: &str,
        outbound: waas_core::egress::Policy,
    ) -> Arc<Self> {
        Arc::new(Admin {
            store,
            directory,
            outbound,
            webhooks,
            operator_token_hash: waas_core::app::hash_api_key(operator_token),
        })
    }
}

/// Proof that the request carried the operator token.
pub struct Operator;

impl FromRequestParts<Arc<Admin>> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, admin: &Arc<Admin>) -> Result<Self, AdminError> {
        let token = waas_core::http::error::bearer(parts);
        match token {
            Some(t) if waas_core::app::hash_api_key(t) == admin.operator_token_hash => Ok(Operator),
            _ => Err(AdminError::new(
                ErrorCode::Unauthorized,
                "missing or wrong operator token (Authorization: Bearer <operator token>)",
            )),
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
