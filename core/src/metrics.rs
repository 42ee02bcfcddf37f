//! Prometheus metrics of this process, served at `GET /metrics` (`docs/metrics.md`).
//!
//! One set per process, like the Prometheus client's default registry: a gateway is one
//! process, and the counters are plain atomics bumped where the work happens (once per fan-out
//! for deliveries, not once per frame). Gauges that are cheaper to read than to keep up to date
//! (subjects with local subscribers) are set when scraped.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};
use std::sync::LazyLock;

pub struct Metrics {
    registry: Registry,
    /// WebSocket connections open now.
    pub connections: IntGauge,
    /// WebSocket connections opened since start.
    pub connections_opened: IntCounter,
    /// Connections closed because their outbound queue overflowed (close 4000).
    pub slow_consumers: IntCounter,
    /// Messages published through this gateway (socket and REST), once per channel.
    pub published: IntCounter,
    /// Message frames queued for this gateway's subscribers.
    pub delivered: IntCounter,
    /// Bus subjects this gateway listens to for its local subscribers.
    pub subjects: IntGauge,
    /// Channels caught up from history after the bus reconnected (`waas_gateway::resync`).
    pub resyncs: IntCounter,
    /// Messages a resync found missed and passed on.
    pub resynced_messages: IntCounter,
    /// `gap` frames: a channel's subscribers were told they may have missed messages.
    pub resync_gaps: IntCounter,
    /// Channels whose offsets and history this process keeps in memory (set when scraped).
    pub history_channels: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    Metrics {
        connections: gauge(
            &registry,
            "waas_connections",
            "WebSocket connections open now",
        ),
        connections_opened: counter(
            &registry,
            "waas_connections_opened_total",
            "WebSocket connections opened",
        ),
        slow_consumers: counter(
            &registry,
            "waas_slow_consumer_disconnects_total",
            "Connections closed because their outbound queue overflowed (close 4000)",
        ),
        published: counter(
            &registry,
            "waas_messages_published_total",
            "Messages published through this gateway, counted once per channel",
        ),
        delivered: counter(
            &registry,
            "waas_messages_delivered_total",
            "Message frames queued for this gateway's subscribers",
        ),
        subjects: gauge(
            &registry,
            "waas_bus_subjects",
            "Bus subjects this gateway listens to for its local subscribers",
        ),
        resyncs: counter(
            &registry,
            "waas_resyncs_total",
            "Channels caught up from history after the bus reconnected",
        ),
        resynced_messages: counter(
            &registry,
            "waas_resynced_messages_total",
            "Messages missed during a bus outage and passed on by a resync",
        ),
        resync_gaps: counter(
            &registry,
            "waas_resync_gaps_total",
            "gap frames: subscribers of a channel told they may have missed messages after a bus outage",
        ),
        history_channels: gauge(
            &registry,
            "waas_history_channels",
            "Channels whose offsets and history this process keeps in memory",
        ),
        registry,
    }
});

impl Metrics {
    /// The process's registry, where other components (the control-plane) add their metrics,
    /// so that one `/metrics` shows the whole process.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding does not fail");
        out
    }

    /// The answer to `GET /metrics`.
    pub fn response(&self) -> Response {
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            self.render(),
        )
            .into_response()
    }
}
