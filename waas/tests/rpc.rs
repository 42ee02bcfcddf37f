//! Requests over the socket on one `waas dev` node (in-process bus): the wire format as
//! `docs/rpc.md` documents it, SDK clients and SDK servers, every way a request can go without
//! an answer, and the in-flight limits. Cluster and HTTP-upstream cases are in `rpc_cluster.rs`
//! and `rpc_upstream.rs`.

use serde_json::{json, Value};
use std::time::Duration;
use waas::settings::AppSettings;
use waas_sdk::rpc::Call;
use waas_sdk::server::{Json, Reply, Request, Router};
use waas_sdk::{Client, Error, ErrorCode};
use waas_test_support::sdk::rejected;
use waas_test_support::{tokens, RawClient, TestServer};

const APP: &str = "rpc";
const KEY: &str = "rpc-key";
const SECRET: &str = "rpc-secret";

fn app_settings() -> AppSettings {
    let routes = serde_json::from_value(json!([
        {"prefix": "/weather", "service": "weather"},
        {"prefix": "/slow", "service": "slow", "timeout_ms": 300},
        {"prefix": "/nobody", "service": "nobody"},
    ]))
    .unwrap();
    AppSettings {
        id: APP.into(),
        api_keys: vec![KEY.into()],
        jwt_secret: Some(SECRET.into()),
        jwt_rsa_public_key_file: None,
        jwt_ec_public_key_file: None,
        limits: Default::default(),
        routes: Some(routes),
        pusher: None,
    }
}

async fn server_with(tweak: impl FnOnce(&mut waas::settings::Settings)) -> TestServer {
    TestServer::with(|s| {
        s.apps.push(app_settings());
        tweak(s);
    })
    .await
}

async fn client(server: &TestServer, credential: &str) -> Client {
    Client::builder()
        .url(server.ws_url())
        .app(APP)
        .token(credential)
        .connect()
        .await
        .expect("connect")
}

/// A raw connection and the `connection_id` its `ready` gave.
async fn raw(server: &TestServer, credential: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(
        server.addr,
        &format!("/v1/apps/{APP}/ws?token={credential}"),
        None,
    )
    .await;
    let ready = c.json().await;
    assert_eq!(ready["op"], "ready", "{ready}");
    (c, ready["connection_id"].as_str().unwrap().to_owned())
}

/// The `response` or `error` answering request `id`.
async fn answer(c: &mut RawClient, id: u64) -> Value {
    loop {
        let f = c.json().await;
        if f["id"] == id && (f["op"] == "response" || f["op"] == "error") {
            return f;
        }
    }
}

async fn weather(req: Request) -> Json<Value> {
    Json(json!({
        "city": req.param("city"),
        "sub": req.caller.sub,
        "app": req.caller.app,
        "connection_id": req.caller.connection_id,
        "lang": req.header("accept-language"),
    }))
}

async fn report(req: Request) -> Result<(u16, Json<Value>), Reply> {
    let body: Value = req.json().map_err(|e| Reply::error(400, &e.to_string()))?;
    Ok((201, Json(json!({"city": req.param("city"), "got": body}))))
}

