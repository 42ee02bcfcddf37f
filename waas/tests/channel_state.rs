//! Per-channel state is freed: after churning through unique channel names, a server keeps
//! state only for the channels still subscribed or with history not yet expired
//! (`docs/history.md`, "How long a channel is remembered").

use serde_json::json;
use std::time::Duration;
use waas_test_support::poll::eventually;
use waas_test_support::{tokens, RawClient, TestServer};

/// How long the server gets to free what it should; polled, not slept.
const EVENTUALLY: Duration = Duration::from_secs(20);

/// Channels with history state, and subjects with subscribers, on `server`.
fn state(server: &TestServer) -> (usize, usize) {
    let gw = &server.gateway;
    (
        gw.publisher.history().channel_count(),
        gw.hub.subject_count(),
    )
}

/// Polls the server's state until it is `want`, for at most [`EVENTUALLY`].
async fn state_becomes(server: &TestServer, want: (usize, usize), what: &str) {
    let what = || format!("{what}: state {:?}, want {want:?}", state(server));
    eventually(EVENTUALLY, Duration::from_millis(20), what, || async {
        (state(server) == want).then_some(())
    })
    .await;
}

async fn server() -> TestServer {
    TestServer::with(|s| {
        s.limits.history_ttl_secs = 1;
        s.limits.history_sweep_ms = 50;
    })
    .await
}

#[tokio::test]
async fn unique_channel_churn_leaves_no_state_behind() {
    let server = server().await;
    let token = tokens::demo("churn", &[">"], &[">"]);
    // Subscribe and unsubscribe, one channel after another.
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    for i in 0..1000u64 {
        let channel = format!("churn.a{i}");
        let ack = c
            .request(json!({"op": "subscribe", "id": 2 * i + 1, "channel": channel}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
        let ack = c
            .request(json!({"op": "unsubscribe", "id": 2 * i + 2, "channel": channel}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
    }
    // Subscriptions that end with their connections.
    for conn in 0..5 {
        let mut c = RawClient::ready(server.addr, "demo", &token).await;
        for i in 0..100u64 {
            let channel = format!("churn.c{conn}.{i}");
            let ack = c
                .request(json!({"op": "subscribe", "id": i + 1, "channel": channel}))
                .await;
            assert_eq!(ack["op"], "ack", "{ack}");
        }
    }
    state_becomes(&server, (0, 0), "after subscribe churn").await;

    // Messages kept for a second: remembered until then, forgotten after.
    let mut keep = RawClient::ready(server.addr, "demo", &token).await;
    let ack = keep
        .request(json!({"op": "subscribe", "id": 1, "channel": "kept"}))
        .await;
    let epoch = ack["epoch"].clone();
    let http = reqwest::Client::new();
    for i in 0..500 {
        let r = http
            .post(format!("{}/v1/apps/demo/publish", server.http_url()))
            .bearer_auth("demo-key")
            .json(&json!({"channel": format!("pub.{i}"), "event": "e", "data": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(state(&server).0 >= 500, "{:?}", state(&server));
    state_becomes(&server, (1, 1), "after history expired").await;

    // The subscribed channel kept its epoch: a client recovering on it is told the truth.
    let mut again = RawClient::ready(server.addr, "demo", &token).await;
    let ack = again
        .request(json!({"op": "subscribe", "id": 1, "channel": "kept",
                        "since": {"offset": ack["offset"], "epoch": epoch}}))
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    drop(keep);
    drop(again);
    state_becomes(&server, (0, 0), "after the last subscriber left").await;
}

/// Channels that keep no history are forgotten at once: publishing to unique channels costs
/// nothing that stays.
#[tokio::test]
async fn publishing_to_channels_without_history_keeps_nothing() {
    let server = TestServer::with(|s| {
        s.limits.history_size = 0;
        s.limits.publish_rate = 0;
    })
    .await;
    let token = tokens::demo("pub", &[], &[">"]);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    let mut last = 0;
    for i in 0..500u64 {
        let ack = c
            .request(
                json!({"op": "publish", "id": i + 1, "channel": format!("x.{i}"),
                            "event": "e", "data": i}),
            )
            .await;
        let offset = ack["offset"].as_u64().expect("an offset");
        assert!(
            offset > last,
            "offsets keep increasing across forgotten channels"
        );
        last = offset;
    }
    assert_eq!(state(&server), (0, 0));
}
