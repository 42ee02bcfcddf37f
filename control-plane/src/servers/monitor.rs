//! The control-plane's view of the cluster's gateways and of the tenants' server connections,
//! built from the gateways' reports (`waas_core::nodes`). Kept in memory: every control-plane
//! hears every report and builds the same view, and a restarted one has it back after one
//! report interval. Only what went offline since it started is lost.
//!
//! A server is online while the last report of its gateway lists it and that gateway is up. It
//! is offline from the report that no longer lists it, from its gateway's farewell at shutdown,
//! or once its gateway has missed three reports (it died or lost the bus). Offline servers are
//! kept for `servers_offline_keep_secs`, at most `servers_offline_max_per_app` per app, and
//! hidden while a server of the same app and name is online (it reconnected).

use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use waas_core::nodes::{NodeReport, ServerConnection};
use waas_protocol::AppId;

/// Reports a gateway may miss before it is deemed gone.
const MISSED_REPORTS: u32 = 3;

/// How long offline servers are kept, and how many.
#[derive(Debug, Clone, Copy)]
pub struct MonitorConfig {
    pub offline_keep: Duration,
    pub offline_max_per_app: usize,
}

/// One server connection as the dashboard and the admin API show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub app: String,
    /// The `server_name` its SDK sent; `null` when it sent none.
    pub name: Option<String>,
    pub connection_id: String,
    /// The gateway node holding (or that held) the connection.
    pub node: String,
    /// That gateway's region; empty when unset.
    pub region: String,
    /// When it connected, ms since the Unix epoch.
    pub connected_at: u64,
    pub online: bool,
    /// Round trip of the gateway's last answered WebSocket ping, ms (fractional); `null` until
    /// measured.
    pub latency_ms: Option<f64>,
    /// When it went offline (or its gateway was last heard from), ms since the Unix epoch.
    pub disconnected_at: Option<u64>,
}

/// One gateway node.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub node: String,
    pub region: String,
    pub version: String,
    /// When the process started, ms since the Unix epoch.
    pub started_at: u64,
    /// Open WebSocket connections at its last report.
    pub connections: u64,
    /// Server connections (API key) at its last report.
    pub servers: u64,
    /// When its last report arrived, ms since the Unix epoch.
    pub last_seen: u64,
    /// `false` once it said farewell or missed three reports.
    pub online: bool,
}

struct Node {
    report: NodeReport,
    last_seen_ms: u64,
    received: Instant,
    /// Its servers were moved to the offline list: it stopped, or stopped reporting.
    down: bool,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Node>,
    /// Per app, oldest first.
    offline: HashMap<AppId, VecDeque<ServerView>>,
}

pub struct Monitor {
    state: Mutex<State>,
    config: MonitorConfig,
}

fn view(s: &ServerConnection, report: &NodeReport) -> ServerView {
    ServerView {
        app: s.app.to_string(),
        name: s.name.as_ref().map(|n| n.to_string()),
        connection_id: s.connection_id.clone(),
        node: report.node.clone(),
        region: report.region.clone(),
        connected_at: s.connected_at_ms,
        online: true,
        latency_ms: s.latency_us.map(|us| us as f64 / 1000.0),
        disconnected_at: None,
    }
}

impl State {
    fn went_offline(&mut self, mut server: ServerView, at_ms: u64, config: &MonitorConfig) {
        server.online = false;
        server.disconnected_at = Some(at_ms);
        let Ok(app) = AppId::parse(&server.app) else {
            return;
        };
        let list = self.offline.entry(app).or_default();
        list.push_back(server);
        while list.len() > config.offline_max_per_app {
            list.pop_front();
        }
    }

