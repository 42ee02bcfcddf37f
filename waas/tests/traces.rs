//! OpenTelemetry traces (`--otel-endpoint`): a `waas dev` process exports its spans as OTLP over
//! HTTP/protobuf to a receiver in this test (a tiny axum server decoding the protobuf), and the
//! spans of a REST publish and of a request over the socket arrive with their parent links.

mod otlp_common;

use axum::routing::get;
use otlp_common::{child, hex, is_child_of, named, receiver};
use serde_json::json;
use waas_test_support::server::ChildServer;
use waas_test_support::upstream::TestUpstream;
use waas_test_support::RawClient;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

#[tokio::test]
async fn rest_publish_and_socket_request_spans_arrive_with_their_parents() {
    let (collector, received) = receiver().await;
    let endpoint = collector.url();
    // The upstream answers with the trace context it was sent.
    let upstream = TestUpstream::start(axum::Router::new().route(
        "/api/ok",
        get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default()
        }),
    ))
    .await;
    let (mut server, log) = ChildServer::spawn_logged(
        WAAS,
        &[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--store",
            ":memory:",
            "--otel-endpoint",
            &endpoint,
        ],
        &[("WAAS_LOG", "warn")],
    );
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let r = http
        .patch(format!("{base}/v1/admin/apps/demo"))
        .bearer_auth("dev-operator-token")
        .json(&json!({"routes": [{"prefix": "/api", "upstream": upstream.url()}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let mut caps = waas_test_support::tokens::call_caps(&["/api"]);
    caps.subscribe = waas_test_support::tokens::patterns(&["t.>"]);
    let token = waas_test_support::tokens::for_app("demo-secret", "demo", "u", caps);
    let mut client = RawClient::ready(server.addr, "demo", &token).await;
    let ack = client
        .request(json!({"op": "subscribe", "id": 1, "channel": "t.x"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");

    let r = http
        .post(format!("{base}/v1/apps/demo/publish"))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "t.x", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let message = client.next_op("message").await;
    assert_eq!(message["channel"], "t.x", "{message}");

    client
        .send(&json!({"op": "request", "id": 2, "method": "GET", "path": "/api/ok"}))
        .await;
    let response = client.next_op("response").await;
    assert_eq!(response["status"], 200, "{response}");
    drop(client);

    // SIGTERM: the process exports what it still holds before it exits.
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success());
    let spans = received.lock().unwrap().clone();
    assert!(
        !spans.is_empty(),
        "no span exported; the server said:\n{}",
        log.lock().unwrap()
    );
    assert!(
        spans
            .iter()
            .all(|(service, _)| service.contains("waas-dev")),
        "{:?}",
        spans.iter().map(|(s, _)| s).collect::<Vec<_>>()
    );

    let publish = named(&spans, "rest.publish");
    assert_eq!(publish.len(), 1, "{spans:?}");
    let history = named(&spans, "history.publish");
    assert!(
        history.iter().any(|h| is_child_of(h, publish[0])),
        "history.publish is not under rest.publish: {spans:?}"
    );
    // Through the in-process bus to the socket: the delivery under the publish, the socket
    // write under the delivery.
    let deliver = child(&spans, "hub.deliver", history[0]);
    child(&spans, "socket.write", deliver);

    let request = named(&spans, "rpc.request");
    assert_eq!(request.len(), 1, "{spans:?}");
    let upstream_call = named(&spans, "rpc.upstream");
    assert_eq!(upstream_call.len(), 1, "{spans:?}");
    assert!(
        is_child_of(upstream_call[0], request[0]),
        "rpc.upstream is not under rpc.request: {spans:?}"
    );
    child(&spans, "socket.write", request[0]);
    // The upstream was sent the `rpc.upstream` span as W3C trace context.
    let sent = response["body"].as_str().unwrap_or_default();
    assert_eq!(
        sent,
        format!(
            "00-{}-{}-01",
            hex(&upstream_call[0].trace_id),
            hex(&upstream_call[0].span_id)
        ),
        "{response}"
    );
    // Two requests, two traces.
    assert_ne!(request[0].trace_id, publish[0].trace_id);
}
