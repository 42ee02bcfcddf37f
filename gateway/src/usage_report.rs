//! Sends this gateway's per-app usage counters ([`waas_core::usage`]) to the control-plane
//! every `usage_report_interval_ms`, over the bus. A report the control-plane does not
//! acknowledge is added back and goes with the next one, so a control-plane restart loses no
//! count.

use crate::gateway::Gateway;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use waas_core::usage::{report_subject, UsageAnswer, UsageReport};

/// Sends reports until aborted.
pub fn start(gw: Arc<Gateway>) -> JoinHandle<()> {
    let node = format!("{:016x}", rand::random::<u64>());
    let every = Duration::from_millis(gw.config.limits.usage_report_interval_ms.max(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = report(&gw, &node, every).await {
                tracing::debug!(error = %e, "usage report not acknowledged; sent again with the next");
            }
        }
    })
}

/// Sends what was counted since the last report; adds it back when it is not acknowledged.
pub async fn report(gw: &Gateway, node: &str, every: Duration) -> Result<(), String> {
    let usage = gw.apps.usage();
    let apps = usage.take();
    if apps.is_empty() {
        return Ok(());
    }
    let report = UsageReport {
        node: node.to_owned(),
        interval_ms: every.as_millis() as u64,
        apps,
    };
    let body = Bytes::from(serde_json::to_vec(&report).expect("usage reports serialise"));
    let timeout = every.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let sent = gw
        .publisher
        .bus()
        .request(&report_subject(&gw.config.subject_prefix), body, timeout)
        .await
        .map_err(|e| e.to_string())
        .and_then(|reply| {
            serde_json::from_slice::<UsageAnswer>(&reply).map_err(|e| format!("bad answer: {e}"))
        })
        .and_then(|answer| answer.error.map_or(Ok(()), Err));
    if sent.is_err() {
        usage.restore(&report.apps);
    }
    sent
}
