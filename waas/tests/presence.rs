//! Presence channels and occupancy: member lists, join/leave frames, the `presence` op and the
//! REST channel endpoints, on one node and across gateways (one of them killed).

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use waas_test_support::cluster::Cluster;
use waas_test_support::nats::shared_url;
use waas_test_support::{tokens, RawClient, TestServer};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

async fn get(base: &str, path: &str, key: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Subscribes and returns the member ids of the `members` frame that follows the ack.
async fn join(c: &mut RawClient, channel: &str, id: u64) -> Vec<String> {
    let ack = c
        .request(json!({"op": "subscribe", "id": id, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let members = c.next_op("members").await;
    assert_eq!(members["id"], id);
    assert_eq!(members["channel"], channel);
    ids(&members["members"])
}

fn ids(members: &Value) -> Vec<String> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn members_join_and_leave_on_one_node() {
    let server = TestServer::start().await;
    let base = server.http_url();
    let alice_token = tokens::with_info(
        "demo-secret",
        "demo",
        "alice",
        tokens::caps(&["presence.>"], &[]),
        json!({"name": "Alice"}),
    );
    let bob_token = tokens::with_info(
        "demo-secret",
        "demo",
        "bob",
        tokens::caps(&["presence.>"], &[]),
        json!({"name": "Bob"}),
    );

    let mut alice = RawClient::ready(server.addr, "demo", &alice_token).await;
    assert_eq!(join(&mut alice, "presence.room", 1).await, ["alice"]);
    let mut bob = RawClient::ready(server.addr, "demo", &bob_token).await;
    assert_eq!(join(&mut bob, "presence.room", 1).await, ["alice", "bob"]);
    let added = alice.next_op("member_added").await;
    assert_eq!(added["channel"], "presence.room");
    assert_eq!(
        added["member"],
        json!({"id": "bob", "info": {"name": "Bob"}})
    );

    // A second connection of bob's counts once: no event, two subscriptions, two users.
    let mut bob2 = RawClient::ready(server.addr, "demo", &bob_token).await;
    assert_eq!(join(&mut bob2, "presence.room", 1).await, ["alice", "bob"]);
    let (s, body) = get(&base, "/v1/apps/demo/channels/presence.room", "demo-key").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body,
        json!({"occupied": true, "subscription_count": 3, "user_count": 2})
    );
    let (s, body) = get(
        &base,
        "/v1/apps/demo/channels/presence.room/members",
        "demo-key",
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["members"],
        json!([{"id": "alice", "info": {"name": "Alice"}}, {"id": "bob", "info": {"name": "Bob"}}])
    );
    drop(bob2);
    bob.send_close(1000).await;
    let removed = alice.next_op("member_removed").await;
    assert_eq!(removed["member"]["id"], "bob");
    alice
        .send(&json!({"op": "presence", "id": 8, "channel": "presence.room"}))
        .await;
    let members = alice.next_op("members").await;
    assert_eq!(members["id"], 8);
    assert_eq!(ids(&members["members"]), ["alice"]);

    // Plain channels are counted too, and listed by prefix.
    let plain = tokens::demo("carol", &["chat.>"], &[]);
    let mut carol = RawClient::ready(server.addr, "demo", &plain).await;
    let ack = carol
        .request(json!({"op": "subscribe", "id": 1, "channel": "chat.lobby"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let (s, body) = get(&base, "/v1/apps/demo/channels?prefix=chat.", "demo-key").await;
    assert_eq!(s, 200);
    assert_eq!(
        body,
        json!({"channels": {"chat.lobby": {"subscription_count": 1}}})
    );
    let (_, body) = get(&base, "/v1/apps/demo/channels", "demo-key").await;
    assert_eq!(body["channels"]["presence.room"]["user_count"], 1);
    let (_, body) = get(&base, "/v1/apps/demo/channels/chat.empty", "demo-key").await;
    assert_eq!(body, json!({"occupied": false, "subscription_count": 0}));
}

#[tokio::test]
async fn bad_presence_requests_get_clear_errors() {
    let server = TestServer::with(|s| s.limits.max_member_info_bytes = 16).await;
    let base = server.http_url();
    let big = tokens::with_info(
        "demo-secret",
        "demo",
        "al",
        tokens::caps(&["presence.>"], &[]),
        json!({"name": "a long name indeed"}),
    );
    let mut c = RawClient::ready(server.addr, "demo", &big).await;
    let e = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.room"}))
        .await;
    assert_eq!(
        (e["op"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("max_member_info_bytes"));
    let e = c
        .request(json!({"op": "presence", "id": 2, "channel": "chat.room"}))
        .await;
    assert_eq!(e["code"], "bad_request", "{e}");
    c.send(&json!({"op": "presence", "id": 3, "channel": "presence.x"}))
        .await;
    let e = c.json().await;
    assert_eq!(
        e,
        json!({"op": "members", "id": 3, "channel": "presence.x", "members": []})
    );
    let none = tokens::demo("x", &[], &[]);
    let mut c = RawClient::ready(server.addr, "demo", &none).await;
    let e = c
        .request(json!({"op": "presence", "id": 4, "channel": "presence.x"}))
        .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    let e = c.request(json!({"op": "presence", "id": 5})).await;
    assert_eq!(e["code"], "bad_request", "{e}");

    let (s, body) = get(
        &base,
        "/v1/apps/demo/channels/chat.room/members",
        "demo-key",
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (s, body) = get(&base, "/v1/apps/demo/channels/a..b", "demo-key").await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_channel"))
    );
    let (s, _) = get(&base, "/v1/apps/demo/channels", "wrong-key").await;
    assert_eq!(s, 401);
}

/// A full presence channel refuses new members with `presence_full`, still takes another
/// connection of a member it has, and takes a newcomer again once someone leaves.
#[tokio::test]
async fn a_full_presence_channel_refuses_newcomers_until_someone_leaves() {
    let server = TestServer::with(|s| s.limits.max_presence_members = 2).await;
    let token = |sub: &str| {
        tokens::with_info(
            "demo-secret",
            "demo",
            sub,
            tokens::caps(&["presence.>"], &[]),
            json!({}),
        )
    };
    let mut alice = RawClient::ready(server.addr, "demo", &token("alice")).await;
    assert_eq!(join(&mut alice, "presence.room", 1).await, ["alice"]);
    let mut bob = RawClient::ready(server.addr, "demo", &token("bob")).await;
    join(&mut bob, "presence.room", 1).await;
    alice.next_op("member_added").await;

    let mut carol = RawClient::ready(server.addr, "demo", &token("carol")).await;
    let e = carol
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.room"}))
        .await;
    assert_eq!(
        (e["op"].as_str(), e["code"].as_str()),
        (Some("error"), Some("presence_full")),
        "{e}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("max_presence_members"));
    // Another channel is not full; another connection of a member is no newcomer.
    assert_eq!(join(&mut carol, "presence.other", 2).await, ["carol"]);
    let mut alice_phone = RawClient::ready(server.addr, "demo", &token("alice")).await;
    let mut both = join(&mut alice_phone, "presence.room", 1).await;
    both.sort();
    assert_eq!(both, ["alice", "bob"]);

    drop(bob);
    let left = alice.next_op("member_removed").await;
    assert_eq!(left["member"]["id"], "bob");
    let mut both = join(&mut carol, "presence.room", 3).await;
    both.sort();
    assert_eq!(both, ["alice", "carol"]);

    // Member ids are bounded like names.
    let long = "x".repeat(201);
    let mut c = RawClient::ready(server.addr, "demo", &token(&long)).await;
    let e = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.big"}))
        .await;
    assert_eq!(e["code"], "bad_request", "{e}");
}

async fn wait_for(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !check().await {
        assert!(Instant::now() < end, "{what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn presence_spans_gateways_and_a_killed_gateways_members_leave_within_the_ttl() {
    const TTL_MS: u64 = 1500;
    let flags = [
        "--presence-heartbeat-ms",
        "300",
        "--presence-ttl-ms",
        "1500",
    ];
    let mut cluster = Cluster::start(WAAS, &shared_url(), 0).await;
    cluster.add_gateway_with(&flags);
    cluster.add_gateway_with(&flags);
    let app = cluster.create_app("presence").await;
    let (a, b) = (cluster.gateways[0].addr, cluster.gateways[1].addr);
    let alice_token = tokens::with_info(
        &app.jwt_secret,
        &app.id,
        "alice",
        tokens::caps(&["presence.>"], &[]),
        json!({"n": 1}),
    );
    let bob_token = tokens::with_info(
        &app.jwt_secret,
        &app.id,
        "bob",
        tokens::caps(&["presence.>"], &[]),
        json!({"n": 2}),
    );

    let mut alice = RawClient::ready(a, &app.id, &alice_token).await;
    assert_eq!(join(&mut alice, "presence.room", 1).await, ["alice"]);
    // Bob on the other gateway sees alice once gateway B has heard from A.
    let mut bob = RawClient::ready(b, &app.id, &bob_token).await;
    let rest_b = cluster.gateway_http(1);
    let key = app.api_key.clone();
    wait_for(
        "alice visible from gateway B",
        Duration::from_secs(10),
        async || {
            let (_, body) = get(
                &rest_b,
                "/v1/apps/presence/channels/presence.room/members",
                &key,
            )
            .await;
            body["members"] == json!([{"id": "alice", "info": {"n": 1}}])
        },
    )
    .await;
    assert_eq!(join(&mut bob, "presence.room", 1).await, ["alice", "bob"]);
    let added = alice.next_op("member_added").await;
    assert_eq!(added["member"], json!({"id": "bob", "info": {"n": 2}}));
    let rest_a = cluster.gateway_http(0);
    wait_for(
        "counts across gateways",
        Duration::from_secs(10),
        async || {
            let (_, body) = get(&rest_a, "/v1/apps/presence/channels/presence.room", &key).await;
            body == json!({"occupied": true, "subscription_count": 2, "user_count": 2})
        },
    )
    .await;

    // Bob leaves on B: alice on A is told.
    let ack = bob
        .request(json!({"op": "unsubscribe", "id": 2, "channel": "presence.room"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let removed = alice.next_op("member_removed").await;
    assert_eq!(removed["member"]["id"], "bob");
    assert_eq!(join(&mut bob, "presence.room", 3).await, ["alice", "bob"]);
    let added = alice.next_op("member_added").await;
    assert_eq!(added["member"]["id"], "bob");

    // Gateway A dies without a word: bob hears alice leave within the TTL (plus a sweep).
    let killed_at = Instant::now();
    cluster.gateways[0].child.kill().unwrap();
    cluster.gateways[0].child.wait().unwrap();
    let removed = bob.next_op("member_removed").await;
    let took = killed_at.elapsed();
    assert_eq!(removed["member"]["id"], "alice");
    assert!(
        took <= Duration::from_millis(TTL_MS + 1000),
        "alice left after {took:?}, TTL {TTL_MS} ms"
    );
    let (_, body) = get(&rest_b, "/v1/apps/presence/channels/presence.room", &key).await;
    assert_eq!(
        body,
        json!({"occupied": true, "subscription_count": 1, "user_count": 1})
    );
}

#[tokio::test]
async fn the_sdk_lists_members_and_streams_their_comings_and_goings() {
    use futures_util::StreamExt;
    use waas_sdk::{Client, PresenceEvent};
    let server = TestServer::start().await;
    let connect = |sub: &'static str| {
        let url = server.ws_url();
        async move {
            Client::builder()
                .url(url)
                .app("demo")
                .token(tokens::with_info(
                    "demo-secret",
                    "demo",
                    sub,
                    tokens::caps(&["presence.>"], &[]),
                    json!({"who": sub}),
                ))
                .connect()
                .await
                .expect("connect")
        }
    };
    let alice = connect("alice").await;
    let mut events = alice.presence_events();
    let _sub = alice.subscribe("presence.sdk").await.unwrap();
    let next = async |events: &mut waas_sdk::PresenceEvents| {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a presence event")
            .expect("stream open")
    };
    match next(&mut events).await {
        PresenceEvent::Members { channel, members } => {
            assert_eq!(channel, "presence.sdk");
            assert_eq!(ids(&serde_json::to_value(&members).unwrap()), ["alice"]);
        }
        other => panic!("expected the member list, got {other:?}"),
    }
    let bob = connect("bob").await;
    let bob_sub = bob.subscribe("presence.sdk").await.unwrap();
    match next(&mut events).await {
        PresenceEvent::MemberAdded { member, .. } => {
            assert_eq!(
                (member.id.as_str(), member.info),
                ("bob", Some(json!({"who": "bob"})))
            )
        }
        other => panic!("expected bob to join, got {other:?}"),
    }
    let members = alice.members("presence.sdk").await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    bob_sub.unsubscribe().await.unwrap();
    loop {
        match next(&mut events).await {
            PresenceEvent::MemberRemoved { member, .. } => {
                assert_eq!(member.id, "bob");
                break;
            }
            PresenceEvent::Members { .. } => continue,
            other => panic!("expected bob to leave, got {other:?}"),
        }
    }
    let e = alice.members("chat.plain").await.unwrap_err();
    assert!(e.to_string().contains("not a presence channel"), "{e}");
}

#[tokio::test]
async fn tokens_minted_by_rest_carry_member_info() {
    let server = TestServer::start().await;
    let mint = |body: Value| {
        let url = format!("{}/v1/apps/demo/tokens", server.http_url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth("demo-key")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = mint(
        json!({"sub": "dora", "caps": {"subscribe": ["presence.>"]}, "info": {"name": "Dora"}}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let mut c = RawClient::ready(server.addr, "demo", body["token"].as_str().unwrap()).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "presence.minted"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let members = c.next_op("members").await;
    assert_eq!(
        members["members"],
        json!([{"id": "dora", "info": {"name": "Dora"}}])
    );
    let (s, body) = mint(json!({"sub": "x", "info": "y".repeat(2000)})).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}
