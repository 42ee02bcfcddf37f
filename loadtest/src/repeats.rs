//! Repeated runs of one set-up: grouped, the median run that the tables show for each group,
//! and how far the runs of a group spread.

use crate::report::{num, Report};
use std::fmt::Write;

/// Repeated runs grouped: same target, label, publish path and scenario, in order of first
/// appearance.
pub fn group_runs(reports: &[Report]) -> Vec<Vec<&Report>> {
    let mut groups: Vec<Vec<&Report>> = Vec::new();
    for r in reports {
        let same = |g: &&mut Vec<&Report>| {
            let first = g[0];
            first.target == r.target
                && first.label == r.label
                && first.publish_via == r.publish_via
                && first.auth == r.auth
                && first.scenario() == r.scenario()
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// The run of a group with the median server CPU per delivery (the upper one of an even count;
/// by delivered/s without server figures): the run a table shows for the group.
pub fn median_run<'a>(runs: &[&'a Report]) -> &'a Report {
    let key = |r: &Report| r.server_cpu_us_per_delivery.unwrap_or(r.delivered_per_s);
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted[sorted.len() / 2]
}

/// For each group of more than one run: how far the runs spread. Empty when no run was repeated.
pub fn spread_table(groups: &[Vec<&Report>]) -> String {
    let mut rows = String::new();
    for runs in groups.iter().filter(|g| g.len() > 1) {
        let sorted = |f: &dyn Fn(&Report) -> Option<f64>| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let min_med_max = |v: Vec<f64>| match (v.first(), v.get(v.len() / 2), v.last()) {
            (Some(a), Some(m), Some(b)) => format!("{} / {} / {}", num(*a), num(*m), num(*b)),
            _ => "–".to_string(),
        };
        let min_max = |v: Vec<f64>| match (v.first(), v.last()) {
            (Some(a), Some(b)) => format!("{} – {}", num(*a), num(*b)),
            _ => "–".to_string(),
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            runs[0].display_name(),
            runs[0].subscribers,
            runs[0].rate,
            runs.len(),
            min_med_max(sorted(&|r| r.server_cpu_us_per_delivery)),
            min_med_max(sorted(&|r| Some(r.latency_p99_us))),
            min_max(sorted(&|r| Some(r.delivered_per_s))),
            min_max(sorted(&|r| r.server_rss_kib_per_conn)),
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "| target | subscribers | msg/s | runs | server CPU µs/delivery, min / median / max \
         | p99 µs, min / median / max | delivered/s, min – max | server RSS KiB/conn, min – max |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n{rows}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::report;

    #[test]
    fn repeated_runs_show_their_median_and_spread() {
        let runs = [
            report("waas", 2.0, 4.0),
            report("socketio", 29.0, 19.0),
            report("waas", 3.0, 4.2),
            report("waas", 1.0, 3.9),
        ];
        let groups = group_runs(&runs);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 3);
        assert_eq!(median_run(&groups[0]).server_cpu_us_per_delivery, Some(2.0));
        assert_eq!(median_run(&groups[1]).target, "socketio");
        let spread = spread_table(&groups);
        assert_eq!(spread.lines().count(), 3, "{spread}");
        assert!(
            spread.contains("| WaaS | 1000 | 20 | 3 | 1.00 / 2.00 / 3.00 |"),
            "{spread}"
        );
        assert!(spread.contains("| 3.90 – 4.20 |"), "{spread}");
        assert!(spread_table(&group_runs(&runs[..2])).is_empty());
    }
}
