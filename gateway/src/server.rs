//! The HTTP side of a gateway: routes, the WebSocket upgrade, health, and the three-step
//! shutdown (stop accepting, close every socket with "going away", wait out the grace period).

use crate::connection::{self, Upfront};
use crate::gateway::Gateway;
use crate::rest;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fastwebsockets::upgrade::IncomingUpgrade;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use waas_core::auth::{self, AuthError};
use waas_core::http::accept::{accept_until, HttpLimits, HttpStream};
use waas_core::http::error::{bearer_in, ApiError};
use waas_protocol::rest::ErrorBody;
use waas_protocol::{CloseCode, ErrorCode};

pub fn router(gw: Arc<Gateway>) -> Router {
    let body_limit = gw.config.limits.max_frame_bytes;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/apps/{app}/ws", get(websocket))
        .route("/v1/apps/{app}/publish", post(rest::publish))
        .route("/v1/apps/{app}/batch", post(rest::batch))
        .route("/v1/apps/{app}/tokens", post(rest::mint_token))
        .route("/v1/apps/{app}/channels", get(crate::presence::rest::list))
        .route(
            "/v1/apps/{app}/channels/{channel}",
            get(crate::presence::rest::get),
        )
        .route(
            "/v1/apps/{app}/channels/{channel}/members",
            get(crate::presence::rest::members),
        )
        .route(
            "/v1/apps/{app}/channels/{channel}/history",
            get(crate::history_api::rest),
        )
        .route(
            "/v1/apps/{app}/recordings",
            post(crate::recordings_api::start),
        )
        .route(
            "/v1/apps/{app}/recordings/{id}",
            get(crate::recordings_api::get),
        )
        .route(
            "/v1/apps/{app}/recordings/{id}/stop",
            post(crate::recordings_api::stop),
        )
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

/// The `token` query parameter of a handshake: absent, once, or repeated (refused, rather than
/// guessing which one was meant).
fn query_token(query: &[(String, String)]) -> Result<Option<String>, AuthError> {
    let mut tokens = query.iter().filter(|(k, _)| k == "token");
    let first = tokens.next().map(|(_, v)| v.clone());
    if tokens.next().is_some() {
        return Err(AuthError::InvalidToken(
            "the token query parameter is given more than once".into(),
        ));
    }
    Ok(first)
}

/// Documents the handshake's query for OpenAPI only: the handler reads the raw pairs (see
/// [`query_token`]), so that a repeated `token` is refused instead of axum answering a bare 400.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct WsQuery {
    /// An end-user JWT, or an API key; instead of `Authorization: Bearer`.
    token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/apps/{app}/ws",
    operation_id = "websocket",
    tag = "websocket",
    summary = "The WebSocket endpoint (docs/protocol.md)",
    description = "Speaks the native protocol v1 after an HTTP/1.1 Upgrade. Authentication (a JWT or an API key, in `token` or `Authorization: Bearer`, or later in a `connect` frame) and refusals (unknown app, bad token) happen over the socket, as close codes.",
    params(("app" = String, Path, description = "The app id.", example = "demo"), WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 426, description = "`bad_request`: not a WebSocket upgrade request.", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])),
)]
async fn websocket(
    State(gw): State<Arc<Gateway>>,
    Path(app_id): Path<String>,
    // Every pair, so a repeated `token` is seen (a struct would make axum answer a bare 400).
    // Decoding is lossy (invalid UTF-8 becomes U+FFFD), so this extractor never refuses.
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let mut resp = ApiError::new(
            ErrorCode::BadRequest,
            "this endpoint speaks WebSocket: send an Upgrade request",
        )
        .into_response();
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return resp;
    };
    let (app, lookup_error) = match gw.apps.resolve(&app_id).await {
        Ok(app) => (app, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let credential =
        query_token(&query).map(|token| token.or_else(|| bearer_in(&headers).map(str::to_owned)));
    let origin = headers
        .get(ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    let upfront = match (&app, credential) {
        (None, _) if lookup_error.is_some() => {
            Upfront::Unavailable(lookup_error.unwrap_or_default())
        }
        (None, _) => Upfront::NoSuchApp,
        // Before any credential: a page of a foreign site learns nothing about its token.
        (Some(app), _)
            if origin
                .as_deref()
                .is_some_and(|o| !waas_core::origin::allowed(&app.config.allowed_origins, o)) =>
        {
            Upfront::OriginRefused(origin.unwrap_or_default())
        }
        (Some(_), Err(e)) => Upfront::Refused(e),
        (Some(_), Ok(None)) => Upfront::None,
        (Some(app), Ok(Some(c))) => match auth::authenticate(app, &c) {
            Ok(identity) => Upfront::Authenticated(identity),
            Err(e) => Upfront::Refused(e),
        },
    };
    let Ok((response, fut)) = upgrade.upgrade() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let task = async move {
        // In a scope of its own: the upgraded WebSocket (over a kilobyte) must not stay in the
        // task's state for the connection's whole life, which it would if it were still in
        // scope while `run` is awaited, moved or not.
        let (stream, read_buf, slot) = {
            let ws = match fut.await {
                Ok(ws) => ws,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            match ws
                .into_inner()
                .into_inner()
                .downcast::<TokioIo<HttpStream>>()
            {
                Ok(parts) => {
                    let (stream, slot) = parts.io.into_inner().into_parts();
                    (stream, parts.read_buf, slot)
                }
                Err(_) => {
                    tracing::error!("upgraded connection is not a TCP stream; dropped");
                    return;
                }
            }
        };
        connection::run(gw, app_id, app, upfront, stream, read_buf).await;
        // The source address's connection count covers the WebSocket's whole life.
        drop(slot);
    };
    tokio::spawn(task);
    response.into_response()
}

/// Sweeps connections for heartbeats, idleness, token expiry and connect timeouts. One task
/// for the whole node instead of a timer per connection keeps idle connections cheap.
async fn sweeper(gw: Arc<Gateway>) {
    let limits = &gw.config.limits;
    let tick = Duration::from_millis(
        limits
            .heartbeat_interval_ms
            .min(limits.connect_timeout_ms / 2)
            .min(limits.idle_timeout_ms / 2)
            .clamp(10, 1000),
    );
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ping = 0u64;
    loop {
        interval.tick().await;
        let now = gw.connections.now_ms();
        let ping = now.saturating_sub(last_ping) >= limits.heartbeat_interval_ms;
        if ping {
            last_ping = now;
        }
        gw.connections
            .sweep(limits.idle_timeout_ms, limits.connect_timeout_ms, ping);
    }
}

/// Serves the gateway (plus `extra` routes, such as the admin API of an all-in-one process)
/// until `shutdown` resolves, then drains: every connection is closed with 1001 "going away"
/// and given `shutdown_grace` to finish.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: TcpListener,
    extra: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let changes = gw
        .follow_app_changes()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot follow app changes: {e}")))?;
    let sweeper = tokio::spawn(sweeper(Arc::clone(&gw)));
    let history_sweeper = tokio::spawn(crate::gateway::sweep_history(Arc::clone(&gw)));
    gw.presence.set_sink(gw.reporter.clone());
    let presence = crate::presence::start(&gw)
        .await
        .map_err(|e| std::io::Error::other(format!("cannot start presence: {e}")))?;
    let reporter = gw.reporter.start(
        Arc::clone(gw.publisher.bus()),
        Duration::from_millis(gw.config.limits.presence_heartbeat_ms),
    );
    let mut routes = router(Arc::clone(&gw));
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    let limits = HttpLimits::from(&gw.config.limits);
    let http = accept_until(listener, routes, limits, shutdown).await;
    tracing::info!("shutting down: closing connections with going away");
    gw.connections.close_all(CloseCode::GOING_AWAY);
    let grace = gw.config.limits.shutdown_grace();
    let drained = async {
        tokio::join!(http.drain(), gw.connections.wait_empty());
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            left = gw.connections.len(),
            "shutdown grace period over with connections still open"
        );
    }
    crate::presence::farewell(&gw).await;
    gw.reporter.drain(Duration::from_secs(1)).await;
    sweeper.abort();
    history_sweeper.abort();
    changes.abort();
    presence.abort();
    reporter.abort();
    Ok(())
}
