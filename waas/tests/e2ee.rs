//! End-to-end encryption on `waas dev` (in-process bus, SQLite), with real clients over
//! loopback: members and an owner through the key directory, and what the service handled —
//! the bus, history, a recording and the key directory tables — searched for plaintext.

mod e2ee_common;

use base64::Engine;
use e2ee_common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use waas_sdk::e2ee::{E2ee, E2eeError, Keyring, OwnerEvent};
use waas_sdk::protocol::e2ee::Envelope;
use waas_test_support::TestServer;

const APP: &str = "demo";
const SECRET: &str = "demo-secret";
const ROOM: &str = "presence.room-1";

async fn owner(server: &TestServer, dir: &std::path::Path) -> E2ee {
    member(&server.ws_url(), APP, "demo-key", keyring(dir, 0)).await
}

/// The member `sub` of the demo app, its keys in `dir/sub` (test device key `n`).
async fn demo_member(server: &TestServer, dir: &std::path::Path, sub: &str, n: usize) -> E2ee {
    user(&server.ws_url(), APP, SECRET, dir, sub, n).await
}

/// Everything published on the in-process bus from now on, as one byte string.
async fn tap(server: &TestServer) -> Arc<Mutex<Vec<u8>>> {
    let mut sub = server.gateway.publisher.bus().subscribe(">").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some(payload) = sub.next().await {
            out.lock().unwrap().extend_from_slice(&payload);
        }
    });
    seen
}

/// Every text cell of `tables` in the SQLite store, concatenated.
fn dump(db: &std::path::Path, tables: &[&str]) -> (Vec<u8>, usize) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut all = Vec::new();
    let mut rows = 0;
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            rows += 1;
            for i in 0..n {
                if let Ok(text) = row.get::<_, String>(i) {
                    all.extend_from_slice(text.as_bytes());
                    all.push(b'\n');
                }
            }
        }
    }
    (all, rows)
}

async fn wait_recorded(server: &TestServer, id: &str, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, rec) = server
            .admin("GET", &format!("/v1/admin/apps/demo/recordings/{id}"), None)
            .await;
        if rec["event_count"].as_i64() >= Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "recording stuck at {rec}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn round_trip_and_the_service_sees_only_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("waas.db");
    let db_path = db.clone();
    let server = TestServer::with(move |s| s.store = db_path).await;
    let bus = tap(&server).await;
    let (_, rec) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/recordings",
            Some(json!({"name": "e2ee", "channels": ["presence.>"]})),
        )
        .await;
    let recording = rec["id"].as_str().expect("recording started").to_owned();

    let boss = owner(&server, &dir.path().join("owner")).await;
    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = demo_member(&server, dir.path(), "alice", 1).await;
    let bob = demo_member(&server, dir.path(), "bob", 2).await;
    let (mut alice_room, _) = joined(&alice, &mut events, ROOM, "alice").await;
    let (mut bob_room, _) = joined(&bob, &mut events, ROOM, "bob").await;

    let secret = secret();
    let data = json!({"n": 1, "text": secret});
    alice.publish(ROOM, "say", &data).await.unwrap();
    for room in [&mut bob_room, &mut alice_room] {
        let got = next(room).await.unwrap();
        assert_eq!(got.data, data);
        assert_eq!(
            (got.message.event.as_str(), got.message.replayed),
            ("say", false)
        );
        // What travelled is an envelope.
        let envelope: Envelope = got.message.data().unwrap();
        assert_eq!(envelope.e2ee, 1);
    }
    bob.publish(ROOM, "say", &json!({"n": 2, "text": secret}))
        .await
        .unwrap();
    assert_eq!(next(&mut alice_room).await.unwrap().data["n"], 2);

    // History holds envelopes only.
    let page = alice
        .client()
        .history(ROOM, None, None, false)
        .await
        .unwrap();
    let history: String = page.messages.iter().map(|m| m.get()).collect();
    assert!(history.contains("\"e2ee\":1"), "{history}");
    assert_absent(history.as_bytes(), secret.as_bytes(), "history");

    // The recording holds both messages and the room key notices, encrypted.
    wait_recorded(&server, &recording, 2).await;
    let (s, _) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{recording}/stop"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let room_key = alice.keyring().current(ROOM).unwrap();
    let raw_key_b64 = base64::engine::general_purpose::STANDARD.encode(room_key.key);
    let (recorded, n) = dump(&db, &["recording_events"]);
    assert!(n >= 2, "recorded {n} events");
    assert!(
        contains(&recorded, b"\"e2ee\":1"),
        "the recording holds envelopes"
    );
    let (keys, key_rows) = dump(&db, &["device_keys", "room_keys"]);
    assert!(key_rows >= 4, "device keys and wrapped keys are stored");
    let bus = bus.lock().unwrap().clone();
    assert!(
        contains(&bus, b"\"e2ee\":1"),
        "the envelopes crossed the bus"
    );
    for (what, bytes) in [
        ("the bus", &bus),
        ("the recording", &recorded),
        ("the key directory", &keys),
    ] {
        assert_absent(bytes, secret.as_bytes(), what);
        assert_absent(bytes, raw_key_b64.as_bytes(), what);
        assert_absent(bytes, &room_key.key, what);
    }

    // A replay carries the envelopes untouched: they still decrypt.
    let (s, replay) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{recording}/replays"),
            Some(json!({"speed": 0})),
        )
        .await;
    assert_eq!(s, 201, "{replay}");
    let replayed = loop {
        let got = next(&mut bob_room).await.unwrap();
        if got.message.replayed {
            break got;
        }
    };
    assert_eq!(replayed.data, data);
    drop(owner);
}

