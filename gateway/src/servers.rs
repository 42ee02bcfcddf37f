//! This node's server connections (authenticated with an API key), their latency, and the
//! node's reports to the control-plane (`waas_core::nodes`): the dashboard's Servers page and
//! the admin API's servers and nodes.
//!
//! Latency is the round trip of the gateway's own WebSocket pings: the time from queueing a
//! ping (the sweeper's heartbeat, and one sent right after `ready`) to the pong that answers it.
//! Pings carry no payload, so a pong answers the oldest ping still unanswered; while one is
//! outstanding no newer ping is timed, so a lost pong makes one figure too high, never too low.
//! Only server connections are tracked here: a tenant has a few servers and many clients, and
//! the client connections' hot path never touches this map.

use crate::gateway::Gateway;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use waas_core::nodes::{report_subject, NodeReport, ServerConnection};
use waas_protocol::{AppId, ServerName};

/// The shortest time between two reports sent because something changed: a reconnect storm of
/// servers makes a few reports a second, not one per server.
const MIN_GAP: Duration = Duration::from_millis(250);

struct Entry {
    app: AppId,
    connection_id: String,
    name: Option<ServerName>,
    connected_at_ms: u64,
    /// When the oldest unanswered ping was queued.
    ping_sent: Option<Instant>,
    latency_us: Option<u64>,
}

/// The server connections of this node, by their [`Outbound::id`](crate::outbound::Outbound).
pub struct Servers {
    /// Locked briefly by connect, disconnect, pongs of server connections, the sweeper's ping
    /// tick and the reporter; never across an await.
    entries: Mutex<HashMap<u64, Entry>>,
    /// Something a report should show has changed.
    changed: Notify,
    started_at_ms: u64,
}

impl Default for Servers {
    fn default() -> Self {
        Servers {
            entries: Mutex::default(),
            changed: Notify::new(),
            started_at_ms: waas_core::time::now_ms(),
        }
    }
}

impl Servers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().expect("servers poisoned")
    }

    /// A server connection was authenticated; the caller sends it a ping right away, timed
    /// from now, so its latency is known within a round trip.
    pub fn add(&self, id: u64, app: AppId, connection_id: String, name: Option<ServerName>) {
        self.lock().insert(
            id,
            Entry {
                app,
                connection_id,
                name,
                connected_at_ms: waas_core::time::now_ms(),
                ping_sent: Some(Instant::now()),
                latency_us: None,
            },
        );
        self.changed.notify_one();
    }

    /// A server connection ended.
    pub fn remove(&self, id: u64) {
        if self.lock().remove(&id).is_some() {
            self.changed.notify_one();
        }
    }

    /// The sweeper is about to ping every connection: times the ping of each server connection
    /// that has none unanswered. Called before the pings are queued, so no pong can come first.
    pub fn pinging(&self) {
        let now = Instant::now();
        for entry in self.lock().values_mut() {
            entry.ping_sent.get_or_insert(now);
        }
    }

    /// Server connection `id` answered a ping.
    pub fn pong(&self, id: u64) {
        let first = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(&id) else {
                return;
            };
            let Some(sent) = entry.ping_sent.take() else {
                return;
            };
            let first = entry.latency_us.is_none();
            entry.latency_us = Some(sent.elapsed().as_micros() as u64);
            first
        };
        if first {
            self.changed.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node's report: at most `max` server connections, the longest connected first.
    pub fn report(
        &self,
        node: &str,
        connections: usize,
        interval_ms: u64,
        max: usize,
    ) -> NodeReport {
        let entries = self.lock();
        let mut listed: Vec<&Entry> = entries.values().collect();
        let oldest_first = |a: &&Entry, b: &&Entry| {
            (a.connected_at_ms, &a.connection_id).cmp(&(b.connected_at_ms, &b.connection_id))
        };
        let omitted = listed.len().saturating_sub(max);
        // A node with thousands of server connections lists `max`: only those are sorted and
        // copied.
        if omitted > 0 {
            listed.select_nth_unstable_by(max, oldest_first);
            listed.truncate(max);
        }
        listed.sort_by(oldest_first);
        let servers: Vec<ServerConnection> = listed
            .into_iter()
            .map(|e| ServerConnection {
                app: e.app.clone(),
                connection_id: e.connection_id.clone(),
                name: e.name.clone(),
                connected_at_ms: e.connected_at_ms,
                latency_us: e.latency_us,
            })
            .collect();
        drop(entries);
        NodeReport {
            node: node.to_owned(),
            region: waas_core::metrics::region().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            interval_ms,
            connections: connections as u64,
            servers,
            servers_omitted: omitted as u64,
            stopping: false,
        }
    }
}

