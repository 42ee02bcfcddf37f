//! The result of one run, as JSON and as markdown tables.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One run. Flat, so that it reads well as JSON; the `server_*` fields are absent without
/// `--server-pid`, the `bus_*` fields without `--bus-pid`. Server figures are sums over every
/// `--server-pid` (the gateways of a cluster); `servers` and `bus` hold each process's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
    /// How the servers were set up (`--label`); `None` for a single server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `fanout` (one channel), `many-channels`, `storm`, `idle` or `reconnect`.
    #[serde(default = "fanout")]
    pub scenario: String,
    /// Channels the subscribers were spread over.
    #[serde(default = "one")]
    pub channels: usize,
    /// Channels each subscriber subscribed to.
    #[serde(default = "one")]
    pub channels_per_subscriber: usize,
    /// How subscribers authenticated: `api-key`, `hs256`, `rs256` (WaaS), `public` (a public
    /// channel without credentials: Pusher, Socket.IO).
    #[serde(default = "api_key")]
    pub auth: String,
    /// Where the subscribers connected, round robin.
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Where the publisher connected.
    #[serde(default)]
    pub publish_addr: String,
    /// The network namespace the subscribers connected from (`--subscriber-netns`), if not the
    /// publisher's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_netns: Option<String>,
    pub publish_via: String,
    /// Subscribers asked for.
    pub subscribers: usize,
    /// Subscribers connected and subscribed when publishing started.
    pub subscribed: usize,
    /// Messages per second asked for.
    pub rate: f64,
    /// Bytes of padding per message.
    pub payload: usize,
    /// Seconds of publishing asked for.
    pub duration_s: f64,
    /// Seconds it took to connect and subscribe every subscriber.
    pub connect_s: f64,
    /// Server CPU time over the connect phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_server_cpu_s: Option<f64>,
    /// That, per subscribed connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_connect: Option<f64>,
    /// `idle`: seconds the connections were idle while the server's CPU was measured (the
    /// `server_cpu_*` figures are then over this window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<f64>,
    /// `reconnect`: the outage and the recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<ReconnectFigures>,
    /// Messages written by the publisher.
    pub published: u64,
    /// Messages the server acknowledged.
    pub accepted: u64,
    /// (published − refused) × subscribed.
    pub expected: u64,
    pub delivered: u64,
    /// expected − delivered: not delivered by the end of the drain (lost or late).
    pub lost: u64,
    /// delivered / seconds from the first publish to the last delivery.
    pub delivered_per_s: f64,
    pub latency_p50_us: f64,
    pub latency_p99_us: f64,
    pub latency_p999_us: f64,
    pub latency_max_us: f64,
    /// Each `--server-pid`.
    #[serde(default)]
    pub servers: Vec<ProcessFigures>,
    /// Server CPU time (user + system) from the first publish to the end of the drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Server CPU time / wall time of that window, in percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_percent: Option<f64>,
    /// Server VmRSS before the subscribers connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_idle_kib: Option<u64>,
    /// Server VmRSS once every subscriber was subscribed (and `--settle` passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_subscribed_kib: Option<u64>,
    /// (subscribed − idle) / subscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_rss_kib_per_conn: Option<f64>,
    /// Each `--bus-pid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bus: Vec<ProcessFigures>,
    /// Bus CPU time over the same window as the servers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_cpu_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_cpu_us_per_delivery: Option<f64>,
    /// In percent of one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus_cpu_percent: Option<f64>,
    /// This load client's CPU time over the same window as the server's.
    pub client_cpu_s: f64,
    pub client_cpu_us_per_delivery: f64,
    /// CPU the rest of the machine used over that window (busy time minus servers, bus, client
    /// and the kernel's softirq threads; see `procfs::BoxSample`), in percent of one core: how
    /// disturbed the measurement was.
    #[serde(default)]
    pub others_cpu_percent: f64,
    /// irq + softirq time of the machine over that window, in percent of one core: mostly the
    /// loopback networking of this run. With tick-based accounting part of it is also inside the
    /// server's and client's CPU time (the part done in their context).
    #[serde(default)]
    pub irq_cpu_percent: f64,
    /// Errors by kind (connect failures, error frames, closes); `lost` is not counted here.
    pub errors: BTreeMap<String, u64>,
    /// CPU model, cores and memory of the machine the run was on.
    pub machine: String,
    /// 1-minute load average just before the run (others' work on the box disturbs results).
    pub loadavg_before: f64,
}

