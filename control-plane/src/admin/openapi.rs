//! The control-plane's OpenAPI 3.1 document, served at `GET /openapi.json` by `waas
//! control-plane` (and, merged with the gateway's, by `waas dev`): the admin API with its
//! recordings part, health and metrics. Generated from the handlers' annotations and the body
//! types, like the gateway's (`waas_gateway::openapi`).

use crate::store::webhooks::{Attempt, Delivery, DeliveryStatus};
use crate::store::{NewTenant, Tenant};
use utoipa::openapi::OpenApi as Document;
use utoipa::OpenApi;
use waas_core::http::openapi::SecuritySchemes;
use waas_protocol::rest::ErrorBody;

/// The admin API (`docs/admin.md`, `docs/recordings.md`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "WaaS admin API",
        description = "The operator's API (docs/admin.md), with the operator token. Every error answer has the body `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::tenants::create,
        super::tenants::list,
        super::tenants::get,
        super::tenants::rename,
        super::tenants::delete,
        super::apps::create,
        super::apps::list,
        super::apps::get,
        super::apps::update,
        super::apps::delete,
        super::apps::add_key,
        super::apps::revoke_key,
        super::apps::rotate_secret,
        super::pusher::rotate_pusher_secret,
        super::pusher::remove_pusher_secret,
        super::usage::usage_of_app,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::read,
        super::webhooks::update,
        super::webhooks::remove,
        super::webhooks::deliveries,
        super::webhooks::delivery,
        super::webhooks::retry,
        crate::recordings::routes::start,
        crate::recordings::routes::list,
        crate::recordings::routes::show,
        crate::recordings::routes::stop,
        crate::recordings::routes::delete,
        crate::recordings::routes::events,
        crate::recordings::routes::export,
        crate::recordings::routes::replay,
        crate::recordings::routes::show_replay,
        crate::recordings::routes::pause,
        crate::recordings::routes::resume,
        crate::recordings::routes::stop_replay,
        crate::servers::routes::servers,
        crate::servers::routes::nodes,
        waas_core::http::openapi::ops::healthz,
        waas_core::http::openapi::ops::metrics,
        waas_core::http::openapi::ops::openapi,
    ),
    components(schemas(ErrorBody, Tenant, NewTenant, Delivery, Attempt, DeliveryStatus, crate::servers::ServerView, crate::servers::NodeView)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin: tenants", description = "Tenants (docs/admin.md)"),
        (name = "admin: apps", description = "Apps, API keys, JWT secrets, limits, routes (docs/admin.md)"),
        (name = "admin: webhooks", description = "Webhook endpoints and the delivery log (docs/webhooks.md)"),
        (name = "admin: recordings", description = "Recordings, their events, export and replays (docs/recordings.md)"),
        (name = "admin: servers", description = "Gateway nodes and apps' server connections (docs/admin.md)"),
        (name = "operations", description = "Health, metrics, this document"),
    ),
)]
pub struct AdminApi;

/// The control-plane's document.
pub fn document() -> Document {
    AdminApi::openapi()
}
