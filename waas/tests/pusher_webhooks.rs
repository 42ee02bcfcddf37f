//! Webhooks in Pusher's format (`format: "pusher"`, `docs/pusher.md`) from `waas dev` to a real
//! HTTP receiver: Pusher's body and event shapes, `X-Pusher-Key` and `X-Pusher-Signature`
//! (keyed with the app's Pusher secret, as it is at each attempt) checked here with the
//! gateway's HMAC helper, and the admin API's `format` field.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use waas_test_support::receiver::{Received, Receiver};
use waas_test_support::{tokens, RawClient, TestServer};

/// The endpoint's own secret: Pusher-format requests are not signed with it.
const SECRET: &str = "pusher-webhook-secret-1234";
/// The demo app's Pusher secret in `waas dev`, which signs them.
const APP_SECRET: &str = "demo-pusher-secret";

/// HMAC-SHA256 hex, computed with the gateway's helper (checked against Pusher's reference
/// example), not the control-plane's signer under test.
fn hmac_hex(secret: &str, body: &[u8]) -> String {
    waas_gateway::http::pusher::signing::sign(secret, body)
}

/// The events of a request, after checking its headers and signature.
fn verified(r: &Received) -> Vec<Value> {
    assert_eq!(r.header("x-pusher-key"), Some("demo"));
    assert_eq!(
        r.header("x-pusher-signature"),
        Some(hmac_hex(APP_SECRET, &r.body).as_str()),
        "signature of {:?}",
        r.body
    );
    assert_ne!(
        r.header("x-pusher-signature"),
        Some(hmac_hex(SECRET, &r.body).as_str()),
        "not the endpoint's secret"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("waas-signature").is_none());
    let body: Value = serde_json::from_slice(&r.body).expect("json body");
    assert!(
        body["time_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "{body}"
    );
    let events = body["events"].as_array().expect("events").clone();
    assert!(!events.is_empty());
    events
}

#[tokio::test]
async fn pusher_format_endpoints_get_pushers_bodies_signed() {
    let receiver = Receiver::start().await;
    let server = TestServer::with(|s| {
        s.webhooks.debounce_ms = 100;
    })
    .await;
    let (status, created) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({
                "url": receiver.url("/pusher"),
                "events": ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"],
                "secret": SECRET,
                "format": "pusher",
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["webhook"]["format"], "pusher");
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    let (_, read) = server
        .admin("GET", &format!("/v1/admin/apps/demo/webhooks/{id}"), None)
        .await;
    assert_eq!(read["format"], "pusher");

    // Until the gateway has the endpoint's interest in client publishes, they are not
    // reported: wait for it.
    waas_test_support::poll::eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        || "the gateway knows the endpoint wants client events",
        || async {
            let app = server.gateway.apps.resolve("demo").await.unwrap().unwrap();
            (!app.config.webhooks.is_empty()).then_some(())
        },
    )
    .await;

    let token = tokens::with_info(
        "demo-secret",
        "demo",
        "alice",
        tokens::caps(&["presence.room"], &["presence.room"]),
        json!({"name": "Alice"}),
    );
    let mut alice = RawClient::ready(server.addr, "demo", &token).await;
    let ack = alice
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = alice
        .request(json!({"op": "publish", "id": 2, "channel": "presence.room", "event": "client-say", "data": "hello"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let ack = alice
        .request(json!({"op": "publish", "id": 3, "channel": "presence.room", "event": "client-obj", "data": {"a": 1}}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    drop(alice);

    let names =
        |received: &[Received]| -> Vec<Value> { received.iter().flat_map(verified).collect() };
    let received = receiver
        .wait_until("every event", Duration::from_secs(15), |r| {
            let events = names(r);
            let got: HashSet<String> = events
                .iter()
                .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
                .collect();
            let client_events = events
                .iter()
                .filter(|e| e["name"] == "client_event")
                .count();
            got.len() == 5 && client_events == 2
        })
        .await;
    let events = names(&received);
    let find =
        |name: &str| -> Vec<&Value> { events.iter().filter(|e| e["name"] == name).collect() };
    assert_eq!(
        find("channel_occupied"),
        [&json!({"name": "channel_occupied", "channel": "presence.room"})]
    );
    assert_eq!(
        find("member_added"),
        [&json!({"name": "member_added", "channel": "presence.room", "user_id": "alice"})]
    );
    assert_eq!(
        find("member_removed"),
        [&json!({"name": "member_removed", "channel": "presence.room", "user_id": "alice"})]
    );
    assert_eq!(
        find("channel_vacated"),
        [&json!({"name": "channel_vacated", "channel": "presence.room"})]
    );
    let client: Vec<&Value> = find("client_event");
    assert_eq!(client.len(), 2, "{client:?}");
    assert_eq!(client[0]["event"], "client-say");
    assert_eq!(
        client[0]["data"], "hello",
        "a JSON string is sent as its text"
    );
    assert_eq!(client[1]["data"], r#"{"a":1}"#, "other JSON as its text");
    assert_eq!(client[0]["user_id"], "alice");
    assert!(client[0]["socket_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn the_admin_api_checks_format() {
    let server = TestServer::start().await;
    for (body, why) in [
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["message"], "format": "pusher"}),
            "Pusher has no message webhook",
        ),
        (
            json!({"url": "http://127.0.0.1:9/h", "events": ["client_event"], "format": "xml"}),
            "unknown format",
        ),
    ] {
        let (status, answer) = server
            .admin("POST", "/v1/admin/apps/demo/webhooks", Some(body))
            .await;
        assert_eq!(status, 400, "{why}: {answer}");
    }
    let (status, created) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/h", "events": ["message"]})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["webhook"]["format"], "waas", "the default");
    let id = created["webhook"]["id"].as_str().unwrap();
    let path = format!("/v1/admin/apps/demo/webhooks/{id}");
    let (status, _) = server
        .admin("PATCH", &path, Some(json!({"format": "pusher"})))
        .await;
    assert_eq!(
        status, 400,
        "a message endpoint cannot become Pusher-format"
    );
    let (status, patched) = server
        .admin(
            "PATCH",
            &path,
            Some(json!({"format": "pusher", "events": ["cache_miss"]})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["format"].clone(), patched["events"].clone()),
        (json!("pusher"), json!(["cache_miss"]))
    );
}

/// Subscribes a native client of the demo app to `channel` (so `channel_occupied` fires for it)
/// and keeps it open.
async fn occupy(server: &TestServer, channel: &str) -> RawClient {
    let token = tokens::demo("occupier", &[channel], &[]);
    let mut client = RawClient::ready(server.addr, "demo", &token).await;
    let ack = client
        .request(json!({"op": "subscribe", "id": 1, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    client
}

/// The requests received whose events include `channel_occupied` of `channel`.
fn occupied<'a>(received: &'a [Received], channel: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| {
            serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| {
                b["events"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| e["channel"] == channel))
            })
        })
        .collect()
}

#[tokio::test]
async fn webhooks_are_signed_with_the_apps_current_pusher_secret_and_die_without_one() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let (status, created) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": receiver.url("/p"), "events": ["channel_occupied"], "format": "pusher"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let endpoint = created["webhook"]["id"].as_str().unwrap().to_owned();
    let signed_with = |r: &Received, secret: &str| {
        r.header("x-pusher-signature") == Some(hmac_hex(secret, &r.body).as_str())
    };

    let _c1 = occupy(&server, "hooked-1").await;
    let got = receiver
        .wait_until("hooked-1", Duration::from_secs(15), |r| {
            !occupied(r, "hooked-1").is_empty()
        })
        .await;
    assert!(signed_with(occupied(&got, "hooked-1")[0], APP_SECRET));

    // A rotation: the next requests are signed with the new secret, not the old one.
    let (status, rotated) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/pusher-secret",
            Some(json!({"pusher_secret": "rotated-pusher-secret"})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let _c2 = occupy(&server, "hooked-2").await;
    let got = receiver
        .wait_until("hooked-2", Duration::from_secs(15), |r| {
            !occupied(r, "hooked-2").is_empty()
        })
        .await;
    let r = occupied(&got, "hooked-2")[0];
    assert!(signed_with(r, "rotated-pusher-secret"));
    assert!(!signed_with(r, APP_SECRET));

    // No secret any more: nothing to sign with, the delivery is dead at once, with why, and
    // no request is sent. New Pusher-format endpoints are refused meanwhile.
    let (status, _) = server
        .admin("DELETE", "/v1/admin/apps/demo/pusher-secret", None)
        .await;
    assert_eq!(status, 200);
    let (status, refused) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": receiver.url("/q"), "events": ["channel_occupied"], "format": "pusher"})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Pusher secret"),
        "{refused}"
    );
    let (status, _) = server
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/demo/webhooks/{endpoint}"),
            Some(json!({"format": "pusher"})),
        )
        .await;
    assert_eq!(status, 400, "nor can one be made Pusher-format");
    let _c3 = occupy(&server, "hooked-3").await;
    let dead = waas_test_support::poll::eventually(
        Duration::from_secs(15),
        Duration::from_millis(20),
        || "a dead delivery",
        || async {
            let (_, list) = server
                .admin("GET", "/v1/admin/apps/demo/deliveries?status=dead", None)
                .await;
            list.as_array().and_then(|l| l.first().cloned())
        },
    )
    .await;
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert_eq!(
        dead["last_error"],
        waas_control_plane::webhooks::worker::NO_PUSHER_SECRET,
        "{dead}"
    );
    assert!(dead["body"].as_str().unwrap().contains("hooked-3"));
    assert!(occupied(&receiver.received(), "hooked-3").is_empty());

    // A secret again, and the dead delivery retried: sent, signed with it.
    let (status, _) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/pusher-secret",
            Some(json!({"pusher_secret": "third-pusher-secret"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = dead["id"].as_str().unwrap();
    let (status, retried) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{retried}");
    let got = receiver
        .wait_until("hooked-3", Duration::from_secs(15), |r| {
            !occupied(r, "hooked-3").is_empty()
        })
        .await;
    assert!(signed_with(
        occupied(&got, "hooked-3")[0],
        "third-pusher-secret"
    ));
}