/// The reconnect scenario: every subscriber's gateway went away and came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReconnectFigures {
    /// Subscribers that lost their connection.
    pub disconnected: usize,
    /// Seconds from the first disconnect until every subscriber was connected again.
    pub all_back_s: f64,
    /// Seconds from the first disconnect until every subscriber had all its resubscriptions
    /// acknowledged (the server replays the missed messages before each `ack`).
    pub all_caught_up_s: f64,
    /// Resubscriptions answered `recovered: false`.
    pub unrecovered: u64,
    /// Connection attempts that failed while the gateway was away.
    pub failed_attempts: u64,
    /// Messages delivered twice to one subscriber (by offset).
    pub duplicates: u64,
    /// CPU time of the restarted gateway (`--server-pid-file` read after the restart) from
    /// its start until everyone had caught up, per reconnected subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_reconnect: Option<f64>,
}

fn fanout() -> String {
    "fanout".into()
}

fn one() -> usize {
    1
}

fn api_key() -> String {
    "api-key".into()
}

/// One measured process: its CPU time over the publish window and its RSS around subscribing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub pid: u32,
    pub cpu_s: f64,
    pub rss_idle_kib: u64,
    pub rss_subscribed_kib: u64,
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Server plus bus CPU per delivery: what the whole deployment spent.
    pub fn total_cpu_us_per_delivery(&self) -> Option<f64> {
        self.server_cpu_us_per_delivery
            .map(|s| s + self.bus_cpu_us_per_delivery.unwrap_or(0.0))
    }

    /// Target name as shown in tables, with the label when there is one.
    pub fn display_name(&self) -> String {
        let via = match self.publish_via.as_str() {
            "rest" => " (REST)",
            "pusher-http" => " (HTTP API)",
            _ => "",
        };
        match &self.label {
            Some(label) => format!("{}{via}, {label}", display_target(&self.target)),
            None => format!("{}{via}", display_target(&self.target)),
        }
    }

    /// The scenario: its kind, subscribers, channels, rate and payload.
    pub(crate) fn scenario(&self) -> (&str, usize, usize, usize, u64, usize) {
        (
            &self.scenario,
            self.subscribers,
            self.channels,
            self.channels_per_subscriber,
            self.rate.to_bits(),
            self.payload,
        )
    }

    /// A single WaaS server published to over WebSocket: the reference runs compare against.
    fn is_reference(&self) -> bool {
        self.target == "waas" && self.publish_via == "ws" && self.label.is_none()
    }
}

/// `v` with `decimals` decimals, or `–` when it is missing.
pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// Three significant figures or so, without a wall of decimals.
pub(crate) fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

pub(crate) fn display_target(t: &str) -> &str {
    match t {
        "waas" => "WaaS",
        "socketio" => "Socket.IO",
        "waas-pusher" => "WaaS Pusher front",
        "sockudo" => "Sockudo",
        "soketi" => "Soketi",
        other => other,
    }
}

/// A markdown table with one row per run. Bus columns appear when some run measured a bus.
pub fn markdown_table(reports: &[Report]) -> String {
    let with_bus = reports.iter().any(|r| r.bus_cpu_s.is_some());
    let mut out = String::new();
    out.push_str(
        "| target | subscribers | msg/s | payload B | delivered | lost | delivered/s \
         | p50 µs | p99 µs | p99.9 µs | server CPU µs/delivery | server CPU % ",
    );
    if with_bus {
        out.push_str("| bus CPU µs/delivery | bus CPU % ");
    }
    out.push_str(
        "| server RSS KiB/conn | client CPU µs/delivery | others' CPU % | errors |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    );
    if with_bus {
        out.push_str("--:|--:|");
    }
    out.push_str("--:|--:|--:|--:|\n");
    for r in reports {
        let bus = if with_bus {
            format!(
                " {} | {} |",
                opt(r.bus_cpu_us_per_delivery, 2),
                opt(r.bus_cpu_percent, 0)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |{bus} {} | {:.2} | {:.0} | {} |",
            r.display_name(),
            r.subscribed,
            r.rate,
            r.payload,
            r.delivered,
            r.lost,
            r.delivered_per_s,
            r.latency_p50_us,
            r.latency_p99_us,
            r.latency_p999_us,
            opt(r.server_cpu_us_per_delivery, 2),
            opt(r.server_cpu_percent, 0),
            opt(r.server_rss_kib_per_conn, 1),
            r.client_cpu_us_per_delivery,
            r.others_cpu_percent,
            r.error_count(),
        );
    }
    out
}

/// For each scenario (subscribers, rate, payload) run against WaaS and a peer: the peer's figure
/// over WaaS's. Empty when no scenario has both.
pub fn ratio_table(reports: &[Report]) -> String {
    let mut rows = String::new();
    for peer in reports.iter().filter(|r| r.target != "waas") {
        let Some(waas) = reports
            .iter()
            .find(|w| w.is_reference() && w.scenario() == peer.scenario())
        else {
            continue;
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} | {} |",
            display_target(&peer.target),
            peer.subscribers,
            peer.rate,
            ratio(
                peer.server_cpu_us_per_delivery,
                waas.server_cpu_us_per_delivery
            ),
            ratio(peer.server_rss_kib_per_conn, waas.server_rss_kib_per_conn),
            ratio(Some(peer.latency_p99_us), Some(waas.latency_p99_us)),
            ratio(Some(peer.delivered_per_s), Some(waas.delivered_per_s)),
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| peer | subscribers | msg/s | server CPU µs/delivery, peer / WaaS \
         | server RSS KiB/conn, peer / WaaS | p99 µs, peer / WaaS | delivered/s, peer / WaaS |\n\
         |---|--:|--:|--:|--:|--:|--:|\n{rows}"
    )
}

/// `a / b = **r×**`, or `–` when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{} / {} = **{:.1}×**", num(a), num(b), a / b),
        _ => "–".to_string(),
    }
}

