//! Pusher's HTTP API (`/apps/{app}/...`, `docs/pusher.md`) over real sockets: signing, every
//! endpoint's answer and errors, and delivery to native subscribers.
//!
//! The string to sign is built here the way Pusher's Node library builds it, independently
//! of the server's code; only the two primitives (HMAC-SHA256 hex, MD5 hex) are shared, and
//! those are checked against Pusher's reference example in the server's unit tests.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use waas::settings::AppSettings;
use waas_core::app::PusherSettings;
use waas_gateway::http::pusher::signing::{body_md5, sign};
use waas_test_support::{tokens, RawClient, TestServer};

const SECRET: &str = "pusher-secret-demo";

/// Turns Pusher on for `app` on the server's gateway. Until the Pusher credentials are stored
/// (`docs/pusher.md`), the test puts them into the gateway's app cache, with a version no
/// directory answer can override.
async fn enable(server: &TestServer, app: &str, secret: &str) {
    let current = server
        .gateway
        .apps
        .resolve(app)
        .await
        .expect("directory")
        .expect("app exists");
    let mut config = current.config.clone();
    config.pusher = Some(PusherSettings {
        secret: secret.into(),
        client_events: false,
    });
    config.version = i64::MAX;
    server.gateway.apps.upsert(config).expect("valid app");
}

async fn pusher_server() -> TestServer {
    let server = TestServer::with(|s| {
        s.apps.push(AppSettings {
            id: "other".into(),
            api_keys: vec!["other-key".into()],
            jwt_secret: Some("other-jwt".into()),
            jwt_rsa_public_key_file: None,
            jwt_ec_public_key_file: None,
            limits: Default::default(),
            routes: None,
            pusher: None,
        })
    })
    .await;
    enable(&server, "demo", SECRET).await;
    server
}

/// A Pusher request signed like the Node library signs it: `params` plus the `auth_*`
/// parameters, sorted, unencoded, joined with `&`.
struct Call<'a> {
    method: &'a str,
    path: String,
    params: Vec<(String, String)>,
    body: Option<String>,
    key: &'a str,
    secret: &'a str,
    timestamp: u64,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, path: &str) -> Self {
        Call {
            method,
            path: path.to_owned(),
            params: Vec::new(),
            body: None,
            key: "demo",
            secret: SECRET,
            timestamp: tokens::now_s(),
        }
    }

    fn post(path: &str, body: Value) -> Self {
        Call {
            body: Some(body.to_string()),
            ..Call::new("POST", path)
        }
    }

    fn param(mut self, k: &str, v: &str) -> Self {
        self.params.push((k.into(), v.into()));
        self
    }

    /// The query string with its signature.
    fn query(&self) -> String {
        let mut params = vec![
            ("auth_key".to_string(), self.key.to_string()),
            ("auth_timestamp".into(), self.timestamp.to_string()),
            ("auth_version".into(), "1.0".into()),
        ];
        if let Some(body) = &self.body {
            params.push(("body_md5".into(), body_md5(body.as_bytes())));
        }
        params.extend(self.params.iter().cloned());
        params.sort();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let query = query.join("&");
        let signature = sign(
            self.secret,
            format!("{}\n{}\n{query}", self.method, self.path).as_bytes(),
        );
        format!("{query}&auth_signature={signature}")
    }

    async fn send(&self, server: &TestServer) -> (u16, Value) {
        self.send_raw(server, &self.query(), self.body.clone())
            .await
    }

    async fn send_raw(
        &self,
        server: &TestServer,
        query: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let url = format!("{}{}?{query}", server.http_url(), self.path);
        let client = reqwest::Client::new();
        let req = match self.method {
            "POST" => client
                .post(url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_default()),
            _ => client.get(url),
        };
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn subscribed(server: &TestServer, token: &str, channel: &str) -> RawClient {
    let mut c = RawClient::ready(server.addr, "demo", token).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    c
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn events_reach_native_subscribers_with_data_converted() {
    let server = pusher_server().await;
    let token = tokens::demo("alice", &["chat-room", "#server-to-user-alice"], &[]);
    let mut sub = subscribed(&server, &token, "chat-room").await;

    let (status, body) = Call::post(
        "/apps/demo/events",
        json!({"name": "said", "channel": "chat-room", "data": "{\"text\":\"hi\"}"}),
    )
    .send(&server)
    .await;
    assert_eq!((status, body), (200, json!({})));
    let (status, body) = Call::post(
        "/apps/demo/events",
        json!({"name": "said", "channels": ["chat-room", "chat-other"], "data": "plain text", "info": "subscription_count"}),
    )
    .send(&server)
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"channels": {"chat-room": {"subscription_count": 1}, "chat-other": {"subscription_count": 0}}})
    );
    let m = sub.json().await;
    assert_eq!(
        (m["event"].clone(), m["data"].clone()),
        (json!("said"), json!({"text": "hi"}))
    );
    let m = sub.json().await;
    assert_eq!(m["data"], json!("plain text"));
    assert!(m.get("pusher").is_none(), "{m}");

    // With a socket_id, the message names the connection that must not get it (the Pusher
    // front skips it); native subscribers get it.
    let (status, _) = Call::post(
        "/apps/demo/events",
        json!({"name": "said", "channel": "chat-room", "data": "x", "socket_id": "123.456"}),
    )
    .send(&server)
    .await;
    assert_eq!(status, 200);
    let m = sub.json().await;
    assert_eq!(
        (m["data"].clone(), m["pusher"].clone()),
        (json!("x"), json!({"socket_id": "123.456"}))
    );
    assert!(m["offset"].as_u64().is_some(), "{m}");

    // sendToUser's channel.
    let mut user = subscribed(&server, &token, "#server-to-user-alice").await;
    let (status, body) = Call::post(
        "/apps/demo/events",
        json!({"name": "note", "channel": "#server-to-user-alice", "data": "[1,2]"}),
    )
    .send(&server)
    .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(user.json().await["data"], json!([1, 2]));
}

