//! Tenant isolation on one `waas dev` node (in-process bus): no app reaches the service's
//! internal traffic whatever it is called, reserved app ids are refused, and no token passes
//! for an API-key connection. The cluster side (NATS) is in `isolation_cluster.rs`.

use serde_json::{json, Value};
use waas::settings::AppSettings;
use waas_test_support::raw::Received;
use waas_test_support::{tokens, RawClient, TestServer};

/// An app seeded by `waas dev` settings (the operator's, so reserved ids are not checked).
fn app(id: &str, routes: Value) -> AppSettings {
    AppSettings {
        id: id.into(),
        api_keys: vec![format!("{id}-key")],
        jwt_secret: Some(format!("{id}-secret")),
        jwt_rsa_public_key_file: None,
        jwt_ec_public_key_file: None,
        limits: Default::default(),
        routes: Some(serde_json::from_value(routes).unwrap()),
        pusher: None,
    }
}

async fn rest_publish(server: &TestServer, app: &str, channel: &str, event: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/apps/{app}/publish", server.http_url()))
        .bearer_auth(format!("{app}-key"))
        .json(&json!({"channel": channel, "event": event, "data": null}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A connection of `app` (with its API key) subscribed to `channels`.
async fn spy(server: &TestServer, app: &str, channels: &[&str]) -> RawClient {
    let mut c = RawClient::ready(server.addr, app, &format!("{app}-key")).await;
    for (i, channel) in channels.iter().enumerate() {
        let ack = c
            .request(json!({"op": "subscribe", "id": i + 1, "channel": channel}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
    }
    c
}

/// Publishes a sentinel to each of the spy's channels, then asserts the spy's next frames are
/// exactly those sentinels: whatever reached those channels before would come first.
async fn only_sentinels(server: &TestServer, spy: &mut RawClient, app: &str, channels: &[&str]) {
    for channel in channels {
        assert_eq!(rest_publish(server, app, channel, "sentinel").await, 200);
    }
    let mut got = Vec::new();
    for _ in channels {
        let f = spy.json().await;
        assert_eq!(
            (f["op"].as_str(), f["event"].as_str()),
            (Some("message"), Some("sentinel")),
            "app {app} received {f} on channels named after internal subjects"
        );
        got.push(f["channel"].as_str().unwrap().to_owned());
    }
    got.sort();
    let mut want: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

/// Apps `control` and `rpc` subscribe to channels whose subjects were, before internal traffic
/// moved under `$ctl`/`$rpc`, the app directory's, the reports', the key directory's, the
/// recordings' and the `shop` app's requests to its `weather` service. While `shop` changes
/// (every change is announced and read again) and asks its service, they get nothing.
#[tokio::test]
async fn apps_named_after_internal_subjects_receive_no_internal_traffic() {
    let server = TestServer::with(|s| {
        s.apps.push(app("control", json!([])));
        s.apps.push(app("rpc", json!([])));
        s.apps.push(app(
            "shop",
            json!([{"prefix": "/weather", "service": "weather"}]),
        ));
    })
    .await;
    let control_channels = [
        "apps.changed",
        "apps.get",
        "webhooks.report",
        "keys",
        "recordings",
    ];
    let rpc_channels = ["shop.weather"];
    let mut control = spy(&server, "control", &control_channels).await;
    let mut rpc = spy(&server, "rpc", &rpc_channels).await;

    // A shop user: the gateway caches shop, so each change has it read shop again.
    let caps = waas_sdk::protocol::Caps {
        call: waas_sdk::protocol::CallSet::new(vec![waas_sdk::protocol::PathPrefix::parse(
            "/weather",
        )
        .unwrap()]),
        ..tokens::caps(&[], &[])
    };
    let user = tokens::hs256("shop-secret", "alice", Some("shop"), caps, 3600);
    let mut alice = RawClient::ready(server.addr, "shop", &user).await;

    let (s, body) = server
        .admin(
            "PATCH",
            "/v1/admin/apps/shop",
            Some(json!({"limits": {"publish_rate": 50}})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = server
        .admin("POST", "/v1/admin/apps/shop/keys", Some(json!({})))
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = server
        .admin("POST", "/v1/admin/apps/shop/jwt-secret", None)
        .await;
    assert_eq!(s, 200, "{body}");
    // Nobody serves `weather`: the request goes to the bus and finds no responder.
    let answer = alice
        .request(json!({"op": "request", "id": 1, "path": "/weather/paris", "timeout_ms": 2000}))
        .await;
    assert_eq!(answer["code"], "no_responder", "{answer}");

    only_sentinels(&server, &mut control, "control", &control_channels).await;
    only_sentinels(&server, &mut rpc, "rpc", &rpc_channels).await;
}

#[tokio::test]
async fn reserved_app_ids_are_refused_by_the_admin_api() {
    let server = TestServer::start().await;
    let (s, body) = server
        .admin(
            "POST",
            "/v1/admin/tenants",
            Some(json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    for id in [
        "control", "rpc", "RPC", "sys", "system", "internal", "admin", "api", "waas",
    ] {
        let (s, body) = server
            .admin(
                "POST",
                "/v1/admin/apps",
                Some(json!({"id": id, "tenant_id": "acme"})),
            )
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (400, Some("reserved_id")),
            "{id}: {body}"
        );
    }
    // Names that merely contain one are anyone's.
    let (s, body) = server
        .admin(
            "POST",
            "/v1/admin/apps",
            Some(json!({"id": "control-room", "tenant_id": "acme"})),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

/// `sub: "server"` is what services, upstreams and webhooks see for an API-key connection: a
/// token claiming it is refused, and `POST /tokens` does not mint it.
#[tokio::test]
async fn a_token_cannot_pass_for_an_api_key_connection() {
    let server = TestServer::start().await;
    let forged = tokens::demo("server", &[">"], &[">"]);
    let mut c = RawClient::connect(
        server.addr,
        &format!("/v1/apps/demo/ws?token={forged}"),
        None,
    )
    .await;
    match c.recv().await {
        Received::Json(f) => {
            assert_eq!(
                (f["op"].as_str(), f["code"].as_str()),
                (Some("error"), Some("invalid_token")),
                "{f}"
            );
            assert!(f["message"].as_str().unwrap().contains("reserved"), "{f}");
        }
        other => panic!("expected an error frame, got {other:?}"),
    }
    // The API key itself still is the server.
    let mut key = RawClient::connect(server.addr, "/v1/apps/demo/ws?token=demo-key", None).await;
    let ready = key.json().await;
    assert_eq!(
        (ready["op"].as_str(), ready["sub"].as_str()),
        (Some("ready"), Some("server"))
    );

    let r = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/tokens", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"sub": "server"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}
