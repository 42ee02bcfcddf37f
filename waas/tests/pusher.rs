//! The Pusher-protocol front over real sockets: handshake refusals and their codes, channel
//! types and signatures, client events, presence, cache channels, sign-in and termination, and
//! messages crossing between Pusher and native clients.

use serde_json::{json, Value};
use waas_core::app::{AppConfig, PusherSettings};
use waas_gateway::pusher::auth;
use waas_test_support::raw::Received;
use waas_test_support::{tokens, RawClient, TestServer};

const SECRET: &str = "pusher-secret";

/// Gives the server's `demo` app Pusher settings (`tweak` adjusts the rest), as the store
/// would once it holds them: straight into the gateway's registry, with a version no reply of
/// the directory can undo.
async fn enable(server: &TestServer, client_events: bool, tweak: impl FnOnce(&mut AppConfig)) {
    let app = server
        .gateway
        .apps
        .resolve("demo")
        .await
        .unwrap()
        .expect("demo app");
    let mut config = app.config.clone();
    config.pusher = Some(PusherSettings {
        secret: SECRET.into(),
        client_events,
    });
    config.version = i64::MAX / 2;
    tweak(&mut config);
    server.gateway.apps.upsert(config).unwrap();
}

async fn pusher_server(client_events: bool) -> TestServer {
    let server = TestServer::start().await;
    enable(&server, client_events, |_| {}).await;
    server
}

struct Client {
    raw: RawClient,
    socket_id: String,
}

fn data_of(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        other => other.clone(),
    }
}

impl Client {
    async fn connect(server: &TestServer) -> Client {
        let mut raw = RawClient::connect(
            server.addr,
            "/app/demo?protocol=7&client=js&version=8.4.0",
            None,
        )
        .await;
        let f = raw.json().await;
        assert_eq!(f["event"], "pusher:connection_established", "{f}");
        assert!(f["data"].is_string(), "data is a JSON string: {f}");
        let data = data_of(&f);
        let socket_id = data["socket_id"].as_str().unwrap().to_owned();
        let (a, b) = socket_id.split_once('.').unwrap();
        assert!(
            a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok(),
            "{socket_id}"
        );
        assert_eq!(data["activity_timeout"], 30);
        Client { raw, socket_id }
    }

    async fn send(&mut self, v: Value) {
        self.raw.send(&v).await
    }

    async fn next(&mut self) -> Value {
        self.raw.json().await
    }

    /// The next frame with `event`, skipping others.
    async fn next_event(&mut self, event: &str) -> Value {
        loop {
            let f = self.next().await;
            if f["event"] == event {
                return f;
            }
        }
    }

    /// A ping round trip: everything sent to this client before it has arrived, so nothing
    /// else came when the next frame is the pong.
    async fn nothing_else(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let f = self.next().await;
        assert_eq!(
            f["event"], "pusher:pong",
            "expected nothing before the pong, got {f}"
        );
    }

    async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<String>,
        channel_data: Option<&str>,
    ) -> Value {
        let mut data = json!({"channel": channel});
        if let Some(a) = auth {
            data["auth"] = json!(a);
        }
        if let Some(d) = channel_data {
            data["channel_data"] = json!(d);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        self.next().await
    }

    fn sign(&self, channel: &str, channel_data: Option<&str>) -> String {
        auth::sign(
            "demo",
            SECRET,
            &auth::channel_message(&self.socket_id, channel, channel_data),
        )
    }

    async fn join(&mut self, channel: &str) -> Value {
        let f = if channel.starts_with("private-") {
            let a = self.sign(channel, None);
            self.subscribe(channel, Some(a), None).await
        } else {
            self.subscribe(channel, None, None).await
        };
        assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
        assert_eq!(f["channel"], channel);
        f
    }

    async fn join_presence(&mut self, channel: &str, user: &str) -> Value {
        let cd = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let a = self.sign(channel, Some(&cd));
        let f = self.subscribe(channel, Some(a), Some(&cd)).await;
        assert_eq!(f["event"], "pusher_internal:subscription_succeeded", "{f}");
        data_of(&f)
    }

    async fn closed(&mut self) -> u16 {
        self.raw.close_code().await
    }
}

