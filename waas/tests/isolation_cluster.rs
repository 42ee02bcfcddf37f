//! Tenant isolation in a cluster (control-plane and gateways as processes, NATS, PostgreSQL):
//! what travels on NATS while apps change and make requests carries no secret and never uses a
//! subject an app's channel could have, and connection ids are unique across gateways.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// How long the tap waits for the messages it expects before the test gives up.
const WAIT: Duration = Duration::from_secs(20);

/// Every message on `{prefix}.>` from now on, as (subject, payload). Not `_INBOX.>`: the
/// directory's answers go to the asking gateway's inbox, and a listener there would answer
/// the gateways' subscription probes.
async fn tap(url: &str, prefix: &str) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let nats = async_nats::connect(url).await.expect("connect to NATS");
    let mut sub = nats.subscribe(format!("{prefix}.>")).await.unwrap();
    // The subscription is live once the server has answered a round trip.
    nats.flush().await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _nats = nats;
        while let Some(m) = sub.next().await {
            if tx
                .send((m.subject.to_string(), m.payload.to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

fn user_token(app: &TestApp, secret: &str, call: &[&str]) -> String {
    let caps = waas_sdk::protocol::Caps {
        call: waas_sdk::protocol::CallSet::new(
            call.iter()
                .map(|p| waas_sdk::protocol::PathPrefix::parse(p).unwrap())
                .collect(),
        ),
        ..tokens::caps(&[">"], &[">"])
    };
    tokens::hs256(secret, "alice", Some(&app.id), caps, 3600)
}

/// Checks one message seen on the bus: no secret in it, and on a subject whose first token
/// after the prefix is an app id, nothing but a channel message.
fn check(prefix: &str, subject: &str, payload: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(payload);
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret crossed NATS on {subject}: {text}"
        );
    }
    let first = subject[prefix.len() + 1..].split('.').next().unwrap();
    if waas_protocol::AppId::parse(first).is_ok() {
        let frame: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        assert_eq!(
            frame["op"], "message",
            "non-channel traffic on {subject}, a subject of app {first:?}: {text}"
        );
    }
}

#[tokio::test]
async fn app_changes_and_requests_cross_nats_without_secrets_or_app_subjects() {
    let cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let prefix = cluster.prefix.clone();
    let mut bus = tap(&cluster.nats_url, &prefix).await;
    let app = cluster.create_app("shop").await;
    let (s, body) = cluster
        .admin(
            "PATCH",
            "/v1/admin/apps/shop",
            Some(json!({"routes": [{"prefix": "/weather", "service": "weather"}]})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let addr = cluster.gateways[0].addr;
    // A user of shop: the gateway caches shop, and reads it again at each change.
    let alice_token = user_token(&app, &app.jwt_secret, &["/weather"]);
    let mut alice = RawClient::ready(addr, &app.id, &alice_token).await;

    let (s, body) = cluster
        .admin("POST", "/v1/admin/apps/shop/jwt-secret", None)
        .await;
    assert_eq!(s, 200, "{body}");
    let new_secret = body["jwt_secret"].as_str().unwrap().to_owned();
    let (s, body) = cluster
        .admin("POST", "/v1/admin/apps/shop/keys", Some(json!({})))
        .await;
    assert_eq!(s, 201, "{body}");
    let new_key = body["api_key"].as_str().unwrap().to_owned();

    // A request to a service nobody serves travels over NATS (the tap is no responder, so it
    // waits out its timeout).
    // (Until the gateway has read the route, the request finds none and is asked again.)
    let deadline = Instant::now() + Duration::from_secs(5);
    for id in 1.. {
        let answer = alice
            .request(json!({"op": "request", "id": id, "path": "/weather", "timeout_ms": 300}))
            .await;
        assert_eq!(answer["op"], "error", "{answer}");
        if answer["code"] != "no_route" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the route never reached the gateway"
        );
    }

    let hash = waas_core::app::hash_api_key;
    let secrets = [
        app.jwt_secret.clone(),
        app.api_key.clone(),
        hash(&app.api_key),
        new_secret.clone(),
        new_key.clone(),
        hash(&new_key),
    ];
    // Creation, the routes, the new secret and the new key: four notices, none with the app in
    // it.
    let (mut notices, mut requests) = (0, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while notices < 4 || requests < 1 {
        let (subject, payload) = tokio::time::timeout_at(deadline, bus.recv())
            .await
            .unwrap_or_else(|_| panic!("{notices} change notices and {requests} requests seen"))
            .expect("tap open");
        check(&prefix, &subject, &payload, &secrets);
        if subject.ends_with(".apps.changed") {
            let notice: Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(
                notice,
                json!({"id": "shop"}),
                "the notice names the app only"
            );
            notices += 1;
        }
        if subject.ends_with(".shop.weather") {
            requests += 1;
        }
    }

    // The gateway followed both changes by reading the app again: the new secret and the new
    // key work, the old secret does not.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = user_token(&app, &new_secret, &[]);
    loop {
        let mut c =
            RawClient::connect(addr, &format!("/v1/apps/shop/ws?token={fresh}"), None).await;
        if c.json().await["op"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "the new secret is not accepted");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apps/shop/publish", cluster.gateway_http(0)))
        .bearer_auth(&new_key)
        .json(&json!({"channel": "c", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn connection_ids_differ_across_gateways() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("ids").await;
    let t = user_token(&app, &app.jwt_secret, &[]);
    let mut ids = Vec::new();
    for gw in &cluster.gateways {
        let mut c = RawClient::connect(gw.addr, &format!("/v1/apps/ids/ws?token={t}"), None).await;
        let ready = c.json().await;
        assert_eq!(ready["op"], "ready", "{ready}");
        ids.push(ready["connection_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "first connections of two gateways");
}

/// A namespace's history stream named the way earlier versions named it, which an app could
/// collide with, keeps being used: the gateway does not fail creating the new name over the
/// same subjects, and creates no second stream.
#[tokio::test]
async fn a_namespace_stream_under_its_former_name_keeps_being_used() {
    let cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let prefix = &cluster.prefix;
    let nats = async_nats::connect(cluster.nats_url.as_str())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nats);
    let hash = &waas_core::app::hash_api_key("legacy\0chat")[..8];
    let name = format!("{prefix}_history_legacy_ns_chat_{hash}");
    let root = format!("{prefix}.~hn.legacy.chat");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{root}.>")],
        allow_direct: true,
        republish: Some(async_nats::jetstream::stream::Republish {
            source: format!("{root}.>"),
            destination: format!("{prefix}.legacy.chat.>"),
            headers_only: false,
        }),
        max_messages_per_subject: 10,
        ..Default::default()
    })
    .await
    .unwrap();

    let app = cluster
        .create_app_with(
            "legacy",
            json!({"limits": {"history_size": 3, "history_namespaces": {"chat": {"history_size": 10}}}}),
        )
        .await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/apps/legacy/publish",
            cluster.gateway_http(0)
        ))
        .bearer_auth(&app.api_key)
        .json(&json!({"channel": "chat.room", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    let mut stream = js.get_stream(&name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let names: Vec<String> = js
        .stream_names()
        .filter_map(|n| async move { n.ok() })
        .collect()
        .await;
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with(&format!("{prefix}_nshistory_"))),
        "{names:?}"
    );
}
