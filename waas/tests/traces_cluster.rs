//! Traces across gateways (`docs/observability.md#traces`): two `waas gateway` processes over the
//! real NATS export their spans to a receiver in this test, and the trace context carried in
//! NATS headers links them — a REST publish on one gateway to the delivery and socket write on
//! the other (through JetStream for an app with history, straight over the bus for one without),
//! and a request over the socket on one gateway to the serving connection on the other and back.

mod otlp_common;

use otlp_common::{child, named, receiver, summary};
use serde_json::json;
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::tokens;
use waas_test_support::RawClient;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// A client of `app` on `addr` subscribed to `channel`.
async fn subscriber(addr: std::net::SocketAddr, app: &TestApp, channel: &str) -> RawClient {
    let token = app.token("reader", tokens::caps(&[channel], &[]));
    let mut client = RawClient::ready(addr, &app.id, &token).await;
    let ack = client
        .request(json!({"op": "subscribe", "id": 1, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    client
}

async fn publish(cluster: &Cluster, gateway: usize, app: &TestApp, channel: &str) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/apps/{}/publish",
            cluster.gateway_http(gateway),
            app.id
        ))
        .bearer_auth(&app.api_key)
        .json(&json!({"channel": channel, "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

#[tokio::test]
async fn trace_context_crosses_gateways_in_nats_headers() {
    let (collector, received) = receiver().await;
    let endpoint = collector.url();
    let mut cluster = Cluster::start(WAAS, &shared_url(), 0).await;
    for _ in 0..2 {
        cluster.add_gateway_with(&["--otel-endpoint", &endpoint]);
    }
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);
    let kept = cluster.create_app("kept").await;
    // Before any client of the app connects, so every gateway learns the app with its route.
    let (status, body) = cluster
        .admin(
            "PATCH",
            "/v1/admin/apps/kept",
            Some(json!({"routes": [{"prefix": "/work", "service": "work"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let live = cluster
        .create_app_with("live", json!({"limits": {"history_size": 0}}))
        .await;

    // Publish on gateway 0, subscribers on gateway 1.
    let mut kept_reader = subscriber(b, &kept, "t.kept").await;
    let mut live_reader = subscriber(b, &live, "t.live").await;
    publish(&cluster, 0, &kept, "t.kept").await;
    publish(&cluster, 0, &live, "t.live").await;
    assert_eq!(kept_reader.next_op("message").await["channel"], "t.kept");
    assert_eq!(live_reader.next_op("message").await["channel"], "t.live");

    // A server serving `work` on gateway 1, a caller on gateway 0.
    let mut server = RawClient::connect(
        b,
        &format!("/v1/apps/{}/ws?token={}", kept.id, kept.api_key),
        None,
    )
    .await;
    assert_eq!(server.json().await["op"], "ready");
    let ack = server
        .request(json!({"op": "serve", "id": 1, "service": "work"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let mut caller = RawClient::ready(
        a,
        &kept.id,
        &kept.token("caller", tokens::call_caps(&["/work"])),
    )
    .await;
    caller
        .send(&json!({"op": "request", "id": 5, "method": "GET", "path": "/work/x"}))
        .await;
    let request = server.next_op("request").await;
    server
        .send(&json!({"op": "response", "id": request["id"], "status": 200, "body": "done"}))
        .await;
    let response = caller.next_op("response").await;
    assert_eq!(response["status"], 200, "{response}");
    drop((kept_reader, live_reader, server, caller));

    // SIGTERM: each gateway exports what it still holds before it exits.
    let mut gateways = std::mem::take(&mut cluster.gateways);
    tokio::task::spawn_blocking(move || {
        for gateway in &mut gateways {
            assert!(gateway.terminate().success());
        }
    })
    .await
    .unwrap();
    let spans = received.lock().unwrap().clone();
    assert!(
        spans
            .iter()
            .all(|(service, _)| service.contains("waas-gateway")),
        "{:#?}",
        summary(&spans)
    );

    // Publish → bus (JetStream's republish, or the bus alone) → the other gateway → the socket.
    let publishes = named(&spans, "rest.publish");
    assert_eq!(publishes.len(), 2, "{:#?}", summary(&spans));
    for publish in publishes {
        let history = child(&spans, "history.publish", publish);
        let deliver = child(&spans, "hub.deliver", history);
        child(&spans, "socket.write", deliver);
    }

    // Request → bus → the serving gateway → the server's socket, and its answer.
    let requests = named(&spans, "rpc.request");
    assert_eq!(requests.len(), 1, "{:#?}", summary(&spans));
    child(&spans, "socket.write", requests[0]);
    let over_bus = child(&spans, "bus.request", requests[0]);
    let serve = child(&spans, "rpc.serve", over_bus);
    child(&spans, "socket.write", serve);
    child(&spans, "rpc.respond", serve);
}