    /// Nodes silent for three of their intervals go down; long-down nodes and old offline
    /// servers are forgotten.
    fn expire(&mut self, now: Instant, now_ms: u64, config: &MonitorConfig) {
        let mut gone = Vec::new();
        for node in self.nodes.values_mut() {
            let silence = Duration::from_millis(node.report.interval_ms)
                .saturating_mul(MISSED_REPORTS)
                .max(Duration::from_millis(1));
            if !node.down && now.duration_since(node.received) > silence {
                node.down = true;
                gone.push((
                    node.last_seen_ms,
                    std::mem::take(&mut node.report.servers),
                    node.report.clone(),
                ));
            }
        }
        for (at, servers, report) in gone {
            for s in &servers {
                self.went_offline(view(s, &report), at, config);
            }
        }
        let keep = config.offline_keep;
        self.nodes
            .retain(|_, n| !n.down || now.duration_since(n.received) <= keep);
        let keep_ms = keep.as_millis() as u64;
        self.offline.retain(|_, list| {
            list.retain(|s| s.disconnected_at.unwrap_or(0).saturating_add(keep_ms) >= now_ms);
            !list.is_empty()
        });
    }
}

impl Monitor {
    pub fn new(config: MonitorConfig) -> Self {
        Monitor {
            state: Mutex::default(),
            config,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("monitor poisoned")
    }

    /// Takes in one gateway's report.
    pub fn apply(&self, report: NodeReport) {
        let now = Instant::now();
        let now_ms = waas_core::time::now_ms();
        let mut state = self.lock();
        state.expire(now, now_ms, &self.config);
        let listed: HashSet<&str> = report
            .servers
            .iter()
            .map(|s| s.connection_id.as_str())
            .collect();
        let mut left = Vec::new();
        if let Some(prev) = state.nodes.get(&report.node).filter(|n| !n.down) {
            for s in &prev.report.servers {
                if !listed.contains(s.connection_id.as_str()) {
                    left.push(view(s, &prev.report));
                }
            }
        }
        for server in left {
            state.went_offline(server, now_ms, &self.config);
        }
        // A gateway back from a partition lists servers already deemed offline: they are not.
        for s in &report.servers {
            if let Some(list) = state.offline.get_mut(&s.app) {
                list.retain(|o| o.connection_id != s.connection_id);
            }
        }
        let down = report.stopping;
        state.nodes.insert(
            report.node.clone(),
            Node {
                report,
                last_seen_ms: now_ms,
                received: now,
                down,
            },
        );
    }

    /// The servers of `apps`, online (by app and name) and then offline (latest first).
    pub fn servers(&self, apps: &HashSet<AppId>) -> Vec<ServerView> {
        let mut state = self.lock();
        state.expire(Instant::now(), waas_core::time::now_ms(), &self.config);
        let mut online: Vec<ServerView> = state
            .nodes
            .values()
            .filter(|n| !n.down)
            .flat_map(|n| {
                n.report
                    .servers
                    .iter()
                    .filter(|s| apps.contains(&s.app))
                    .map(|s| view(s, &n.report))
            })
            .collect();
        online.sort_by(|a, b| {
            (&a.app, &a.name, a.connected_at, &a.connection_id).cmp(&(
                &b.app,
                &b.name,
                b.connected_at,
                &b.connection_id,
            ))
        });
        let names: HashSet<(&str, Option<&str>)> = online
            .iter()
            .filter(|s| s.name.is_some())
            .map(|s| (s.app.as_str(), s.name.as_deref()))
            .collect();
        let mut offline: Vec<ServerView> = apps
            .iter()
            .filter_map(|app| state.offline.get(app))
            .flatten()
            .filter(|s| !names.contains(&(s.app.as_str(), s.name.as_deref())))
            .cloned()
            .collect();
        offline.sort_by_key(|s| std::cmp::Reverse(s.disconnected_at));
        online.extend(offline);
        online
    }

    /// Every gateway node heard from, online first, then by region and id.
    pub fn nodes(&self) -> Vec<NodeView> {
        let mut state = self.lock();
        state.expire(Instant::now(), waas_core::time::now_ms(), &self.config);
        let mut nodes: Vec<NodeView> = state
            .nodes
            .values()
            .map(|n| NodeView {
                node: n.report.node.clone(),
                region: n.report.region.clone(),
                version: n.report.version.clone(),
                started_at: n.report.started_at_ms,
                connections: n.report.connections,
                servers: n.report.servers.len() as u64 + n.report.servers_omitted,
                last_seen: n.last_seen_ms,
                online: !n.down,
            })
            .collect();
        nodes.sort_by(|a, b| (!a.online, &a.region, &a.node).cmp(&(!b.online, &b.region, &b.node)));
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waas_protocol::ServerName;

    fn config() -> MonitorConfig {
        MonitorConfig {
            offline_keep: Duration::from_secs(3600),
            offline_max_per_app: 2,
        }
    }

    fn server(app: &str, id: &str, name: Option<&str>) -> ServerConnection {
        ServerConnection {
            app: AppId::parse(app).unwrap(),
            connection_id: id.into(),
            name: name.map(|n| ServerName::parse(n).unwrap()),
            connected_at_ms: 1,
            latency_us: Some(1500),
        }
    }

    fn report(node: &str, interval_ms: u64, servers: Vec<ServerConnection>) -> NodeReport {
        NodeReport {
            node: node.into(),
            region: "eu".into(),
            version: "0.1.0".into(),
            started_at_ms: 0,
            interval_ms,
            connections: servers.len() as u64,
            servers,
            servers_omitted: 0,
            stopping: false,
        }
    }

    fn apps(list: &[&str]) -> HashSet<AppId> {
        list.iter().map(|a| AppId::parse(a).unwrap()).collect()
    }

    #[test]
    fn servers_go_offline_when_no_longer_listed_and_apps_stay_apart() {
        let m = Monitor::new(config());
        m.apply(report(
            "n1",
            60_000,
            vec![server("a", "a-1", Some("api")), server("b", "b-1", None)],
        ));
        let a = m.servers(&apps(&["a"]));
        assert_eq!(a.len(), 1);
        assert!(a[0].online);
        assert_eq!(a[0].latency_ms, Some(1.5));
        assert_eq!(a[0].node, "n1");
        assert_eq!(m.servers(&apps(&["b"]))[0].connection_id, "b-1");
        assert!(m.servers(&apps(&["c"])).is_empty());

        m.apply(report("n1", 60_000, vec![server("b", "b-1", None)]));
        let a = m.servers(&apps(&["a"]));
        assert_eq!(a.len(), 1);
        assert!(!a[0].online && a[0].disconnected_at.is_some());
        // The same name back online hides its offline row.
        m.apply(report("n1", 60_000, vec![server("a", "a-2", Some("api"))]));
        let a = m.servers(&apps(&["a"]));
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0].online && a[0].connection_id == "a-2");
    }

