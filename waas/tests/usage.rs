//! Per-app usage (`docs/admin.md#usage`, `docs/dashboard.md#usage`): counted on gateways,
//! reported over the bus, added up by the control-plane and read at
//! `GET /v1/admin/apps/{app}/usage` — in one process, and across two gateways of a cluster over
//! real NATS and PostgreSQL.

#[path = "support/tenants.rs"]
mod tenants;

use serde_json::{json, Value};
use std::time::Duration;
use waas_test_support::cluster::Cluster;
use waas_test_support::nats::shared_url;
use waas_test_support::poll::eventually;
use waas_test_support::{tokens, RawClient, TestServer};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// Reports every 100 ms, so a test sees its counts soon.
async fn server() -> TestServer {
    TestServer::with(|s| s.limits.usage_report_interval_ms = 100).await
}

fn total(series: &Value, key: &str) -> i64 {
    series["points"]
        .as_array()
        .map_or(0, |p| p.iter().map(|p| p[key].as_i64().unwrap_or(0)).sum())
}

fn most(series: &Value, key: &str) -> i64 {
    series["points"].as_array().map_or(0, |p| {
        p.iter().filter_map(|p| p[key].as_i64()).max().unwrap_or(0)
    })
}

async fn publish(base: &str, app: &str, key: &str, n: usize) {
    let http = reqwest::Client::new();
    for i in 0..n {
        let r = http
            .post(format!("{base}/v1/apps/{app}/publish"))
            .bearer_auth(key)
            .json(&json!({"channel": "room", "event": "e", "data": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn subscriber(addr: std::net::SocketAddr, app: &str, secret: &str) -> RawClient {
    let token = tokens::for_app(secret, app, "sub", tokens::caps(&["room"], &[]));
    let mut c = RawClient::ready(addr, app, &token).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "room"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    c
}

/// Asks for `path` until the answer is what `done` wants; returns that answer.
async fn usage_until(server: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || format!("usage never got there: {}", last.lock().unwrap()),
        || async {
            let (status, body) = server.admin("GET", path, None).await;
            assert_eq!(status, 200, "{body}");
            let ok = done(&body);
            *last.lock().unwrap() = body.clone();
            ok.then_some(body)
        },
    )
    .await
}

#[tokio::test]
async fn publishes_deliveries_connections_and_requests_are_counted() {
    let server = server().await;
    let mut a = subscriber(server.addr, "demo", "demo-secret").await;
    let b = subscriber(server.addr, "demo", "demo-secret").await;
    publish(&server.http_url(), "demo", "demo-key", 10).await;
    // A request with no route: counted, as an error.
    let answer = a
        .request(json!({"op": "request", "id": 9, "path": "/nowhere"}))
        .await;
    assert_eq!(answer["op"], "error", "{answer}");

    let path = "/v1/admin/apps/demo/usage?step=minute";
    let minutes = usage_until(&server, path, |s| {
        total(s, "published") == 10
            && total(s, "delivered") == 20
            && total(s, "requests") == 1
            && s["connections_now"] == 2
    })
    .await;
    assert_eq!(total(&minutes, "request_errors"), 1);
    assert_eq!(most(&minutes, "connections"), 2);
    assert_eq!(minutes["step"], "minute");
    assert_eq!(minutes["capped"], false);
    let points = minutes["points"].as_array().unwrap().len();
    assert!((60..=61).contains(&points), "{points}");

    // The same counts by hour and by day.
    for step in ["hour", "day"] {
        let (status, s) = server
            .admin(
                "GET",
                &format!("/v1/admin/apps/demo/usage?step={step}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{s}");
        assert_eq!(total(&s, "published"), 10, "{step}: {s}");
        assert_eq!(total(&s, "delivered"), 20, "{step}: {s}");
    }

    // Closing the connections shows at once in "connections now" (after a report).
    drop(a);
    drop(b);
    usage_until(&server, path, |s| s["connections_now"] == 0).await;
}

#[tokio::test]
async fn bad_ranges_unknown_apps_and_missing_tokens_are_refused() {
    let server = server().await;
    for (query, why) in [
        ("step=week", "step"),
        ("from=100&to=100", "before"),
        ("from=200&to=100", "before"),
        ("from=-5&to=100", "negative"),
    ] {
        let (status, body) = server
            .admin("GET", &format!("/v1/admin/apps/demo/usage?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{query}: {body}"
        );
    }
    let (status, body) = server
        .admin("GET", "/v1/admin/apps/demo/usage?from=soon", None)
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.admin("GET", "/v1/admin/apps/nope/usage", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let r = reqwest::get(format!("{}/v1/admin/apps/demo/usage", server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An unbounded range is cut to the most recent `usage_max_points` steps.
    let (status, body) = server
        .admin("GET", "/v1/admin/apps/demo/usage?from=0&step=minute", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capped"], true);
    assert_eq!(body["points"].as_array().unwrap().len(), 1440);
    let from = body["from"].as_i64().unwrap();
    let to = body["to"].as_i64().unwrap();
    assert_eq!(to - from, 1440 * 60);
    assert_eq!(body["points"][0]["start"], from);
}

#[tokio::test]
async fn usage_is_summed_exactly_across_two_gateways() {
    let every = ["--usage-report-interval-ms", "200"];
    let mut cluster = Cluster::start_with(WAAS, &shared_url(), 0, &every).await;
    cluster.add_gateway_with(&every);
    cluster.add_gateway_with(&every);
    let app = cluster.create_app("usage2").await;
    let _a = subscriber(cluster.gateways[0].addr, &app.id, &app.jwt_secret).await;
    let _b = subscriber(cluster.gateways[1].addr, &app.id, &app.jwt_secret).await;
    // Published on both gateways; each message is delivered on both.
    publish(&cluster.gateway_http(0), &app.id, &app.api_key, 7).await;
    publish(&cluster.gateway_http(1), &app.id, &app.api_key, 5).await;

    let path = format!("/v1/admin/apps/{}/usage?step=minute", app.id);
    let last = std::sync::Mutex::new(Value::Null);
    let series = eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        || format!("usage never added up: {}", last.lock().unwrap()),
        || async {
            let (status, body) = cluster.admin("GET", &path, None).await;
            assert_eq!(status, 200, "{body}");
            let done = total(&body, "published") >= 12
                && total(&body, "delivered") >= 24
                && body["connections_now"] == 2;
            *last.lock().unwrap() = body.clone();
            done.then_some(body)
        },
    )
    .await;
    // Exact: nothing counted twice.
    assert_eq!(total(&series, "published"), 12, "{series}");
    assert_eq!(total(&series, "delivered"), 24, "{series}");
    assert_eq!(most(&series, "connections"), 2, "{series}");
}

/// Signs `email` in to the dashboard; returns the `Cookie` header of its session.
async fn dashboard_session(server: &TestServer, email: &str, password: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/dashboard/login", server.http_url()))
        .send()
        .await
        .unwrap();
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("waas_login="))
        .expect("a sign-in cookie");
    let csrf = login_cookie.trim_start_matches("waas_login=").to_owned();
    let signed_in = http
        .post(format!("{}/dashboard/login", server.http_url()))
        .header("cookie", &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("waas_session="))
        .expect("a session cookie")
}

#[tokio::test]
async fn a_tenant_user_sees_the_usage_of_their_apps_only() {
    let server = server().await;
    tenants::acme_and_globex(&server).await;
    tenants::ann_of_acme(&server).await;
    let cookie = dashboard_session(&server, "ann@acme.test", "ann-password-1").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        http.get(format!("{}{path}", server.http_url()))
            .header("cookie", &cookie)
            .send()
    };
    let own = get("/dashboard/apps/acme-app/usage".into()).await.unwrap();
    assert_eq!(own.status(), 200);
    let html = own.text().await.unwrap();
    assert!(html.contains("usage.json?step=minute"), "{html}");
    let own = get("/dashboard/apps/acme-app/usage.json?step=minute".into())
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let series: Value = own.json().await.unwrap();
    assert_eq!(series["app"], "acme-app");
    let bad = get("/dashboard/apps/acme-app/usage.json?step=week".into())
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    for path in [
        "/dashboard/apps/globex-app/usage",
        "/dashboard/apps/globex-app/usage.json",
        "/dashboard/apps/no-such-app/usage.json",
    ] {
        let r = get(path.into()).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Without a session: the sign-in page.
    let r = http
        .get(format!(
            "{}/dashboard/apps/acme-app/usage.json",
            server.http_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}