#[tokio::test]
async fn batch_events_publish_in_order_and_answer_info_per_event() {
    let server = pusher_server().await;
    let token = tokens::demo("alice", &["b-1"], &[]);
    let mut sub = subscribed(&server, &token, "b-1").await;
    let (status, body) = Call::post(
        "/apps/demo/batch_events",
        json!({"batch": [
            {"name": "e1", "channel": "b-1", "data": "1"},
            {"name": "e2", "channel": "b-1", "data": "2", "info": "subscription_count"},
        ]}),
    )
    .send(&server)
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"batch": [{}, {"subscription_count": 1}]}));
    assert_eq!(sub.json().await["event"], "e1");
    assert_eq!(sub.json().await["event"], "e2");

    let (status, body) = Call::post(
        "/apps/demo/batch_events",
        json!({"batch": [{"name": "e", "channel": "b-1", "data": "x"}]}),
    )
    .send(&server)
    .await;
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn signatures_are_checked() {
    let server = pusher_server().await;
    let good = || {
        Call::post(
            "/apps/demo/events",
            json!({"name": "e", "channel": "c", "data": "x"}),
        )
    };
    assert_eq!(good().send(&server).await.0, 200);

    // Wrong secret, wrong key, stale and future timestamps.
    let (status, body) = Call {
        secret: "nope",
        ..good()
    }
    .send(&server)
    .await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let (status, _) = Call {
        key: "other",
        ..good()
    }
    .send(&server)
    .await;
    assert_eq!(status, 401);
    for skew in [-601i64, 601] {
        let call = Call {
            timestamp: (tokens::now_s() as i64 + skew) as u64,
            ..good()
        };
        let (status, body) = call.send(&server).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auth_timestamp"));
    }
    // Within the window.
    let call = Call {
        timestamp: tokens::now_s() - 500,
        ..good()
    };
    assert_eq!(call.send(&server).await.0, 200);

    // The body changed after signing.
    let call = good();
    let query = call.query();
    let (status, body) = call
        .send_raw(
            &server,
            &query,
            Some(json!({"name": "e", "channel": "evil", "data": "x"}).to_string()),
        )
        .await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("body_md5"));

    // A parameter added after signing.
    let (status, _) = call
        .send_raw(&server, &format!("{query}&extra=1"), call.body.clone())
        .await;
    assert_eq!(status, 401);

    // Each auth parameter left out.
    for drop in [
        "auth_key",
        "auth_timestamp",
        "auth_version",
        "body_md5",
        "auth_signature",
    ] {
        let q: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with(&format!("{drop}=")))
            .collect();
        let (status, body) = call
            .send_raw(&server, &q.join("&"), call.body.clone())
            .await;
        assert_eq!(status, 401, "without {drop}: {body}");
    }
    // No query at all, and a signature that is not hex.
    assert_eq!(call.send_raw(&server, "", call.body.clone()).await.0, 401);
    let (status, _) = call
        .send_raw(
            &server,
            &query.replace("auth_signature=", "auth_signature=zz"),
            call.body.clone(),
        )
        .await;
    assert_eq!(status, 401);

    // GET is signed over its own method and path.
    assert_eq!(
        Call::new("GET", "/apps/demo/channels")
            .send(&server)
            .await
            .0,
        200
    );
    let mut get = Call::new("GET", "/apps/demo/channels");
    let q = get.query();
    get.path = "/apps/demo/channels/c".into();
    assert_eq!(get.send_raw(&server, &q, None).await.0, 401);
}

