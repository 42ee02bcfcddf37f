//! Outbound HTTP on tenants' behalf — webhook deliveries and RPC HTTP upstreams — against
//! real local servers: an endless answer is not read beyond a bound, and addresses the outbound
//! rules refuse are never connected to, whether written as literal IPs (refused when
//! configured) or reached through a host name (refused when resolved, at connect time).
//!
//! Nothing here connects outside 127.0.0.0/8: refused literal addresses are checked when an
//! endpoint or route is created, before anything is stored; the connect-time rule is checked
//! with `localhost` and a local listener.

use serde_json::{json, Value};
use std::time::Duration;
use waas_sdk::protocol::{CallSet, Caps, PathPrefix};
use waas_sdk::{Client, ErrorCode};
use waas_test_support::flood::Flood;
use waas_test_support::receiver::Receiver;
use waas_test_support::sdk::rejected;
use waas_test_support::upstream::TestUpstream;
use waas_test_support::{tokens, TestServer};

/// What the endless servers offer: far more than any bound, small enough that a client which
/// reads everything (the bug) finishes quickly and the test fails instead of hanging.
const FLOOD: u64 = 64 << 20;
/// The most an endless server may have sent once its client gave up: socket buffers on both
/// sides and hyper's write buffer, a few MiB on loopback.
const SENT_BOUND: u64 = 16 << 20;

async fn create_endpoint(server: &TestServer, url: &str) -> (u16, Value) {
    server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": url, "events": ["message"]})),
        )
        .await
}