#[tokio::test]
async fn a_request_reaches_the_served_handler_with_the_callers_identity() {
    let server = server_with(|_| {}).await;
    let backend = client(&server, KEY).await;
    let _serving = backend
        .serve(
            "weather",
            Router::new()
                .route("GET", "/weather/{city}", weather)
                .route("POST", "/weather/{city}", report),
        )
        .await
        .unwrap();

    let alice = client(
        &server,
        &tokens::for_app(SECRET, APP, "alice", tokens::call_caps(&["/weather"])),
    )
    .await;
    let call = Call::get("/weather/paris").header("Accept-Language", "fr");
    let r = alice.call(call).await.unwrap();
    assert_eq!(r.status, 200);
    let body: Value = r.json().unwrap();
    assert_eq!(body["city"], "paris");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["app"], APP);
    assert_eq!(body["lang"], "fr");
    assert_eq!(
        body["connection_id"],
        alice.connection_id().unwrap().as_str()
    );

    let r = alice
        .request("POST", "/weather/lyon", &json!({"celsius": 19.5}))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json::<Value>().unwrap()["got"]["celsius"], 19.5);

    // The router's own answer for a path it has no handler for is still a response.
    let r = alice.request("GET", "/weather", &()).await.unwrap();
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn requests_without_an_answer_get_typed_errors() {
    let server = server_with(|_| {}).await;
    let backend = client(&server, KEY).await;
    // Takes requests and never answers them.
    let (hold, mut held) = tokio::sync::mpsc::unbounded_channel::<Request>();
    let _slow = backend
        .serve("slow", move |req: Request| {
            let hold = hold.clone();
            async move {
                let _ = hold.send(req);
                std::future::pending::<Reply>().await
            }
        })
        .await
        .unwrap();

    let anyone = client(
        &server,
        &tokens::for_app(SECRET, APP, "bob", tokens::call_caps(&["/"])),
    )
    .await;
    assert_eq!(
        rejected(anyone.request("GET", "/elsewhere", &()).await).0,
        ErrorCode::NoRoute
    );
    assert_eq!(
        rejected(anyone.request("GET", "/nobody/home", &()).await).0,
        ErrorCode::NoResponder
    );
    // The route's 300 ms, shorter than the SDK's own wait.
    let started = std::time::Instant::now();
    assert_eq!(
        rejected(anyone.request("GET", "/slow/x", &()).await).0,
        ErrorCode::Timeout
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(held.recv().await.is_some(), "the handler got the request");
    // A shorter timeout of the caller's own.
    let call = Call::get("/slow/y").timeout(Duration::from_millis(50));
    assert_eq!(rejected(anyone.call(call).await).0, ErrorCode::Timeout);

    let weather_only = client(
        &server,
        &tokens::for_app(SECRET, APP, "carol", tokens::call_caps(&["/weather"])),
    )
    .await;
    assert_eq!(
        rejected(weather_only.request("GET", "/slow/x", &()).await).0,
        ErrorCode::Forbidden
    );
    let nothing = client(
        &server,
        &tokens::for_app(SECRET, APP, "dave", tokens::call_caps(&[])),
    )
    .await;
    assert_eq!(
        rejected(nothing.request("GET", "/weather/x", &()).await).0,
        ErrorCode::Forbidden
    );
    // Refused locally: never valid.
    assert!(matches!(
        anyone.request("GET", "/a/../b", &()).await,
        Err(Error::InvalidPath { .. })
    ));
}

#[tokio::test]
async fn only_api_key_connections_may_serve() {
    let server = server_with(|_| {}).await;
    let user = client(
        &server,
        &tokens::for_app(SECRET, APP, "mallory", tokens::call_caps(&["/"])),
    )
    .await;
    let refused = user.serve("weather", weather).await;
    assert!(
        matches!(&refused, Err(e) if e.code() == Some(ErrorCode::Forbidden)),
        "{:?}",
        refused.err()
    );
    // Nothing serves, so a request finds no responder.
    assert_eq!(
        rejected(user.request("GET", "/weather/x", &()).await).0,
        ErrorCode::NoResponder
    );
}

#[tokio::test]
async fn the_wire_format_is_as_documented() {
    let server = server_with(|_| {}).await;
    let (mut responder, _) = raw(&server, KEY).await;
    let ack = responder
        .request(json!({"op": "serve", "id": 1, "service": "weather"}))
        .await;
    assert_eq!(ack, json!({"op": "ack", "id": 1}));

    let (mut caller, caller_id) = raw(
        &server,
        &tokens::for_app(SECRET, APP, "alice", tokens::call_caps(&["/weather"])),
    )
    .await;
    caller
        .send(
            &json!({"op": "request", "id": 7, "method": "PUT", "path": "/weather/paris?units=c",
            "headers": {"X-Trace": "abc"}, "body": {"q": [1, 2]}, "timeout_ms": 5000}),
        )
        .await;
    let req = responder.next_op("request").await;
    let rid = req["id"].as_u64().unwrap();
    assert_eq!(req["service"], "weather");
    assert_eq!(req["method"], "PUT");
    assert_eq!(req["path"], "/weather/paris?units=c");
    assert_eq!(req["headers"], json!({"x-trace": "abc"}));
    assert_eq!(req["body"], json!({"q": [1, 2]}));
    assert_eq!(
        req["caller"],
        json!({"sub": "alice", "app": APP, "connection_id": caller_id})
    );
    let left = req["timeout_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 5000, "{left}");

    responder
        .send(
            &json!({"op": "response", "id": rid, "status": 200, "headers": {"ETag": "v1"},
            "body": {"ok": true}}),
        )
        .await;
    assert_eq!(
        answer(&mut caller, 7).await,
        json!({"op": "response", "id": 7, "status": 200, "headers": {"etag": "v1"}, "body": {"ok": true}})
    );

    // No body and no method: GET and null.
    caller
        .send(&json!({"op": "request", "id": 8, "path": "/weather/oslo"}))
        .await;
    let req = responder.next_op("request").await;
    assert_eq!(
        (req["method"].as_str(), &req["body"]),
        (Some("GET"), &Value::Null)
    );
    let rid = req["id"].as_u64().unwrap();
    // A response the client could not use: the responder is told (without an id: response ids
    // are the server's), the caller gets upstream_error.
    responder
        .send(&json!({"op": "response", "id": rid, "status": 999}))
        .await;
    let e = responder.next_op("error").await;
    assert_eq!(e["code"], "bad_request");
    assert!(e.get("id").is_none(), "{e}");
    let a = answer(&mut caller, 8).await;
    assert_eq!(
        (a["op"].as_str(), a["code"].as_str()),
        (Some("error"), Some("upstream_error"))
    );

    // Refused before going anywhere, by id, the connection stays open.
    for (id, frame, code) in [
        (
            9,
            json!({"op": "request", "id": 9, "path": "weather"}),
            "bad_request",
        ),
        (
            10,
            json!({"op": "request", "id": 10, "path": "/weather/../admin"}),
            "bad_request",
        ),
        (
            11,
            json!({"op": "request", "id": 11, "method": "get", "path": "/weather"}),
            "bad_request",
        ),
        (
            12,
            json!({"op": "request", "id": 12, "path": "/weather", "timeout_ms": 0}),
            "bad_request",
        ),
        (
            13,
            json!({"op": "request", "id": 13, "path": "/weather", "headers": {"a b": "c"}}),
            "bad_request",
        ),
        (14, json!({"op": "request", "id": 14}), "bad_request"),
        (
            15,
            json!({"op": "request", "id": 15, "path": "/nobody"}),
            "forbidden",
        ),
    ] {
        caller.send(&frame).await;
        let a = answer(&mut caller, id).await;
        assert_eq!(
            (a["op"].as_str(), a["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    }

    // `unserve`: acknowledged, then nothing serves the service.
    let ack = responder
        .request(json!({"op": "unserve", "id": 2, "service": "weather"}))
        .await;
    assert_eq!(ack, json!({"op": "ack", "id": 2}));
    caller
        .send(&json!({"op": "request", "id": 16, "path": "/weather/x"}))
        .await;
    assert_eq!(answer(&mut caller, 16).await["code"], "no_responder");
    // `serve` with a bad name, and by a user token.
    let e = responder
        .request(json!({"op": "serve", "id": 3, "service": "a.b"}))
        .await;
    assert_eq!(e["code"], "bad_request");
    let e = caller
        .request(json!({"op": "serve", "id": 17, "service": "weather"}))
        .await;
    assert_eq!(e["code"], "forbidden");
}

#[tokio::test]
async fn a_responder_that_disconnects_fails_its_requests_in_flight() {
    let server = server_with(|_| {}).await;
    let (mut responder, _) = raw(&server, KEY).await;
    responder
        .request(json!({"op": "serve", "id": 1, "service": "weather"}))
        .await;
    let (mut caller, _) = raw(
        &server,
        &tokens::for_app(SECRET, APP, "alice", tokens::call_caps(&["/weather"])),
    )
    .await;
    caller
        .send(&json!({"op": "request", "id": 1, "path": "/weather/paris"}))
        .await;
    responder.next_op("request").await;
    drop(responder);
    let a = answer(&mut caller, 1).await;
    assert_eq!(a["code"], "upstream_error", "{a}");
    assert!(
        a["message"].as_str().unwrap().contains("disconnected"),
        "{a}"
    );
    // And the service is gone with it.
    caller
        .send(&json!({"op": "request", "id": 2, "path": "/weather/paris"}))
        .await;
    assert_eq!(answer(&mut caller, 2).await["code"], "no_responder");
}

#[tokio::test]
async fn in_flight_requests_are_capped_per_connection_and_per_responder() {
    let server = server_with(|s| {
        s.limits.max_inflight_requests_per_connection = 2;
        s.limits.max_inflight_per_responder = 2;
    })
    .await;
    let (mut responder, _) = raw(&server, KEY).await;
    responder
        .request(json!({"op": "serve", "id": 1, "service": "weather"}))
        .await;
    let (mut a, _) = raw(
        &server,
        &tokens::for_app(SECRET, APP, "a", tokens::call_caps(&["/"])),
    )
    .await;
    let (mut b, _) = raw(
        &server,
        &tokens::for_app(SECRET, APP, "b", tokens::call_caps(&["/"])),
    )
    .await;
    for id in 1..=3 {
        a.send(&json!({"op": "request", "id": id, "path": "/weather/a"}))
            .await;
    }
    // The third is over the connection's cap, refused at once.
    let refused = answer(&mut a, 3).await;
    assert_eq!(refused["code"], "too_many_requests", "{refused}");
    b.send(&json!({"op": "request", "id": 1, "path": "/weather/b"}))
        .await;

    // The responder has two in flight: b's request waits until one is answered.
    let first = responder.next_op("request").await;
    let second = responder.next_op("request").await;
    let mut paths = vec![
        first["path"].as_str().unwrap().to_owned(),
        second["path"].as_str().unwrap().to_owned(),
    ];
    // Give a third frame the chance to arrive (it must not).
    let early = tokio::time::timeout(Duration::from_millis(300), responder.recv()).await;
    assert!(early.is_err(), "a third request was forwarded: {early:?}");
    responder
        .send(&json!({"op": "response", "id": first["id"], "status": 200}))
        .await;
    let third = responder.next_op("request").await;
    paths.push(third["path"].as_str().unwrap().to_owned());
    paths.sort();
    assert_eq!(paths, ["/weather/a", "/weather/a", "/weather/b"]);
    for r in [&second, &third] {
        responder
            .send(&json!({"op": "response", "id": r["id"], "status": 204}))
            .await;
    }
    let mut answered = Vec::new();
    for id in [1u64, 2] {
        answered.push(answer(&mut a, id).await["status"].as_u64().unwrap());
    }
    answered.sort();
    let from_b = answer(&mut b, 1).await["status"].as_u64().unwrap();
    let mut all = [answered[0], answered[1], from_b];
    all.sort();
    assert_eq!(all, [200, 204, 204]);
    // Room again on the caller's connection.
    a.send(&json!({"op": "request", "id": 4, "path": "/nobody"}))
        .await;
    assert_eq!(answer(&mut a, 4).await["code"], "no_responder");
}

/// Route changes made with the admin API reach connections that are already open: each request
/// follows the app's routes as they are when it is made.
#[tokio::test]
async fn route_changes_reach_open_connections() {
    let server = server_with(|_| {}).await;
    let (mut c, _) = raw(
        &server,
        &tokens::for_app(SECRET, APP, "ann", tokens::call_caps(&["/"])),
    )
    .await;
    let code_of = |f: Value| f["code"].as_str().map(str::to_owned);
    c.send(&json!({"op": "request", "id": 1, "method": "GET", "path": "/news/today"}))
        .await;
    assert_eq!(
        code_of(answer(&mut c, 1).await).as_deref(),
        Some("no_route")
    );

    let patch = |routes: Value| {
        reqwest::Client::new()
            .patch(format!("{}/v1/admin/apps/{APP}", server.http_url()))
            .bearer_auth("dev-operator-token")
            .json(&json!({ "routes": routes }))
            .send()
    };
    let r = patch(json!([{"prefix": "/news", "service": "news"}]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The change travels to the gateway as an event: ask until it has arrived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut id = 1;
    let code = loop {
        id += 1;
        c.send(&json!({"op": "request", "id": id, "method": "GET", "path": "/news/today"}))
            .await;
        let code = code_of(answer(&mut c, id).await);
        if code.as_deref() != Some("no_route") || std::time::Instant::now() > deadline {
            break code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        code.as_deref(),
        Some("no_responder"),
        "the open connection uses the new route"
    );

    let r = patch(json!([])).await.unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        id += 1;
        c.send(&json!({"op": "request", "id": id, "method": "GET", "path": "/news/today"}))
            .await;
        let code = code_of(answer(&mut c, id).await);
        if code.as_deref() == Some("no_route") || std::time::Instant::now() > deadline {
            break code;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        code.as_deref(),
        Some("no_route"),
        "and stops using a removed one"
    );
}
