//! Usage figures per app (`docs/dashboard.md#usage`): the control-plane's side. Gateways
//! report their counters every `usage_report_interval_ms` on `$ctl.usage.report`
//! ([`waas_core::usage`]); a queue group of control-planes adds each report to the store once
//! ([`UsageStore`]), per minute and per hour. The control-plane counts its own webhook requests
//! the same way, straight into the store. Old buckets are pruned after
//! `usage_minutes_keep_secs` / `usage_hours_keep_secs`.
//!
//! - [`series`]: a range of buckets as the admin API and the dashboard show it.

pub mod series;

use crate::store::usage::UsageBatch;
use crate::store::{StoreError, UsageStore};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::usage::{report_subject, UsageAnswer, UsageReport};

/// Queue group of the control-planes answering usage reports: each report is stored once.
const QUEUE: &str = "waas-usage";

/// How often old usage is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Usage settings (from the server's limits: `usage_*`).
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// How often reports come, and how often the control-plane stores its own counts.
    pub report_interval: Duration,
    /// Per-minute buckets are kept this long, s.
    pub minutes_keep_secs: u64,
    /// Per-hour buckets are kept this long, s.
    pub hours_keep_secs: u64,
    /// Most points of one answer.
    pub max_points: usize,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            report_interval: Duration::from_secs(5),
            minutes_keep_secs: 172_800,
            hours_keep_secs: 7_776_000,
            max_points: 1440,
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    (waas_core::time::now_ms() / 1000) as i64
}

/// Seconds after which a node's connection count is no longer believed: three of its report
/// intervals, rounded up, and a second for the rounding of times to seconds.
fn stale_after(interval: Duration) -> i64 {
    (interval.as_millis() as u64 * 3).div_ceil(1000) as i64 + 1
}

/// The usage side of a control-plane.
pub struct Usage {
    pub store: Arc<dyn UsageStore>,
    pub config: UsageConfig,
    /// The control-plane's own counters (webhook requests), stored every report interval.
    local: Arc<waas_core::usage::Usage>,
    /// This process's name among the reporting nodes.
    node: String,
}

impl Usage {
    pub fn new(
        store: Arc<dyn UsageStore>,
        config: UsageConfig,
        local: Arc<waas_core::usage::Usage>,
    ) -> Arc<Self> {
        Arc::new(Usage {
            store,
            config,
            local,
            node: format!("cp-{:016x}", rand::random::<u64>()),
        })
    }

    /// Adds one report to the store.
    pub async fn record(&self, report: UsageReport) -> Result<(), StoreError> {
        let at = now();
        let interval = Duration::from_millis(report.interval_ms).max(self.config.report_interval);
        self.store
            .record_usage(UsageBatch {
                node: report.node,
                at,
                stale_before: at - stale_after(interval),
                apps: report.apps,
            })
            .await
    }

    /// Connections open now on `app`, cluster-wide.
    pub async fn connections_now(&self, app: &waas_protocol::AppId) -> Result<i64, StoreError> {
        self.store
            .usage_connections(app, now() - stale_after(self.config.report_interval))
            .await
    }

    /// Deletes what is older than the settings keep.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let now = now();
        self.store
            .prune_usage(
                now - self.config.minutes_keep_secs as i64,
                now - self.config.hours_keep_secs as i64,
                now - stale_after(self.config.report_interval).max(3600),
            )
            .await
    }

    /// Answers reports, stores the local counts and prunes, until the tasks are aborted.
    pub async fn start(
        self: &Arc<Self>,
        bus: Arc<dyn Bus>,
        prefix: &str,
    ) -> Result<Vec<JoinHandle<()>>, BusError> {
        let mut requests = bus.serve(&report_subject(prefix), Some(QUEUE)).await?;
        let me = Arc::clone(self);
        let replies = Arc::clone(&bus);
        let answer = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let error = match serde_json::from_slice::<UsageReport>(&request.payload) {
                    Ok(report) => me.record(report).await.err().map(|e| e.to_string()),
                    Err(e) => Some(format!("unreadable usage report: {e}")),
                };
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "usage report not stored");
                }
                if let Some(reply) = request.reply {
                    let body =
                        serde_json::to_vec(&UsageAnswer { error }).expect("answers serialise");
                    if let Err(e) = replies.publish(&reply, body.into()).await {
                        tracing::debug!(error = %e, "could not answer a usage report");
                    }
                }
            }
        });
        let me = Arc::clone(self);
        let local = tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.report_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let apps = me.local.take();
                if apps.is_empty() {
                    continue;
                }
                let report = UsageReport {
                    node: me.node.clone(),
                    interval_ms: me.config.report_interval.as_millis() as u64,
                    apps,
                };
                if let Err(e) = me.record(report.clone()).await {
                    tracing::warn!(error = %e, "storing webhook usage failed; retrying");
                    me.local.restore(&report.apps);
                }
            }
        });
        let me = Arc::clone(self);
        let prune = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match me.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "old usage pruned"),
                    Err(e) => tracing::warn!(error = %e, "pruning usage failed"),
                }
            }
        });
        Ok(vec![answer, local, prune])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_is_stale_after_three_intervals() {
        use std::time::Duration;
        assert_eq!(super::stale_after(Duration::from_secs(5)), 16);
        assert_eq!(super::stale_after(Duration::from_millis(200)), 2);
    }
}
