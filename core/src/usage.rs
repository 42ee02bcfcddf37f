//! Per-app usage counters (`docs/dashboard.md#usage`): what a gateway counts for each app it
//! serves, and the report it sends the control-plane every `usage_report_interval_ms` over the
//! bus, which the control-plane adds up cluster-wide and keeps per minute and per hour.
//!
//! Counting is an atomic add on counters resolved once per app ([`Usage::app`], kept on the
//! [`App`](crate::app::App) and on each channel's fan-out), so the hot path pays no lock and no
//! allocation; the reporter swaps the counters to zero ([`Usage::take`]) and adds them back when
//! its report is not acknowledged ([`Usage::restore`]), so counts are neither lost nor doubled
//! while the control-plane is away (up to a gateway restart).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use waas_protocol::AppId;

/// Subject of [`UsageReport`] requests, answered with [`UsageAnswer`] by a queue group of
/// control-planes once the report is in the store.
pub fn report_subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "usage.report")
}

/// One app's counters on one process. Counts since the last report, except `connections`
/// (open now) and `peak` (most open at once since the last report).
#[derive(Debug, Default)]
pub struct AppCounters {
    pub connections: AtomicI64,
    pub peak: AtomicI64,
    /// Messages published, once per channel.
    pub published: AtomicU64,
    /// Message frames queued for subscribers.
    pub delivered: AtomicU64,
    /// Webhook requests sent (each attempt), and those that failed.
    pub webhooks: AtomicU64,
    pub webhook_errors: AtomicU64,
    /// Requests over the socket (`docs/rpc.md`), and those answered with an error.
    pub requests: AtomicU64,
    pub request_errors: AtomicU64,
    /// Connections in the last report: an app whose last connection closed is reported once
    /// more, with 0. Touched by the reporter only.
    reported_connections: AtomicI64,
}

impl AppCounters {
    /// A connection opened.
    pub fn connected(&self) {
        let now = self.connections.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    /// A connection closed.
    pub fn disconnected(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// `n` frames queued for subscribers.
    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Relaxed);
    }

    pub fn published(&self) {
        self.published.fetch_add(1, Relaxed);
    }

    /// A request over the socket, failed or not.
    pub fn request(&self, failed: bool) {
        self.requests.fetch_add(1, Relaxed);
        if failed {
            self.request_errors.fetch_add(1, Relaxed);
        }
    }

    /// A webhook request, failed or not.
    pub fn webhook(&self, failed: bool) {
        self.webhooks.fetch_add(1, Relaxed);
        if failed {
            self.webhook_errors.fetch_add(1, Relaxed);
        }
    }
}

/// One app in a [`UsageReport`]: counts since the sender's previous report, its connections now
/// and the most it had open at once since then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppUsage {
    pub app: AppId,
    #[serde(default)]
    pub connections: i64,
    #[serde(default)]
    pub peak: i64,
    #[serde(default)]
    pub published: u64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub webhooks: u64,
    #[serde(default)]
    pub webhook_errors: u64,
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub request_errors: u64,
}

impl AppUsage {
    /// `app` with nothing counted.
    pub fn new(app: AppId) -> Self {
        AppUsage {
            app,
            connections: 0,
            peak: 0,
            published: 0,
            delivered: 0,
            webhooks: 0,
            webhook_errors: 0,
            requests: 0,
            request_errors: 0,
        }
    }

    fn counts_nothing(&self) -> bool {
        self.published == 0
            && self.delivered == 0
            && self.webhooks == 0
            && self.webhook_errors == 0
            && self.requests == 0
            && self.request_errors == 0
    }
}

