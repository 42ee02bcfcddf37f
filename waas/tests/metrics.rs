//! `GET /metrics`: Prometheus counters that follow what the gateway did. The only test of its
//! binary that runs a server, so the process-wide figures are its alone and can be checked
//! exactly.

use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use waas_test_support::{tokens, RawClient, TestServer};

async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let r = reqwest::get(format!("{}/metrics", server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = r.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn metrics_follow_connections_publishes_and_deliveries() {
    let server = TestServer::start().await;
    let token = tokens::demo("m", &["m.*"], &[]);
    let mut a = RawClient::ready(server.addr, "demo", &token).await;
    let mut b = RawClient::ready(server.addr, "demo", &token).await;
    for c in [&mut a, &mut b] {
        let ack = c
            .request(json!({"op": "subscribe", "id": 1, "channel": "m.x"}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
    }
    let http = reqwest::Client::new();
    let admin = format!("{}/v1/admin/apps/demo/recordings", server.http_url());
    let rec: serde_json::Value = http
        .post(&admin)
        .bearer_auth("dev-operator-token")
        .json(&json!({"name": "metrics", "channels": ["m.*"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rec["id"].is_string(), "{rec}");
    for n in 0..3 {
        let r = http
            .post(format!("{}/v1/apps/demo/publish", server.http_url()))
            .bearer_auth("demo-key")
            .json(&json!({"channel": "m.x", "event": "n", "data": n}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for c in [&mut a, &mut b] {
        for n in 0..3 {
            assert_eq!(c.json().await["data"], n);
        }
    }
    // The recorder stores on its own time: read until it has stored all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(&server).await;
        if m["waas_recorded_events_total"] >= 3.0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "recorded {}",
            m["waas_recorded_events_total"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(m["waas_recorded_events_total"], 3.0);
    assert_eq!(m["waas_replays_started_total"], 0.0);
    for outcome in ["delivered", "retry", "dead"] {
        let series = format!("waas_webhook_attempts_total{{outcome=\"{outcome}\"}}");
        assert_eq!(m[&series], 0.0, "{series}");
    }
    assert_eq!(m["waas_connections"], 2.0);
    assert_eq!(m["waas_connections_opened_total"], 2.0);
    assert_eq!(m["waas_messages_published_total"], 3.0);
    assert_eq!(m["waas_messages_delivered_total"], 6.0);
    assert_eq!(m["waas_bus_subjects"], 1.0);
    assert_eq!(m["waas_slow_consumer_disconnects_total"], 0.0);
    // By app, and the publish → deliver latency once per message, not once per subscriber.
    assert_eq!(m[r#"waas_app_messages_published_total{app="demo"}"#], 3.0);
    assert_eq!(m[r#"waas_app_messages_delivered_total{app="demo"}"#], 6.0);
    assert_eq!(m[r#"waas_delivery_latency_seconds_count{app="demo"}"#], 3.0);
    assert_eq!(
        m[r#"waas_delivery_latency_seconds_bucket{app="demo",le="+Inf"}"#],
        3.0
    );
    // The memory bus published each message (and the recorder's and others' traffic).
    assert!(m["waas_bus_publish_duration_seconds_count"] >= 3.0);
    // No request was made, and `waas dev` has no JetStream.
    assert!(!m
        .keys()
        .any(|k| k.starts_with("waas_rpc_duration_seconds_count")));
    assert_eq!(m["waas_jetstream_publish_duration_seconds_count"], 0.0);

    drop(b);
    // The server notices the closed socket on its own time: read until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(&server).await;
        if m["waas_connections"] == 1.0 {
            assert_eq!(m["waas_connections_opened_total"], 2.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} connections",
            m["waas_connections"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
