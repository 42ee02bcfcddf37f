//! A gateway node's life: the tasks beside the HTTP server (app changes, sweepers, presence,
//! webhook reports), and the three-step shutdown (stop accepting, close every socket with
//! "going away", wait out the grace period). The routes are in [`crate::http`].

use crate::gateway::Gateway;
use crate::http::router;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use waas_core::http::accept::{accept_until, HttpLimits};
use waas_protocol::CloseCode;

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
            // Before the pings are queued, so that no pong can arrive before its ping is timed.
            gw.servers.pinging();
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
    let presence = crate::presence::start(Arc::clone(&gw.presence), Arc::clone(&gw.hub))
        .await
        .map_err(|e| std::io::Error::other(format!("cannot start presence: {e}")))?;
    let pusher_terminate = crate::pusher::users::start(
        Arc::clone(gw.publisher.bus()),
        &gw.config.subject_prefix,
        Arc::clone(&gw.pusher_users),
    )
    .await
    .map_err(|e| std::io::Error::other(format!("cannot follow pusher terminations: {e}")))?;
    let reporter = gw.reporter.start(
        Arc::clone(gw.publisher.bus()),
        Duration::from_millis(gw.config.limits.presence_heartbeat_ms),
    );
    let node_reporter = tokio::spawn(crate::servers::reporter(Arc::clone(&gw)));
    let usage = crate::usage_report::start(Arc::clone(&gw));
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
    gw.presence.farewell().await;
    node_reporter.abort();
    crate::servers::farewell(&gw).await;
    gw.reporter.drain(Duration::from_secs(1)).await;
    sweeper.abort();
    history_sweeper.abort();
    changes.abort();
    presence.abort();
    pusher_terminate.abort();
    reporter.abort();
    usage.abort();
    Ok(())
}
