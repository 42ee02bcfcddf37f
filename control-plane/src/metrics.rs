//! The control-plane's Prometheus metrics, in the process's registry (see
//! `waas_core::metrics`): one `/metrics` shows a `waas dev` process whole, and a
//! control-plane serves its own.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use std::sync::LazyLock;
use waas_core::metrics::METRICS;

pub struct ControlPlaneMetrics {
    /// Webhook delivery attempts by outcome: `delivered`, `retry` (failed, tried again later),
    /// `dead` (failed for the last time).
    pub webhook_attempts: IntCounterVec,
    /// Webhook delivery attempt latency (the HTTP exchange), by the same outcomes.
    pub webhook_latency: HistogramVec,
    /// Events stored into recordings.
    pub recorded_events: IntCounter,
    /// Replays started.
    pub replays: IntCounter,
}

pub static CP_METRICS: LazyLock<ControlPlaneMetrics> = LazyLock::new(|| {
    let registry = METRICS.registry();
    let webhook_attempts = IntCounterVec::new(
        Opts::new(
            "waas_webhook_attempts_total",
            "Webhook delivery attempts, by outcome (delivered, retry, dead)",
        ),
        &["outcome"],
    )
    .expect("valid metric");
    // Every outcome is shown from the start, at zero, so that rates and alerts have a series.
    for outcome in ["delivered", "retry", "dead"] {
        webhook_attempts.with_label_values(&[outcome]);
    }
    registry
        .register(Box::new(webhook_attempts.clone()))
        .expect("unique metric");
    let webhook_latency = HistogramVec::new(
        HistogramOpts::new(
            "waas_webhook_delivery_duration_seconds",
            "Webhook delivery attempt latency (the HTTP exchange), by outcome",
        )
        .buckets(waas_core::metrics::LATENCY_BUCKETS.to_vec()),
        &["outcome"],
    )
    .expect("valid metric");
    for outcome in ["delivered", "retry", "dead"] {
        webhook_latency.with_label_values(&[outcome]);
    }
    registry
        .register(Box::new(webhook_latency.clone()))
        .expect("unique metric");
    let recorded_events = IntCounter::new(
        "waas_recorded_events_total",
        "Events stored into recordings",
    )
    .expect("valid metric");
    registry
        .register(Box::new(recorded_events.clone()))
        .expect("unique metric");
    let replays =
        IntCounter::new("waas_replays_started_total", "Replays started").expect("valid metric");
    registry
        .register(Box::new(replays.clone()))
        .expect("unique metric");
    ControlPlaneMetrics {
        webhook_attempts,
        webhook_latency,
        recorded_events,
        replays,
    }
});

/// Registers the control-plane's metrics now, so a scrape shows them before any happened.
pub fn init() {
    LazyLock::force(&CP_METRICS);
}
