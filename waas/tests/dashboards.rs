//! The Grafana dashboards in `helm/waas/dashboards/` against a real Prometheus (Debian's
//! `prometheus` package, started here on a free loopback port) scraping a running cluster under
//! load: every panel's query must return series, each with the labels its legend shows.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waas_test_support::cluster::Cluster;
use waas_test_support::nats::shared_url;
use waas_test_support::receiver::Receiver;
use waas_test_support::upstream::TestUpstream;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");
const REGION: &str = "test-region";

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/waas/dashboards")
}

/// One query of a panel, with what its legend needs.
#[derive(Debug)]
struct PanelQuery {
    dashboard: String,
    panel: String,
    expr: String,
    /// Labels the legend shows (`{{instance}}`).
    legend_labels: BTreeSet<String>,
}

fn legend_labels(legend: &str) -> BTreeSet<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim().to_owned()))
        .collect()
}

/// Every panel query of every dashboard, template variables replaced as a user picking this
/// test's region and app (and every job) would have them.
fn panel_queries(app: &str) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dashboards_dir())
        .expect("helm/waas/dashboards")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["control-plane", "gateway", "per-app", "per-region"],
        "the dashboards the chart ships"
    );
    for path in files {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name} has no panels");
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{name}: {} has no query",
                panel["title"]
            );
            for target in targets {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "1m")
                    .replace("$region", REGION)
                    .replace("$app", app)
                    .replace("$job", ".*");
                assert!(!expr.contains('$'), "{name}: unknown variable in {expr}");
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: panel["title"].as_str().unwrap().to_owned(),
                    expr,
                    legend_labels: legend_labels(target["legendFormat"].as_str().unwrap_or("")),
                });
            }
        }
    }
    out
}

/// A `prometheus` process with its own config and storage; killed on drop.
struct Prometheus {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(gateways: &[String], control_planes: &[String]) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("prometheus not found: install Debian's `prometheus` package");
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "waas-gateways", "static_configs": [{"targets": gateways}]},
                {"job_name": "waas-control-plane", "static_configs": [{"targets": control_planes}]},
            ],
        });
        // JSON is YAML.
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_string()).unwrap();
        // A free loopback port: bound, read, released, then given to Prometheus.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }

    /// The instant vector `expr` evaluates to now, or why not.
    async fn query(&self, http: &reqwest::Client, expr: &str) -> Result<Vec<Value>, String> {
        let r = http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| format!("prometheus not answering: {e}"))?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("query failed: {body}"));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a query's answer does not serve its panel, if it does not.
fn lacking(q: &PanelQuery, series: &[Value]) -> Option<String> {
    if series.is_empty() {
        return Some("no series".into());
    }
    for s in series {
        for label in &q.legend_labels {
            let value = s["metric"][label].as_str().unwrap_or("");
            if value.is_empty() {
                return Some(format!("series {} lacks label {label}", s["metric"]));
            }
        }
    }
    None
}

