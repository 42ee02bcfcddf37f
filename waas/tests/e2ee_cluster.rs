//! End-to-end encryption in a cluster (two gateways and a control-plane as processes, NATS,
//! PostgreSQL): a key published on one gateway is read on the other, messages cross gateways
//! and decrypt, and neither what crossed NATS nor what PostgreSQL and JetStream hold contains
//! plaintext or a room key.

mod e2ee_common;

use base64::Engine;
use e2ee_common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::{Arc, Mutex};
use waas_test_support::cluster::Cluster;
use waas_test_support::nats::shared_url;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");
const ROOM: &str = "presence.vault";

/// Every message on `subjects` of the NATS at `url` from now on, as one byte string.
async fn tap(url: &str, subjects: &[String]) -> Arc<Mutex<Vec<u8>>> {
    let nats = async_nats::connect(url).await.expect("connect to NATS");
    let seen = Arc::new(Mutex::new(Vec::new()));
    for subject in subjects {
        let mut sub = nats.subscribe(subject.clone()).await.unwrap();
        let out = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let mut out = out.lock().unwrap();
                out.extend_from_slice(m.subject.as_bytes());
                out.extend_from_slice(&m.payload);
            }
        });
    }
    // The subscriptions are live once the server has answered a round trip.
    nats.flush().await.unwrap();
    std::mem::forget(nats);
    seen
}

#[tokio::test]
async fn keys_and_messages_cross_gateways_as_ciphertext_only() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("e2ee").await;
    // Not `_INBOX.>`: a listener there would answer the gateways' subscription probes (requests
    // to fresh inboxes that must find no responder). Key directory calls are on the prefix.
    let bus = tap(&cluster.nats_url, &[format!("{}.>", cluster.prefix)]).await;
    let (a, b) = (
        format!("ws://{}", cluster.gateways[0].addr),
        format!("ws://{}", cluster.gateways[1].addr),
    );
    let dir = tempfile::tempdir().unwrap();

    // Bob publishes his device key on gateway A; the owner, on gateway B, reads it.
    let bob = user(&a, &app.id, &app.jwt_secret, dir.path(), "bob", 2).await;
    let boss = member(
        &b,
        &app.id,
        &app.api_key,
        keyring(&dir.path().join("owner"), 0),
    )
    .await;
    let keys = boss.client().keys_get("bob").await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].device, bob.device_id());

    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = user(&b, &app.id, &app.jwt_secret, dir.path(), "alice", 1).await;
    let (mut alice_room, _) = joined(&alice, &mut events, ROOM, "alice").await;
    let (mut bob_room, _) = joined(&bob, &mut events, ROOM, "bob").await;

    let secret = secret();
    let data = json!({"text": secret});
    alice.publish(ROOM, "say", &data).await.unwrap();
    assert_eq!(next(&mut bob_room).await.unwrap().data, data);
    assert_eq!(next(&mut alice_room).await.unwrap().data, data);
    bob.publish(ROOM, "say", &json!({"text": secret, "from": "bob"}))
        .await
        .unwrap();
    assert_eq!(next(&mut alice_room).await.unwrap().data["from"], "bob");

    // JetStream history, read through gateway A, holds envelopes.
    let page = bob.client().history(ROOM, None, None, false).await.unwrap();
    let history: String = page.messages.iter().map(|m| m.get()).collect();
    assert!(history.contains("\"e2ee\":1"), "{history}");

    // The key directory in PostgreSQL: public and wrapped keys, no secret.
    let (pg, conn) = tokio_postgres::connect(&cluster.schema.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut stored = Vec::new();
    let mut rows = 0;
    for table in ["device_keys", "room_keys"] {
        for row in pg
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            rows += 1;
            stored.extend_from_slice(row.get::<_, String>(0).as_bytes());
        }
    }
    assert!(rows >= 5, "3 device keys and wrapped keys, got {rows} rows");

    let room_key = bob.keyring().current(ROOM).unwrap();
    let raw_key_b64 = base64::engine::general_purpose::STANDARD.encode(room_key.key);
    let bus = bus.lock().unwrap().clone();
    assert!(contains(&bus, b"\"e2ee\":1"), "envelopes crossed NATS");
    assert!(
        contains(&bus, b"room_key_put") || contains(&bus, b"\"op\":\"put\""),
        "key directory calls crossed NATS"
    );
    for (what, bytes) in [
        ("NATS", &bus),
        ("PostgreSQL", &stored),
        ("JetStream history", &history.as_bytes().to_vec()),
    ] {
        assert_absent(bytes, secret.as_bytes(), what);
        assert_absent(bytes, raw_key_b64.as_bytes(), what);
        assert_absent(bytes, &room_key.key, what);
    }
    drop(owner);
}

/// The owner's gateway dies; while it reconnects to the other one, a member leaves. No
/// `member_removed` reaches the owner, but the member list it gets after reconnecting lacks her:
/// it rotates her out all the same.
#[tokio::test]
async fn an_owner_that_reconnects_rotates_out_members_who_left_meanwhile() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("e2ee-failover").await;
    let (a, b) = (
        format!("ws://{}", cluster.gateways[0].addr),
        format!("ws://{}", cluster.gateways[1].addr),
    );
    let dir = tempfile::tempdir().unwrap();
    let owner_client = waas_sdk::Client::builder()
        .urls([a.clone(), b.clone()])
        .app(&app.id)
        .token(&app.api_key)
        // Long enough that carol leaves before the owner is back.
        .backoff(waas_sdk::Backoff {
            initial: std::time::Duration::from_secs(2),
            max: std::time::Duration::from_secs(2),
            multiplier: 1.0,
        })
        .connect()
        .await
        .unwrap();
    let mut owner_events = owner_client.events();
    let boss = waas_sdk::e2ee::E2ee::start(owner_client, keyring(&dir.path().join("owner"), 0))
        .await
        .unwrap();
    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = user(&b, &app.id, &app.jwt_secret, dir.path(), "alice", 1).await;
    let carol = user(&b, &app.id, &app.jwt_secret, dir.path(), "carol", 3).await;
    let (_alice_room, _) = joined(&alice, &mut events, ROOM, "alice").await;
    let (carol_room, _) = joined(&carol, &mut events, ROOM, "carol").await;

    drop(cluster.gateways.remove(0));
    tokio::time::timeout(WAIT, async {
        while let Some(e) = owner_events.next().await {
            if matches!(e, waas_sdk::ConnectionEvent::Disconnected { .. }) {
                return;
            }
        }
    })
    .await
    .expect("the owner notices its gateway died");
    carol_room.unsubscribe().await.unwrap();

    let v = owner_event(&mut events, |e| match e {
        waas_sdk::e2ee::OwnerEvent::Rotated {
            v,
            removed,
            members,
        } if removed == "carol" => {
            assert_eq!(members, &["alice".to_owned()]);
            Some(*v)
        }
        _ => None,
    })
    .await;
    assert_eq!(v, 2);
    alice.fetch(ROOM).await.unwrap();
    assert_eq!(alice.keyring().current(ROOM).unwrap().v, 2);
    let hers = carol.client().room_key_get(ROOM).await.unwrap();
    assert!(hers.iter().all(|k| k.v == 1), "{hers:?}");
    drop(owner);
}
