//! Prometheus metrics of this process, served at `GET /metrics` (`docs/metrics.md`).
//!
//! One set per process, like the Prometheus client's default registry: a gateway is one
//! process, and the counters are plain atomics bumped where the work happens (once per fan-out
//! for deliveries, not once per frame). Gauges that are cheaper to read than to keep up to date
//! (subjects with local subscribers) are set when scraped.
//!
//! Labels are bounded: `app` by [`apps::AppLabels`], `route` and `outcome` by fixed sets, and
//! `region` is one constant value per process ([`set_region`]). Handles with an `app` label are
//! resolved once ([`Metrics::app`]) and kept where the work happens, so the fan-out pays one
//! counter add and one histogram observation per message, whatever its subscribers.

pub mod apps;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::{LazyLock, OnceLock};

/// Buckets of every latency histogram, in seconds: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `region` label of every metric of this process; unset or empty: no `region` label.
static REGION: OnceLock<String> = OnceLock::new();

/// Sets the `region` label every metric of this process carries. The first call wins (one
/// process, one region); empty means no label.
pub fn set_region(region: &str) {
    let _ = REGION.set(region.to_owned());
}

/// The region [`set_region`] set; empty when unset. Gateways also report it to the
/// control-plane (`crate::nodes`).
pub fn region() -> &'static str {
    REGION.get().map_or("", String::as_str)
}

/// Why a region name was refused: it becomes a label value and a Helm value, so it is kept to
/// what reads well in both.
pub fn check_region(region: &str) -> Result<(), String> {
    let ok = region.len() <= 63
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err("must be at most 63 letters, digits, '-', '_' or '.'".into())
    }
}

/// Pre-resolved handles of one app's labelled metrics ([`Metrics::app`]).
#[derive(Clone)]
pub struct AppMetrics {
    /// `waas_app_messages_published_total{app}`.
    pub published: IntCounter,
    /// `waas_app_messages_delivered_total{app}`.
    pub delivered: IntCounter,
    /// `waas_delivery_latency_seconds{app}`.
    pub delivery_latency: Histogram,
}

/// What kind of responder an RPC went to: the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcRoute {
    /// A service served on another gateway, over the bus.
    Service,
    /// A service served on the caller's gateway, without the bus.
    ServiceLocal,
    /// An HTTP upstream.
    Upstream,
}

impl RpcRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            RpcRoute::Service => "service",
            RpcRoute::ServiceLocal => "service_local",
            RpcRoute::Upstream => "upstream",
        }
    }
}

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
    /// Which apps have a label value of their own.
    pub app_labels: apps::AppLabels,
    app_published: IntCounterVec,
    app_delivered: IntCounterVec,
    delivery_latency: HistogramVec,
    /// Time a bus publish takes (memory bus: delivery to local subscribers; NATS: handing the
    /// message to the client).
    pub bus_publish: Histogram,
    /// Time JetStream takes to store a message and acknowledge it.
    pub jetstream_publish: Histogram,
    /// RPC latency by `route` ([`RpcRoute`]) and `outcome` (`ok` or the error code).
    pub rpc: HistogramVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn plain_histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
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
        app_labels: apps::AppLabels::default(),
        app_published: counter_vec(
            &registry,
            "waas_app_messages_published_total",
            "Messages published through this gateway, once per channel, by app",
            &["app"],
        ),
        app_delivered: counter_vec(
            &registry,
            "waas_app_messages_delivered_total",
            "Message frames queued for this gateway's subscribers, by app",
            &["app"],
        ),
        delivery_latency: histogram(
            &registry,
            "waas_delivery_latency_seconds",
            "From a message's publish timestamp to its fan-out on this gateway, once per message, by app",
            &["app"],
        ),
        bus_publish: plain_histogram(
            &registry,
            "waas_bus_publish_duration_seconds",
            "Time a bus publish takes",
        ),
        jetstream_publish: plain_histogram(
            &registry,
            "waas_jetstream_publish_duration_seconds",
            "Time JetStream takes to store and acknowledge a message",
        ),
        rpc: histogram(
            &registry,
            "waas_rpc_duration_seconds",
            "RPC latency from the request to its response, by route kind and outcome",
            &["route", "outcome"],
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

    /// Handles of `app`'s labelled metrics, under its own label value or `other`
    /// ([`apps::AppLabels`]). Resolve once, keep, and use on the hot path.
    pub fn app(&self, app: &str) -> AppMetrics {
        let label = self.app_labels.label(app);
        let l = [label.as_str()];
        AppMetrics {
            published: self.app_published.with_label_values(&l),
            delivered: self.app_delivered.with_label_values(&l),
            delivery_latency: self.delivery_latency.with_label_values(&l),
        }
    }

    /// Records one RPC's latency.
    pub fn rpc_done(&self, route: RpcRoute, outcome: &str, started: std::time::Instant) {
        self.rpc
            .with_label_values(&[route.as_str(), outcome])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Everything in the Prometheus text format (version 0.0.4), each series with the
    /// process's `region` label when it has one.
    pub fn render(&self) -> Vec<u8> {
        let mut families = self.registry.gather();
        if let Some(region) = REGION.get().filter(|r| !r.is_empty()) {
            for family in &mut families {
                for metric in family.mut_metric() {
                    let mut labels = metric.take_label();
                    let mut pair = prometheus::proto::LabelPair::default();
                    pair.set_name("region".into());
                    pair.set_value(region.clone());
                    labels.push(pair);
                    metric.set_label(labels);
                }
            }
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
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
