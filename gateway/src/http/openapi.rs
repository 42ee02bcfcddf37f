//! The gateway's OpenAPI 3.1 document, served at `GET /openapi.json`. Paths, parameters and
//! bodies come from the handlers' `#[utoipa::path]` annotations and the body types' `ToSchema`
//! derives, so the document follows the code; `waas/tests/openapi.rs` checks that every route
//! registered in a router is in it, and nothing else.

use utoipa::OpenApi;
use waas_core::http::openapi::{ops, Document, SecuritySchemes};
use waas_protocol::rest::ErrorBody;

/// The REST API of a gateway: publish, batch, tokens, channels and presence, history,
/// recordings, the WebSocket endpoint, the regions document, health and metrics.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "WaaS",
        description = "The WaaS REST API (docs/rest.md). Every error answer has the body `{\"error\": {\"code\", \"message\"}}`; branch on the status or `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::http::rest::publish,
        crate::http::rest::batch,
        crate::http::rest::mint_token,
        crate::http::channels::list,
        crate::http::channels::get,
        crate::http::channels::members,
        crate::http::history::get,
        crate::http::recordings::start,
        crate::http::recordings::get,
        crate::http::recordings::stop,
        crate::http::websocket::websocket,
        crate::http::regions::regions,
        crate::pusher::upgrade::websocket,
        crate::pusher::upgrade::unknown_path,
        crate::http::pusher::events::event,
        crate::http::pusher::events::batch,
        crate::http::pusher::channels::list,
        crate::http::pusher::channels::get,
        crate::http::pusher::channels::users,
        crate::http::pusher::users::terminate,
        crate::http::readyz,
        ops::metrics,
        ops::healthz,
        ops::openapi,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "messages", description = "Publishing (docs/rest.md)"),
        (name = "tokens", description = "End-user tokens (docs/auth.md)"),
        (name = "channels", description = "Channels and presence (docs/rest.md)"),
        (name = "history", description = "Channel history (docs/history.md)"),
        (name = "recordings", description = "Recordings (docs/recordings.md)"),
        (name = "websocket", description = "The native protocol (docs/protocol.md)"),
        (name = "regions", description = "Each region's gateway URL, for the SDKs' discovery (docs/regions.md)"),
        (name = "pusher", description = "The Pusher front: protocol 7 at /app/{key} and the HTTP API at /apps/{app_id}, signed Pusher's way (docs/pusher.md)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
pub struct GatewayApi;

/// The gateway's document.
pub fn document() -> Document {
    GatewayApi::openapi()
}