async fn refused(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> (Value, u16) {
    let mut raw = RawClient::connect_with(server.addr, path, headers).await;
    let f = raw.json().await;
    assert_eq!(f["event"], "pusher:error", "{f}");
    let code = match raw.recv().await {
        Received::Close(code, _) => code,
        other => panic!("expected a close, got {other:?}"),
    };
    assert_eq!(f["data"]["code"], code, "error and close codes agree: {f}");
    (f, code)
}

async fn rest_publish(server: &TestServer, channel: &str, event: &str, data: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channel": channel, "event": event, "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn handshake_refusals_have_pushers_codes() {
    let server = TestServer::start().await;
    // Without a Pusher secret the front is off for the app.
    let (s, body) = server
        .admin("DELETE", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(s, 200, "{body}");
    waas_test_support::poll::eventually(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
        || "the gateway kept the demo app's Pusher secret",
        || async {
            let app = server.gateway.apps.resolve("demo").await.unwrap().unwrap();
            app.config.pusher.is_none().then_some(())
        },
    )
    .await;
    let (f, code) = refused(&server, "/app/demo?protocol=7", &[]).await;
    assert_eq!(code, 4003, "{f}");
    enable(&server, false, |c| {
        c.allowed_origins = vec!["https://good.example".into()];
        c.limits.max_connections = Some(1);
    })
    .await;
    for (path, want) in [
        ("/app/demo", 4008),
        ("/app/demo?protocol=seven", 4006),
        ("/app/demo?protocol=5", 4007),
        ("/app/nosuchapp?protocol=7", 4001),
        ("/app/bad%20key?protocol=7", 4001),
        ("/app/demo/extra?protocol=7", 4005),
    ] {
        let (f, code) = refused(&server, path, &[]).await;
        assert_eq!(code, want, "{path}: {f}");
        assert!(f["data"]["message"].as_str().unwrap().len() > 3);
    }
    let (_, code) = refused(
        &server,
        "/app/demo?protocol=7",
        &[("Origin", "https://evil.example")],
    )
    .await;
    assert_eq!(code, 4009);
    // The app allows one connection: the second is over quota.
    let mut first = RawClient::connect_with(
        server.addr,
        "/app/demo?protocol=7",
        &[("Origin", "https://good.example")],
    )
    .await;
    assert_eq!(first.json().await["event"], "pusher:connection_established");
    let (_, code) = refused(&server, "/app/demo?protocol=7", &[]).await;
    assert_eq!(code, 4004);
    // Not an upgrade: a plain HTTP answer.
    let resp = reqwest::get(format!("{}/app/demo?protocol=7", server.http_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 426);
}

#[tokio::test]
async fn ping_pong_and_bad_frames() {
    let server = pusher_server(false).await;
    let mut c = Client::connect(&server).await;
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    let f = c.next().await;
    assert_eq!(f["event"], "pusher:pong");
    c.raw.send_text("not json").await;
    let f = c.next().await;
    assert_eq!(f["event"], "pusher:error");
    assert!(f["data"]["code"].is_null());
    c.send(json!({"event": "pusher:subscribe", "data": {}}))
        .await;
    assert_eq!(c.next().await["event"], "pusher:error");
    c.send(json!({"event": "pusher:nonsense"})).await;
    assert_eq!(c.next().await["event"], "pusher:error");
    // Pongs from the client are fine and unanswered.
    c.send(json!({"event": "pusher:pong", "data": {}})).await;
    c.nothing_else().await;
}

#[tokio::test]
async fn public_channels_cross_between_pusher_and_native_clients() {
    let server = pusher_server(true).await;
    let mut p = Client::connect(&server).await;
    p.join("news").await;
    let token = tokens::demo("nat", &["news", "private-chat"], &["news", "private-chat"]);
    let mut native = RawClient::ready(server.addr, "demo", &token).await;
    let ack = native
        .request(json!({"op": "subscribe", "id": 1, "channel": "news"}))
        .await;
    assert_eq!(ack["op"], "ack");

    // Native → Pusher: objects become their JSON text, strings stay strings.
    rest_publish(
        &server,
        "news",
        "story",
        json!({"title": "hi", "n": [1, 2]}),
    )
    .await;
    let f = p.next().await;
    assert_eq!(f["event"], "story");
    assert_eq!(f["channel"], "news");
    let text = f["data"].as_str().expect("Pusher data is a string");
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"title": "hi", "n": [1, 2]})
    );
    rest_publish(&server, "news", "plain", json!("just text")).await;
    assert_eq!(p.next().await["data"], "just text");
    rest_publish(&server, "news", "number", json!(42)).await;
    assert_eq!(p.next().await["data"], "42");
    for _ in 0..3 {
        assert_eq!(native.next_op("message").await["channel"], "news");
    }

    // Pusher → native on a private channel (client events), byte-exact both ways.
    let mut q = Client::connect(&server).await;
    q.join("private-chat").await;
    let mut r = Client::connect(&server).await;
    r.join("private-chat").await;
    let ack = native
        .request(json!({"op": "subscribe", "id": 2, "channel": "private-chat"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let text = r#"{"a": 1,  "b": "x"}"#;
    q.send(json!({"event": "client-typing", "channel": "private-chat", "data": text}))
        .await;
    let f = r.next().await;
    assert_eq!(f["event"], "client-typing");
    assert_eq!(f["data"], text, "the same bytes come out");
    assert!(f.get("user_id").is_none(), "no user on private channels");
    let m = native.next_op("message").await;
    assert_eq!(
        m["data"],
        json!({"a": 1, "b": "x"}),
        "native clients get the object"
    );
    assert_eq!(m["pusher"]["socket_id"], q.socket_id);
    // Not echoed to the sender.
    q.nothing_else().await;

    // Native → Pusher on the same channel.
    let ack = native
        .request(json!({"op": "publish", "id": 3, "channel": "private-chat", "event": "client-reply", "data": "ok"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    for c in [&mut q, &mut r] {
        let f = c.next().await;
        assert_eq!(
            (f["event"].as_str(), f["data"].as_str()),
            (Some("client-reply"), Some("ok"))
        );
    }
}

#[tokio::test]
async fn private_channels_check_signatures() {
    let server = pusher_server(false).await;
    let mut c = Client::connect(&server).await;
    let other = Client::connect(&server).await;
    let ch = "private-orders";
    let bad = [
        None,
        Some(String::new()),
        Some("demo".into()),
        Some("demo:nothex".into()),
        Some(auth::sign(
            "otherkey",
            SECRET,
            &auth::channel_message(&c.socket_id, ch, None),
        )),
        Some(auth::sign(
            "demo",
            "wrong-secret",
            &auth::channel_message(&c.socket_id, ch, None),
        )),
        // Signed for another connection, or another channel.
        Some(other.sign(ch, None)),
        Some(c.sign("private-other", None)),
    ];
    for a in bad {
        let f = c.subscribe(ch, a.clone(), None).await;
        assert_eq!(f["event"], "pusher:subscription_error", "{a:?}: {f}");
        assert_eq!(f["channel"], ch);
        assert_eq!(f["data"]["type"], "AuthError");
        assert_eq!(f["data"]["status"], 401);
    }
    // Nothing was joined: a message on the channel does not arrive.
    rest_publish(&server, ch, "e", json!(1)).await;
    c.nothing_else().await;
    c.join(ch).await;
    rest_publish(&server, ch, "e", json!(2)).await;
    assert_eq!(c.next().await["data"], "2");
    // Encrypted channels are signed the same way; payloads pass untouched.
    let enc = "private-encrypted-vault";
    let f = c.subscribe(enc, None, None).await;
    assert_eq!(f["event"], "pusher:subscription_error");
    c.join(enc).await;
    let sealed = json!({"nonce": "bm9uY2U=", "ciphertext": "Y2lwaGVy"});
    rest_publish(&server, enc, "secret", json!(sealed.to_string())).await;
    let f = c.next().await;
    assert_eq!(f["data"], sealed.to_string());
}

#[tokio::test]
async fn invalid_channel_names_are_refused() {
    let server = pusher_server(false).await;
    let mut c = Client::connect(&server).await;
    let long = "x".repeat(201);
    for name in ["a..b", ".a", "", "sp ace", "star*", long.as_str()] {
        let f = c.subscribe(name, None, None).await;
        assert_eq!(f["event"], "pusher:subscription_error", "{name}: {f}");
        assert_eq!(f["data"]["type"], "InvalidChannel");
        assert_eq!(f["data"]["status"], 400);
    }
    // Resubscribing answers again; unsubscribing stops delivery.
    c.join("a.b").await;
    c.join("a.b").await;
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "a.b"}}))
        .await;
    c.nothing_else().await;
    rest_publish(&server, "a.b", "e", json!(1)).await;
    c.nothing_else().await;
}

#[tokio::test]
async fn client_events_are_refused_unless_allowed() {
    let off = pusher_server(false).await;
    let mut a = Client::connect(&off).await;
    let mut b = Client::connect(&off).await;
    a.join("private-x").await;
    b.join("private-x").await;
    a.send(json!({"event": "client-hi", "channel": "private-x", "data": {}}))
        .await;
    let f = a.next().await;
    assert_eq!(f["event"], "pusher:error", "{f}");
    assert!(f["data"]["message"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
    b.nothing_else().await;

    let on = pusher_server(true).await;
    let mut a = Client::connect(&on).await;
    let mut b = Client::connect(&on).await;
    a.join("news").await;
    b.join("news").await;
    a.join("private-y").await;
    for (frame, why) in [
        (
            json!({"event": "client-hi", "channel": "news", "data": {}}),
            "private and presence",
        ),
        (
            json!({"event": "client-hi", "channel": "private-z", "data": {}}),
            "subscribe to",
        ),
        (json!({"event": "client-hi", "data": {}}), "channel"),
        (
            json!({"event": "client-hi", "channel": "private-y"}),
            "data",
        ),
    ] {
        a.send(frame).await;
        let f = a.next().await;
        assert_eq!(f["event"], "pusher:error");
        assert!(f["data"]["message"].as_str().unwrap().contains(why), "{f}");
    }
    b.nothing_else().await;
}

#[tokio::test]
async fn client_events_are_rate_limited() {
    let server = TestServer::with(|s| s.limits.pusher_client_event_rate = 3).await;
    enable(&server, true, |_| {}).await;
    let mut a = Client::connect(&server).await;
    let mut b = Client::connect(&server).await;
    a.join("private-r").await;
    b.join("private-r").await;
    for i in 0..10 {
        a.send(json!({"event": "client-n", "channel": "private-r", "data": {"i": i}}))
            .await;
    }
    let mut limited = 0;
    a.send(json!({"event": "pusher:ping"})).await;
    loop {
        let f = a.next().await;
        if f["event"] == "pusher:pong" {
            break;
        }
        assert_eq!(f["event"], "pusher:error");
        assert_eq!(f["data"]["code"], 4301);
        limited += 1;
    }
    assert!(
        limited >= 6,
        "at most 3 + what refilled went through; {limited} refused"
    );
    let mut got = 0;
    while got < 10 - limited {
        assert_eq!(b.next().await["event"], "client-n");
        got += 1;
    }
    b.nothing_else().await;
}

#[tokio::test]
async fn presence_members_join_leave_and_sign_client_events() {
    let server = pusher_server(true).await;
    let ch = "presence-room";
    let mut a = Client::connect(&server).await;
    let data = a.join_presence(ch, "alice").await;
    assert_eq!(data["presence"]["ids"], json!(["alice"]));
    assert_eq!(data["presence"]["count"], 1);
    assert_eq!(data["presence"]["hash"]["alice"]["name"], "alice");

    let mut b = Client::connect(&server).await;
    let data = b.join_presence(ch, "bob").await;
    assert_eq!(data["presence"]["count"], 2);
    let mut ids: Vec<String> = serde_json::from_value(data["presence"]["ids"].clone()).unwrap();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    let f = a.next_event("pusher_internal:member_added").await;
    assert_eq!(
        data_of(&f),
        json!({"user_id": "bob", "user_info": {"name": "bob"}})
    );
    b.nothing_else().await;

    // Client events on presence channels name their sender.
    b.send(json!({"event": "client-wave", "channel": ch, "data": "{\"x\":1}"}))
        .await;
    let f = a.next().await;
    assert_eq!(f["event"], "client-wave");
    assert_eq!(f["user_id"], "bob");
    b.nothing_else().await;

    // A presence subscription without, or with unsigned, channel_data is refused.
    let mut c = Client::connect(&server).await;
    let f = c.subscribe(ch, Some(c.sign(ch, None)), None).await;
    assert_eq!(f["data"]["type"], "BadRequest", "{f}");
    let cd = json!({"user_id": "mallory"}).to_string();
    let f = c.subscribe(ch, Some(c.sign(ch, None)), Some(&cd)).await;
    assert_eq!(
        f["data"]["type"], "AuthError",
        "channel_data is signed: {f}"
    );
    let bad = json!({"name": "no id"}).to_string();
    let f = c
        .subscribe(ch, Some(c.sign(ch, Some(&bad))), Some(&bad))
        .await;
    assert_eq!(f["data"]["type"], "BadRequest", "{f}");

    b.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    let f = a.next_event("pusher_internal:member_removed").await;
    assert_eq!(data_of(&f), json!({"user_id": "bob"}));
    drop(b);
    // The gateway's presence, which native presence and other gateways share, has the member
    // that is left.
    let key = waas_gateway::presence::state::Key {
        app: "demo".into(),
        channel: ch.into(),
    };
    let members = server.gateway.presence.members(&key);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, "alice");
    assert_eq!(members[0].info, Some(json!({"name": "alice"})));
}

#[tokio::test]
async fn cache_channels_replay_the_last_event_or_say_miss() {
    let server = pusher_server(false).await;
    let mut a = Client::connect(&server).await;
    a.join("cache-scores").await;
    let f = a.next().await;
    assert_eq!(f["event"], "pusher:cache_miss");
    assert_eq!(f["channel"], "cache-scores");
    rest_publish(&server, "cache-scores", "score", json!({"n": 1})).await;
    rest_publish(&server, "cache-scores", "score", json!({"n": 2})).await;
    assert_eq!(a.next().await["data"], r#"{"n":1}"#);
    assert_eq!(a.next().await["data"], r#"{"n":2}"#);
    let mut b = Client::connect(&server).await;
    b.join("cache-scores").await;
    let f = b.next().await;
    assert_eq!(
        (f["event"].as_str(), f["data"].as_str()),
        (Some("score"), Some(r#"{"n":2}"#))
    );
    b.nothing_else().await;
    // Private cache channels too, after their signature.
    let mut c = Client::connect(&server).await;
    c.join("private-cache-x").await;
    assert_eq!(c.next().await["event"], "pusher:cache_miss");
}

#[tokio::test]
async fn signin_receives_user_messages_and_terminate_closes() {
    let server = pusher_server(false).await;
    let mut bad = Client::connect(&server).await;
    let user = json!({"id": "u1", "name": "Una"}).to_string();
    bad.send(json!({"event": "pusher:signin", "data": {"auth": auth::sign("demo", "nope", &auth::signin_message(&bad.socket_id, &user)), "user_data": user}})).await;
    let f = bad.next().await;
    assert_eq!(
        (f["event"].as_str(), f["data"]["code"].as_u64()),
        (Some("pusher:error"), Some(4009))
    );
    assert_eq!(bad.closed().await, 4009);

    let mut c = Client::connect(&server).await;
    let sig = auth::sign("demo", SECRET, &auth::signin_message(&c.socket_id, &user));
    c.send(json!({"event": "pusher:signin", "data": {"auth": sig, "user_data": user}}))
        .await;
    // The user's channel is joined first (its subscription_succeeded goes to a channel the
    // client does not know yet), then the answer.
    let f = c.next().await;
    assert_eq!(f["channel"], "#server-to-user-u1", "{f}");
    let f = c.next().await;
    assert_eq!(f["event"], "pusher:signin_success");
    assert_eq!(data_of(&f)["user_data"], user);
    // pusher-js subscribes to the user's channel itself: already done, answered again.
    c.join("#server-to-user-u1").await;
    // Another connection may not listen to u1's messages.
    let mut other = Client::connect(&server).await;
    let f = other.subscribe("#server-to-user-u1", None, None).await;
    assert_eq!(f["data"]["type"], "AuthError");
    rest_publish(
        &server,
        "#server-to-user-u1",
        "notice",
        json!({"hello": "u1"}),
    )
    .await;
    let f = c.next_event("notice").await;
    assert_eq!(f["data"], r#"{"hello":"u1"}"#);

    let bus = std::sync::Arc::clone(server.gateway.publisher.bus());
    waas_gateway::pusher::users::terminate(
        &*bus,
        &server.gateway.config.subject_prefix,
        "demo",
        "u1",
    )
    .await
    .unwrap();
    let f = c.next_event("pusher:error").await;
    assert_eq!(f["data"]["code"], 4009);
    assert_eq!(c.closed().await, 4009);
    other.nothing_else().await;
}

#[tokio::test]
async fn shutdown_tells_pusher_clients_to_reconnect() {
    let server = pusher_server(false).await;
    let mut c = Client::connect(&server).await;
    c.join("news").await;
    let closing = tokio::spawn(server.shutdown());
    assert_eq!(c.closed().await, 4200);
    closing.await.unwrap();
}

#[tokio::test]
async fn silent_connections_close_with_4201_and_huge_frames_with_1009() {
    let server = TestServer::with(|s| {
        s.limits.idle_timeout_ms = 300;
        s.limits.heartbeat_interval_ms = 100;
        s.limits.max_frame_bytes = 1024;
    })
    .await;
    enable(&server, false, |_| {}).await;
    // The raw client never answers pings: it looks dead.
    let mut silent = Client::connect(&server).await;
    assert_eq!(silent.closed().await, 4201);
    let mut big = Client::connect(&server).await;
    big.send(json!({"event": "pusher:ping", "data": "x".repeat(2000)}))
        .await;
    let f = big.next().await;
    assert_eq!(f["event"], "pusher:error", "{f}");
    assert_eq!(big.closed().await, 1009);
}

#[tokio::test]
async fn slow_pusher_consumers_close_with_4100() {
    let server = TestServer::with(|s| {
        s.limits.max_frame_bytes = 2 << 20;
        s.limits.max_queued_bytes = 1 << 20;
    })
    .await;
    enable(&server, false, |_| {}).await;
    let mut slow = Client::connect(&server).await;
    slow.join("firehose").await;
    let http = reqwest::Client::new();
    let big = "y".repeat(1 << 20);
    // 40 MiB to a reader that never reads: more than the queue and the socket buffers hold.
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
    assert_eq!(slow.raw.close_code().await, 4100);
}
