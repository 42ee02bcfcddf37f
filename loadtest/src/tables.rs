//! One table per scenario, each with every server's ratio to WaaS: fan-out and many channels use
//! [`report::markdown_table`] and [`report::ratio_table`]; the connect storm, idle connections
//! and the reconnect after a gateway kill have columns of their own.

use crate::report::{self, opt, Report};
use std::fmt::Write;

/// The reports grouped by scenario (in order of first appearance), each group under a heading
/// when there is more than one scenario or the scenario is not the plain fan-out.
pub fn by_scenario(reports: &[Report]) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in reports {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let headings = scenarios != ["fanout"];
    let mut out = String::new();
    for scenario in scenarios {
        let runs: Vec<Report> = reports
            .iter()
            .filter(|r| r.scenario == scenario)
            .cloned()
            .collect();
        if headings {
            let _ = writeln!(out, "### {}\n", heading(&runs[0]));
        }
        let (table, ratios) = match scenario {
            "storm" => (storm_table(&runs), storm_ratios(&runs)),
            "idle" => (idle_table(&runs), idle_ratios(&runs)),
            "reconnect" => (reconnect_table(&runs), String::new()),
            _ => (report::markdown_table(&runs), report::ratio_table(&runs)),
        };
        out.push_str(&table);
        if !ratios.is_empty() {
            let _ = write!(out, "\n{ratios}");
        }
        if headings {
            out.push('\n');
        }
    }
    out
}

fn heading(r: &Report) -> String {
    match r.scenario.as_str() {
        "many-channels" => format!(
            "Many channels: {} channels, {} connections × {} channels each ({} subscribers per \
             channel), messages round robin over the channels",
            r.channels,
            r.subscribers,
            r.channels_per_subscriber,
            r.subscribers * r.channels_per_subscriber / r.channels.max(1)
        ),
        "storm" => format!(
            "Connect storm: {} clients connecting and subscribing at once",
            r.subscribers
        ),
        "idle" => "Idle connections (heartbeats only)".to_string(),
        "reconnect" => "Reconnect storm: the subscribers' gateway killed and restarted".to_string(),
        _ => "Fan-out: one channel".to_string(),
    }
}

/// The server's name, with the set-up's label: how it published does not matter here.
fn server_name(r: &Report) -> String {
    match &r.label {
        Some(label) => format!("{}, {label}", report::display_target(&r.target)),
        None => report::display_target(&r.target).to_string(),
    }
}

fn auth_name(auth: &str) -> &str {
    match auth {
        "hs256" => "JWT HS256",
        "rs256" => "JWT RS256",
        "api-key" => "API key",
        "public" => "public channel, no credentials",
        other => other,
    }
}

/// `a / b = **r×**`, or `–` when either is missing.
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{a:.3} / {b:.3} = **{:.2}×**", a / b),
        _ => "–".to_string(),
    }
}

/// The WaaS run `r` compares with: same scenario and size, a single server; among several, the
/// HS256 one (the storm is run with HS256 and RS256).
fn reference<'a>(runs: &'a [Report], r: &Report) -> Option<&'a Report> {
    let candidates = || {
        runs.iter()
            .filter(|w| w.target == "waas" && w.label.is_none() && w.subscribers == r.subscribers)
    };
    candidates()
        .find(|w| w.auth == "hs256")
        .or_else(|| candidates().next())
}

pub fn storm_table(runs: &[Report]) -> String {
    let mut out = String::from(
        "| server | credentials | clients | subscribed | all connected + subscribed s \
         | server CPU µs/connection | server RSS KiB/conn | errors |\n\
         |---|---|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            server_name(r),
            auth_name(&r.auth),
            r.subscribers,
            r.subscribed,
            r.connect_s,
            opt(r.server_cpu_us_per_connect, 0),
            opt(r.server_rss_kib_per_conn, 1),
            r.error_count(),
        );
    }
    out
}

pub fn storm_ratios(runs: &[Report]) -> String {
    let mut rows = String::new();
    for r in runs {
        let Some(waas) = reference(runs, r) else {
            continue;
        };
        if std::ptr::eq(r, waas) {
            continue;
        }
        let _ = writeln!(
            rows,
            "| {} ({}) | {} | {} |",
            server_name(r),
            auth_name(&r.auth),
            ratio(Some(r.connect_s), Some(waas.connect_s)),
            ratio(r.server_cpu_us_per_connect, waas.server_cpu_us_per_connect),
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| server / WaaS (JWT HS256) | time to all subscribed | server CPU µs/connection |\n\
         |---|--:|--:|\n{rows}"
    )
}

pub fn idle_table(runs: &[Report]) -> String {
    let mut out = String::from(
        "| server | connections | subscribed | idle s | server RSS KiB/conn \
         | server CPU % of a core while idle | errors |\n\
         |---|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            server_name(r),
            r.subscribers,
            r.subscribed,
            opt(r.idle_s, 0),
            opt(r.server_rss_kib_per_conn, 2),
            opt(r.server_cpu_percent, 2),
            r.error_count(),
        );
    }
    out
}

