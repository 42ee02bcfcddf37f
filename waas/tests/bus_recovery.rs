//! A gateway that loses NATS and comes back catches its channels up from history: every publish
//! acknowledged with an offset meanwhile reaches its subscribers once and in order, or they are
//! told of the gap (`docs/history.md`, "After the bus comes back"). Real processes: gateways of
//! the `waas` binary, a control-plane, NATS (shared, or private when the test stops it).

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use waas_sdk::ConnectionEvent;
use waas_test_support::cluster::{Cluster, TestApp};

// Tests run on a multi-threaded runtime: the TcpProxy a gateway reaches NATS through is a task
// of the test's runtime, and starting a gateway blocks the test's thread until the gateway,
// connected to NATS through that proxy, prints `listening on`.
use waas_test_support::nats::{shared_url, NatsServer};
use waas_test_support::poll::eventually;
use waas_test_support::proxy::TcpProxy;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// Every wait on something the test expects to happen soon.
const EVENTUALLY: Duration = Duration::from_secs(30);

fn addr_of(nats_url: &str) -> SocketAddr {
    nats_url
        .trim_start_matches("nats://")
        .parse()
        .expect("nats://host:port")
}

/// A REST publish of `data`; the offset when it was acknowledged.
async fn publish(
    http: &reqwest::Client,
    base: &str,
    app: &TestApp,
    channel: &str,
    data: Value,
) -> Option<u64> {
    let r = http
        .post(format!("{base}/v1/apps/{}/publish", app.id))
        .bearer_auth(&app.api_key)
        .json(&json!({"channel": channel, "event": "n", "data": data}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["offsets"][channel].as_u64()
}

/// What the publisher reports of each attempt: `n` and its offset when acknowledged.
type Outcome = (u64, Option<u64>);

/// Publishes 1, 2, 3, ... to `channel` through `base` at a steady ~200/s until `stop` turns
/// true, reporting every outcome.
fn steady_publisher(
    base: String,
    app: &TestApp,
    channel: &'static str,
    mut stop: watch::Receiver<bool>,
) -> mpsc::UnboundedReceiver<Outcome> {
    let app = TestApp {
        id: app.id.clone(),
        api_key: app.api_key.clone(),
        jwt_secret: app.jwt_secret.clone(),
    };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        // Pacing, not synchronisation: the load the issue describes.
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0;
        while !*stop.borrow_and_update() {
            tick.tick().await;
            n += 1;
            let offset = publish(&http, &base, &app, channel, json!(n)).await;
            if tx.send((n, offset)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads outcomes until `acked` holds `target` acknowledged publishes.
async fn until_acked(
    rx: &mut mpsc::UnboundedReceiver<Outcome>,
    acked: &mut Vec<(u64, u64)>,
    target: usize,
) {
    until(rx, acked, |_, len| len >= target).await
}

/// Reads outcomes until `failures` publishes in a row were refused.
async fn until_refused(
    rx: &mut mpsc::UnboundedReceiver<Outcome>,
    acked: &mut Vec<(u64, u64)>,
    failures: usize,
) {
    let mut run = 0;
    until(rx, acked, |(_, offset), _| {
        run = if offset.is_some() { 0 } else { run + 1 };
        run >= failures
    })
    .await
}

async fn until(
    rx: &mut mpsc::UnboundedReceiver<Outcome>,
    acked: &mut Vec<(u64, u64)>,
    mut enough: impl FnMut(&Outcome, usize) -> bool,
) {
    let wait = async {
        while let Some(outcome) = rx.recv().await {
            if let (n, Some(offset)) = outcome {
                acked.push((n, offset));
            }
            if enough(&outcome, acked.len()) {
                return;
            }
        }
        panic!("the publisher stopped");
    };
    tokio::time::timeout(EVENTUALLY, wait)
        .await
        .expect("the publisher made no progress");
}

/// Stops the publisher and drains its last outcomes, then publishes `"end"` until it is
/// acknowledged: the sentinel after which a subscriber has seen everything it will see.
async fn finish(
    stop: watch::Sender<bool>,
    mut rx: mpsc::UnboundedReceiver<Outcome>,
    acked: &mut Vec<(u64, u64)>,
    base: &str,
    app: &TestApp,
    channel: &str,
) {
    stop.send(true).unwrap();
    while let Some((n, offset)) = rx.recv().await {
        if let Some(offset) = offset {
            acked.push((n, offset));
        }
    }
    let http = reqwest::Client::new();
    eventually(
        EVENTUALLY,
        Duration::from_millis(50),
        || "no sentinel publish",
        || publish(&http, base, app, channel, json!("end")),
    )
    .await;
}

/// What one subscriber saw up to the sentinel: messages as `(n, offset)`, and gap frames.
struct Seen {
    messages: Vec<(u64, u64)>,
    gaps: Vec<Value>,
}

async fn read_until_sentinel(client: &mut RawClient) -> Seen {
    let mut seen = Seen {
        messages: Vec::new(),
        gaps: Vec::new(),
    };
    loop {
        let f = client.json().await;
        match f["op"].as_str() {
            Some("message") if f["data"] == "end" => return seen,
            Some("message") => seen.messages.push((
                f["data"].as_u64().expect("a number"),
                f["offset"].as_u64().expect("an offset"),
            )),
            Some("gap") => seen.gaps.push(f),
            _ => {}
        }
    }
}

/// Every acknowledged publish reached the subscriber exactly once, in offset order.
fn assert_complete(who: &str, seen: &Seen, acked: &[(u64, u64)]) {
    assert!(
        seen.messages.windows(2).all(|w| w[0].1 < w[1].1),
        "{who}: offsets not strictly increasing (duplicate or out of order)"
    );
    let got: std::collections::HashSet<u64> = seen.messages.iter().map(|(n, _)| *n).collect();
    let missed: Vec<u64> = acked
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !got.contains(n))
        .collect();
    assert!(
        missed.is_empty(),
        "{who}: {} acknowledged publishes never arrived and no gap was reported: {missed:?}",
        missed.len()
    );
}

async fn subscribe(addr: SocketAddr, app: &TestApp, channel: &str) -> RawClient {
    let mut c = RawClient::ready(
        addr,
        &app.id,
        &app.token("u", tokens::caps(&[channel], &[])),
    )
    .await;
    let ack = c
        .request(json!({"op": "subscribe", "id": 1, "channel": channel}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    c
}

/// Waits until the gateway at `base` reports `/readyz` as `want`.
async fn ready_is(base: &str, want: u16) {
    let http = reqwest::Client::new();
    let what = || format!("{base}/readyz never {want}");
    eventually(EVENTUALLY, Duration::from_millis(25), what, || async {
        let status = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        (status == want).then_some(())
    })
    .await;
}

/// The subscriber's gateway alone loses NATS while another keeps accepting publishes: every
/// message acknowledged meanwhile is in history, and reaches the subscriber after the reconnect,
/// in order, without duplicates and without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_acknowledged_while_a_gateway_was_cut_off_reach_its_subscribers() {
    let proxy = TcpProxy::start(addr_of(&shared_url())).await;
    let mut cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster
        .create_app_with("cutoff", json!({"limits": {"history_size": 10_000}}))
        .await;
    let b = cluster.add_gateway_via(&format!("nats://{}", proxy.addr()), &[]);
    let mut sub = subscribe(cluster.gateways[b].addr, &app, "ticks").await;

    let (stop, stopped) = watch::channel(false);
    let base = cluster.gateway_http(0);
    let mut outcomes = steady_publisher(base.clone(), &app, "ticks", stopped);
    let mut acked = Vec::new();
    until_acked(&mut outcomes, &mut acked, 20).await;

    proxy.cut();
    ready_is(&cluster.gateway_http(b), 503).await;
    // A second's worth of publishes acknowledged while the subscriber's gateway is away.
    let before = acked.len();
    until_acked(&mut outcomes, &mut acked, before + 200).await;
    proxy.restore();
    ready_is(&cluster.gateway_http(b), 200).await;
    let before = acked.len();
    until_acked(&mut outcomes, &mut acked, before + 100).await;
    finish(stop, outcomes, &mut acked, &base, &app, "ticks").await;

    let seen = read_until_sentinel(&mut sub).await;
    assert!(seen.gaps.is_empty(), "history covered it: {:?}", seen.gaps);
    assert_complete("subscriber on the cut-off gateway", &seen, &acked);
}

/// The scenario: NATS itself dies under a steady publish load and comes back; each
/// gateway reconnects at its own moment, and the subscribers of the two gateways that do not
/// take the publishes still get every acknowledged message once and in order (or a gap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_a_nats_restart() {
    let mut nats = NatsServer::start();
    let cluster = Cluster::start(WAAS, &nats.url(), 3).await;
    let app = cluster
        .create_app_with("restart", json!({"limits": {"history_size": 10_000}}))
        .await;
    let mut subs = Vec::new();
    for gw in &cluster.gateways[1..] {
        subs.push(subscribe(gw.addr, &app, "ticks").await);
    }
    let (stop, stopped) = watch::channel(false);
    let base = cluster.gateway_http(0);
    let mut outcomes = steady_publisher(base.clone(), &app, "ticks", stopped);
    let mut acked = Vec::new();
    until_acked(&mut outcomes, &mut acked, 50).await;

    nats.stop();
    // About three seconds of refused publishes: long enough for the gateways' reconnect
    // attempts to drift apart.
    until_refused(&mut outcomes, &mut acked, 600).await;
    nats.restart();
    for i in 0..cluster.gateways.len() {
        ready_is(&cluster.gateway_http(i), 200).await;
    }
    let before = acked.len();
    until_acked(&mut outcomes, &mut acked, before + 200).await;
    finish(stop, outcomes, &mut acked, &base, &app, "ticks").await;

    for (i, sub) in subs.iter_mut().enumerate() {
        let seen = read_until_sentinel(sub).await;
        if seen.gaps.is_empty() {
            assert_complete(&format!("subscriber on gateway {}", i + 1), &seen, &acked);
        } else {
            // Told: what did arrive is still in order, once.
            assert!(seen.messages.windows(2).all(|w| w[0].1 < w[1].1));
        }
    }
}

/// A channel without history cannot be caught up: after its gateway's bus comes back, the
/// subscriber gets a `gap` frame, which the SDK hands to the application as `Unrecovered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_subscribers_are_told_of_the_gap() {
    let proxy = TcpProxy::start(addr_of(&shared_url())).await;
    let mut cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster
        .create_app_with("nohistory", json!({"limits": {"history_size": 0}}))
        .await;
    let b = cluster.add_gateway_via(&format!("nats://{}", proxy.addr()), &[]);
    let mut raw = subscribe(cluster.gateways[b].addr, &app, "live").await;
    let client = waas_sdk::Client::builder()
        .url(format!("ws://{}", cluster.gateways[b].addr))
        .app(&app.id)
        .token(app.token("u", tokens::caps(&["live"], &[])))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    let mut live = client.subscribe("live").await.unwrap();

    proxy.cut();
    ready_is(&cluster.gateway_http(b), 503).await;
    let http = reqwest::Client::new();
    let base = cluster.gateway_http(0);
    assert!(publish(&http, &base, &app, "live", json!("missed"))
        .await
        .is_some());
    proxy.restore();
    ready_is(&cluster.gateway_http(b), 200).await;

    let gap = loop {
        let f = raw.json().await;
        if f["op"] == "gap" {
            break f;
        }
        assert_ne!(
            f["op"], "message",
            "no message can arrive before the gap: {f}"
        );
    };
    assert_eq!(gap["channel"], "live", "{gap}");
    assert!(gap["epoch"].is_string(), "{gap}");
    let told = async {
        loop {
            match events.next().await {
                Some(ConnectionEvent::Unrecovered { channel }) => return channel,
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    };
    let channel = tokio::time::timeout(EVENTUALLY, told)
        .await
        .expect("the SDK reported no Unrecovered");
    assert_eq!(channel, "live");
    // And the subscription goes on: the next message is delivered.
    eventually(
        EVENTUALLY,
        Duration::from_millis(50),
        || "no publish after the gap",
        || publish(&http, &base, &app, "live", json!("after")),
    )
    .await;
    let m = tokio::time::timeout(EVENTUALLY, live.next())
        .await
        .expect("delivery after the gap")
        .unwrap();
    assert_eq!(m.data::<String>().unwrap(), "after");
}