    #[test]
    fn a_silent_or_stopping_gateway_takes_its_servers_offline() {
        let m = Monitor::new(config());
        m.apply(report("quiet", 1, vec![server("a", "a-1", None)]));
        let mut stopping = report("bye", 60_000, vec![]);
        stopping.stopping = true;
        m.apply(report("bye", 60_000, vec![server("a", "a-2", None)]));
        m.apply(stopping);
        // Three intervals of 1 ms have certainly passed by the time the clock is read again.
        std::thread::sleep(Duration::from_millis(5));
        let a = m.servers(&apps(&["a"]));
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|s| !s.online), "{a:?}");
        let nodes = m.nodes();
        assert_eq!(nodes.len(), 2);
        assert!(nodes.iter().all(|n| !n.online));
        // Coming back: listed again, online again.
        m.apply(report("quiet", 60_000, vec![server("a", "a-1", None)]));
        let a = m.servers(&apps(&["a"]));
        assert!(a.iter().any(|s| s.connection_id == "a-1" && s.online));
        assert_eq!(a.iter().filter(|s| s.connection_id == "a-1").count(), 1);
    }

    #[test]
    fn offline_servers_are_bounded_per_app() {
        let m = Monitor::new(config());
        for i in 0..5 {
            m.apply(report(
                "n",
                60_000,
                vec![server("a", &format!("a-{i}"), None)],
            ));
        }
        m.apply(report("n", 60_000, vec![]));
        let a = m.servers(&apps(&["a"]));
        assert_eq!(a.len(), 2, "{a:?}");
    }
}
