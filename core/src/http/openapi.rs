//! What the OpenAPI 3.1 documents of both fronts (gateway REST API, control-plane admin API)
//! share: the security schemes, serving a document at `GET /openapi.json`, and the operations
//! every process answers. Each front derives its own document from its handlers'
//! `#[utoipa::path]` annotations; `waas/tests/openapi.rs` checks that every route registered in
//! a router is in it, and nothing else.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
/// An OpenAPI document, as the binaries merge and serve them.
pub use utoipa::openapi::OpenApi as Document;
use utoipa::Modify;

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

/// Operations served by closures or shared helpers, which cannot carry annotations themselves
/// (`GET /metrics` is a handler of each front, over the one [`crate::metrics::METRICS`]).
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

    /// Prometheus metrics of this process (`docs/metrics.md`).
    #[utoipa::path(
        get,
        path = "/metrics",
        operation_id = "metrics",
        tag = "operations",
        summary = "Prometheus metrics (docs/metrics.md)",
        responses(
            (status = 200, description = "The Prometheus text format.", body = String, content_type = "text/plain"),
        ),
        security(()),
    )]
    pub fn metrics() {}
}