#[tokio::test]
async fn tampered_moved_unknown_and_malformed_envelopes_fail_with_their_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let boss = owner(&server, &dir.path().join("owner")).await;
    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = demo_member(&server, dir.path(), "alice", 1).await;
    let bob = demo_member(&server, dir.path(), "bob", 2).await;
    let (_alice_room, _) = joined(&alice, &mut events, ROOM, "alice").await;
    let (mut room, _) = joined(&bob, &mut events, ROOM, "bob").await;
    alice.fetch(ROOM).await.unwrap();
    let raw = alice.client();
    let data = json!({"text": "top secret"});
    let good = alice.encrypt(ROOM, "say", &data).unwrap();

    // Tampered ciphertext.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ct = b64.decode(&good.ct).unwrap();
    ct[3] ^= 0x40;
    let tampered = Envelope {
        ct: b64.encode(&ct),
        ..good.clone()
    };
    raw.publish(ROOM, "say", &tampered).await.unwrap();
    assert!(matches!(
        next(&mut room).await,
        Err(E2eeError::DecryptFailed)
    ));
    // Republished under another event name.
    raw.publish(ROOM, "other", &good).await.unwrap();
    let e = next(&mut room).await.unwrap_err();
    assert_eq!(e.code(), "decrypt_failed");
    // An unknown key id, even after asking the directory.
    let unknown = Envelope {
        kid: "0123456789abcdef0123456789abcdef".into(),
        ..good.clone()
    };
    raw.publish(ROOM, "say", &unknown).await.unwrap();
    assert!(matches!(
        next(&mut room).await,
        Err(E2eeError::UnknownKey { ref kid, .. }) if kid == "0123456789abcdef0123456789abcdef"
    ));
    // Not an envelope.
    raw.publish(ROOM, "say", &json!({"text": "hello"}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut room).await.unwrap_err().code(),
        "malformed_envelope"
    );
    // The untouched envelope still opens: no error above was a broken stream.
    raw.publish(ROOM, "say", &good).await.unwrap();
    assert_eq!(next(&mut room).await.unwrap().data, data);

    // The same envelope copied to another channel fails on the associated data, though bob
    // holds its key.
    let mut other = bob.subscribe("presence.room-2").await.unwrap();
    raw.publish("presence.room-2", "say", &good).await.unwrap();
    assert!(matches!(
        next(&mut other).await,
        Err(E2eeError::DecryptFailed)
    ));
    drop(owner);
}