/// For each labelled WaaS run (a cluster) with an unlabelled WaaS run of the same scenario (a
/// single server): the cluster's figures beside the single server's. The cluster's CPU is its
/// servers' plus its bus's. Empty when no scenario has both.
pub fn setup_table(reports: &[Report]) -> String {
    let mut rows = String::new();
    for run in reports
        .iter()
        .filter(|r| r.target == "waas" && r.label.is_some())
    {
        let Some(single) = reports
            .iter()
            .find(|w| w.is_reference() && w.scenario() == run.scenario())
        else {
            continue;
        };
        let cpu = match (run.server_cpu_us_per_delivery, run.bus_cpu_us_per_delivery) {
            (Some(s), Some(b)) => format!(
                "{} + {} = {}",
                num(s),
                num(b),
                ratio(Some(s + b), single.total_cpu_us_per_delivery())
            ),
            (s, _) => ratio(s, single.total_cpu_us_per_delivery()),
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            run.label.as_deref().unwrap_or_default(),
            run.subscribers,
            run.rate,
            ratio(Some(run.delivered_per_s), Some(single.delivered_per_s)),
            ratio(Some(run.latency_p50_us), Some(single.latency_p50_us)),
            ratio(Some(run.latency_p99_us), Some(single.latency_p99_us)),
            cpu,
            ratio(run.server_rss_kib_per_conn, single.server_rss_kib_per_conn),
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| setup | subscribers | msg/s | delivered/s, setup / single | p50 µs, setup / single \
         | p99 µs, setup / single | CPU µs/delivery, servers + bus = setup / single \
         | server RSS KiB/conn, setup / single |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n{rows}"
    )
}

/// The lines printed under a single run's table: errors and what was measured how.
pub fn details(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "published {} (accepted {}), expected {} deliveries to {} of {} subscribers; \
         connect+subscribe took {:.1} s; latency max {:.0} µs",
        r.published,
        r.accepted,
        r.expected,
        r.subscribed,
        r.subscribers,
        r.connect_s,
        r.latency_max_us
    );
    if r.addrs.len() > 1 || r.addrs.first() != Some(&r.publish_addr) {
        let _ = writeln!(
            out,
            "subscribers on {}, publisher on {}",
            r.addrs.join(", "),
            r.publish_addr
        );
    }
    for (role, procs) in [("server", &r.servers), ("bus", &r.bus)] {
        for p in procs {
            let _ = writeln!(
                out,
                "{role} pid {}: RSS {} KiB idle → {} KiB subscribed; CPU {:.2} s",
                p.pid, p.rss_idle_kib, p.rss_subscribed_kib, p.cpu_s
            );
        }
    }
    let _ = writeln!(
        out,
        "client CPU {:.2} s; meanwhile other processes used {:.0}% of a core and the kernel's \
         irq/softirq work (loopback networking) {:.0}%; load average before {:.2}; {}",
        r.client_cpu_s, r.others_cpu_percent, r.irq_cpu_percent, r.loadavg_before, r.machine
    );
    for (kind, n) in &r.errors {
        let _ = writeln!(out, "error × {n}: {kind}");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn report(target: &str, cpu: f64, rss: f64) -> Report {
        Report {
            target: target.into(),
            label: None,
            scenario: "fanout".into(),
            channels: 1,
            channels_per_subscriber: 1,
            auth: "api-key".into(),
            addrs: vec!["127.0.0.1:8080".into()],
            publish_addr: "127.0.0.1:8080".into(),
            subscriber_netns: None,
            publish_via: "ws".into(),
            subscribers: 1000,
            subscribed: 1000,
            rate: 20.0,
            payload: 100,
            duration_s: 10.0,
            connect_s: 1.0,
            connect_server_cpu_s: Some(0.1),
            server_cpu_us_per_connect: Some(100.0),
            idle_s: None,
            reconnect: None,
            published: 200,
            accepted: 200,
            expected: 200_000,
            delivered: 200_000,
            lost: 0,
            delivered_per_s: 20_000.0,
            latency_p50_us: 100.0,
            latency_p99_us: 400.0,
            latency_p999_us: 900.0,
            latency_max_us: 1000.0,
            servers: vec![ProcessFigures {
                pid: 1,
                cpu_s: 1.0,
                rss_idle_kib: 1000,
                rss_subscribed_kib: 5000,
            }],
            server_cpu_s: Some(1.0),
            server_cpu_us_per_delivery: Some(cpu),
            server_cpu_percent: Some(10.0),
            server_rss_idle_kib: Some(1000),
            server_rss_subscribed_kib: Some(5000),
            server_rss_kib_per_conn: Some(rss),
            bus: Vec::new(),
            bus_cpu_s: None,
            bus_cpu_us_per_delivery: None,
            bus_cpu_percent: None,
            client_cpu_s: 1.0,
            client_cpu_us_per_delivery: 5.0,
            others_cpu_percent: 1.0,
            irq_cpu_percent: 1.0,
            errors: BTreeMap::new(),
            machine: "test".into(),
            loadavg_before: 0.0,
        }
    }

    #[test]
    fn tables_have_a_row_per_run_and_ratios() {
        let runs = [report("waas", 2.0, 4.0), report("socketio", 29.0, 19.0)];
        let table = markdown_table(&runs);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| Socket.IO | 1000 | 20 | 100 |"));
        let ratios = ratio_table(&runs);
        assert!(ratios.contains("29.0 / 2.00 = **14.5×**"), "{ratios}");
        assert!(ratios.contains("19.0 / 4.00 = **4.8×**"), "{ratios}");
        assert!(ratio_table(&runs[..1]).is_empty());
        assert!(setup_table(&runs).is_empty());
    }

    #[test]
    fn cluster_runs_compare_with_the_single_server() {
        let mut cluster = report("waas", 2.5, 4.0);
        cluster.label = Some("2 gateways".into());
        cluster.bus_cpu_s = Some(0.1);
        cluster.bus_cpu_us_per_delivery = Some(0.5);
        cluster.bus_cpu_percent = Some(1.0);
        let runs = [
            report("waas", 2.0, 4.0),
            cluster,
            report("socketio", 29.0, 19.0),
        ];
        let table = markdown_table(&runs);
        assert!(table.contains("| bus CPU µs/delivery |"), "{table}");
        assert!(table.contains("| WaaS, 2 gateways | 1000 |"), "{table}");
        assert!(table.contains("| 2.50 | 10 | 0.50 | 1 |"), "{table}");
        // The cluster row is no reference for the peer.
        let ratios = ratio_table(&runs);
        assert_eq!(ratios.lines().count(), 3, "{ratios}");
        assert!(ratios.contains("29.0 / 2.00"), "{ratios}");
        let setups = setup_table(&runs);
        assert_eq!(setups.lines().count(), 3, "{setups}");
        assert!(
            setups.contains("2.50 + 0.50 = 3.00 / 2.00 = **1.5×**"),
            "{setups}"
        );
    }

    #[test]
    fn json_roundtrip() {
        let r = report("waas", 2.0, 4.0);
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.server_cpu_us_per_delivery, Some(2.0));
    }

    #[test]
    fn reports_from_before_the_scenarios_read_as_fanout() {
        let mut json = serde_json::to_value(report("waas", 2.0, 4.0)).unwrap();
        let map = json.as_object_mut().unwrap();
        for key in ["scenario", "channels", "channels_per_subscriber", "auth"] {
            map.remove(key);
        }
        let old: Report = serde_json::from_value(json).unwrap();
        assert_eq!(
            (old.scenario.as_str(), old.channels, old.auth.as_str()),
            ("fanout", 1, "api-key")
        );
    }

    #[test]
    fn many_channels_compare_only_with_the_same_spread() {
        let mut many = report("soketi", 30.0, 8.0);
        many.scenario = "many-channels".into();
        many.channels = 10_000;
        let runs = [report("waas", 2.0, 4.0), many.clone()];
        assert!(ratio_table(&runs).is_empty());
        let mut waas_many = many;
        waas_many.target = "waas".into();
        waas_many.server_cpu_us_per_delivery = Some(10.0);
        let runs = [runs[0].clone(), runs[1].clone(), waas_many];
        assert!(ratio_table(&runs).contains("30.0 / 10.0 = **3.0×**"));
    }
}
