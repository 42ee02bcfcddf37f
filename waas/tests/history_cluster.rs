//! History and recovery in cluster mode: gateways of the real `waas` binary keeping channel
//! history in the machine's NATS JetStream, apps in PostgreSQL.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;
use waas_sdk::ConnectionEvent;
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::sdk::wait_connected_to;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

async fn publish(http: &reqwest::Client, base: &str, app: &TestApp, channel: &str, n: u64) -> u64 {
    let r = http
        .post(format!("{base}/v1/apps/{}/publish", app.id))
        .bearer_auth(&app.api_key)
        .json(&json!({"channel": channel, "event": "n", "data": n}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["offsets"][channel].as_u64().unwrap()
}

/// A history page read over REST from the gateway at `base`: its epoch and the numbers published.
async fn history_page(
    http: &reqwest::Client,
    base: &str,
    app: &TestApp,
    channel: &str,
    query: &str,
) -> (String, Vec<u64>, Value) {
    let page: Value = http
        .get(format!(
            "{base}/v1/apps/{}/channels/{channel}/history{query}",
            app.id
        ))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ns = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_u64().unwrap())
        .collect();
    (page["epoch"].as_str().unwrap().to_owned(), ns, page)
}

/// The numbers of the messages a client receives before its next non-message frame, and that frame.
async fn numbers_until_reply(client: &mut RawClient) -> (Vec<u64>, Value) {
    let mut got = Vec::new();
    loop {
        let f = client.json().await;
        if f["op"] == "message" {
            got.push(f["data"].as_u64().unwrap());
        } else {
            return (got, f);
        }
    }
}

/// Offsets come from the stream, so publishes through different gateways share one order,
/// and every gateway's subscribers see it; history reads it back on any gateway.
#[tokio::test]
async fn offsets_are_shared_by_gateways_and_history_is_readable_anywhere() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("shared").await;
    let http = reqwest::Client::new();
    let t = app.token("u", tokens::caps(&["room"], &[]));
    let mut a = RawClient::ready(cluster.gateways[0].addr, &app.id, &t).await;
    let ack = a
        .request(json!({"op": "subscribe", "id": 1, "channel": "room"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    let mut last = 0;
    for n in 1..=6u64 {
        let base = cluster.gateway_http((n % 2) as usize);
        let offset = publish(&http, &base, &app, "room", n).await;
        assert!(offset > last, "offsets increase across gateways");
        last = offset;
    }
    let mut seen = Vec::new();
    for _ in 1..=6 {
        let m = a.json().await;
        seen.push((m["data"].as_u64().unwrap(), m["offset"].as_u64().unwrap()));
    }
    assert_eq!(
        seen.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1));

    let query = format!("?since={}&limit=3", seen[1].1);
    let (page_epoch, ns, page) =
        history_page(&http, &cluster.gateway_http(1), &app, "room", &query).await;
    assert_eq!(page_epoch, epoch);
    assert_eq!(ns, [3, 4, 5]);
    assert_eq!(page["messages"][0]["offset"], seen[2].1);
    let (_, ns, _) = history_page(
        &http,
        &cluster.gateway_http(0),
        &app,
        "room",
        "?reverse=true&limit=2",
    )
    .await;
    assert_eq!(ns, [6, 5]);

    // Recovery on the other gateway, from the position after message 2.
    let mut b = RawClient::ready(cluster.gateways[1].addr, &app.id, &t).await;
    b.send(&json!({"op": "subscribe", "id": 2, "channel": "room", "since": {"offset": seen[1].1, "epoch": epoch}}))
        .await;
    let (got, ack) = numbers_until_reply(&mut b).await;
    assert_eq!(got, [3, 4, 5, 6]);
    assert_eq!(
        (ack["recovered"].clone(), ack["offset"].clone()),
        (json!(true), json!(last))
    );
}

/// The acceptance test: a publisher sends 10,000 numbered messages at a steady rate while
/// the subscriber's gateway is killed and its SDK reconnects to another; the application gets all
/// 10,000, in order, none twice.
#[tokio::test]
async fn ten_thousand_messages_survive_a_gateway_failover() {
    const TOTAL: u64 = 10_000;
    let mut cluster = Cluster::start(WAAS, &shared_url(), 3).await;
    let app = cluster
        .create_app_with("failover", json!({"limits": {"history_size": 20_000}}))
        .await;
    let urls = [
        format!("ws://{}", cluster.gateways[0].addr),
        format!("ws://{}", cluster.gateways[1].addr),
    ];
    let client = waas_sdk::Client::builder()
        .urls(urls.iter().cloned())
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["ticks"], &[])))
        .subscription_capacity(2 * TOTAL as usize)
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut ticks = client.subscribe("ticks").await.unwrap();

    // The publisher goes through the third gateway, which is not killed: ~1000 per second.
    let base = cluster.gateway_http(2);
    let publisher_app = TestApp {
        id: app.id.clone(),
        api_key: app.api_key.clone(),
        jwt_secret: app.jwt_secret.clone(),
    };
    let publisher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 1..=TOTAL {
            tick.tick().await;
            publish(&http, &base, &publisher_app, "ticks", n).await;
        }
    });

    let mut received = Vec::with_capacity(TOTAL as usize);
    let mut offsets = Vec::with_capacity(TOTAL as usize);
    let mut killed = false;
    while (received.len() as u64) < TOTAL {
        let m = tokio::time::timeout(Duration::from_secs(30), ticks.next())
            .await
            .unwrap_or_else(|_| panic!("stalled after {} messages", received.len()))
            .expect("subscription ended");
        received.push(m.data::<u64>().unwrap());
        offsets.push(m.offset);
        if !killed && received.len() == 3000 {
            // Kill the subscriber's gateway without a goodbye, mid-stream.
            drop(cluster.gateways.remove(0));
            killed = true;
        }
    }
    publisher.await.unwrap();
    wait_connected_to(&mut events, &urls[1]).await;
    let expected: Vec<u64> = (1..=TOTAL).collect();
    if received != expected {
        let first_bad = received
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(received.len());
        panic!(
            "wrong sequence from index {first_bad}: {:?}",
            &received[first_bad.saturating_sub(3)..(first_bad + 3).min(received.len())]
        );
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "offsets increase");
    // Nothing more arrives: no duplicate was waiting behind the last message.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ticks.next())
            .await
            .is_err(),
        "an extra message arrived"
    );
}

