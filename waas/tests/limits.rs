//! Every limit answers with its documented error frame or close code, and only the offending
//! connection is affected.

use serde_json::json;
use std::time::{Duration, Instant};
use waas_test_support::raw::{error_code, Received};
use waas_test_support::{tokens, RawClient, TestServer};

fn all_caps() -> String {
    tokens::demo("limits", &[">"], &[">"])
}

#[tokio::test]
async fn oversized_frame_gets_error_then_close_1009() {
    let server = TestServer::with(|s| s.limits.max_frame_bytes = 1024).await;
    let mut other = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let mut c = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let data = "x".repeat(2000);
    c.send(&json!({"op": "publish", "id": 1, "channel": "a", "event": "e", "data": data}))
        .await;
    let f = c.json().await;
    assert_eq!(error_code(&f), "message_too_large");
    assert_eq!(c.close_code().await, 1009);
    // A frame right at the limit is fine for everyone else.
    let ok = other.request(json!({"op": "ping", "id": 1})).await;
    assert_eq!(ok["op"], "pong");
}

#[tokio::test]
async fn too_many_channels() {
    let server = TestServer::with(|s| s.limits.max_channels_per_connection = 2).await;
    let mut c = RawClient::ready(server.addr, "demo", &all_caps()).await;
    for (id, ch) in [(1, "a"), (2, "b")] {
        assert_eq!(
            c.request(json!({"op": "subscribe", "id": id, "channel": ch}))
                .await["op"],
            "ack"
        );
    }
    // Re-subscribing is idempotent and does not count twice.
    assert_eq!(
        c.request(json!({"op": "subscribe", "id": 3, "channel": "a"}))
            .await["op"],
        "ack"
    );
    let f = c
        .request(json!({"op": "subscribe", "id": 4, "channel": "c"}))
        .await;
    assert_eq!(error_code(&f), "too_many_channels");
    assert_eq!(
        c.request(json!({"op": "unsubscribe", "id": 5, "channel": "a"}))
            .await["op"],
        "ack"
    );
    assert_eq!(
        c.request(json!({"op": "subscribe", "id": 6, "channel": "c"}))
            .await["op"],
        "ack"
    );
}

#[tokio::test]
async fn publish_rate_per_connection() {
    let server = TestServer::with(|s| {
        s.limits.publish_rate = 1;
        s.limits.publish_burst = 2;
    })
    .await;
    let mut c = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let mut other = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let publish =
        |id: u64| json!({"op": "publish", "id": id, "channel": "r", "event": "e", "data": id});
    assert_eq!(c.request(publish(1)).await["op"], "ack");
    assert_eq!(c.request(publish(2)).await["op"], "ack");
    let f = c.request(publish(3)).await;
    assert_eq!(error_code(&f), "rate_limited");
    // The limit is per connection.
    assert_eq!(other.request(publish(4)).await["op"], "ack");
}

#[tokio::test]
async fn max_connections_per_app() {
    let server = TestServer::with(|s| s.limits.max_connections_per_app = 2).await;
    let a = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let _b = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", Some("demo-key")).await;
    assert_eq!(error_code(&c.json().await), "connection_limit");
    assert_eq!(c.close_code().await, 4004);
    drop(a);
    // The slot frees when the server sees the socket close; retry until it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = RawClient::connect(server.addr, "/v1/apps/demo/ws", Some("demo-key")).await;
        match d.recv().await {
            Received::Json(f) if f["op"] == "ready" => break,
            other => assert!(Instant::now() < deadline, "slot never freed: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_others_keep_receiving() {
    let server = TestServer::with(|s| {
        s.limits.max_frame_bytes = 2 << 20;
        s.limits.max_queued_bytes = 1 << 20;
    })
    .await;
    let mut slow = RawClient::ready(server.addr, "demo", &all_caps()).await;
    assert_eq!(
        slow.request(json!({"op": "subscribe", "id": 1, "channel": "firehose"}))
            .await["op"],
        "ack"
    );
    let mut fine = RawClient::ready(server.addr, "demo", &all_caps()).await;
    assert_eq!(
        fine.request(json!({"op": "subscribe", "id": 1, "channel": "other"}))
            .await["op"],
        "ack"
    );

    let http = reqwest::Client::new();
    let big = "y".repeat(1 << 20);
    // 40 MiB to a reader that never reads: far more than the 1 MiB queue plus what loopback
    // socket buffers absorb (a few MiB).
    for _ in 0..40 {
        let r = http
            .post(format!("{}/v1/apps/demo/publish", server.http_url()))
            .bearer_auth("demo-key")
            .json(&json!({"channel": "firehose", "event": "big", "data": big}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(slow.close_code().await, 4000);
    let r = http
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "other", "event": "small", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fine.json().await["event"], "small");
}

#[tokio::test]
async fn silent_connection_times_out_while_a_talking_one_stays() {
    let server = TestServer::with(|s| {
        s.limits.heartbeat_interval_ms = 100;
        s.limits.idle_timeout_ms = 400;
    })
    .await;
    let mut talking = RawClient::ready(server.addr, "demo", &all_caps()).await;
    let mut silent = RawClient::ready(server.addr, "demo", &all_caps()).await;
    // The silent client reads nothing, so it never answers the server's pings; the server
    // dropping it from its registry is the event to wait for.
    let mut id = 0;
    while server.gateway.connections.len() == 2 {
        id += 1;
        let pong = talking.request(json!({"op": "ping", "id": id})).await;
        assert_eq!(pong["op"], "pong");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(silent.close_code().await, 4001);
    let pong = talking.request(json!({"op": "ping", "id": 0})).await;
    assert_eq!(pong["op"], "pong");
}

#[tokio::test]
async fn connect_timeout_without_credentials() {
    let server = TestServer::with(|s| s.limits.connect_timeout_ms = 300).await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", None).await;
    assert_eq!(c.close_code().await, 4002);
}

#[tokio::test]
async fn expired_token_closes_the_connection() {
    let server = TestServer::start().await;
    let token = tokens::hs256("demo-secret", "short", None, tokens::caps(&["a"], &[]), 1);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    assert_eq!(c.close_code().await, 4501);
}

#[tokio::test]
async fn invalid_limits_are_refused_at_start() {
    let mut s = waas::settings::Settings::default();
    s.limits.max_frame_bytes = 0;
    let e = waas::dev::start(&s)
        .await
        .err()
        .expect("zero frame size refused");
    assert!(e.to_string().contains("max_frame_bytes"), "{e}");
}
