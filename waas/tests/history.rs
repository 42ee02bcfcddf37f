//! History, offsets and recovery on `waas dev` (history in memory), over real sockets.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use waas_test_support::{tokens, RawClient, TestServer};

async fn publish(server: &TestServer, channel: &str, n: u64) -> u64 {
    publish_to(server, ("demo", "demo-key"), channel, n).await
}

async fn publish_to(server: &TestServer, (app, key): (&str, &str), channel: &str, n: u64) -> u64 {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/apps/{app}/publish", server.http_url()))
        .bearer_auth(key)
        .json(&json!({"channel": channel, "event": "n", "data": {"n": n}}))
        .send()
        .await
        .expect("publish");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["offsets"][channel].as_u64().unwrap()
}

async fn history(server: &TestServer, channel: &str, query: &str) -> (u16, Value) {
    history_of(server, ("demo", "demo-key"), channel, query).await
}

async fn history_of(
    server: &TestServer,
    (app, key): (&str, &str),
    channel: &str,
    query: &str,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v1/apps/{app}/channels/{channel}/history{query}",
            server.http_url()
        ))
        .bearer_auth(key)
        .send()
        .await
        .expect("history");
    (
        resp.status().as_u16(),
        resp.json().await.expect("json body"),
    )
}

fn ns(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"]["n"].as_u64().unwrap())
        .collect()
}

/// Reads frames until the ack of `id`, returning the messages before it and the ack.
async fn until_ack(c: &mut RawClient, id: u64) -> (Vec<Value>, Value) {
    let mut messages = Vec::new();
    loop {
        let f = c.json().await;
        match f["op"].as_str() {
            Some("message") => messages.push(f),
            Some("ack") | Some("error") if f["id"] == id => return (messages, f),
            _ => panic!("unexpected frame {f}"),
        }
    }
}

