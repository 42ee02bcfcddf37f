//! Delivery over real sockets on loopback: socket and REST publishers, several subscribers.

use serde_json::{json, Value};
use waas_test_support::{tokens, RawClient, TestServer};

async fn rest(server: &TestServer, path: &str, key: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.http_url()))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("http request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

async fn subscribed(server: &TestServer, token: &str, channel: &str) -> RawClient {
    let mut c = RawClient::ready(server.addr, "demo", token).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    c
}

#[tokio::test]
async fn rest_publish_reaches_every_subscriber_with_offsets() {
    let server = TestServer::start().await;
    let token = tokens::demo("alice", &["weather.*"], &[]);
    let mut a = subscribed(&server, &token, "weather.paris").await;
    let mut b = subscribed(&server, &token, "weather.paris").await;
    let mut other = subscribed(&server, &token, "weather.oslo").await;

    for i in 1..=3 {
        let (status, body) = rest(
            &server,
            "/v1/apps/demo/publish",
            "demo-key",
            json!({"channel": "weather.paris", "event": "reading", "data": {"t": i}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["offsets"]["weather.paris"], i);
    }
    for c in [&mut a, &mut b] {
        for i in 1..=3 {
            let m = c.json().await;
            assert_eq!(m["op"], "message");
            assert_eq!(m["channel"], "weather.paris");
            assert_eq!(m["event"], "reading");
            assert_eq!(m["data"], json!({"t": i}));
            assert_eq!(m["offset"], i);
            assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000);
        }
    }
    // The oslo subscriber got nothing: a ping round trip comes back before any message.
    let pong = other.request(json!({"op": "ping", "id": 9})).await;
    assert_eq!(pong["op"], "pong");
}

#[tokio::test]
async fn socket_publish_is_acked_with_offset_and_delivered() {
    let server = TestServer::start().await;
    let sub = tokens::demo("bob", &["chat.>"], &[]);
    let pubr = tokens::demo("carol", &[], &["chat.room1"]);
    let mut listener = subscribed(&server, &sub, "chat.room1").await;
    let mut publisher = RawClient::ready(server.addr, "demo", &pubr).await;
    let ack = publisher
        .request(json!({"op": "publish", "id": 5, "channel": "chat.room1", "event": "say", "data": "hi"}))
        .await;
    assert_eq!(ack, json!({"op": "ack", "id": 5, "offset": 1}));
    let m = listener.json().await;
    assert_eq!(
        (m["data"].clone(), m["offset"].clone()),
        (json!("hi"), json!(1))
    );
}

#[tokio::test]
async fn publish_to_many_channels_and_batch() {
    let server = TestServer::start().await;
    let token = tokens::demo("d", &[">"], &[]);
    let mut x = subscribed(&server, &token, "x").await;
    let mut y = subscribed(&server, &token, "y").await;
    let (status, body) = rest(
        &server,
        "/v1/apps/demo/publish",
        "demo-key",
        json!({"channels": ["x", "y"], "event": "e", "data": 1}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"offsets": {"x": 1, "y": 1}}));
    let (status, body) = rest(
        &server,
        "/v1/apps/demo/batch",
        "demo-key",
        json!({"batch": [
            {"channel": "x", "event": "e", "data": 2},
            {"channel": "y", "event": "e", "data": 3}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"batch": [{"offsets": {"x": 2}}, {"offsets": {"y": 2}}]})
    );
    assert_eq!(x.json().await["data"], 1);
    assert_eq!(x.json().await["data"], 2);
    assert_eq!(y.json().await["data"], 1);
    assert_eq!(y.json().await["data"], 3);
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let server = TestServer::start().await;
    let token = tokens::demo("e", &[">"], &[">"]);
    let mut c = subscribed(&server, &token, "a").await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 2, "channel": "b"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = c
        .request(json!({"op": "unsubscribe", "id": 3, "channel": "a"}))
        .await;
    assert_eq!(ack["op"], "ack");
    c.send(&json!({"op": "publish", "id": 4, "channel": "a", "event": "e", "data": "lost"}))
        .await;
    c.send(&json!({"op": "publish", "id": 5, "channel": "b", "event": "e", "data": "kept"}))
        .await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let f = c.json().await;
        if f["op"] == "message" {
            seen.push(f["data"].clone());
        } else {
            seen.push(f["op"].clone());
        }
    }
    assert!(!seen.contains(&json!("lost")), "{seen:?}");
    assert!(seen.contains(&json!("kept")), "{seen:?}");
}

#[tokio::test]
async fn minted_token_connects_and_is_limited_to_its_caps() {
    let server = TestServer::start().await;
    let (status, body) = rest(
        &server,
        "/v1/apps/demo/tokens",
        "demo-key",
        json!({"sub": "phone-1", "caps": {"subscribe": ["weather.*"]}, "ttl": 60}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    assert!(body["expires_at"].as_u64().unwrap() > tokens::now_s());
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", Some(token)).await;
    let ready = c.json().await;
    assert_eq!(ready["op"], "ready");
    assert_eq!(ready["sub"], "phone-1");
    assert_eq!(ready["version"], 1);
    let ok = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "weather.rome"}))
        .await;
    assert_eq!(ok["op"], "ack");
    let no = c
        .request(json!({"op": "subscribe", "id": 2, "channel": "stocks.acme"}))
        .await;
    assert_eq!(
        (no["op"].clone(), no["code"].clone()),
        (json!("error"), json!("forbidden"))
    );
}

#[tokio::test]
async fn connect_frame_authenticates_a_bare_socket() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", None).await;
    let ready = c
        .request(json!({"op": "connect", "id": 1, "token": tokens::demo("f", &["a"], &[])}))
        .await;
    assert_eq!(ready["op"], "ready", "{ready}");
    assert_eq!(ready["id"], 1);
    let again = c
        .request(json!({"op": "connect", "id": 2, "token": tokens::demo("f", &["a"], &[])}))
        .await;
    assert_eq!(again["code"], "already_connected");
}

#[tokio::test]
async fn api_key_connection_may_do_everything() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", Some("demo-key")).await;
    let ready = c.json().await;
    assert_eq!(ready["sub"], "server");
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "any.thing"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = c
        .request(
            json!({"op": "publish", "id": 2, "channel": "any.thing", "event": "e", "data": null}),
        )
        .await;
    assert_eq!(ack["offset"], 1, "{ack}");
}

#[tokio::test]
async fn health_endpoints() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = reqwest::get(format!("{}{path}", server.http_url()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}
