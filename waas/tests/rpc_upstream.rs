//! Requests over the socket answered by an HTTP upstream (a real HTTP server started by the
//! test): what crosses (allowed headers, the caller's identity, the body), connection reuse,
//! every failure an upstream can cause, and cancellation when the caller disconnects.

use axum::extract::{Path, Request as HttpRequest};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use waas::settings::AppSettings;
use waas_sdk::rpc::Call;
use waas_sdk::{Client, ErrorCode};
use waas_test_support::raw::WAIT;
use waas_test_support::sdk::rejected;
use waas_test_support::upstream::TestUpstream;
use waas_test_support::{tokens, RawClient, TestServer};

const APP: &str = "up";
const SECRET: &str = "up-secret";

fn header(headers: &HeaderMap, name: &str) -> Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(Value::Null, |v| Value::String(v.into()))
}

async fn echo(headers: HeaderMap, request: HttpRequest) -> (StatusCode, HeaderMap, String) {
    let uri = request.uri().clone();
    let method = request.method().to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap();
    let seen = json!({
        "method": method,
        "path": uri.path(),
        "query": uri.query(),
        "sub": header(&headers, "x-waas-sub"),
        "app": header(&headers, "x-waas-app"),
        "connection_id": header(&headers, "x-waas-connection-id"),
        "trace": header(&headers, "x-trace"),
        "cookie": header(&headers, "cookie"),
        "content_type": header(&headers, "content-type"),
        "body": String::from_utf8_lossy(&body),
    });
    let mut out = HeaderMap::new();
    out.insert("etag", "\"v1\"".parse().unwrap());
    out.insert("x-internal", "secret".parse().unwrap());
    (StatusCode::OK, out, seen.to_string())
}

fn backend() -> Router {
    Router::new()
        .route("/api/echo/{x}", get(echo).post(echo))
        .route("/v2/api/echo/{x}", get(echo))
        .route(
            "/api/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/api/big", get(|| async { "x".repeat(2000) }))
        .route("/api/empty", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/api/never/{x}",
            get(|Path(_x): Path<String>| async {
                std::future::pending::<()>().await;
                "unreachable"
            }),
        )
}

async fn server(routes: Value) -> TestServer {
    let routes = serde_json::from_value(routes).unwrap();
    TestServer::with(|s| {
        s.apps.push(AppSettings {
            id: APP.into(),
            api_keys: vec!["up-key".into()],
            jwt_secret: Some(SECRET.into()),
            jwt_rsa_public_key_file: None,
            jwt_ec_public_key_file: None,
            limits: Default::default(),
            routes: Some(routes),
            pusher: None,
        });
    })
    .await
}