async fn publish(server: &TestServer) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "news.x", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The app's one delivery, once `done` holds for it (the log is read until then).
async fn delivery(server: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        let (s, list) = server
            .admin("GET", "/v1/admin/apps/demo/deliveries", None)
            .await;
        assert_eq!(s, 200, "{list}");
        if let Some(id) = list[0]["id"].as_str() {
            let (_, d) = server
                .admin("GET", &format!("/v1/admin/apps/demo/deliveries/{id}"), None)
                .await;
            if done(&d) {
                return d;
            }
            last = d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery did not get there: {last}");
}

fn caller_token(call: &[&str]) -> String {
    let caps = Caps {
        call: CallSet::new(call.iter().map(|p| PathPrefix::parse(p).unwrap()).collect()),
        ..Caps::default()
    };
    tokens::hs256("demo-secret", "caller", Some("demo"), caps, 3600)
}

async fn caller(server: &TestServer) -> Client {
    Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token(caller_token(&["/"]))
        .connect()
        .await
        .expect("connect")
}

async fn set_routes(server: &TestServer, routes: Value) -> (u16, Value) {
    server
        .admin(
            "PATCH",
            "/v1/admin/apps/demo",
            Some(json!({"routes": routes})),
        )
        .await
}

#[tokio::test]
async fn a_webhook_answered_with_an_endless_body_is_delivered_and_logs_a_bounded_prefix() {
    let flood = Flood::start(FLOOD).await;
    let server = TestServer::with(|s| s.webhooks.response_log_bytes = 100).await;
    let (s, created) = create_endpoint(&server, &flood.url("/hook")).await;
    assert_eq!(s, 201, "{created}");
    publish(&server).await;
    let d = delivery(&server, |d| d["attempts"].as_i64() >= Some(1)).await;
    assert_eq!(d["status"], "delivered", "{d}");
    let attempt = &d["attempt_log"][0];
    assert_eq!(attempt["status_code"], 200, "{d}");
    assert_eq!(attempt["error"], Value::Null, "{d}");
    assert_eq!(attempt["response_body"], "a".repeat(100), "{d}");
    // The worker hung up instead of reading on: the receiver's connection is over, having
    // sent no more than the sockets could buffer. (The count only grows: already past the
    // bound is a failure now.)
    assert!(
        flood.written() <= SENT_BOUND,
        "the receiver sent {} bytes",
        flood.written()
    );
    flood.wait_all_ended(Duration::from_secs(10)).await;
    assert_eq!(flood.requests(), 1);
    assert!(
        flood.written() <= SENT_BOUND,
        "the receiver sent {} bytes",
        flood.written()
    );
}

#[tokio::test]
async fn an_upstream_answering_an_endless_body_is_response_too_large() {
    let flood = Flood::start(FLOOD).await;
    let server = TestServer::start().await;
    let (s, body) = set_routes(
        &server,
        json!([{"prefix": "/big", "upstream": flood.url(""), "max_response_bytes": 65536}]),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let c = caller(&server).await;
    let (code, message) = rejected(c.request("GET", "/big/x", &()).await);
    assert_eq!(code, ErrorCode::ResponseTooLarge, "{message}");
    assert!(message.contains("65536"), "{message}");
    assert!(
        flood.written() <= SENT_BOUND,
        "the upstream sent {} bytes",
        flood.written()
    );
    flood.wait_all_ended(Duration::from_secs(10)).await;
    assert!(
        flood.written() <= SENT_BOUND,
        "the upstream sent {} bytes",
        flood.written()
    );
}

#[tokio::test]
async fn endpoints_at_refused_literal_addresses_are_refused_when_created() {
    // `waas dev` allows loopback by default, nothing else that is not global.
    let server = TestServer::start().await;
    for url in [
        "http://10.0.0.1/hook",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:8080/",
        "http://[::]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "https://192.0.2.1/",
    ] {
        let (s, body) = create_endpoint(&server, url).await;
        assert_eq!(s, 400, "{url}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("\"url\": "), "{url}: {message}");
        assert!(message.contains("are refused"), "{url}: {message}");
    }
    let (s, _) = create_endpoint(&server, "http://127.0.0.1:9/hook").await;
    assert_eq!(s, 201, "loopback is allowed by waas dev's default");

    // With loopback refused, every spelling of it is refused, on create and on update.
    let strict = TestServer::with(|s| s.outbound_allow_loopback = Some(false)).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://127.1.2.3/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
    ] {
        let (s, body) = create_endpoint(&strict, url).await;
        assert_eq!(s, 400, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("loopback address"), "{url}: {message}");
        assert!(
            message.contains("outbound_allow_loopback"),
            "{url}: {message}"
        );
    }
    let (s, created) = create_endpoint(&strict, "http://example.invalid/hook").await;
    assert_eq!(s, 201, "{created}");
    let id = created["webhook"]["id"].as_str().unwrap();
    let (s, body) = strict
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/demo/webhooks/{id}"),
            Some(json!({"url": "http://[::1]/x"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let (_, list) = strict
        .admin("GET", "/v1/admin/apps/demo/webhooks", None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["url"], "http://example.invalid/hook");

    // Allowing private networks allows them, and only them.
    let private = TestServer::with(|s| {
        s.outbound_allow_loopback = Some(false);
        s.outbound_allow_private = true;
    })
    .await;
    // Disabled: nothing is ever sent to it.
    let (s, body) = private
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": "http://10.0.0.1/hook", "events": ["message"], "enabled": false})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, _) = create_endpoint(&private, "http://169.254.169.254/").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_webhook_host_name_resolving_to_loopback_is_refused_when_connecting() {
    let receiver = Receiver::start().await;
    let server = TestServer::with(|s| s.outbound_allow_loopback = Some(false)).await;
    // Not a literal address: accepted, and checked on what it resolves to.
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let (s, created) = create_endpoint(&server, &url).await;
    assert_eq!(s, 201, "{created}");
    publish(&server).await;
    let d = delivery(&server, |d| d["attempts"].as_i64() >= Some(1)).await;
    let attempt = &d["attempt_log"][0];
    assert_eq!(attempt["status_code"], Value::Null, "{d}");
    let error = attempt["error"].as_str().unwrap();
    assert!(
        error.starts_with("refused: localhost resolves only to refused addresses: "),
        "{error}"
    );
    assert!(error.contains("is a loopback address"), "{error}");
    assert_eq!(d["status"], "pending", "retried like any failure: {d}");
    // The attempt is recorded after its connection would have been made: none was.
    assert_eq!(receiver.connections(), 0);

    // Where loopback is allowed (waas dev's default), the same name is resolved and reached.
    let dev = TestServer::start().await;
    let (s, created) = create_endpoint(&dev, &url).await;
    assert_eq!(s, 201, "{created}");
    publish(&dev).await;
    let d = delivery(&dev, |d| d["attempts"].as_i64() >= Some(1)).await;
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempt_log"][0]["response_body"], "ok", "{d}");
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn upstreams_at_refused_addresses_are_refused_when_configured_or_connecting() {
    let upstream = TestUpstream::start(
        axum::Router::new().route("/api/x", axum::routing::get(|| async { "reached" })),
    )
    .await;
    let server = TestServer::with(|s| s.outbound_allow_loopback = Some(false)).await;
    for url in [
        upstream.url(),
        "http://[::1]:9".into(),
        "http://10.0.0.5:8000".into(),
        "http://169.254.169.254".into(),
    ] {
        let (s, body) = set_routes(&server, json!([{"prefix": "/api", "upstream": url}])).await;
        assert_eq!(s, 400, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("route /api: upstream "), "{message}");
        assert!(message.contains("are refused"), "{message}");
    }
    let port = upstream.addr.port();
    let (s, body) = set_routes(
        &server,
        json!([{"prefix": "/api", "upstream": format!("http://localhost:{port}")}]),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let c = caller(&server).await;
    let (code, message) = rejected(c.request("GET", "/api/x", &()).await);
    assert_eq!(code, ErrorCode::UpstreamError, "{message}");
    assert!(
        message
            .starts_with("cannot reach the upstream: localhost resolves only to refused addresses"),
        "{message}"
    );
    assert_eq!(upstream.connections(), 0);

    // The same upstream under waas dev's default (loopback allowed) is reached.
    let dev = TestServer::start().await;
    let (s, body) = set_routes(
        &dev,
        json!([{"prefix": "/api", "upstream": upstream.url()}]),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let r = caller(&dev)
        .await
        .request("GET", "/api/x", &())
        .await
        .unwrap();
    assert_eq!((r.status, r.body().get()), (200, "\"reached\""));
}
