//! Pipelined publishing (docs/rest.md#post-v1appsappbatch, docs/protocol.md#publish): a batch's
//! messages and a connection's back-to-back `publish` frames are handed to storage without
//! waiting for each to be stored, yet are stored in order and acknowledged only once stored; a
//! storage failure in the middle is answered per message. In `waas dev` (memory) and in a
//! cluster with history in the machine's NATS JetStream.

use futures_util::StreamExt;
use serde_json::{json, Value};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::{tokens, RawClient, TestServer};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// Data (numbers) of a channel's history, oldest first, with their offsets.
async fn history(base: &str, app: &str, key: &str, channel: &str) -> Vec<(u64, u64)> {
    let page: Value = reqwest::Client::new()
        .get(format!(
            "{base}/v1/apps/{app}/channels/{channel}/history?limit=100"
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|m| (m["data"].as_u64().unwrap(), m["offset"].as_u64().unwrap()))
        .collect()
}

async fn batch(base: &str, app: &str, key: &str, items: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/apps/{app}/batch"))
        .bearer_auth(key)
        .json(&json!({ "batch": items }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// `count` publishes of 1, 2, ... to `feed` written back to back on one connection, then a
/// `ping`: every publish is acknowledged, in order, with increasing offsets, before the `pong`.
/// Returns the offsets.
async fn acknowledged_back_to_back(publisher: &mut RawClient, count: u64) -> Vec<u64> {
    for n in 1..=count {
        publisher
            .send(&json!({"op": "publish", "id": n, "channel": "feed", "event": "n", "data": n}))
            .await;
    }
    publisher.send(&json!({"op": "ping", "id": 0})).await;
    let mut offsets = Vec::new();
    for n in 1..=count {
        let f = publisher.json().await;
        assert_eq!(
            (f["op"].as_str(), f["id"].as_u64()),
            (Some("ack"), Some(n)),
            "{f}"
        );
        offsets.push(f["offset"].as_u64().unwrap());
    }
    let pong = publisher.json().await;
    assert_eq!(
        pong["op"], "pong",
        "answered after the publishes before it: {pong}"
    );
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    offsets
}

/// [`acknowledged_back_to_back`], and a subscriber receives the messages in that order.
async fn publish_back_to_back(publisher: &mut RawClient, subscriber: &mut RawClient, count: u64) {
    let offsets = acknowledged_back_to_back(publisher, count).await;
    for n in 1..=count {
        let m = subscriber.next_op("message").await;
        assert_eq!(m["data"], n, "{m}");
        assert_eq!(m["offset"], offsets[n as usize - 1], "{m}");
    }
}

#[tokio::test]
async fn back_to_back_websocket_publishes_are_acknowledged_in_order_in_dev() {
    let server = TestServer::with(|s| s.limits.publish_rate = 0).await;
    let t = tokens::for_app(
        "demo-secret",
        "demo",
        "u",
        tokens::caps(&["feed"], &["feed"]),
    );
    let mut subscriber = RawClient::ready(server.addr, "demo", &t).await;
    let ack = subscriber
        .request(json!({"op": "subscribe", "id": 1, "channel": "feed"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let mut publisher = RawClient::ready(server.addr, "demo", &t).await;
    publish_back_to_back(&mut publisher, &mut subscriber, 300).await;
}

/// A client that writes far more publishes at once than its outbound queue holds
/// (`max_queued_messages`) gets every acknowledgement, in order: the connection writes its
/// answers as it reads, rather than piling them up to the slow-consumer limit (as it would if it
/// read everything already arrived before writing).
#[tokio::test]
async fn a_burst_of_publishes_larger_than_the_outbound_queue_is_acknowledged_in_order() {
    let server = TestServer::with(|s| {
        s.limits.publish_rate = 0;
        s.limits.max_queued_messages = 64;
    })
    .await;
    let t = tokens::for_app("demo-secret", "demo", "u", tokens::caps(&[], &["feed"]));
    let mut publisher = RawClient::ready(server.addr, "demo", &t).await;
    let offsets = acknowledged_back_to_back(&mut publisher, 2_000).await;
    assert_eq!(offsets.len(), 2_000);
}

/// HTTP/1.1 pipelining (docs/rest.md#requests): publishes written back to back on one
/// connection, one of them invalid, are answered in order, and the valid ones are stored in
/// that order.
#[tokio::test]
async fn pipelined_rest_publishes_are_answered_and_stored_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::with(|s| s.limits.publish_rate = 0).await;
    let mut requests = Vec::new();
    for n in 1..=20u64 {
        let channel = if n == 10 { "not valid" } else { "piped" };
        let body = json!({"channel": channel, "event": "n", "data": n}).to_string();
        requests.extend_from_slice(
            format!(
                "POST /v1/apps/demo/publish HTTP/1.1\r\nhost: test\r\n\
                 authorization: Bearer demo-key\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(&requests).await.unwrap();

    let mut buf = Vec::new();
    let mut answers: Vec<(u16, Value)> = Vec::new();
    while answers.len() < 20 {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buf) {
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("content-length");
            if buf.len() >= head + length {
                let status = response.code.unwrap();
                answers.push((
                    status,
                    serde_json::from_slice(&buf[head..head + length]).unwrap(),
                ));
                buf.drain(..head + length);
                continue;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed after {} answers", answers.len());
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut offsets = Vec::new();
    for (i, (status, body)) in answers.iter().enumerate() {
        if i == 9 {
            assert_eq!(*status, 400, "{body}");
            assert_eq!(body["error"]["code"], "invalid_channel", "{body}");
        } else {
            assert_eq!(*status, 200, "answer {i}: {body}");
            offsets.push(body["offsets"]["piped"].as_u64().unwrap());
        }
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    let stored = history(&server.http_url(), "demo", "demo-key", "piped").await;
    let expected: Vec<(u64, u64)> = (1..=20)
        .filter(|n| *n != 10)
        .zip(offsets.iter().copied())
        .collect();
    assert_eq!(stored, expected);
}

/// In a cluster a batch costs one JetStream round trip, not one per message: its messages are
/// still stored in item order, and the answer comes once all are stored (history read right
/// after it holds every one, with the offsets the answer gave).
#[tokio::test]
async fn a_batch_is_stored_in_order_before_it_is_answered_in_a_cluster() {
    let cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster
        .create_app_with("batch", json!({"limits": {"history_size": 1000}}))
        .await;
    let base = cluster.gateway_http(0);
    let items: Vec<Value> = (1..=100u64)
        .map(|n| {
            let channel = if n % 3 == 0 { "b" } else { "a" };
            json!({"channel": channel, "event": "n", "data": n})
        })
        .collect();
    let (status, body) = batch(&base, &app.id, &app.api_key, json!(items)).await;
    assert_eq!(status, 200, "{body}");
    let answered = body["batch"].as_array().unwrap();
    assert_eq!(answered.len(), 100);
    for channel in ["a", "b"] {
        let expected: Vec<(u64, u64)> = (1..=100u64)
            .zip(answered)
            .filter_map(|(n, item)| item["offsets"][channel].as_u64().map(|o| (n, o)))
            .collect();
        assert!(expected.windows(2).all(|w| w[0].1 < w[1].1), "{expected:?}");
        let stored = history(&base, &app.id, &app.api_key, channel).await;
        assert_eq!(stored, expected, "channel {channel}: stored in item order");
    }
}

#[tokio::test]
async fn back_to_back_websocket_publishes_are_acknowledged_in_order_in_a_cluster() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster
        .create_app_with(
            "pipelined",
            json!({"limits": {"history_size": 1000, "publish_rate": 0}}),
        )
        .await;
    let t = app.token("u", tokens::caps(&["feed"], &["feed"]));
    // The subscriber on the other gateway: what it receives went through the stream.
    let mut subscriber = RawClient::ready(cluster.gateways[1].addr, &app.id, &t).await;
    let ack = subscriber
        .request(json!({"op": "subscribe", "id": 1, "channel": "feed"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let mut publisher = RawClient::ready(cluster.gateways[0].addr, &app.id, &t).await;
    publish_back_to_back(&mut publisher, &mut subscriber, 100).await;
    let stored = history(&cluster.gateway_http(0), &app.id, &app.api_key, "feed").await;
    assert_eq!(
        stored.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
}

/// Deletes the JetStream streams of `app`'s namespaces behind the gateways' back.
async fn delete_namespace_streams(cluster: &Cluster, app: &TestApp) {
    let client = async_nats::connect(cluster.nats_url.as_str())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let root = format!("{}.~hn.{}.", cluster.prefix, app.id);
    let mut streams = js.streams();
    let mut doomed = Vec::new();
    while let Some(info) = streams.next().await {
        let info = info.unwrap();
        if info.config.subjects.iter().any(|s| s.starts_with(&root)) {
            doomed.push(info.config.name);
        }
    }
    assert!(!doomed.is_empty(), "no stream under {root}");
    for name in doomed {
        js.delete_stream(&name).await.unwrap();
    }
}

/// A message JetStream does not store fails alone: the batch answer says which items were
/// stored (with their offsets, which history then holds) and which were not; nothing is
/// acknowledged that was not stored, on the WebSocket either; and the stream is checked again,
/// so the next publish to it succeeds.
#[tokio::test]
async fn a_storage_failure_in_a_pipeline_is_answered_per_message() {
    let cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    // `chat.*` has a stream of its own, which the test deletes; `news.*` is in the app's.
    let app = cluster
        .create_app_with(
            "failing",
            json!({"limits": {"history_size": 100, "publish_rate": 0,
                              "history_namespaces": {"chat": {"history_size": 10}}}}),
        )
        .await;
    let base = cluster.gateway_http(0);
    let item = |channel: &str, n: u64| json!({"channel": channel, "event": "n", "data": n});
    // Both streams made and known to the gateway.
    let (status, body) = batch(
        &base,
        &app.id,
        &app.api_key,
        json!([item("news.x", 0), item("chat.x", 0)]),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    delete_namespace_streams(&cluster, &app).await;
    let (status, body) = batch(
        &base,
        &app.id,
        &app.api_key,
        json!([item("news.x", 1), item("chat.x", 2), item("news.x", 3)]),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("batch[1]:"),
        "{body}"
    );
    let items = body["batch"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items[0].get("error").is_none(), "{body}");
    assert_eq!(items[1]["error"]["code"], "unavailable", "{body}");
    assert_eq!(items[1]["offsets"], json!({}), "{body}");
    assert!(items[2].get("error").is_none(), "{body}");
    let first = items[0]["offsets"]["news.x"].as_u64().unwrap();
    let third = items[2]["offsets"]["news.x"].as_u64().unwrap();
    assert!(first < third, "{body}");
    let news = history(&base, &app.id, &app.api_key, "news.x").await;
    assert_eq!(news[news.len() - 2..], [(1, first), (3, third)]);

    // The failure made the gateway check the stream again: it is back.
    let (status, body) = batch(&base, &app.id, &app.api_key, json!([item("chat.x", 4)])).await;
    assert_eq!(status, 200, "{body}");
    let chat = history(&base, &app.id, &app.api_key, "chat.x").await;
    assert_eq!(chat.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [4]);

    // The same on a WebSocket: three publishes back to back, the middle one not stored.
    delete_namespace_streams(&cluster, &app).await;
    let t = app.token("u", tokens::caps(&[], &["chat.*", "news.*"]));
    let mut ws = RawClient::ready(cluster.gateways[0].addr, &app.id, &t).await;
    for (id, channel) in [(1, "news.x"), (2, "chat.x"), (3, "news.x")] {
        ws.send(
            &json!({"op": "publish", "id": id, "channel": channel, "event": "n", "data": 10 + id}),
        )
        .await;
    }
    let answers: Vec<Value> = [ws.json().await, ws.json().await, ws.json().await].into();
    let ops: Vec<(&str, u64)> = answers
        .iter()
        .map(|f| (f["op"].as_str().unwrap(), f["id"].as_u64().unwrap()))
        .collect();
    assert_eq!(ops, [("ack", 1), ("error", 2), ("ack", 3)], "{answers:?}");
    assert_eq!(answers[1]["code"], "unavailable");
    let news = history(&base, &app.id, &app.api_key, "news.x").await;
    assert_eq!(
        news[news.len() - 2..],
        [
            (11, answers[0]["offset"].as_u64().unwrap()),
            (13, answers[2]["offset"].as_u64().unwrap())
        ]
    );
    let chat = history(&base, &app.id, &app.api_key, "chat.x").await;
    assert!(
        chat.iter().all(|(n, _)| *n != 12),
        "not acknowledged, not stored: {chat:?}"
    );
}
