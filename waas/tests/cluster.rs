//! Cluster mode as separate OS processes: a control-plane and gateways of the real `waas`
//! binary over NATS (the machine's, or a private one this test may stop), apps in PostgreSQL.

use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::{shared_url, NatsServer};
use waas_test_support::raw::Received;
use waas_test_support::sdk::wait_connected_to;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> F,
) {
    let end = Instant::now() + deadline;
    while !check().await {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_client_on_one_gateway_receives_from_the_other_and_from_rest_in_order() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("crossnode").await;
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);

    let mut listener =
        RawClient::ready(a, &app.id, &app.token("l", tokens::caps(&["room"], &[]))).await;
    let ack = listener
        .request(json!({"op": "subscribe", "id": 1, "channel": "room"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let mut talker =
        RawClient::ready(b, &app.id, &app.token("t", tokens::caps(&[], &["room"]))).await;

    let rest = cluster.gateway_http(0);
    let rest_task = {
        let app = TestApp {
            id: app.id.clone(),
            api_key: app.api_key.clone(),
            jwt_secret: String::new(),
        };
        tokio::spawn(async move {
            for i in 0..50 {
                let (s, body) = app.publish(&rest, "room", "rest", json!(i)).await;
                assert_eq!(s, 200, "{body}");
            }
        })
    };
    for i in 0..50 {
        talker
            .send(
                &json!({"op": "publish", "id": i, "channel": "room", "event": "socket", "data": i}),
            )
            .await;
    }
    rest_task.await.unwrap();

    let (mut from_socket, mut from_rest) = (Vec::new(), Vec::new());
    while from_socket.len() + from_rest.len() < 100 {
        let m = listener.json().await;
        assert_eq!(m["op"], "message", "{m}");
        match m["event"].as_str() {
            Some("socket") => from_socket.push(m["data"].as_u64().unwrap()),
            Some("rest") => from_rest.push(m["data"].as_u64().unwrap()),
            other => panic!("unexpected event {other:?}"),
        }
    }
    let expected: Vec<u64> = (0..50).collect();
    assert_eq!(from_socket, expected, "per-publisher order across nodes");
    assert_eq!(from_rest, expected);

    // Each process serves its own metrics: the listener's gateway delivered the 100 messages,
    // and the control-plane shows its webhook series.
    let scrape = |base: String| async move {
        let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let delivered = scrape(format!("http://{a}"))
        .await
        .lines()
        .find_map(|l| l.strip_prefix("waas_messages_delivered_total "))
        .map(|v| v.parse::<f64>().unwrap());
    assert!(delivered >= Some(100.0), "{delivered:?}");
    let cp = scrape(cluster.control_plane_url().to_owned()).await;
    assert!(
        cp.contains("waas_webhook_attempts_total{outcome=\"delivered\"}"),
        "{cp}"
    );
}

#[tokio::test]
async fn clients_of_a_killed_gateway_fail_over_and_keep_receiving() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("failover").await;
    let urls = [
        format!("ws://{}", cluster.gateways[0].addr),
        format!("ws://{}", cluster.gateways[1].addr),
    ];
    let client = waas_sdk::Client::builder()
        .urls(urls.iter().cloned())
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["news"], &[])))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut news = client.subscribe("news").await.unwrap();
    let (s, _) = app
        .publish(&cluster.gateway_http(1), "news", "n", json!(1))
        .await;
    assert_eq!(s, 200);
    assert_eq!(news.next().await.unwrap().data::<u64>().unwrap(), 1);

    // Kill the gateway the client is on (the first URL), without a goodbye.
    let first = cluster.gateways.remove(0);
    drop(first);
    wait_connected_to(&mut events, &urls[1]).await;
    let (s, _) = app
        .publish(&cluster.gateway_http(0), "news", "n", json!(2))
        .await;
    assert_eq!(s, 200);
    let m = tokio::time::timeout(Duration::from_secs(10), news.next())
        .await
        .expect("delivery after failover")
        .unwrap();
    assert_eq!(m.data::<u64>().unwrap(), 2);
}