pub fn idle_ratios(runs: &[Report]) -> String {
    let mut rows = String::new();
    for r in runs.iter().filter(|r| r.target != "waas") {
        let Some(waas) = reference(runs, r) else {
            continue;
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} |",
            server_name(r),
            ratio(r.server_rss_kib_per_conn, waas.server_rss_kib_per_conn),
            ratio(r.server_cpu_percent, waas.server_cpu_percent),
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!("| server / WaaS | RSS KiB/conn | CPU % while idle |\n|---|--:|--:|\n{rows}")
}

pub fn reconnect_table(runs: &[Report]) -> String {
    let mut out = String::from(
        "| server | credentials | clients | channels | published (accepted) | disconnected \
         | all back s | all caught up s | lost | duplicates | `recovered: false` \
         | failed attempts | restarted gateway CPU µs/reconnect | errors |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for r in runs {
        let Some(x) = &r.reconnect else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ({}) | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
            server_name(r),
            auth_name(&r.auth),
            r.subscribers,
            r.channels,
            r.published,
            r.accepted,
            x.disconnected,
            x.all_back_s,
            x.all_caught_up_s,
            r.lost,
            x.duplicates,
            x.unrecovered,
            x.failed_attempts,
            opt(x.server_cpu_us_per_reconnect, 0),
            r.error_count(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::report;
    use crate::report::ReconnectFigures;

    fn storm(target: &str, auth: &str, connect_s: f64, cpu: f64) -> Report {
        let mut r = report(target, 0.0, 4.0);
        r.scenario = "storm".into();
        r.auth = auth.into();
        r.connect_s = connect_s;
        r.server_cpu_us_per_connect = Some(cpu);
        r
    }

    #[test]
    fn storm_compares_with_waas_hs256() {
        let runs = [
            storm("waas", "rs256", 1.5, 200.0),
            storm("waas", "hs256", 1.0, 100.0),
            storm("soketi", "public", 3.0, 250.0),
        ];
        let out = by_scenario(&runs);
        assert!(out.starts_with("### Connect storm: 1000 clients"), "{out}");
        assert!(
            out.contains("| WaaS | JWT RS256 | 1000 | 1000 | 1.50 | 200 |"),
            "{out}"
        );
        assert!(
            out.contains("| Soketi (public channel, no credentials) | 3.000 / 1.000 = **3.00×** | 250.000 / 100.000 = **2.50×** |"),
            "{out}"
        );
        assert!(
            out.contains("| WaaS (JWT RS256) | 1.500 / 1.000 = **1.50×**"),
            "{out}"
        );
        // The reference is not compared with itself.
        assert_eq!(out.matches("**1.00×**").count(), 0, "{out}");
    }

    #[test]
    fn idle_and_fanout_get_their_own_tables() {
        let mut idle = report("waas", 0.0, 3.5);
        idle.scenario = "idle".into();
        idle.idle_s = Some(30.0);
        idle.server_cpu_percent = Some(0.5);
        let mut peer = idle.clone();
        peer.target = "sockudo".into();
        peer.server_rss_kib_per_conn = Some(150.0);
        peer.server_cpu_percent = Some(2.0);
        let runs = [report("waas", 2.0, 4.0), idle, peer];
        let out = by_scenario(&runs);
        assert!(out.contains("### Fan-out: one channel"), "{out}");
        assert!(out.contains("### Idle connections"), "{out}");
        assert!(
            out.contains("| WaaS | 1000 | 1000 | 30 | 3.50 | 0.50 | 0 |"),
            "{out}"
        );
        assert!(
            out.contains("| Sockudo | 150.000 / 3.500 = **42.86×** | 2.000 / 0.500 = **4.00×** |"),
            "{out}"
        );
        // A plain fan-out set prints as before, without headings.
        assert!(!by_scenario(&runs[..1]).contains("###"));
    }

    #[test]
    fn reconnect_row_shows_loss_and_times() {
        let mut r = report("waas", 0.0, 4.0);
        r.scenario = "reconnect".into();
        r.auth = "hs256".into();
        r.channels = 100;
        r.lost = 0;
        r.reconnect = Some(ReconnectFigures {
            disconnected: 1000,
            all_back_s: 2.5,
            all_caught_up_s: 2.75,
            unrecovered: 0,
            failed_attempts: 12,
            duplicates: 0,
            server_cpu_us_per_reconnect: Some(150.0),
        });
        let out = by_scenario(&[r]);
        assert!(
            out.contains("| WaaS | JWT HS256 | 1000 | 100 | 200 (200) | 1000 | 2.50 | 2.75 | 0 | 0 | 0 | 12 | 150 | 0 |"),
            "{out}"
        );
    }
}
