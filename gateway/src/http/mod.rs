//! The HTTP side of a gateway: every route, and the handlers behind them. The REST API is for
//! an app's servers (API key); the WebSocket endpoint hands the socket to [`crate::connection`].
//!
//! # Layout
//! - [`rest`]: publish, batch publish, mint tokens, and the API-key check every REST route uses.
//! - [`channels`]: `GET /v1/apps/{app}/channels[/{ch}[/members]]`, occupancy and presence.
//! - [`history`]: `GET /v1/apps/{app}/channels/{channel}/history`.
//! - [`recordings`]: recordings, forwarded to the control-plane.
//! - [`websocket`]: the upgrade, and authentication given in the URL or headers. The Pusher
//!   front's upgrade, `GET /app/{key}`, is [`crate::pusher::upgrade`].
//! - [`pusher`]: Pusher's HTTP API (`/apps/{app_id}/...`), signed Pusher's way.
//! - [`regions`]: `GET /v1/regions`, each region's gateway URL for the SDKs' discovery.
//! - [`openapi`]: the OpenAPI 3.1 document of all of the above, `GET /openapi.json`.

pub mod channels;
pub mod history;
pub mod openapi;
pub mod pusher;
pub mod recordings;
pub mod regions;
pub mod rest;
pub mod websocket;

use crate::gateway::Gateway;
use crate::op_error::OpError;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

pub fn router(gw: Arc<Gateway>) -> Router {
    let body_limit = gw.config.limits.max_frame_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/regions", get(regions::regions))
        .route("/v1/apps/{app}/ws", get(websocket::websocket))
        .route("/app/{key}", get(crate::pusher::upgrade::websocket))
        .route(
            "/app/{key}/{rest}",
            get(crate::pusher::upgrade::unknown_path),
        )
        .route("/v1/apps/{app}/publish", post(rest::publish))
        .route("/v1/apps/{app}/batch", post(rest::batch))
        .route("/v1/apps/{app}/tokens", post(rest::mint_token))
        .route("/v1/apps/{app}/channels", get(channels::list))
        .route("/v1/apps/{app}/channels/{channel}", get(channels::get))
        .route(
            "/v1/apps/{app}/channels/{channel}/members",
            get(channels::members),
        )
        .route(
            "/v1/apps/{app}/channels/{channel}/history",
            get(history::get),
        )
        .route("/v1/apps/{app}/recordings", post(recordings::start))
        .route("/v1/apps/{app}/recordings/{id}", get(recordings::get))
        .route(
            "/v1/apps/{app}/recordings/{id}/stop",
            post(recordings::stop),
        )
        .merge(pusher::routes(&gw))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            let mut resp =
                ApiError::new(ErrorCode::BadRequest, "method not allowed on this endpoint")
                    .into_response();
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp
        })
        .layer(axum::middleware::map_response(
            waas_core::http::json_errors::json_errors,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(gw)
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness",
    responses(
        (status = 200, description = "The server can publish.", body = String, content_type = "text/plain", example = "ready"),
        (status = 503, description = "`unavailable`: the message bus is down.", body = ErrorBody),
    ),
    security(()),
)]
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.is_ready() {
        "ready".into_response()
    } else {
        ApiError::new(ErrorCode::Unavailable, "the bus is unavailable").into_response()
    }
}

/// Prometheus metrics of this process (`docs/metrics.md`; documented as
/// `waas_core::http::openapi::ops::metrics`).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let metrics = &waas_core::metrics::METRICS;
    metrics.subjects.set(gw.hub.subject_count() as i64);
    metrics
        .history_channels
        .set(gw.publisher.history().channel_count() as i64);
    metrics.response()
}

/// Where the REST API shares code with the socket path (reading history), the socket's error
/// becomes the HTTP answer with the same code and message.
impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        ApiError::new(e.code, e.message)
    }
}