#[tokio::test]
async fn nats_outage_gives_clear_errors_and_the_service_resumes() {
    let mut nats = NatsServer::start();
    let cluster = Cluster::start(WAAS, &nats.url(), 1).await;
    let app = cluster.create_app("outage").await;
    let gw = cluster.gateway_http(0);
    let http = reqwest::Client::new();
    let readyz = |gw: String| {
        let http = http.clone();
        async move {
            http.get(format!("{gw}/readyz"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(readyz(gw.clone()).await, 200);
    let mut c = RawClient::ready(
        cluster.gateways[0].addr,
        &app.id,
        &app.token("u", tokens::caps(&["x"], &["x"])),
    )
    .await;
    assert_eq!(
        c.request(json!({"op": "subscribe", "id": 1, "channel": "x"}))
            .await["op"],
        "ack"
    );

    nats.stop();
    until("readyz turning 503", Duration::from_secs(30), || {
        let f = readyz(gw.clone());
        async move { f.await == 503 }
    })
    .await;
    let (s, body) = app.publish(&gw, "x", "e", json!(1)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let f = c
        .request(json!({"op": "publish", "id": 2, "channel": "x", "event": "e", "data": 1}))
        .await;
    assert_eq!(f["code"], "unavailable", "{f}");

    nats.restart();
    until("readyz turning 200", Duration::from_secs(30), || {
        let f = readyz(gw.clone());
        async move { f.await == 200 }
    })
    .await;
    let (s, body) = app.publish(&gw, "x", "e", json!("back")).await;
    assert_eq!(s, 200, "{body}");
    loop {
        let f = c.json().await;
        if f["op"] == "message" {
            assert_eq!(f["data"], "back");
            break;
        }
    }
}

async fn refused_code(addr: std::net::SocketAddr, app: &str, token: &str) -> Option<String> {
    let mut c = RawClient::connect(addr, &format!("/v1/apps/{app}/ws?token={token}"), None).await;
    match c.recv().await {
        Received::Json(f) if f["op"] == "ready" => None,
        Received::Json(f) => Some(f["code"].as_str().unwrap_or("?").to_owned()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test]
async fn a_rotated_secret_is_refused_on_every_gateway_within_a_second() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("rotate").await;
    let old = app.token("u", tokens::caps(&[">"], &[]));
    for gw in &cluster.gateways {
        assert_eq!(
            refused_code(gw.addr, &app.id, &old).await,
            None,
            "old token works before"
        );
    }
    let (s, body) = cluster
        .admin("POST", "/v1/admin/apps/rotate/jwt-secret", None)
        .await;
    assert_eq!(s, 200, "{body}");
    let rotated = Instant::now();
    let new_secret = body["jwt_secret"].as_str().unwrap().to_owned();
    for gw in &cluster.gateways {
        loop {
            match refused_code(gw.addr, &app.id, &old).await {
                Some(code) => {
                    assert_eq!(code, "invalid_token");
                    break;
                }
                None => assert!(
                    rotated.elapsed() < Duration::from_secs(1),
                    "old token still accepted after 1 s"
                ),
            }
        }
        let fresh = tokens::hs256(
            &new_secret,
            "u",
            Some(&app.id),
            tokens::caps(&[">"], &[]),
            60,
        );
        assert_eq!(refused_code(gw.addr, &app.id, &fresh).await, None);
    }
}

#[tokio::test]
async fn deleting_an_app_closes_its_connections_everywhere() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("doomed").await;
    let t = app.token("u", tokens::caps(&[">"], &[]));
    let mut on_a = RawClient::ready(cluster.gateways[0].addr, &app.id, &t).await;
    let mut on_b = RawClient::ready(cluster.gateways[1].addr, &app.id, &t).await;
    let (s, _) = cluster.admin("DELETE", "/v1/admin/apps/doomed", None).await;
    assert_eq!(s, 204);
    assert_eq!(on_a.close_code().await, 4502);
    assert_eq!(on_b.close_code().await, 4502);
    assert_eq!(
        refused_code(cluster.gateways[0].addr, &app.id, &t)
            .await
            .as_deref(),
        Some("app_not_found")
    );
}

#[tokio::test]
async fn gateways_keep_serving_known_apps_while_the_control_plane_is_down() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster.create_app("resilient").await;
    let t = app.token("u", tokens::caps(&["c"], &[]));
    let addr = cluster.gateways[0].addr;
    drop(RawClient::ready(addr, &app.id, &t).await);
    drop(cluster.control_plane.take());
    let mut c = RawClient::ready(addr, &app.id, &t).await;
    assert_eq!(
        c.request(json!({"op": "subscribe", "id": 1, "channel": "c"}))
            .await["op"],
        "ack"
    );
    let (s, _) = app
        .publish(&cluster.gateway_http(0), "c", "e", json!(1))
        .await;
    assert_eq!(s, 200);
    assert_eq!(c.json().await["data"], 1);
    // An app the gateway never saw cannot be looked up: a clear, retryable error.
    assert_eq!(
        refused_code(addr, "never-seen", &t).await.as_deref(),
        Some("unavailable")
    );
    // The control-plane comes back: new apps resolve again.
    cluster.start_control_plane();
    let other = cluster.create_app("newcomer").await;
    assert_eq!(
        refused_code(addr, &other.id, &other.token("u", tokens::caps(&[], &[]))).await,
        None
    );
}

#[tokio::test]
async fn migrate_command_applies_and_is_idempotent() {
    let schema = waas_test_support::pg::PgSchema::create().await;
    for _ in 0..2 {
        let out = std::process::Command::new(WAAS)
            .args(["migrate", "--database-url", &schema.url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