#[tokio::test]
async fn a_removed_member_cannot_read_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let boss = owner(&server, &dir.path().join("owner")).await;
    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = demo_member(&server, dir.path(), "alice", 1).await;
    let carol = demo_member(&server, dir.path(), "carol", 3).await;
    let (mut alice_room, v) = joined(&alice, &mut events, ROOM, "alice").await;
    assert_eq!(v, 1);
    let (mut carol_room, v) = joined(&carol, &mut events, ROOM, "carol").await;
    assert_eq!(v, 1);
    let before = json!({"text": "before carol left"});
    alice.publish(ROOM, "say", &before).await.unwrap();
    assert_eq!(next(&mut carol_room).await.unwrap().data, before);
    assert_eq!(next(&mut alice_room).await.unwrap().data, before);

    // Carol may not hand out keys herself.
    let key = carol.keyring().current(ROOM).unwrap();
    assert!(matches!(
        carol.share(ROOM, &key, &["carol".into()]).await,
        Err(E2eeError::NotShared { .. })
    ));

    carol_room.unsubscribe().await.unwrap();
    let v = owner_event(&mut events, |e| match e {
        OwnerEvent::Rotated {
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
    // Alice learns of version 2 from the notice on the channel, before any message under it.
    alice.fetch(ROOM).await.unwrap();
    assert_eq!(alice.keyring().current(ROOM).unwrap().v, 2);
    let after = json!({"text": "after carol left"});
    alice.publish(ROOM, "say", &after).await.unwrap();
    assert_eq!(next(&mut alice_room).await.unwrap().data, after);

    // The directory gives carol nothing of version 2, and she cannot read what follows.
    let hers = carol.client().room_key_get(ROOM).await.unwrap();
    assert!(
        !hers.is_empty() && hers.iter().all(|k| k.v == 1),
        "{hers:?}"
    );
    let page = carol
        .client()
        .history(ROOM, None, None, false)
        .await
        .unwrap();
    let mut read = Vec::new();
    for m in &page.messages {
        let frame: Value = serde_json::from_str(m.get()).unwrap();
        if frame["event"] != "say" {
            continue;
        }
        let data = frame["data"].to_string();
        read.push(carol.decrypt(ROOM, "say", &data).await);
    }
    assert_eq!(read.len(), 2);
    assert_eq!(
        read[0].as_ref().unwrap(),
        &before,
        "old versions stay readable"
    );
    assert!(
        matches!(read[1], Err(E2eeError::UnknownKey { v: 2, .. })),
        "{:?}",
        read[1]
    );
    drop(owner);
}

#[tokio::test]
async fn a_restarted_client_still_decrypts_what_was_sent_before() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    let boss = owner(&server, &dir.path().join("owner")).await;
    let owner = boss.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let alice = demo_member(&server, dir.path(), "alice", 1).await;
    let bob_dir = dir.path().join("bob");
    let bob_token = token(SECRET, APP, "bob", false);
    let bob = member(&server.ws_url(), APP, &bob_token, keyring(&bob_dir, 2)).await;
    let (_alice_room, _) = joined(&alice, &mut events, ROOM, "alice").await;
    let (mut bob_room, _) = joined(&bob, &mut events, ROOM, "bob").await;
    alice.publish(ROOM, "say", &json!({"n": 1})).await.unwrap();
    assert_eq!(next(&mut bob_room).await.unwrap().data["n"], 1);
    // A rotation by the owner: messages under two versions.
    boss.rotate(ROOM, &["alice".into(), "bob".into()])
        .await
        .unwrap();
    alice.fetch(ROOM).await.unwrap();
    alice.publish(ROOM, "say", &json!({"n": 2})).await.unwrap();
    assert_eq!(next(&mut bob_room).await.unwrap().data["n"], 2);
    let device = bob.device_id().to_owned();

    // The process ends: everything in memory is gone.
    drop(bob_room);
    bob.client().close().await.unwrap();
    drop(bob);

    // A new process: the same directory on disk, no key handed in.
    let keys = Arc::new(Keyring::open(&bob_dir).unwrap());
    assert_eq!(keys.device().id(), device, "the same device");
    assert_eq!(keys.versions(ROOM).len(), 2);
    let bob = member(&server.ws_url(), APP, &bob_token, keys).await;
    let page = bob.client().history(ROOM, None, None, false).await.unwrap();
    let mut seen = Vec::new();
    for m in &page.messages {
        let frame: Value = serde_json::from_str(m.get()).unwrap();
        if frame["event"] == "say" {
            // Local keys only: nothing asked of the directory.
            let data = bob
                .decrypt_local(ROOM, "say", &frame["data"].to_string())
                .unwrap();
            seen.push(data["n"].as_u64().unwrap());
        }
    }
    assert_eq!(seen, [1, 2]);
    drop(owner);
}

#[tokio::test]
async fn the_directory_refuses_bad_keys_and_unauthorised_calls() {
    let server = TestServer::start().await;
    let alice = client(&server.ws_url(), APP, &token(SECRET, APP, "alice", false)).await;
    let code = |r: Result<(), waas_sdk::Error>| match r {
        Err(waas_sdk::Error::Rejected { code, .. }) => code.as_str(),
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(
        code(alice.keys_publish("bm90IGEga2V5").await),
        "bad_request"
    );
    let kid = "0123456789abcdef0123456789abcdef";
    let wrapped = vec![waas_sdk::protocol::e2ee::WrappedKey {
        sub: "alice".into(),
        device: kid.into(),
        key: "AAAA".into(),
    }];
    assert_eq!(
        code(alice.room_key_put(ROOM, kid, 1, wrapped.clone()).await),
        "forbidden"
    );
    let server_client = client(&server.ws_url(), APP, "demo-key").await;
    assert_eq!(
        code(
            server_client
                .room_key_put(ROOM, "ABC", 1, wrapped.clone())
                .await
        ),
        "bad_request"
    );
    assert_eq!(
        code(
            server_client
                .room_key_put("no spaces", kid, 1, wrapped)
                .await
        ),
        "invalid_channel"
    );
    let outsider = client(
        &server.ws_url(),
        APP,
        &waas_sdk::token::TokenBuilder::new("eve")
            .subscribe("public.>")
            .audience(APP)
            .sign_hs256(SECRET)
            .unwrap(),
    )
    .await;
    assert!(matches!(
        outsider.room_key_get(ROOM).await,
        Err(waas_sdk::Error::Rejected { code, .. }) if code.as_str() == "forbidden"
    ));
    // A key published by one connection is what another gets for that user.
    let keys = keyring(tempfile::tempdir().unwrap().path(), 4);
    alice
        .keys_publish(&keys.device().public_key_b64())
        .await
        .unwrap();
    let got = outsider.keys_get("alice").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].device, keys.device().id());
    assert!(outsider.keys_get("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_member_with_caps_share_owns_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start().await;
    // A token minted by the server (POST /tokens) carries caps.share like one signed locally.
    let rest = waas_sdk::ServerClient::new(server.http_url(), APP, "demo-key").unwrap();
    let room = || {
        waas_sdk::protocol::PatternSet::new(vec![waas_sdk::protocol::ChannelPattern::parse(
            "presence.>",
        )
        .unwrap()])
    };
    let caps = waas_sdk::Caps {
        subscribe: room(),
        publish: room(),
        share: room(),
        ..Default::default()
    };
    let minted = rest
        .mint_token(&waas_sdk::TokenRequest {
            sub: "dana".into(),
            caps,
            ttl: None,
            info: None,
        })
        .await
        .unwrap();
    let dana = member(
        &server.ws_url(),
        APP,
        &minted.token,
        keyring(&dir.path().join("dana"), 3),
    )
    .await;
    let owner = dana.own(ROOM, ROOM).await.unwrap();
    let mut events = owner.events();
    let bob = demo_member(&server, dir.path(), "bob", 2).await;
    let (mut room, _) = joined(&bob, &mut events, ROOM, "bob").await;
    let data = json!({"text": "from the owning member"});
    dana.publish(ROOM, "say", &data).await.unwrap();
    assert_eq!(next(&mut room).await.unwrap().data, data);
    // Sharing is limited to the token's patterns.
    let key = dana.keyring().current(ROOM).unwrap();
    assert!(matches!(
        dana.share("elsewhere.x", &key, &["bob".into()]).await,
        Err(E2eeError::NotShared { .. })
    ));
    drop(owner);
}

#[tokio::test]
async fn key_directory_limits_are_configurable() {
    let server = TestServer::with(|s| {
        s.limits.max_room_key_recipients = 1;
        s.limits.publish_burst = 2;
        s.limits.publish_rate = 1;
    })
    .await;
    let admin_client = client(&server.ws_url(), APP, "demo-key").await;
    let kid = "0123456789abcdef0123456789abcdef";
    let entry = |sub: &str| waas_sdk::protocol::e2ee::WrappedKey {
        sub: sub.into(),
        device: kid.into(),
        key: "AAAA".into(),
    };
    let refused = admin_client
        .room_key_put(ROOM, kid, 1, vec![entry("a"), entry("b")])
        .await;
    assert!(
        matches!(&refused, Err(waas_sdk::Error::Rejected { code, .. }) if code.as_str() == "bad_request"),
        "{refused:?}"
    );
    // That refusal spent one token of the burst of 2: one more write passes, the next does not.
    admin_client
        .room_key_put(ROOM, kid, 1, vec![entry("a")])
        .await
        .unwrap();
    let limited = admin_client
        .room_key_put(ROOM, kid, 1, vec![entry("a")])
        .await;
    assert!(
        matches!(&limited, Err(waas_sdk::Error::Rejected { code, .. }) if code.as_str() == "rate_limited"),
        "{limited:?}"
    );
    // Reads are not rate-limited.
    for _ in 0..3 {
        admin_client.room_key_get(ROOM).await.unwrap();
    }
}