#[tokio::test]
async fn unknown_apps_and_apps_without_pusher_are_not_found() {
    let server = pusher_server().await;
    for app in ["nope", "other"] {
        let call = Call {
            key: app,
            ..Call::post(
                &format!("/apps/{app}/events"),
                json!({"name": "e", "channel": "c", "data": "x"}),
            )
        };
        let (status, body) = call.send(&server).await;
        assert_eq!(
            (status, code(&body)),
            (404, "app_not_found"),
            "{app}: {body}"
        );
        let (status, _) = Call {
            key: app,
            ..Call::new("GET", &format!("/apps/{app}/channels"))
        }
        .send(&server)
        .await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn a_tenant_cannot_sign_for_or_read_another() {
    let server = pusher_server().await;
    enable(&server, "other", "other-pusher-secret").await;
    // demo's credentials on other's URL: 401, nothing published.
    let other_token = tokens::for_app(
        "other-jwt",
        "other",
        "eve",
        tokens::caps(&["secret-plans"], &[]),
    );
    let mut other_sub = RawClient::ready(server.addr, "other", &other_token).await;
    let ack = other_sub
        .request(json!({"op": "subscribe", "id": 1, "channel": "secret-plans"}))
        .await;
    assert_eq!(ack["op"], "ack");
    for key in ["demo", "other"] {
        let call = Call {
            key,
            ..Call::post(
                "/apps/other/events",
                json!({"name": "e", "channel": "secret-plans", "data": "x"}),
            )
        };
        assert_eq!(
            call.send(&server).await.0,
            401,
            "key {key} with demo's secret"
        );
    }
    // demo sees none of other's channels, by list or by name.
    let (status, body) = Call::new("GET", "/apps/demo/channels")
        .param("info", "subscription_count")
        .send(&server)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"channels": {}}));
    let (_, body) = Call::new("GET", "/apps/demo/channels/secret-plans")
        .param("info", "subscription_count")
        .send(&server)
        .await;
    assert_eq!(body, json!({"occupied": false, "subscription_count": 0}));
    // other, signing with its own secret, sees its channel.
    let call = Call {
        key: "other",
        secret: "other-pusher-secret",
        ..Call::new("GET", "/apps/other/channels")
    };
    assert_eq!(
        call.send(&server).await,
        (200, json!({"channels": {"secret-plans": {}}}))
    );
    let pong = other_sub.request(json!({"op": "ping", "id": 2})).await;
    assert_eq!(
        pong["op"], "pong",
        "other's subscriber got nothing from demo's calls"
    );
}

#[tokio::test]
async fn channel_queries_answer_in_pushers_shapes() {
    let server = pusher_server().await;
    let alice = tokens::with_info(
        "demo-secret",
        "demo",
        "alice",
        tokens::caps(&["presence.room", "news-1"], &[]),
        json!({"name": "Alice"}),
    );
    let bob = tokens::demo("bob", &["presence.room"], &[]);
    let _a = subscribed(&server, &alice, "presence.room").await;
    let _b = subscribed(&server, &bob, "presence.room").await;
    let _a2 = subscribed(&server, &alice, "news-1").await;

    let (status, body) = Call::new("GET", "/apps/demo/channels").send(&server).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"channels": {"news-1": {}, "presence.room": {}}})
        )
    );
    let (_, body) = Call::new("GET", "/apps/demo/channels")
        .param("filter_by_prefix", "news-")
        .param("info", "subscription_count")
        .send(&server)
        .await;
    assert_eq!(
        body,
        json!({"channels": {"news-1": {"subscription_count": 1}}})
    );
    let (_, body) = Call::new("GET", "/apps/demo/channels")
        .param("filter_by_prefix", "presence.")
        .param("info", "user_count")
        .send(&server)
        .await;
    assert_eq!(
        body,
        json!({"channels": {"presence.room": {"user_count": 2}}})
    );

    let (_, body) = Call::new("GET", "/apps/demo/channels/presence.room")
        .param("info", "user_count,subscription_count")
        .send(&server)
        .await;
    assert_eq!(
        body,
        json!({"occupied": true, "user_count": 2, "subscription_count": 2})
    );
    let (_, body) = Call::new("GET", "/apps/demo/channels/news-2")
        .send(&server)
        .await;
    assert_eq!(body, json!({"occupied": false}));

    let (status, body) = Call::new("GET", "/apps/demo/channels/presence.room/users")
        .send(&server)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"users": [{"id": "alice"}, {"id": "bob"}]}));
}

