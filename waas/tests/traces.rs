//! OpenTelemetry traces (`--otel-endpoint`): a `waas dev` process exports its spans as OTLP over
//! HTTP/protobuf to a receiver in this test (a tiny axum server decoding the protobuf), and the
//! spans of a REST publish and of a request over the socket arrive with their parent links.

use axum::body::Bytes;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use waas_test_support::server::ChildServer;
use waas_test_support::upstream::TestUpstream;
use waas_test_support::RawClient;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// What the receiver got: (service.name, span).
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// The OTLP/HTTP receiver, on the tests' HTTP server helper; returns it with what it got.
async fn receiver() -> (TestUpstream, Received) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref())
                        .map(|v| format!("{:?}", v.value))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            sink.lock().unwrap().push((service.clone(), span));
                        }
                    }
                }
                // An empty ExportTraceServiceResponse: everything accepted.
                Vec::<u8>::new()
            }
        }),
    );
    (TestUpstream::start(app).await, received)
}

fn named<'a>(spans: &'a [(String, Span)], name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|(_, s)| s.name == name)
        .map(|(_, s)| s)
        .collect()
}

/// `child`'s parent is `parent`, in the same trace.
fn is_child_of(child: &Span, parent: &Span) -> bool {
    child.trace_id == parent.trace_id && child.parent_span_id == parent.span_id
}

#[tokio::test]
async fn rest_publish_and_socket_request_spans_arrive_with_their_parents() {
    let (collector, received) = receiver().await;
    let endpoint = collector.url();
    let upstream =
        TestUpstream::start(axum::Router::new().route("/api/ok", get(|| async { "fine" }))).await;
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

    let r = http
        .post(format!("{base}/v1/apps/demo/publish"))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "t.x", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let token = waas_test_support::tokens::for_app(
        "demo-secret",
        "demo",
        "u",
        waas_test_support::tokens::call_caps(&["/api"]),
    );
    let mut client = RawClient::ready(server.addr, "demo", &token).await;
    client
        .send(&json!({"op": "request", "id": 1, "method": "GET", "path": "/api/ok"}))
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

    let request = named(&spans, "rpc.request");
    assert_eq!(request.len(), 1, "{spans:?}");
    let upstream_call = named(&spans, "rpc.upstream");
    assert_eq!(upstream_call.len(), 1, "{spans:?}");
    assert!(
        is_child_of(upstream_call[0], request[0]),
        "rpc.upstream is not under rpc.request: {spans:?}"
    );
    // Two requests, two traces.
    assert_ne!(request[0].trace_id, publish[0].trace_id);
}