/// Recovering from further back than the stream keeps says so, and the SDK surfaces it.
#[tokio::test]
async fn recovery_beyond_the_window_is_reported_by_the_sdk() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster
        .create_app_with("window", json!({"limits": {"history_size": 5}}))
        .await;
    let urls = [
        format!("ws://{}", cluster.gateways[0].addr),
        format!("ws://{}", cluster.gateways[1].addr),
    ];
    // Reconnects wait while the test holds the gate, so the test decides what is missed.
    let gate = std::sync::Arc::new(tokio::sync::RwLock::new(()));
    let provider_gate = gate.clone();
    let t = app.token("tablet", tokens::caps(&["feed"], &[]));
    let client = waas_sdk::Client::builder()
        .urls(urls.iter().cloned())
        .app(&app.id)
        .token_provider(move || {
            let gate = provider_gate.clone();
            let t = t.clone();
            async move {
                let _open = gate.read().await;
                Ok::<_, std::io::Error>(t)
            }
        })
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut feed = client.subscribe("feed").await.unwrap();
    let http = reqwest::Client::new();
    let base = cluster.gateway_http(1);
    publish(&http, &base, &app, "feed", 1).await;
    assert_eq!(feed.next().await.unwrap().data::<u64>().unwrap(), 1);

    let closed = gate.write().await;
    drop(cluster.gateways.remove(0));
    for n in 2..=12 {
        publish(&http, &base, &app, "feed", n).await;
    }
    drop(closed);
    let unrecovered = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
            Ok(Some(ConnectionEvent::Unrecovered { channel })) => break channel,
            Ok(Some(_)) => continue,
            other => panic!("no Unrecovered event: {other:?}"),
        }
    };
    assert_eq!(unrecovered, "feed");
    // The last five are still in the stream and are delivered after the gap.
    for n in 8..=12 {
        assert_eq!(feed.next().await.unwrap().data::<u64>().unwrap(), n);
    }
}

/// A namespace with a rule of its own keeps its history in a stream of its own: its bound
/// applies to its channels only, and its messages still reach every gateway in offset order,
/// readable and recoverable anywhere.
#[tokio::test]
async fn namespaces_keep_history_by_their_own_rules() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    // Limits given at creation: a later PATCH reaches each gateway a moment after it answers, and
    // a subscribe in between would start on the app's stream.
    let app = cluster
        .create_app_with(
            "namespaces",
            json!({"limits": {"history_size": 3, "history_namespaces": {"chat": {"history_size": 10}}}}),
        )
        .await;
    let http = reqwest::Client::new();
    let t = app.token("u", tokens::caps(&["chat.*", "news.*"], &[]));
    let mut sub = RawClient::ready(cluster.gateways[1].addr, &app.id, &t).await;
    let mut epochs = std::collections::HashMap::new();
    for (id, channel) in [(1, "chat.room"), (2, "news.x")] {
        let ack = sub
            .request(json!({"op": "subscribe", "id": id, "channel": channel}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
        epochs.insert(channel, ack["epoch"].as_str().unwrap().to_owned());
    }
    for n in 1..=12u64 {
        for channel in ["chat.room", "news.x"] {
            let base = cluster.gateway_http((n % 2) as usize);
            publish(&http, &base, &app, channel, n).await;
        }
    }
    let mut live: std::collections::HashMap<String, Vec<(u64, u64)>> = Default::default();
    for _ in 0..24 {
        let m = sub.json().await;
        assert_eq!(m["op"], "message", "{m}");
        live.entry(m["channel"].as_str().unwrap().to_owned())
            .or_default()
            .push((m["data"].as_u64().unwrap(), m["offset"].as_u64().unwrap()));
    }
    for channel in ["chat.room", "news.x"] {
        let got = &live[channel];
        assert_eq!(
            got.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            (1..=12).collect::<Vec<_>>(),
            "{channel} live, across gateways"
        );
        assert!(
            got.windows(2).all(|w| w[0].1 < w[1].1),
            "{channel}: offsets increase"
        );
    }

    let (epoch, chat, _) =
        history_page(&http, &cluster.gateway_http(0), &app, "chat.room", "").await;
    assert_eq!(chat, (3..=12).collect::<Vec<_>>(), "the namespace keeps 10");
    assert_eq!(epoch, epochs["chat.room"]);
    let (_, news, _) = history_page(&http, &cluster.gateway_http(1), &app, "news.x", "").await;
    assert_eq!(news, [10, 11, 12], "the app keeps 3");

    // Recovery on the other gateway, from the 7th chat message.
    let mut b = RawClient::ready(cluster.gateways[0].addr, &app.id, &t).await;
    let since = live["chat.room"][6].1;
    b.send(&json!({"op": "subscribe", "id": 9, "channel": "chat.room",
                   "since": {"offset": since, "epoch": epochs["chat.room"]}}))
        .await;
    let (got, ack) = numbers_until_reply(&mut b).await;
    assert_eq!(got, (8..=12).collect::<Vec<_>>());
    assert_eq!(ack["recovered"], true, "{ack}");
}

/// Offsets and numbers of the next `count` messages a raw client receives.
async fn messages(client: &mut RawClient, count: usize) -> Vec<(u64, u64)> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let m = client.json().await;
        assert_eq!(m["op"], "message", "{m}");
        got.push((m["offset"].as_u64().unwrap(), m["data"].as_u64().unwrap()));
    }
    got
}