#[tokio::test]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    let region = ["--region", REGION];
    let receiver = Receiver::start().await;
    let upstream = TestUpstream::start(
        axum::Router::new().route("/api/ok", axum::routing::get(|| async { "fine" })),
    )
    .await;
    let mut cluster = Cluster::start_with(WAAS, &shared_url(), 0, &region).await;
    let app = cluster.create_app("dash").await;
    let (s, body) = cluster
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/{}", app.id),
            Some(json!({"routes": [{"prefix": "/api", "upstream": upstream.url()}]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/webhooks", app.id),
            Some(json!({"url": receiver.url("/hook"), "events": ["message"], "channels": ["d.>"]})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    // Gateways after the endpoint, so they learn the app with it.
    cluster.add_gateway_with(&region);
    cluster.add_gateway_with(&region);
    let gateways: Vec<String> = cluster
        .gateways
        .iter()
        .map(|g| g.addr.to_string())
        .collect();
    let control_plane = cluster.control_plane.as_ref().unwrap().addr.to_string();
    let prometheus = Prometheus::start(&gateways, &[control_plane]);

    // Load: a subscriber on each gateway, publishes through the first, requests over a socket.
    let token = tokens::for_app(
        &app.jwt_secret,
        &app.id,
        "u",
        waas_protocol::Caps {
            call: tokens::call_caps(&["/api"]).call,
            ..tokens::caps(&["d.>"], &["d.>"])
        },
    );
    let mut subscribers = Vec::new();
    for gw in &cluster.gateways {
        let mut c = RawClient::ready(gw.addr, &app.id, &token).await;
        let ack = c
            .request(json!({"op": "subscribe", "id": 1, "channel": "d.x"}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
        subscribers.push(c);
    }
    let mut caller = RawClient::ready(cluster.gateways[1].addr, &app.id, &token).await;
    let stop = Arc::new(AtomicBool::new(false));
    let publish_url = format!("{}/v1/apps/{}/publish", cluster.gateway_http(0), app.id);
    let load = {
        let stop = Arc::clone(&stop);
        let api_key = app.api_key.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&publish_url)
                    .bearer_auth(&api_key)
                    .json(&json!({"channel": "d.x", "event": "e", "data": n}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                n += 1;
                caller
                    .send(&json!({"op": "request", "id": n, "method": "GET", "path": "/api/ok"}))
                    .await;
                let response = loop {
                    let f = caller.json().await;
                    if f["id"] == n {
                        break f;
                    }
                };
                assert_eq!(response["op"], "response", "{response}");
                for c in &mut subscribers {
                    let m = c.next_op("message").await;
                    assert_eq!(m["data"], n - 1);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let queries = panel_queries(&app.id);
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pending: Vec<&PanelQuery> = queries.iter().collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        let mut why = Vec::new();
        for q in pending {
            match prometheus.query(&http, &q.expr).await {
                Ok(series) => {
                    if let Some(reason) = lacking(q, &series) {
                        why.push(format!(
                            "{} / {}: {}: {reason}",
                            q.dashboard, q.panel, q.expr
                        ));
                        still.push(q);
                    }
                }
                Err(e) => {
                    why.push(format!("{}: {e}", q.expr));
                    still.push(q);
                }
            }
        }
        pending = still;
        if load.is_finished() {
            panic!("the load stopped: {:?}", load.await);
        }
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "panels without data:\n{}",
                why.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    // The region label is on every series, and per-app series name the app.
    let published = prometheus
        .query(
            &http,
            "sum by (app, region) (waas_app_messages_published_total)",
        )
        .await
        .unwrap();
    assert!(
        published
            .iter()
            .any(|s| s["metric"]["app"] == app.id.as_str() && s["metric"]["region"] == REGION),
        "{published:?}"
    );
    let unlabelled = prometheus
        .query(
            &http,
            "count({__name__=~\"waas_.*\", region!=\"test-region\"})",
        )
        .await
        .unwrap();
    assert!(
        unlabelled.is_empty(),
        "series without the region: {unlabelled:?}"
    );
}

/// The dashboards query only metrics WaaS exports (a quick check without Prometheus, so a
/// renamed metric fails here first).
#[test]
fn the_dashboards_query_exported_metrics() {
    waas_control_plane::metrics::init();
    // Labelled series show once they have a value.
    let metrics = &waas_core::metrics::METRICS;
    metrics.app("demo");
    metrics.rpc.with_label_values(&["service", "ok"]);
    let exported = String::from_utf8(waas_core::metrics::METRICS.render()).unwrap();
    for q in panel_queries("demo") {
        let mut used = 0;
        for (i, _) in q.expr.match_indices("waas_") {
            let name: String = q.expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            let found = exported.contains(&format!("# TYPE {name} "))
                || exported.contains(&format!("# TYPE {base} histogram"));
            assert!(found, "{name} (in {}) is not exported", q.expr);
            used += 1;
        }
        assert!(used > 0, "{} queries no WaaS metric", q.expr);
    }
}
