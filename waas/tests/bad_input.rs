//! Bad input over a real socket: each gets a clear error frame or HTTP status, and the server
//! keeps serving everyone else (checked by a bystander connection that still receives).

use serde_json::{json, Value};
use waas_test_support::raw::error_code;
use waas_test_support::{tokens, RawClient, TestServer};

/// A connection subscribed to `bystander`, to prove the server still delivers to others.
async fn bystander(server: &TestServer) -> RawClient {
    let mut c = RawClient::ready(
        server.addr,
        "demo",
        &tokens::demo("by", &["bystander"], &[]),
    )
    .await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "bystander"}))
        .await;
    assert_eq!(ack["op"], "ack");
    c
}

async fn still_serving(server: &TestServer, by: &mut RawClient) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "bystander", "event": "alive", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = by.json().await;
    assert_eq!(m["event"], "alive");
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_lives_on() {
    let server = TestServer::start().await;
    let mut by = bystander(&server).await;
    let mut c = RawClient::ready(server.addr, "demo", &tokens::demo("m", &["a"], &[])).await;

    c.send_text("{not json").await;
    let f = c.json().await;
    assert_eq!(error_code(&f), "malformed_frame");
    assert!(f.get("id").is_none());

    c.send_text("[1,2,3]").await;
    assert_eq!(error_code(&c.json().await), "malformed_frame");

    c.send_text(r#"{"id": 3}"#).await;
    assert_eq!(error_code(&c.json().await), "malformed_frame");

    c.send_binary(b"\x00\x01binary").await;
    assert_eq!(error_code(&c.json().await), "malformed_frame");

    let f = c.request(json!({"op": "teleport", "id": 4})).await;
    assert_eq!((error_code(&f), f["id"].as_u64()), ("unknown_op", Some(4)));

    let f = c.request(json!({"op": "subscribe", "id": 5})).await;
    assert_eq!(error_code(&f), "bad_request");

    // Still usable afterwards.
    let f = c
        .request(json!({"op": "subscribe", "id": 6, "channel": "a"}))
        .await;
    assert_eq!(f["op"], "ack");
    still_serving(&server, &mut by).await;
}

#[tokio::test]
async fn subscribe_before_auth_is_refused_until_connect() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", None).await;
    let f = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "a"}))
        .await;
    assert_eq!(
        (error_code(&f), f["id"].as_u64()),
        ("not_connected", Some(1))
    );
    let f = c
        .request(json!({"op": "publish", "id": 2, "channel": "a", "event": "e", "data": 1}))
        .await;
    assert_eq!(error_code(&f), "not_connected");
    let pong = c.request(json!({"op": "ping", "id": 3})).await;
    assert_eq!(pong["op"], "pong");
    let ready = c
        .request(json!({"op": "connect", "id": 4, "token": tokens::demo("x", &["a"], &[])}))
        .await;
    assert_eq!(ready["op"], "ready");
    let f = c
        .request(json!({"op": "subscribe", "id": 5, "channel": "a"}))
        .await;
    assert_eq!(f["op"], "ack");
}

async fn refused(server: &TestServer, token: &str) -> (String, u16) {
    let mut c = RawClient::connect(
        server.addr,
        &format!("/v1/apps/demo/ws?token={token}"),
        None,
    )
    .await;
    let f = c.json().await;
    let code = error_code(&f).to_owned();
    (code, c.close_code().await)
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let server = TestServer::start().await;
    let mut by = bystander(&server).await;
    let caps = tokens::caps(&[">"], &[]);

    let bad_sig = tokens::hs256("not-the-secret", "u", None, caps.clone(), 60);
    assert_eq!(
        refused(&server, &bad_sig).await,
        ("invalid_token".into(), 4500)
    );

    let expired = tokens::hs256("demo-secret", "u", None, caps.clone(), -60);
    assert_eq!(
        refused(&server, &expired).await,
        ("token_expired".into(), 4501)
    );

    let other_app = tokens::hs256("other-secret", "u", Some("other"), caps.clone(), 60);
    assert_eq!(
        refused(&server, &other_app).await,
        ("token_wrong_app".into(), 4500)
    );

    let right_secret_wrong_aud = tokens::hs256("demo-secret", "u", Some("other"), caps, 60);
    assert_eq!(
        refused(&server, &right_secret_wrong_aud).await,
        ("token_wrong_app".into(), 4500)
    );

    assert_eq!(
        refused(&server, "garbage").await,
        ("invalid_token".into(), 4500)
    );

    // A bad token in a connect frame is answered with the frame's id.
    let mut c = RawClient::connect(server.addr, "/v1/apps/demo/ws", None).await;
    let f = c
        .request(json!({"op": "connect", "id": 7, "token": bad_sig}))
        .await;
    assert_eq!(
        (error_code(&f), f["id"].as_u64()),
        ("invalid_token", Some(7))
    );
    assert_eq!(c.close_code().await, 4500);

    still_serving(&server, &mut by).await;
}

#[tokio::test]
async fn unknown_app_is_refused() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr, "/v1/apps/nope/ws", Some("demo-key")).await;
    assert_eq!(error_code(&c.json().await), "app_not_found");
    assert_eq!(c.close_code().await, 4502);
}