/// A namespace's rule bounds its channels' history apart from the app's own limits, as
/// declared in the configuration file.
#[tokio::test]
async fn namespaces_keep_history_by_their_own_rules() {
    let app: waas::settings::AppSettings = toml::from_str(
        r#"
id = "ns"
api_keys = ["ns-key"]
jwt_secret = "ns-secret"
[limits]
history_size = 3
[limits.history_namespaces.chat]
history_size = 10
[limits.history_namespaces.cursor]
history_size = 0
"#,
    )
    .expect("the documented TOML form parses");
    let server = TestServer::with(|s| s.apps.push(app)).await;
    let ns_app = ("ns", "ns-key");
    for channel in ["chat.room", "chat", "news.x", "cursor.x"] {
        for n in 1..=12 {
            publish_to(&server, ns_app, channel, n).await;
        }
    }
    let kept = |page: &Value| ns(&page["messages"]);
    let (status, page) = history_of(&server, ns_app, "chat.room", "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(kept(&page), (3..=12).collect::<Vec<_>>(), "the chat rule");
    // A channel named like the namespace is not in it, nor is another namespace.
    for channel in ["chat", "news.x"] {
        let (_, page) = history_of(&server, ns_app, channel, "").await;
        assert_eq!(kept(&page), [10, 11, 12], "{channel}: the app's limit");
    }
    let (_, page) = history_of(&server, ns_app, "cursor.x", "").await;
    assert_eq!(kept(&page), Vec::<u64>::new(), "cursor keeps none");
    assert_eq!(page["offset"], 12, "offsets still count without history");

    // Recovery follows the same rule: 5 back is within chat's 10, beyond cursor's 0.
    let token = tokens::hs256(
        "ns-secret",
        "ann",
        Some("ns"),
        tokens::caps(&[">"], &[]),
        600,
    );
    let mut c = RawClient::ready(server.addr, "ns", &token).await;
    for (id, channel, recovered) in [(1, "chat.room", true), (2, "cursor.x", false)] {
        let epoch = history_of(&server, ns_app, channel, "").await.1["epoch"].clone();
        c.send(&json!({"op": "subscribe", "id": id, "channel": channel,
                       "since": {"offset": 7, "epoch": epoch}}))
            .await;
        let (messages, ack) = until_ack(&mut c, id).await;
        assert_eq!(ack["recovered"], recovered, "{channel}: {ack}");
        let got: Vec<u64> = messages
            .iter()
            .map(|m| m["data"]["n"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = if recovered {
            (8..=12).collect()
        } else {
            vec![]
        };
        assert_eq!(got, want, "{channel}");
    }
}

#[tokio::test]
async fn history_over_rest_and_socket() {
    let server = TestServer::start().await;
    for n in 1..=5 {
        assert_eq!(publish(&server, "news.eu", n).await, n);
    }
    let (status, page) = history(&server, "news.eu", "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ns(&page["messages"]), [1, 2, 3, 4, 5]);
    assert_eq!(page["offset"], 5);
    assert_eq!(page["channel"], "news.eu");
    let epoch = page["epoch"].as_str().unwrap().to_owned();
    assert!(!epoch.is_empty());
    assert_eq!(page["messages"][0]["op"], "message");
    assert_eq!(page["messages"][0]["offset"], 1);

    let (_, page) = history(&server, "news.eu", "?since=2&limit=2").await;
    assert_eq!(ns(&page["messages"]), [3, 4]);
    let (_, page) = history(&server, "news.eu", "?reverse=true&limit=2").await;
    assert_eq!(ns(&page["messages"]), [5, 4]);
    let (_, page) = history(&server, "news.eu", "?reverse=true&since=3").await;
    assert_eq!(ns(&page["messages"]), [2, 1]);
    let (_, page) = history(&server, "news.none", "").await;
    assert_eq!(
        (page["offset"].clone(), ns(&page["messages"])),
        (json!(0), vec![])
    );

    for bad in ["?limit=0", "?limit=101", "?since=x", "?reverse=maybe"] {
        let (status, body) = history(&server, "news.eu", bad).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (status, body) = history(&server, "news..eu", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_channel"))
    );

    // Over the socket, with the subscribe capability.
    let token = tokens::demo("ann", &["news.*"], &[]);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send(&json!({"op": "history", "id": 3, "channel": "news.eu", "since": 3}))
        .await;
    let f = c.json().await;
    assert_eq!(
        (f["op"].as_str(), f["id"].as_u64()),
        (Some("history"), Some(3)),
        "{f}"
    );
    assert_eq!(ns(&f["messages"]), [4, 5]);
    assert_eq!(f["epoch"], epoch.as_str());
    let e = c
        .request(json!({"op": "history", "id": 4, "channel": "chat.x"}))
        .await;
    assert_eq!(e["code"], "forbidden");
    let e = c
        .request(json!({"op": "history", "id": 5, "channel": "news.eu", "since": {"offset": 1, "epoch": "e"}}))
        .await;
    assert_eq!(e["code"], "bad_request");
    let e = c
        .request(json!({"op": "subscribe", "id": 6, "channel": "news.eu", "since": 3}))
        .await;
    assert_eq!(e["code"], "bad_request");
}

#[tokio::test]
async fn subscribe_ack_gives_position_and_recovery_fills_the_gap() {
    let server = TestServer::start().await;
    let token = tokens::demo("bo", &["room.*"], &[]);
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    publish(&server, "room.1", 1).await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": "room.1"}))
        .await;
    assert_eq!(ack["offset"], 1, "{ack}");
    assert!(ack.get("recovered").is_none());
    let epoch = ack["epoch"].clone();
    publish(&server, "room.1", 2).await;
    assert_eq!(c.json().await["offset"], 2);
    drop(c);

    for n in 3..=6 {
        publish(&server, "room.1", n).await;
    }
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send(&json!({"op": "subscribe", "id": 2, "channel": "room.1", "since": {"offset": 2, "epoch": epoch}}))
        .await;
    let (missed, ack) = until_ack(&mut c, 2).await;
    let missed: Vec<u64> = missed
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, [3, 4, 5, 6]);
    assert_eq!(
        (
            ack["recovered"].clone(),
            ack["offset"].clone(),
            ack["epoch"].clone()
        ),
        (json!(true), json!(6), epoch.clone())
    );
    publish(&server, "room.1", 7).await;
    assert_eq!(c.json().await["offset"], 7);

    // Another epoch: nothing is sent, and the client is told.
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send(&json!({"op": "subscribe", "id": 3, "channel": "room.1", "since": {"offset": 2, "epoch": "stale"}}))
        .await;
    let (missed, ack) = until_ack(&mut c, 3).await;
    assert!(missed.is_empty());
    assert_eq!(
        (ack["recovered"].clone(), ack["offset"].clone()),
        (json!(false), json!(7))
    );
}

/// A client back after missing more messages than its queue takes frames
/// (`max_queued_messages`) recovers them all: the recovery counts as one piece, by its bytes.
/// Counted frame by frame it closed the client as a slow consumer, and every reconnect after
/// that had more to recover.
#[tokio::test]
async fn a_recovery_longer_than_the_frame_limit_is_sent_whole() {
    let server = TestServer::with(|s| {
        s.limits.history_size = 1000;
        s.limits.max_queued_messages = 16;
    })
    .await;
    let token = tokens::demo("fa", &["long.*"], &[]);
    let seen = publish(&server, "long.1", 0).await;
    let (_, page) = history(&server, "long.1", "").await;
    let epoch = page["epoch"].clone();
    for n in 1..=100 {
        publish(&server, "long.1", n).await;
    }
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send(&json!({"op": "subscribe", "id": 1, "channel": "long.1", "since": {"offset": seen, "epoch": epoch}}))
        .await;
    let (missed, ack) = until_ack(&mut c, 1).await;
    let missed: Vec<u64> = missed
        .iter()
        .map(|m| m["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, (1..=100).collect::<Vec<_>>());
    assert_eq!(ack["recovered"], true, "{ack}");
    // Still open and live.
    publish(&server, "long.1", 101).await;
    assert_eq!(c.json().await["data"]["n"], 101);
}

#[tokio::test]
async fn recovery_beyond_the_window_is_reported() {
    let server = TestServer::with(|s| s.limits.history_size = 3).await;
    let token = tokens::demo("cy", &["room.*"], &[]);
    for n in 1..=2 {
        publish(&server, "room.2", n).await;
    }
    let (_, page) = history(&server, "room.2", "").await;
    let epoch = page["epoch"].clone();
    for n in 3..=7 {
        publish(&server, "room.2", n).await;
    }
    let mut c = RawClient::ready(server.addr, "demo", &token).await;
    c.send(&json!({"op": "subscribe", "id": 1, "channel": "room.2", "since": {"offset": 2, "epoch": epoch}}))
        .await;
    let (missed, ack) = until_ack(&mut c, 1).await;
    let missed: Vec<u64> = missed
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, [5, 6, 7], "what is left is sent, after a gap");
    assert_eq!(ack["recovered"], false);
}

/// Messages published while a client recovers reach it exactly once and in order: it is
/// subscribed live before history is read, and live messages already in history are dropped.
#[tokio::test]
async fn publishes_during_recovery_are_neither_lost_nor_doubled() {
    let server = TestServer::with(|s| s.limits.history_size = 10_000).await;
    let token = tokens::demo("di", &["busy.*"], &[]);
    publish(&server, "busy.1", 0).await;
    let (_, page) = history(&server, "busy.1", "").await;
    let epoch = page["epoch"].clone();
    let url = server.http_url();
    let publisher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for n in 1..=400u64 {
            let resp = http
                .post(format!("{url}/v1/apps/demo/publish"))
                .bearer_auth("demo-key")
                .json(&json!({"channel": "busy.1", "event": "n", "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
    });
    // Recover several times while the publisher runs; each recovery must see a gapless run.
    let mut last_seen = 1u64;
    for round in 0..4u64 {
        let mut c = RawClient::ready(server.addr, "demo", &token).await;
        c.send(&json!({"op": "subscribe", "id": round, "channel": "busy.1", "since": {"offset": last_seen, "epoch": epoch}}))
            .await;
        let (missed, ack) = until_ack(&mut c, round).await;
        assert_eq!(ack["recovered"], true, "{ack}");
        for m in missed {
            let offset = m["offset"].as_u64().unwrap();
            assert_eq!(offset, last_seen + 1, "gapless and in order");
            last_seen = offset;
        }
        assert!(ack["offset"].as_u64().unwrap() >= last_seen);
        // Take some live messages, then drop the connection.
        for _ in 0..20 {
            if last_seen >= 401 {
                break;
            }
            let m = c.json().await;
            let offset = m["offset"].as_u64().unwrap();
            assert_eq!(offset, last_seen.max(ack["offset"].as_u64().unwrap()) + 1);
            last_seen = offset;
        }
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn sdk_recovers_across_reconnects_and_reports_what_it_cannot() {
    let server = TestServer::with(|s| s.limits.history_size = 5).await;
    // Reconnects wait while the test holds the gate, so that it decides what is missed.
    let gate = std::sync::Arc::new(tokio::sync::RwLock::new(()));
    let provider_gate = gate.clone();
    let client = waas_sdk::Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token_provider(move || {
            let gate = provider_gate.clone();
            async move {
                let _open = gate.read().await;
                Ok::<_, std::io::Error>("demo-key".to_owned())
            }
        })
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut sub = client.subscribe("feed.1").await.unwrap();
    publish(&server, "feed.1", 1).await;
    assert_eq!(sub.next().await.unwrap().offset, 1);

    // Drop every connection; publish while the client is away; it comes back for them.
    server
        .gateway
        .connections
        .close_all(waas_protocol::CloseCode::GOING_AWAY);
    for n in 2..=4 {
        publish(&server, "feed.1", n).await;
    }
    let mut offsets = Vec::new();
    for _ in 0..3 {
        offsets.push(sub.next().await.unwrap().offset);
    }
    assert_eq!(offsets, [2, 3, 4]);

    // Too much missed this time: the SDK says so.
    wait_connected(&mut events).await;
    let closed = gate.write().await;
    server
        .gateway
        .connections
        .close_all(waas_protocol::CloseCode::GOING_AWAY);
    for n in 5..=12 {
        publish(&server, "feed.1", n).await;
    }
    drop(closed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("an Unrecovered event")
            .unwrap();
        if let waas_sdk::ConnectionEvent::Unrecovered { channel } = event {
            assert_eq!(channel, "feed.1");
            break;
        }
    }
    // What was still there arrives after the gap, once.
    let m = sub.next().await.unwrap();
    assert_eq!(m.offset, 8);
}

async fn wait_connected(events: &mut waas_sdk::Events) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(waas_sdk::ConnectionEvent::Connected { .. })) => return,
            Ok(Some(_)) => continue,
            other => panic!("no Connected event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn servers_read_history_through_the_sdk() {
    let server = TestServer::start().await;
    for n in 1..=4 {
        publish(&server, "orders/2024#eu", n).await;
    }
    let client = waas_sdk::ServerClient::new(server.http_url(), "demo", "demo-key").unwrap();
    let page = client
        .history("orders/2024#eu", Some(1), Some(2), false)
        .await
        .unwrap();
    assert_eq!((page.channel.as_str(), page.offset), ("orders/2024#eu", 4));
    let offsets: Vec<u64> = page
        .messages
        .iter()
        .map(
            |m| match waas_protocol::ServerFrame::parse(m.get()).unwrap() {
                waas_protocol::ServerFrame::Message { offset, .. } => offset,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert_eq!(offsets, [2, 3]);
    let newest = client
        .history("orders/2024#eu", None, Some(1), true)
        .await
        .unwrap();
    assert!(newest.messages[0].get().ends_with(r#""offset":4}"#));
    match client.history("bad..name", None, None, false).await {
        Err(waas_sdk::Error::Http { status, code, .. }) => {
            assert_eq!(
                (status, code),
                (400, waas_protocol::ErrorCode::InvalidChannel)
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn clients_read_history_over_the_socket_through_the_sdk() {
    let server = TestServer::start().await;
    for n in 1..=3 {
        publish(&server, "feed.2", n).await;
    }
    let client = waas_sdk::Client::builder()
        .url(server.ws_url())
        .app("demo")
        .token(tokens::demo("eve", &["feed.*"], &[]))
        .connect()
        .await
        .unwrap();
    let page = client.history("feed.2", None, Some(2), true).await.unwrap();
    assert_eq!((page.channel.as_str(), page.offset), ("feed.2", 3));
    assert_eq!(page.messages.len(), 2);
    assert!(page.messages[0].get().ends_with(r#""offset":3}"#));
    let after = client
        .history("feed.2", Some(2), None, false)
        .await
        .unwrap();
    assert_eq!(after.messages.len(), 1);
    match client.history("other.1", None, None, false).await {
        Err(waas_sdk::Error::Rejected { code, .. }) => {
            assert_eq!(code, waas_protocol::ErrorCode::Forbidden)
        }
        other => panic!("{other:?}"),
    }
}