/// Apps without history bypass JetStream, so nothing numbers a channel for the whole cluster: the
/// gateway that delivers a message numbers it. A subscriber of a channel published to through
/// two gateways (REST on one, a socket on the other) still gets every message once, with offsets
/// strictly increasing, and the SDK, which drops any offset not above the last, hands over all.
#[tokio::test]
async fn without_history_publishes_through_two_gateways_all_arrive_in_offset_order() {
    const TOTAL: u64 = 60;
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster
        .create_app_with("nohistory", json!({"limits": {"history_size": 0}}))
        .await;
    let http = reqwest::Client::new();
    let reader = app.token("reader", tokens::caps(&["room"], &[]));
    let mut subs = Vec::new();
    for gw in [0, 1] {
        let mut sub = RawClient::ready(cluster.gateways[gw].addr, &app.id, &reader).await;
        let ack = sub
            .request(json!({"op": "subscribe", "id": 1, "channel": "room"}))
            .await;
        assert_eq!(ack["op"], "ack", "{ack}");
        subs.push((sub, ack["offset"].as_u64().unwrap()));
    }
    let client = waas_sdk::Client::builder()
        .url(format!("ws://{}", cluster.gateways[0].addr))
        .app(&app.id)
        .token(reader.clone())
        .connect()
        .await
        .unwrap();
    let mut room = client.subscribe("room").await.unwrap();
    let mut writer = RawClient::ready(
        cluster.gateways[1].addr,
        &app.id,
        &app.token("writer", tokens::caps(&[], &["room"])),
    )
    .await;

    // Odd numbers over REST through gateway 0, even ones over a socket through gateway 1.
    let (mut rest_acks, mut socket_acks) = (Vec::new(), Vec::new());
    for n in 1..=TOTAL {
        if n % 2 == 1 {
            rest_acks.push(publish(&http, &cluster.gateway_http(0), &app, "room", n).await);
        } else {
            let ack = writer
                .request(
                    json!({"op": "publish", "id": n, "channel": "room", "event": "n", "data": n}),
                )
                .await;
            assert_eq!(ack["op"], "ack", "{ack}");
            socket_acks.push(ack["offset"].as_u64().unwrap());
        }
    }
    for acks in [&rest_acks, &socket_acks] {
        assert!(
            acks.windows(2).all(|w| w[0] < w[1]),
            "publish acks increase per gateway: {acks:?}"
        );
    }

    let all: Vec<u64> = (1..=TOTAL).collect();
    for (gw, (sub, acked)) in subs.iter_mut().enumerate() {
        let got = messages(sub, TOTAL as usize).await;
        let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
        assert!(
            offsets[0] > *acked && offsets.windows(2).all(|w| w[0] < w[1]),
            "gateway {gw}: offsets strictly increase from the ack's {acked}: {offsets:?}"
        );
        let mut numbers: Vec<u64> = got.iter().map(|(_, n)| *n).collect();
        numbers.sort_unstable();
        assert_eq!(numbers, all, "gateway {gw}: every message exactly once");
    }
    let mut handed = Vec::with_capacity(TOTAL as usize);
    while (handed.len() as u64) < TOTAL {
        let m = tokio::time::timeout(Duration::from_secs(10), room.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the SDK handed over {} of {TOTAL} messages: {handed:?}",
                    handed.len()
                )
            })
            .expect("subscription ended");
        handed.push(m.data::<u64>().unwrap());
    }
    handed.sort_unstable();
    assert_eq!(handed, all, "the SDK hands over every message");
}