#[tokio::test]
async fn capabilities_are_enforced() {
    let server = TestServer::start().await;
    let mut by = bystander(&server).await;
    let token = tokens::demo("cap", &["news.*"], &["chat.room1"]);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;

    let f = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "news.a.b"}))
        .await;
    assert_eq!(error_code(&f), "forbidden");
    let f = c
        .request(json!({"op": "subscribe", "id": 2, "channel": "bystander"}))
        .await;
    assert_eq!(error_code(&f), "forbidden");
    let f = c
        .request(json!({"op": "publish", "id": 3, "channel": "bystander", "event": "e", "data": 1}))
        .await;
    assert_eq!(error_code(&f), "forbidden");
    let f = c
        .request(
            json!({"op": "publish", "id": 4, "channel": "chat.room1", "event": "e", "data": 1}),
        )
        .await;
    assert_eq!(f["op"], "ack");
    still_serving(&server, &mut by).await;
}

#[tokio::test]
async fn invalid_channel_names_and_events() {
    let server = TestServer::start().await;
    let mut c = RawClient::ready(server.addr, "demo", &tokens::demo("n", &[">"], &[">"])).await;
    for (i, bad) in [
        "",
        "a..b",
        "has space",
        "wild.*",
        "tail.>",
        &"x".repeat(201),
    ]
    .iter()
    .enumerate()
    {
        let f = c
            .request(json!({"op": "subscribe", "id": i, "channel": bad}))
            .await;
        assert_eq!(error_code(&f), "invalid_channel", "{bad:?}");
    }
    let f = c
        .request(json!({"op": "publish", "id": 50, "channel": "a", "event": "", "data": 1}))
        .await;
    assert_eq!(error_code(&f), "bad_request");
}

#[tokio::test]
async fn rest_refuses_bad_keys_and_bodies() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/apps/demo/publish", server.http_url());
    let body = json!({"channel": "a", "event": "e", "data": 1});

    let r = http
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");

    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let r = http
        .post(format!("{}/v1/apps/nope/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "app_not_found"
    );

    let cases = [
        (
            json!({"channel": "a b", "event": "e", "data": 1}),
            400,
            "invalid_channel",
        ),
        (json!({"event": "e", "data": 1}), 400, "bad_request"),
        (
            json!({"channel": "a", "channels": ["b"], "event": "e", "data": 1}),
            400,
            "bad_request",
        ),
        (json!({"channel": "a", "data": 1}), 400, "bad_request"),
        (
            json!({"channels": ["ok", "not ok"], "event": "e", "data": 1}),
            400,
            "invalid_channel",
        ),
    ];
    for (body, status, want) in cases {
        let r = http
            .post(&url)
            .bearer_auth("demo-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"]["code"],
            want,
            "{body}"
        );
    }

    let r = http
        .post(&url)
        .bearer_auth("demo-key")
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let big = json!({"channel": "a", "event": "e", "data": "x".repeat(70_000)});
    let r = http
        .post(&url)
        .bearer_auth("demo-key")
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "message_too_large"
    );

    let r = http
        .post(format!("{}/v1/apps/demo/tokens", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"sub": "u", "ttl": 10_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = http
        .get(format!("{}/v1/apps/demo/ws", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
}

#[tokio::test]
async fn fragmented_messages_are_reassembled_and_checked() {
    use fastwebsockets::OpCode;
    let server = TestServer::start().await;
    let mut c = RawClient::ready(server.addr, "demo", &tokens::demo("frag", &["a"], &[])).await;
    c.send_fragments(
        OpCode::Text,
        &[
            br#"{"op":"subscr"#,
            br#"ibe","id":1,"#,
            br#""channel":"a"}"#,
        ],
    )
    .await;
    let f = c.json().await;
    assert_eq!(
        (f["op"].as_str(), f["id"].as_u64()),
        (Some("ack"), Some(1)),
        "{f}"
    );
    c.send_fragments(OpCode::Binary, &[b"{\"op\":", b"\"ping\"}"])
        .await;
    assert_eq!(error_code(&c.json().await), "malformed_frame");
    // A new message before the last one ended breaks the WebSocket protocol itself.
    c.send_frame(false, OpCode::Text, b"{\"op\":").await;
    c.send_text(r#"{"op":"ping"}"#).await;
    assert_eq!(c.close_code().await, 1002);
}

#[tokio::test]
async fn wrong_field_types_are_answered_by_id_and_close_codes_echoed() {
    let server = TestServer::start().await;
    let mut c = RawClient::ready(server.addr, "demo", &tokens::demo("types", &["a"], &[])).await;
    let f = c
        .request(json!({"op": "subscribe", "id": 4, "channel": 12}))
        .await;
    assert_eq!((error_code(&f), f["id"].as_u64()), ("bad_request", Some(4)));
    c.send_close(4321).await;
    assert_eq!(c.close_code().await, 4321);
}

#[tokio::test]
async fn unknown_endpoints_and_duplicate_channels() {
    let server = TestServer::start().await;
    let r = reqwest::get(format!("{}/v1/nope", server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let mut by = bystander(&server).await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channels": ["bystander", "bystander"], "event": "once", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"offsets": {"bystander": 1}})
    );
    assert_eq!(by.json().await["event"], "once");
    // Only one delivery: the next frame answers a ping.
    assert_eq!(
        by.request(json!({"op": "ping", "id": 77})).await["op"],
        "pong"
    );
}