fn report_of(gw: &Gateway) -> NodeReport {
    let limits = &gw.config.limits;
    gw.servers.report(
        gw.connections.node(),
        gw.connections.len(),
        limits.node_report_ms,
        limits.max_reported_servers,
    )
}

async fn send(gw: &Gateway, report: &NodeReport) {
    let subject = report_subject(&gw.config.subject_prefix);
    let payload = match serde_json::to_vec(report) {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "node report not encodable"),
    };
    if let Err(e) = gw.publisher.bus().publish(&subject, payload.into()).await {
        // The next report tells the same, whole: nothing to retry.
        tracing::debug!(error = %e, "node report not sent");
    }
}

/// Reports the node every `node_report_ms`, and soon after each change of its servers.
pub async fn reporter(gw: Arc<Gateway>) {
    let mut interval = tokio::time::interval(Duration::from_millis(
        gw.config.limits.node_report_ms.max(1),
    ));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = gw.servers.changed.notified() => {
                tokio::time::sleep_until((last + MIN_GAP).into()).await;
            }
        }
        last = Instant::now();
        send(&gw, &report_of(&gw)).await;
    }
}

/// The node's last report, at shutdown once its connections are closed: its servers are
/// offline at once rather than after three missed reports.
pub async fn farewell(gw: &Gateway) {
    let mut report = report_of(gw);
    report.servers.clear();
    report.stopping = true;
    send(gw, &report).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_timed_from_the_oldest_unanswered_ping() {
        let servers = Servers::default();
        let app = AppId::parse("demo").unwrap();
        servers.add(1, app.clone(), "demo-n-1".into(), None);
        servers.add(2, app, "demo-n-2".into(), ServerName::parse("b").ok());
        std::thread::sleep(Duration::from_millis(2));
        servers.pong(1);
        let report = servers.report("n", 5, 1000, 10);
        let one = report
            .servers
            .iter()
            .find(|s| s.connection_id == "demo-n-1")
            .unwrap();
        assert!(one.latency_us.unwrap() >= 2000, "{one:?}");
        let two = report
            .servers
            .iter()
            .find(|s| s.connection_id == "demo-n-2")
            .unwrap();
        assert_eq!(two.latency_us, None);
        // An unsolicited pong (no ping outstanding) changes nothing.
        servers.pong(1);
        let again = servers.report("n", 5, 1000, 10);
        assert_eq!(
            again.servers.iter().find(|s| s.connection_id == "demo-n-1"),
            Some(one)
        );
        servers.remove(1);
        assert_eq!(servers.len(), 1);
    }

    #[test]
    fn a_report_lists_at_most_max_and_counts_the_rest() {
        let servers = Servers::default();
        for id in 0..5 {
            servers.add(id, AppId::parse("a").unwrap(), format!("a-n-{id}"), None);
        }
        let report = servers.report("n", 9, 1000, 3);
        assert_eq!(report.servers.len(), 3);
        assert_eq!(report.servers_omitted, 2);
        assert_eq!(report.connections, 9);
        // The oldest, in order (connected within the same millisecond: by connection id).
        let listed: Vec<&str> = report
            .servers
            .iter()
            .map(|s| s.connection_id.as_str())
            .collect();
        assert_eq!(listed, ["a-n-0", "a-n-1", "a-n-2"]);
        assert_eq!(servers.report("n", 9, 1000, 0).servers_omitted, 5);
        assert_eq!(servers.report("n", 9, 1000, 9).servers.len(), 5);
    }
}
