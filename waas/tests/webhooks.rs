//! Webhooks end to end, in cluster mode (control-plane and gateways as processes, real NATS,
//! real Postgres) with a real HTTP receiver: every event type signed, retries until delivered,
//! nothing lost across a kill -9 of the control-plane, and a slow receiver not holding up
//! the others.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use waas_sdk::webhook::{self, EventType, VerifyError, WebhookError};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::receiver::{Received, Receiver};
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// Creates an endpoint; returns its id and secret.
async fn endpoint(cluster: &Cluster, app: &TestApp, body: Value) -> (String, String) {
    let (s, created) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/webhooks", app.id),
            Some(body),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    (
        created["webhook"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn rest_publish(cluster: &Cluster, app: &TestApp, body: Value, path: &str) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/apps/{}/{path}",
            cluster.gateway_http(0),
            app.id
        ))
        .bearer_auth(&app.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// Verifies a request with the SDK's helper and returns its event.
fn verified(secret: &str, r: &Received) -> webhook::WebhookEvent {
    let sig = r.header(webhook::SIGNATURE_HEADER).expect("signed");
    let event = webhook::verify_event(secret, sig, &r.body, webhook::DEFAULT_TOLERANCE)
        .unwrap_or_else(|e| panic!("signature of {:?}: {e}", r.body));
    assert_eq!(r.header(webhook::ID_HEADER), Some(event.id.as_str()));
    assert_eq!(r.header(webhook::EVENT_HEADER), Some(event.kind.as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    event
}

fn count(events: &[webhook::WebhookEvent], kind: EventType, who: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| {
            e.kind == kind && who.is_none_or(|w| e.member.as_ref().is_some_and(|m| m.id == w))
        })
        .count()
}

#[tokio::test]
async fn every_event_type_arrives_signed_and_occupancy_does_not_flap_across_gateways() {
    let receiver = Receiver::start().await;
    let mut cluster = Cluster::start_with(
        WAAS,
        &shared_url(),
        0,
        &[
            "--webhook-debounce-ms",
            "1500",
            "--webhook-retry-base-ms",
            "50",
        ],
    )
    .await;
    let presence = [
        "--presence-heartbeat-ms",
        "200",
        "--presence-ttl-ms",
        "1000",
    ];
    let app = cluster.create_app("hooks").await;
    let events: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    let (_, secret) = endpoint(
        &cluster,
        &app,
        json!({"url": receiver.url("/hook"), "events": events}),
    )
    .await;
    // Gateways after the endpoint, so they learn the app with its interests (see the kill -9
    // test).
    cluster.add_gateway_with(&presence);
    cluster.add_gateway_with(&presence);
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);

    let mut alice = RawClient::ready(
        a,
        &app.id,
        &tokens::with_info(
            &app.jwt_secret,
            &app.id,
            "alice",
            tokens::caps(&["presence.>"], &["presence.>"]),
            json!({"name": "alice"}),
        ),
    )
    .await;
    let ack = alice
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let mut bob = RawClient::ready(
        b,
        &app.id,
        &tokens::with_info(
            &app.jwt_secret,
            &app.id,
            "bob",
            tokens::caps(&["presence.>"], &["presence.>"]),
            json!({"name": "bob"}),
        ),
    )
    .await;
    let ack = bob
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = alice
        .request(json!({"op": "publish", "id": 2, "channel": "presence.room", "event": "say", "data": {"text": "hi"}}))
        .await;
    assert_eq!(ack["offset"], 1, "{ack}");
    rest_publish(
        &cluster,
        &app,
        json!({"channel": "presence.room", "event": "notice", "data": [1, 2]}),
        "publish",
    )
    .await;
    receiver
        .wait_until(
            "occupied, two members, client event, two messages",
            Duration::from_secs(60),
            |r| r.len() >= 6,
        )
        .await;

    // The room empties on both gateways and bob comes back within the debounce window: no
    // vacated, no second occupied, no removal of bob.
    let ack = alice
        .request(json!({"op": "unsubscribe", "id": 3, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = bob
        .request(json!({"op": "unsubscribe", "id": 2, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let ack = bob
        .request(json!({"op": "subscribe", "id": 3, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let _ = bob.next_op("members").await;
    // Alice's removal fires once her debounce is over; bob's never did.
    receiver
        .wait_until("alice removed", Duration::from_secs(60), |r| {
            r.iter().any(|r| {
                let e: Value = serde_json::from_slice(&r.body).unwrap();
                e["type"] == "member_removed" && e["member"]["id"] == "alice"
            })
        })
        .await;
    bob.send_close(1000).await;
    // Bob's removal and the vacated channel are separate deliveries, in either order.
    let received = receiver
        .wait_until("vacated and bob removed", Duration::from_secs(60), |r| {
            let vacated = r
                .iter()
                .any(|r| r.body.windows(15).any(|w| w == b"channel_vacated"));
            let bob_removed = r.iter().any(|r| {
                let e: Value = serde_json::from_slice(&r.body).unwrap();
                e["type"] == "member_removed" && e["member"]["id"] == "bob"
            });
            vacated && bob_removed
        })
        .await;

    let events: Vec<_> = received.iter().map(|r| verified(&secret, r)).collect();
    assert_eq!(
        count(&events, EventType::ChannelOccupied, None),
        1,
        "{events:#?}"
    );
    assert_eq!(
        count(&events, EventType::ChannelVacated, None),
        1,
        "{events:#?}"
    );
    assert_eq!(count(&events, EventType::MemberAdded, Some("alice")), 1);
    assert_eq!(
        count(&events, EventType::MemberAdded, Some("bob")),
        1,
        "{events:#?}"
    );
    assert_eq!(count(&events, EventType::MemberRemoved, Some("alice")), 1);
    assert_eq!(count(&events, EventType::MemberRemoved, Some("bob")), 1);
    assert_eq!(count(&events, EventType::ClientEvent, None), 1);
    assert_eq!(count(&events, EventType::Message, None), 2);
    for e in &events {
        assert_eq!(
            (e.app.as_str(), e.channel.as_str()),
            ("hooks", "presence.room")
        );
    }
    let client = events
        .iter()
        .find(|e| e.kind == EventType::ClientEvent)
        .unwrap();
    assert_eq!(client.event.as_deref(), Some("say"));
    assert_eq!(client.data.as_ref().unwrap().get(), r#"{"text":"hi"}"#);
    assert_eq!(
        (client.offset, client.user_id.as_deref()),
        (Some(1), Some("alice"))
    );
    let added = events
        .iter()
        .find(|e| e.kind == EventType::MemberAdded)
        .unwrap();
    assert_eq!(
        added.member.as_ref().unwrap().info,
        Some(json!({"name": added.member.as_ref().unwrap().id}))
    );
    let rest = events
        .iter()
        .find(|e| e.kind == EventType::Message && e.user_id.is_none())
        .unwrap();
    assert_eq!(rest.data.as_ref().unwrap().get(), "[1,2]");

    // A body changed on the way fails the SDK's check; so does another secret.
    let r = &received[0];
    let sig = r.header(webhook::SIGNATURE_HEADER).unwrap();
    let mut tampered = r.body.to_vec();
    let i = tampered.len() / 2;
    tampered[i] ^= 1;
    assert!(matches!(
        webhook::verify_event(&secret, sig, &tampered, webhook::DEFAULT_TOLERANCE),
        Err(WebhookError::Signature(VerifyError::Mismatch))
    ));
    assert!(webhook::verify(
        &format!("{secret}x"),
        sig,
        &r.body,
        webhook::DEFAULT_TOLERANCE
    )
    .is_err());
}

#[tokio::test]
async fn a_failing_receiver_gets_the_delivery_again_until_it_succeeds() {
    let receiver = Receiver::start().await;
    receiver.respond_next(&[500, 500, 500]);
    let mut cluster = Cluster::start_with(
        WAAS,
        &shared_url(),
        0,
        &[
            "--webhook-retry-base-ms",
            "50",
            "--webhook-retry-max-ms",
            "200",
        ],
    )
    .await;
    let app = cluster.create_app("retries").await;
    let (hook, secret) = endpoint(
        &cluster,
        &app,
        json!({"url": receiver.url("/r"), "events": ["message"], "channels": ["orders.>"]}),
    )
    .await;
    cluster.add_gateway();
    rest_publish(
        &cluster,
        &app,
        json!({"channel": "news.x", "event": "ignored", "data": 0}),
        "publish",
    )
    .await;
    rest_publish(
        &cluster,
        &app,
        json!({"channel": "orders.eu", "event": "created", "data": {"n": 7}}),
        "publish",
    )
    .await;
    let got = receiver
        .wait_until("four attempts", Duration::from_secs(60), |r| r.len() >= 4)
        .await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let id = verified(&secret, &got[0]).id;
    for (i, r) in got.iter().enumerate() {
        let e = verified(&secret, r);
        assert_eq!(e.id, id, "one delivery, one id");
        assert_eq!(e.channel, "orders.eu", "news.x is not routed here");
        assert_eq!(
            r.header(webhook::ATTEMPT_HEADER),
            Some((i + 1).to_string().as_str())
        );
    }

    let path = format!("/v1/admin/apps/{}/deliveries/{id}", app.id);
    let mut log = Value::Null;
    for _ in 0..100 {
        let (s, body) = cluster.admin("GET", &path, None).await;
        assert_eq!(s, 200, "{body}");
        log = body;
        if log["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log["status"], "delivered", "{log}");
    assert_eq!(log["attempts"], 4);
    assert_eq!(log["endpoint_id"], hook.as_str());
    let codes: Vec<i64> = log["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    assert_eq!(
        log["attempt_log"][0]["error"],
        "HTTP 500 Internal Server Error"
    );
    let (_, list) = cluster
        .admin(
            "GET",
            &format!("/v1/admin/apps/{}/deliveries?status=delivered", app.id),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// Every delivery of the app, whatever its state: with the receiver refusing them, some are
/// being attempted (leased) at any moment, so filtering on `pending` would miss those.
async fn pending_ids(cluster: &Cluster, app: &TestApp) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut before = String::new();
    loop {
        let (s, page) = cluster
            .admin(
                "GET",
                &format!("/v1/admin/apps/{}/deliveries?limit=500{before}", app.id),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        for d in &page {
            ids.insert(d["id"].as_str().unwrap().to_owned());
        }
        match page.last() {
            Some(last) if page.len() == 500 => before = format!("&before={}", last["seq"]),
            _ => return ids,
        }
    }
}

#[tokio::test]
async fn kill_9_of_the_control_plane_with_1000_deliveries_pending_loses_none() {
    let receiver = Receiver::start().await;
    receiver.respond_always(503);
    let mut cluster = Cluster::start_with(
        WAAS,
        &shared_url(),
        0,
        &[
            "--webhook-retry-base-ms",
            "200",
            "--webhook-retry-max-ms",
            "1000",
            "--webhook-max-attempts",
            "1000",
            "--webhook-timeout-ms",
            "1000",
        ],
    )
    .await;
    let app = cluster.create_app("durable").await;
    let (_, secret) = endpoint(
        &cluster,
        &app,
        json!({"url": receiver.url("/d"), "events": ["message"]}),
    )
    .await;
    // The gateway starts after the endpoint exists, so it learns the app with the endpoint's
    // interest in messages. One running before would learn it from a change event a moment
    // after the admin API answers, and would not report publishes made in between.
    cluster.add_gateway();
    for batch in 0..10 {
        let items: Vec<Value> = (0..100)
            .map(|i| json!({"channel": "jobs", "event": "job", "data": batch * 100 + i}))
            .collect();
        rest_publish(&cluster, &app, json!({"batch": items}), "batch").await;
    }
    let mut ids = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        ids = pending_ids(&cluster, &app).await;
        if ids.len() == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ids.len(), 1000, "every publish is in the outbox");
    receiver
        .wait_until("attempts under way", Duration::from_secs(60), |r| {
            r.len() >= 50
        })
        .await;

    let cp = cluster.control_plane.as_mut().unwrap();
    cp.child.kill().unwrap(); // SIGKILL: no goodbye, leases left behind
    cp.child.wait().unwrap();
    receiver.respond_always(200);
    cluster.start_control_plane();

    let got = receiver
        .wait_until("all 1000 ids answered 200", Duration::from_secs(90), |r| {
            let delivered: HashSet<&str> = r
                .iter()
                .filter(|r| r.status == 200)
                .filter_map(|r| r.header(webhook::ID_HEADER))
                .collect();
            ids.iter().all(|id| delivered.contains(id.as_str()))
        })
        .await;
    for r in got.iter().filter(|r| r.status == 200).take(20) {
        verified(&secret, r);
    }
    let data: HashSet<i64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| {
            let e: Value = serde_json::from_slice(&r.body).unwrap();
            e["data"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(data.len(), 1000, "each message delivered at least once");
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_other_endpoints() {
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(10));
    let fast = Receiver::start().await;
    let mut cluster = Cluster::start_with(
        WAAS,
        &shared_url(),
        0,
        &[
            "--webhook-timeout-ms",
            "1000",
            "--webhook-per-endpoint-concurrency",
            "2",
            "--webhook-retry-base-ms",
            "60000",
        ],
    )
    .await;
    let app = cluster.create_app("slowfast").await;
    let (slow_hook, _) = endpoint(
        &cluster,
        &app,
        json!({"url": slow.url("/slow"), "events": ["message"]}),
    )
    .await;
    endpoint(
        &cluster,
        &app,
        json!({"url": fast.url("/fast"), "events": ["message"]}),
    )
    .await;
    cluster.add_gateway();
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"channel": "feed", "event": "item", "data": i}))
        .collect();
    let started = std::time::Instant::now();
    rest_publish(&cluster, &app, json!({"batch": items}), "batch").await;
    // The slow endpoint takes a 1 s timeout per attempt, two at a time: 10 s for 20. The fast
    // one gets everything meanwhile.
    fast.wait_until("fast endpoint served", Duration::from_secs(5), |r| {
        r.len() >= 20
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "fast endpoint waited {took:?}"
    );
    let (_, log) = cluster
        .admin(
            "GET",
            &format!("/v1/admin/apps/{}/deliveries?webhook={slow_hook}", app.id),
            None,
        )
        .await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 20);
    let tried = log
        .iter()
        .filter(|d| d["attempts"].as_i64() > Some(0))
        .count();
    assert!(
        tried < 20,
        "the slow endpoint is still working through its queue: {tried}"
    );
    assert!(log
        .iter()
        .filter(|d| d["attempts"].as_i64() > Some(0))
        .all(|d| d["status"] == "pending" && d["last_error"] == "timed out after 1000 ms"));
}

#[tokio::test]
async fn waas_dev_delivers_from_its_sqlite_outbox() {
    let receiver = Receiver::start().await;
    let server = waas_test_support::TestServer::start().await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/admin/apps/demo/webhooks", server.http_url()))
        .bearer_auth("dev-operator-token")
        .json(&json!({"url": receiver.url("/dev"), "events": ["message", "channel_occupied"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let r = http
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .json(&json!({"channel": "news.dev", "event": "e", "data": {"k": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut c = RawClient::ready(server.addr, "demo", &tokens::demo("u", &["news.>"], &[])).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "news.dev"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let got = receiver
        .wait_until("message and occupied", Duration::from_secs(10), |r| {
            r.len() >= 2
        })
        .await;
    let mut kinds: Vec<EventType> = got.iter().map(|r| verified(&secret, r).kind).collect();
    kinds.sort();
    assert_eq!(kinds, [EventType::ChannelOccupied, EventType::Message]);
    // The admin API refuses what it cannot deliver.
    let bad = http
        .post(format!("{}/v1/admin/apps/demo/webhooks", server.http_url()))
        .bearer_auth("dev-operator-token")
        .json(&json!({"url": "ftp://x", "events": ["message"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = http
        .post(format!("{}/v1/admin/apps/demo/webhooks", server.http_url()))
        .bearer_auth("dev-operator-token")
        .json(&json!({"url": "http://x/", "events": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