#[tokio::test]
async fn bad_requests_get_400_and_large_ones_413() {
    let server = pusher_server().await;
    let post = |body: Value| Call::post("/apps/demo/events", body);
    let cases = [
        json!({"channel": "c", "data": "x"}),
        json!({"name": "e", "channel": "c"}),
        json!({"name": "e", "channel": "c", "data": {"not": "a string"}}),
        json!({"name": "", "channel": "c", "data": "x"}),
        json!({"name": "e", "data": "x"}),
        json!({"name": "e", "channel": "c", "channels": ["d"], "data": "x"}),
        json!({"name": "e", "channels": [], "data": "x"}),
        json!({"name": "e", "channels": (0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(), "data": "x"}),
        json!({"name": "e", "channel": "bad channel", "data": "x"}),
        json!({"name": "e", "channel": "c", "data": "x", "socket_id": "nope"}),
        json!({"name": "e", "channel": "c", "data": "x", "info": "user_count"}),
        json!({"name": "e", "channel": "c", "data": "x", "info": "bogus"}),
    ];
    for body in cases {
        let (status, answer) = post(body.clone()).send(&server).await;
        assert_eq!(status, 400, "{body} -> {answer}");
    }
    let mut not_json = post(json!({}));
    not_json.body = Some("{nope".into());
    assert_eq!(not_json.send(&server).await.0, 400);

    let batch = |n: usize| {
        Call::post(
            "/apps/demo/batch_events",
            json!({"batch": (0..n).map(|_| json!({"name": "e", "channel": "c", "data": "x"})).collect::<Vec<_>>()}),
        )
    };
    assert_eq!(batch(0).send(&server).await.0, 400);
    assert_eq!(batch(11).send(&server).await.0, 400);
    let (status, body) = Call::post(
        "/apps/demo/batch_events",
        json!({"batch": [{"name": "e", "channel": "c", "data": "x"}, {"name": "e", "channel": "bad channel", "data": "x"}]}),
    )
    .send(&server)
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("batch[1]"),
        "{body}"
    );

    for (path, params) in [
        ("/apps/demo/channels", vec![("info", "user_count")]),
        ("/apps/demo/channels", vec![("info", "bogus")]),
        ("/apps/demo/channels/news", vec![("info", "user_count")]),
        ("/apps/demo/channels/bad%20name", vec![]),
        ("/apps/demo/channels/news/users", vec![]),
    ] {
        let mut call = Call::new("GET", path);
        for (k, v) in params {
            call = call.param(k, v);
        }
        let (status, body) = call.send(&server).await;
        assert_eq!(status, 400, "{path}: {body}");
    }

    // 10 KiB of data is fine, one byte more is not; a body over the limit is refused whole.
    let data = "x".repeat(10240);
    assert_eq!(
        post(json!({"name": "e", "channel": "c", "data": data}))
            .send(&server)
            .await
            .0,
        200
    );
    let (status, body) = post(json!({"name": "e", "channel": "c", "data": format!("{data}x")}))
        .send(&server)
        .await;
    assert_eq!((status, code(&body)), (413, "message_too_large"), "{body}");
    let huge = "x".repeat(300_000);
    let (status, _) = post(json!({"name": "e", "channel": "c", "data": huge}))
        .send(&server)
        .await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn terminate_connections_is_announced_on_the_bus() {
    let server = pusher_server().await;
    let subject = waas_core::subjects::pusher_terminate("waas");
    let bus = Arc::clone(server.gateway.publisher.bus());
    let mut watch = bus.subscribe(&subject).await.expect("subscribe");
    let (status, body) = Call::post("/apps/demo/users/alice/terminate_connections", json!({}))
        .send(&server)
        .await;
    assert_eq!((status, body), (200, json!({})));
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
        .await
        .expect("announced")
        .expect("a message");
    let got: Value = serde_json::from_slice(&msg).expect("json");
    assert_eq!(got, json!({"app": "demo", "user_id": "alice"}));
}