/// What one process (`node`, random per process) counted since its last acknowledged report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageReport {
    pub node: String,
    /// How often this node reports, ms: the control-plane forgets its connections after
    /// three intervals without a report.
    pub interval_ms: u64,
    pub apps: Vec<AppUsage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsageAnswer {
    /// Set when the report could not be stored; the sender adds it back and sends it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The counters of every app one process serves. One per gateway (its app registry holds it),
/// one per control-plane (webhooks).
#[derive(Debug, Default)]
pub struct Usage {
    /// Locked when an app's counters are first resolved and once per report, never per
    /// message.
    apps: Mutex<HashMap<AppId, Arc<AppCounters>>>,
}

impl Usage {
    /// `app`'s counters. Resolve once and keep them where the work happens.
    pub fn app(&self, app: &AppId) -> Arc<AppCounters> {
        Arc::clone(
            self.apps
                .lock()
                .expect("usage poisoned")
                .entry(app.clone())
                .or_default(),
        )
    }

    /// Like [`Usage::app`] by the id's string; `None` for a string that is no app id.
    pub fn app_str(&self, app: &str) -> Option<Arc<AppCounters>> {
        AppId::parse(app).ok().map(|id| self.app(&id))
    }

    /// Swaps every app's counts to zero and returns what there is to report: apps that counted
    /// something, have connections, or had some at the last report. The peak starts again from
    /// the connections open now. Apps nobody holds any more and with nothing to say are
    /// forgotten.
    pub fn take(&self) -> Vec<AppUsage> {
        let mut apps = self.apps.lock().expect("usage poisoned");
        let mut out = Vec::new();
        apps.retain(|id, c| {
            let connections = c.connections.load(Relaxed);
            let peak = c.peak.swap(connections, Relaxed).max(connections);
            let usage = AppUsage {
                app: id.clone(),
                connections,
                peak,
                published: c.published.swap(0, Relaxed),
                delivered: c.delivered.swap(0, Relaxed),
                webhooks: c.webhooks.swap(0, Relaxed),
                webhook_errors: c.webhook_errors.swap(0, Relaxed),
                requests: c.requests.swap(0, Relaxed),
                request_errors: c.request_errors.swap(0, Relaxed),
            };
            let before = c.reported_connections.swap(connections, Relaxed);
            let quiet = usage.counts_nothing() && connections == 0 && before == 0;
            if !quiet {
                out.push(usage);
            }
            !quiet || Arc::strong_count(c) > 1
        });
        out
    }

    /// Adds back the counts of a report that was not acknowledged, to go with the next one.
    pub fn restore(&self, report: &[AppUsage]) {
        for u in report {
            let c = self.app(&u.app);
            c.peak.fetch_max(u.peak, Relaxed);
            c.published.fetch_add(u.published, Relaxed);
            c.delivered.fetch_add(u.delivered, Relaxed);
            c.webhooks.fetch_add(u.webhooks, Relaxed);
            c.webhook_errors.fetch_add(u.webhook_errors, Relaxed);
            c.requests.fetch_add(u.requests, Relaxed);
            c.request_errors.fetch_add(u.request_errors, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AppId {
        AppId::parse(s).unwrap()
    }

    #[test]
    fn take_reports_counts_once_and_the_peak() {
        let usage = Usage::default();
        let a = usage.app(&id("a"));
        a.connected();
        a.connected();
        a.disconnected();
        a.published();
        a.delivered(5);
        a.request(true);
        let first = usage.take();
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0],
            AppUsage {
                app: id("a"),
                connections: 1,
                peak: 2,
                published: 1,
                delivered: 5,
                requests: 1,
                request_errors: 1,
                ..AppUsage::new(id("a"))
            }
        );
        // Nothing new: still reported, for its open connection, with no counts.
        let second = usage.take();
        assert_eq!(second[0].peak, 1);
        assert_eq!(second[0].published, 0);
        a.disconnected();
        // Its last connection closed: reported once with 0, then not at all.
        assert_eq!(usage.take()[0].connections, 0);
        assert!(usage.take().is_empty());
        // Still held (by `a`): kept; dropped once nobody holds it.
        drop(a);
        assert!(usage.take().is_empty());
        assert!(usage.apps.lock().unwrap().is_empty());
    }

    #[test]
    fn restore_adds_back_a_report() {
        let usage = Usage::default();
        let a = usage.app(&id("a"));
        a.published();
        let report = usage.take();
        a.published();
        usage.restore(&report);
        assert_eq!(usage.take()[0].published, 2);
    }
}
