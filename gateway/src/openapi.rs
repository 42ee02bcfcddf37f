//! The gateway's OpenAPI 3.1 document, served at `GET /openapi.json`. Paths, parameters and
//! bodies come from the handlers' `#[utoipa::path]` annotations and the body types' `ToSchema`
//! derives, so the document follows the code; `waas/tests/openapi.rs` checks that every route
//! registered in a router is in it, and nothing else.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
/// An OpenAPI document, as the binaries merge and serve them.
pub use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use waas_protocol::rest::ErrorBody;

/// The REST API of a gateway: publish, batch, tokens, channels and presence, history,
/// recordings, the WebSocket endpoint, health and metrics.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "WaaS",
        description = "The WaaS REST API (docs/rest.md). Every error answer has the body `{\"error\": {\"code\", \"message\"}}`; branch on the status or `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::rest::publish,
        crate::rest::batch,
        crate::rest::mint_token,
        crate::presence::rest::list,
        crate::presence::rest::get,
        crate::presence::rest::members,
        crate::history_api::rest,
        crate::recordings_api::start,
        crate::recordings_api::get,
        crate::recordings_api::stop,
        crate::server::websocket,
        crate::server::readyz,
        crate::server::metrics,
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
        (name = "operations", description = "Health, readiness, metrics, this document"),
    ),
)]
pub struct GatewayApi;

/// Every security scheme a WaaS document may name, so gateway and admin documents merge into one.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = |description: &str, format: Option<&str>| {
            let mut http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description));
            if let Some(format) = format {
                http = http.bearer_format(format);
            }
            SecurityScheme::Http(http.build())
        };
        components.add_security_scheme(
            "api_key",
            bearer(
                "One of the app's API keys: `Authorization: Bearer <API key>` (docs/auth.md).",
                None,
            ),
        );
        components.add_security_scheme(
            "operator_token",
            bearer(
                "The operator token of the control-plane: `Authorization: Bearer <operator token>` (docs/admin.md).",
                None,
            ),
        );
        components.add_security_scheme(
            "jwt",
            bearer(
                "An end-user token signed for the app (docs/auth.md); WebSocket only, where it may also come as the `token` query parameter.",
                Some("JWT"),
            ),
        );
    }
}

/// The gateway's document.
pub fn document() -> Document {
    GatewayApi::openapi()
}

/// `GET /openapi.json` answering `doc`, serialised once.
pub fn route(doc: &Document) -> Router {
    let json = Bytes::from(doc.to_json().expect("OpenAPI documents serialise"));
    Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json).into_response() }
        }),
    )
}

/// Operations served by closures or shared helpers, which cannot carry annotations themselves.
pub mod ops {
    /// `GET /healthz` (a closure in each router).
    #[utoipa::path(
        get,
        path = "/healthz",
        operation_id = "healthz",
        tag = "operations",
        summary = "Liveness",
        responses(
            (status = 200, description = "The process serves HTTP.", body = String, content_type = "text/plain", example = "ok"),
        ),
        security(()),
    )]
    pub fn healthz() {}

    /// `GET /openapi.json` ([`super::route`]).
    #[utoipa::path(
        get,
        path = "/openapi.json",
        operation_id = "openapi",
        tag = "operations",
        summary = "This document (OpenAPI 3.1)",
        responses(
            (status = 200, description = "The OpenAPI 3.1 document of the APIs this process serves.", body = Object, content_type = "application/json"),
        ),
        security(()),
    )]
    pub fn openapi() {}
}
