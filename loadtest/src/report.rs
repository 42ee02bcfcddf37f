//! The result of one run, as JSON and as markdown tables.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One run. Flat, so that it reads well as JSON; the `server_*` fields are absent without
/// `--server-pid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub target: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
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
    /// This load client's CPU time over the same window as the server's.
    pub client_cpu_s: f64,
    pub client_cpu_us_per_delivery: f64,
    /// CPU the rest of the machine used over that window (process and steal time minus server
    /// and client), in percent of one core: how disturbed the measurement was.
    #[serde(default)]
    pub others_cpu_percent: f64,
    /// irq + softirq time of the machine over that window, in percent of one core: mostly the
    /// loopback networking of this run, charged to neither process.
    #[serde(default)]
    pub irq_cpu_percent: f64,
    /// Errors by kind (connect failures, error frames, closes); `lost` is not counted here.
    pub errors: BTreeMap<String, u64>,
    /// CPU model, cores and memory of the machine the run was on.
    pub machine: String,
    /// 1-minute load average just before the run (others' work on the box disturbs results).
    pub loadavg_before: f64,
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.decimals$}"))
}

/// Three significant figures or so, without a wall of decimals.
fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn display_target(t: &str) -> &str {
    match t {
        "waas" => "WaaS",
        "socketio" => "Socket.IO",
        other => other,
    }
}

/// A markdown table with one row per run.
pub fn markdown_table(reports: &[Report]) -> String {
    let mut out = String::new();
    out.push_str(
        "| target | subscribers | msg/s | payload B | delivered | lost | delivered/s \
         | p50 µs | p99 µs | p99.9 µs | server CPU µs/delivery | server CPU % \
         | server RSS KiB/conn | client CPU µs/delivery | others' CPU % | errors |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in reports {
        let via = if r.publish_via == "rest" {
            " (REST)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {}{via} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {:.2} | {:.0} | {} |",
            display_target(&r.target),
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
    let key = |r: &Report| (r.subscribers, r.rate.to_bits(), r.payload);
    let mut rows = String::new();
    for peer in reports.iter().filter(|r| r.target != "waas") {
        let Some(waas) = reports
            .iter()
            .find(|w| w.target == "waas" && w.publish_via == "ws" && key(w) == key(peer))
        else {
            continue;
        };
        let ratio = |p: Option<f64>, w: Option<f64>| match (p, w) {
            (Some(p), Some(w)) if w > 0.0 => {
                format!("{} / {} = **{:.1}×**", num(p), num(w), p / w)
            }
            _ => "–".to_string(),
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
    if let (Some(idle), Some(sub)) = (r.server_rss_idle_kib, r.server_rss_subscribed_kib) {
        let _ = writeln!(
            out,
            "server pid {}: RSS {idle} KiB idle → {sub} KiB subscribed; CPU {:.2} s",
            r.server_pid.unwrap_or_default(),
            r.server_cpu_s.unwrap_or_default()
        );
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
mod tests {
    use super::*;

    fn report(target: &str, cpu: f64, rss: f64) -> Report {
        Report {
            target: target.into(),
            publish_via: "ws".into(),
            subscribers: 1000,
            subscribed: 1000,
            rate: 20.0,
            payload: 100,
            duration_s: 10.0,
            connect_s: 1.0,
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
            server_pid: Some(1),
            server_cpu_s: Some(1.0),
            server_cpu_us_per_delivery: Some(cpu),
            server_cpu_percent: Some(10.0),
            server_rss_idle_kib: Some(1000),
            server_rss_subscribed_kib: Some(5000),
            server_rss_kib_per_conn: Some(rss),
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
    }

    #[test]
    fn json_roundtrip() {
        let r = report("waas", 2.0, 4.0);
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back.server_cpu_us_per_delivery, Some(2.0));
    }
}
