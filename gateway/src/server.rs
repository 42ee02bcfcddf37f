//! The HTTP side of a gateway: routes, the WebSocket upgrade, health, and the three-step
//! shutdown (stop accepting, close every socket with "going away", wait out the grace period).

use crate::auth;
use crate::connection::{self, Upfront};
use crate::gateway::Gateway;
use crate::rest::{self, ApiError};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use fastwebsockets::upgrade::IncomingUpgrade;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
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
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(gw)
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.is_ready() {
        "ready".into_response()
    } else {
        ApiError::new(ErrorCode::Unavailable, "the bus is unavailable").into_response()
    }
}

/// Prometheus metrics of this process (`docs/metrics.md`).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let metrics = &crate::metrics::METRICS;
    metrics.subjects.set(gw.hub.subject_count() as i64);
    metrics
        .history_channels
        .set(gw.publisher.history().channel_count() as i64);
    metrics.response()
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
}

async fn websocket(
    State(gw): State<Arc<Gateway>>,
    Path(app_id): Path<String>,
    Query(query): Query<WsQuery>,
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
    let credential = query
        .token
        .or_else(|| crate::rest::bearer_in(&headers).map(str::to_owned));
    let upfront = match (&app, credential) {
        (None, _) if lookup_error.is_some() => {
            Upfront::Unavailable(lookup_error.unwrap_or_default())
        }
        (None, _) => Upfront::NoSuchApp,
        (Some(_), None) => Upfront::None,
        (Some(app), Some(c)) => match auth::authenticate(app, &c) {
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
        let (stream, read_buf) = {
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
                .downcast::<TokioIo<TcpStream>>()
            {
                Ok(parts) => (parts.io.into_inner(), parts.read_buf),
                Err(_) => {
                    tracing::error!("upgraded connection is not a TCP stream; dropped");
                    return;
                }
            }
        };
        connection::run(gw, app_id, app, upfront, stream, read_buf).await
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
    let http = accept_until(listener, routes, shutdown).await;
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

/// HTTP connections still finishing after the accept loop stopped.
pub struct InFlight {
    /// Each HTTP connection task holds a receiver; `closed()` then waits for all of them.
    stop: tokio::sync::watch::Sender<bool>,
}

impl InFlight {
    /// Asks every HTTP connection to finish its current request, and waits until they have.
    pub async fn drain(self) {
        let _ = self.stop.send(true);
        self.stop.closed().await;
    }
}

/// Accepts HTTP/1 connections for `routes` until `shutdown` resolves.
///
/// The accept loop is ours rather than `axum::serve` so that upgraded connections hand back
/// the plain `TcpStream` (hyper's HTTP/1 connection, not the auto-detecting one, which wraps
/// it), letting the connection task write frames straight to the socket.
pub async fn accept_until(
    listener: TcpListener,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> InFlight {
    let service = TowerToHyperService::new(routes);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let http = hyper::server::conn::http1::Builder::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let res = tokio::select! {
                res = conn.as_mut() => res,
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = res {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        });
    }
    InFlight { stop }
}