async fn client(server: &TestServer, token: &str) -> Client {
    Client::builder()
        .url(server.ws_url())
        .app(APP)
        .token(token)
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn requests_reach_the_upstream_with_allowed_headers_and_the_callers_identity() {
    let upstream = TestUpstream::start(backend()).await;
    let server = server(json!([
        {"prefix": "/api", "upstream": upstream.url(), "allow_headers": ["x-trace", "etag"]},
        {"prefix": "/api/echo/based", "upstream": format!("{}/v2", upstream.url())},
    ]))
    .await;
    let alice = client(
        &server,
        &tokens::for_app(SECRET, APP, "zoë", tokens::call_caps(&["/api"])),
    )
    .await;

    let call = Call::get("/api/echo/paris?units=c")
        .header("X-Trace", "t-1")
        .header("Cookie", "session=1")
        .header("X-Waas-Sub", "forged");
    let r = alice.call(call).await.unwrap();
    assert_eq!(r.status, 200);
    // Only allowed response headers come back.
    assert_eq!(r.headers.get("etag").map(String::as_str), Some("\"v1\""));
    assert!(!r.headers.contains_key("x-internal"), "{:?}", r.headers);
    let seen: Value = r.json().unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/api/echo/paris");
    assert_eq!(seen["query"], "units=c");
    assert_eq!(seen["trace"], "t-1");
    assert_eq!(seen["cookie"], Value::Null, "not allowed: {seen}");
    assert_eq!(seen["sub"], "zo%C3%AB", "the gateway's, never the client's");
    assert_eq!(seen["app"], APP);
    assert_eq!(
        seen["connection_id"],
        alice.connection_id().unwrap().as_str()
    );
    assert_eq!(seen["body"], "");

    let r = alice
        .request("POST", "/api/echo/lyon", &json!({"celsius": 19.5}))
        .await
        .unwrap();
    let seen: Value = r.json().unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["content_type"], "application/json");
    assert_eq!(seen["body"], r#"{"celsius":19.5}"#);

    // A route with a base path, and an empty body coming back as null.
    let r = alice.request("GET", "/api/echo/based", &()).await.unwrap();
    assert_eq!(r.json::<Value>().unwrap()["path"], "/v2/api/echo/based");
    let r = alice.request("POST", "/api/empty", &()).await.unwrap();
    assert_eq!((r.status, r.body().get()), (204, "null"));

    // Keep-alive: sequential requests share one pooled connection.
    let before = upstream.connections();
    for i in 0..20 {
        let r = alice
            .request("GET", &format!("/api/echo/{i}"), &())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        upstream.connections(),
        before,
        "a new connection per request"
    );
}

#[tokio::test]
async fn upstream_failures_are_told_apart() {
    let upstream = TestUpstream::start(backend()).await;
    // A port nothing listens on: bound, then released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let server = server(json!([
        {"prefix": "/api", "upstream": upstream.url(), "max_response_bytes": 1000},
        {"prefix": "/api/never", "upstream": upstream.url(), "timeout_ms": 200},
        {"prefix": "/down", "upstream": format!("http://{closed}")},
    ]))
    .await;
    let c = client(
        &server,
        &tokens::for_app(SECRET, APP, "u", tokens::call_caps(&["/api", "/down"])),
    )
    .await;

    // The upstream's own 500 is its answer: a response, text body as a JSON string.
    let r = c.request("GET", "/api/fail", &()).await.unwrap();
    assert_eq!((r.status, r.body().get()), (500, "\"boom\""));

    let (code, message) = rejected(c.request("GET", "/api/big", &()).await);
    assert_eq!(code, ErrorCode::ResponseTooLarge, "{message}");
    assert!(message.contains("1000"), "{message}");

    let (code, message) = rejected(c.request("GET", "/api/never/x", &()).await);
    assert_eq!(code, ErrorCode::Timeout, "{message}");

    let (code, message) = rejected(c.request("GET", "/down/x", &()).await);
    assert_eq!(code, ErrorCode::UpstreamError, "{message}");
    assert!(message.contains("cannot reach the upstream"), "{message}");

    // Not in the token's caps.call: refused before any upstream is asked.
    let other = client(
        &server,
        &tokens::for_app(SECRET, APP, "v", tokens::call_caps(&["/down"])),
    )
    .await;
    let (code, _) = rejected(other.request("GET", "/api/echo/x", &()).await);
    assert_eq!(code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_caller_that_disconnects_cancels_its_upstream_request() {
    // An upstream that reads a request and never answers: it sees the gateway hang up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (got, mut got_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the request head");
            head.extend_from_slice(&buf[..n]);
        }
        got.send("request").unwrap();
        let n = socket.read(&mut buf).await.unwrap_or(0);
        got.send(if n == 0 { "closed" } else { "more data" })
            .unwrap();
    });
    let server = server(json!([
        {"prefix": "/slow", "upstream": format!("http://{addr}"), "timeout_ms": 60000},
    ]))
    .await;
    let mut caller = RawClient::ready(
        server.addr,
        APP,
        &tokens::for_app(SECRET, APP, "u", tokens::call_caps(&["/slow"])),
    )
    .await;
    caller
        .send(&json!({"op": "request", "id": 1, "path": "/slow/x"}))
        .await;
    let got = tokio::time::timeout(WAIT, got_rx.recv()).await;
    assert_eq!(got.unwrap(), Some("request"));
    drop(caller);
    // Long before the route's 60 s timeout, the gateway drops the upstream exchange.
    let got = tokio::time::timeout(WAIT, got_rx.recv()).await;
    assert_eq!(got.expect("cancelled in time"), Some("closed"));
}
