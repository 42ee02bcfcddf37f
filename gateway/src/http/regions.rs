//! `GET /v1/regions`: the regions document (`docs/regions.md`), each region's public WebSocket
//! URL as configured (`regions` setting), for the SDKs' discovery option to probe. It is public
//! (no credentials, and no app data: the same URLs any client is given) and may be read from a
//! browser page on any origin, hence `Access-Control-Allow-Origin: *`. Not configured, it
//! answers 404 `not_found`, so a client pointed at a gateway without regions learns so at once
//! instead of probing an empty list.

use crate::gateway::Gateway;
use axum::extract::State;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::regions::RegionsDocument;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

/// Clients fetch the document at connect and on every re-probe; a minute of caching spares a
/// gateway a fetch per connect from the same browser while a changed list still spreads soon.
const CACHE: &str = "public, max-age=60";

#[utoipa::path(
    get,
    path = "/v1/regions",
    operation_id = "regions",
    tag = "regions",
    summary = "The regions' gateway URLs, for the SDKs' discovery option (docs/regions.md)",
    responses(
        (status = 200, description = "The regions configured on this gateway (`regions` setting), in order.", body = RegionsDocument),
        (status = 404, description = "`not_found`: no regions are configured on this gateway.", body = ErrorBody),
    ),
    security(()),
)]
pub async fn regions(State(gw): State<Arc<Gateway>>) -> Response {
    let doc = &gw.config.regions;
    if doc.regions.is_empty() {
        return ApiError::new(
            ErrorCode::NotFound,
            "no regions are configured on this gateway",
        )
        .into_response();
    }
    (
        [(ACCESS_CONTROL_ALLOW_ORIGIN, "*"), (CACHE_CONTROL, CACHE)],
        Json(doc.clone()),
    )
        .into_response()
}
