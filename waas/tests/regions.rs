//! Two regions as real processes (`docs/regions.md`): region A is this test's network namespace,
//! with the control-plane, PostgreSQL, a nats-server (JetStream) and a `waas gateway`; region B
//! is a network namespace of its own (`ip netns`) with its own nats-server and gateway. The two
//! NATS servers form a supercluster over a link that delays every packet by `RTT / 2` each way
//! (`loadtest/wan-link.py`, TUN devices, no netem) and that the test can cut. Clients "in"
//! region B run on a Tokio runtime whose threads entered B's namespace, so every socket they
//! open is B's. The machinery is shared with the three-region test (`regions_common`).
//!
//! Needs root and `ip netns`; skips (saying so) only where `ip netns` cannot be used.

mod regions_common;

use regions_common::*;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use waas_sdk::{Client, Error, ErrorCode};
use waas_test_support::cluster::TestApp;
use waas_test_support::pg::PgSchema;
use waas_test_support::server::ChildServer;
use waas_test_support::tokens;

/// Round trip between the regions.
const RTT_MS: u64 = 40;
/// How long the link between the regions is cut (the 10 s).
const CUT: Duration = Duration::from_secs(10);
/// NATS's dead-connection detection for the long cut: a ping every second, the connection
/// closed when two go unanswered, so a cut of a few seconds closes the gateway connection
/// between the regions (the default, 2 min × 2, outlasts the 10 s cut).
const SHORT_PINGS: Pings = Pings {
    interval: "1s",
    max: 2,
};

// ---- the regions ----

struct Regions {
    // Dropped in this order: processes before the link, so nothing outlives its namespace.
    gateway_a: ChildServer,
    gateway_b: Option<ChildServer>,
    /// What each gateway process wrote, B's once per start: printed when the test fails.
    outputs: Vec<(&'static str, Output)>,
    _control_plane: ChildServer,
    _nats_b: Nats,
    _nats_a: Nats,
    link: Link,
    /// Region B's runtime; shut down without waiting when the regions are dropped.
    b: Option<tokio::runtime::Runtime>,
    prefix: String,
    nats_b_url: String,
    /// A's nats-server's monitoring port (B's is [`NS_MONITOR_PORT`] in B's namespace).
    monitor_a: u16,
    control_plane: String,
    _schema: PgSchema,
}

impl Regions {
    /// The regions with nats-server's default pings.
    async fn start() -> Regions {
        Self::start_with(None).await
    }

    /// The regions, their NATS servers pinging as `pings` says (default when `None`).
    async fn start_with(pings: Option<Pings>) -> Regions {
        let octet = link_octet();
        let link = Link::to_new_namespace(
            RTT_MS,
            &format!("waas-rb-{}", unique_tag()),
            Ipv4Addr::new(10, 79, octet, 1),
            Ipv4Addr::new(10, 79, octet, 2),
        );
        let ports_a = NatsPorts::here(link.a);
        let ports_b = NatsPorts::in_namespace(link.b);
        let nats_a = Nats::start(None, "A", &ports_a, &[("B", ports_b.gateway)], pings);
        let nats_b = Nats::start(
            Some(&link.ns_b),
            "B",
            &ports_b,
            &[("A", ports_a.gateway)],
            pings,
        );
        wait_meta_leader(ports_a.monitor, 2).await;

        let prefix = waas_test_support::nats::unique_prefix();
        let nats_a_url = ports_a.url();
        let (control_plane, control_plane_url, schema) =
            start_control_plane(&nats_a_url, &prefix).await;
        // A's gateway listens on A's end of the link, where B's clients reach it.
        let (gateway_a, output_a) = start_gateway(
            None,
            &format!("{}:0", link.a),
            &nats_a_url,
            &prefix,
            "a",
            &[],
        );
        let mut regions = Regions {
            gateway_a,
            gateway_b: None,
            outputs: vec![("gateway A", output_a)],
            control_plane: control_plane_url,
            _control_plane: control_plane,
            _nats_b: nats_b,
            _nats_a: nats_a,
            b: Some(runtime_in(&link.ns_b)),
            link,
            prefix,
            nats_b_url: ports_b.url(),
            monitor_a: ports_a.monitor,
            _schema: schema,
        };
        regions.start_gateway_b();
        regions
    }

    /// (Re)starts B's gateway, inside B's namespace, on the same port each time.
    fn start_gateway_b(&mut self) {
        let (gateway, output) =
            start_region_gateway(&self.link.ns_b, &self.nats_b_url, &self.prefix, "b");
        self.gateway_b = Some(gateway);
        self.outputs.push(("gateway B", output));
    }

    fn url_a(&self) -> String {
        format!("ws://{}", self.gateway_a.addr)
    }

    fn url_b() -> String {
        format!("ws://127.0.0.1:{NS_GATEWAY_PORT}")
    }

    /// Waits (at most 60 s) until both nats-servers have closed their gateway connections to
    /// each other: the link is cut and their pings went unanswered.
    async fn wait_gateways_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let a = gateway_up(self.monitor_a, "B").await;
            let b = self
                .in_b(async { gateway_up(NS_MONITOR_PORT, "A").await })
                .await;
            if a == Some(false) && b == Some(false) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway connections outlived a 60 s cut: A {a:?}, B {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn create_app(&self, id: &str, fields: Value) -> TestApp {
        create_app(&self.control_plane, id, fields).await
    }

    /// A client in region B: built, connected and subscribed on B's runtime.
    async fn in_b<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        run_in(self.b.as_ref().expect("region B runs"), f).await
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        // A failure across processes and namespaces is read from what the gateways said.
        if std::thread::panicking() {
            for (name, output) in &self.outputs {
                eprintln!("---- {name} wrote:\n{}---- end of {name}", said(output));
            }
        }
        // A runtime may not be dropped (waiting for its threads) from async code.
        if let Some(b) = self.b.take() {
            b.shutdown_background();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_nearest_gateway_failover_and_a_cut_link() {
    if let Err(why) = netns_usable() {
        eprintln!("SKIPPED: the regions test needs root and `ip netns`: {why}");
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    log_clients();
    let mut regions = Regions::start().await;
    let url_a = regions.url_a();
    let url_b = Regions::url_b();
    let gateway_a_http = format!("http://{}", regions.gateway_a.addr);
    let app = regions
        .create_app("regions", json!({"limits": {"history_size": 50_000}}))
        .await;
    // The app's history stream is made by the first gateway that needs it: publish in A first,
    // so it lives in A, the home region.
    let (s, body) = app.publish(&gateway_a_http, "warmup", "n", json!(0)).await;
    assert_eq!(s, 200, "{body}");

    // 1. A client in B given both regions' URLs, A's first, connects to B's gateway.
    let token_b = app.token("phone-b", tokens::caps(&[">"], &[">"]));
    let client_b = {
        let (urls, id) = ([url_a.clone(), url_b.clone()], app.id.clone());
        regions
            .in_b(async move {
                Client::builder()
                    .urls(urls)
                    .app(id)
                    .token(token_b)
                    .nearest(true)
                    .reprobe_interval(Duration::from_millis(500))
                    .backoff(backoff())
                    .subscription_capacity(100_000)
                    .connect()
                    .await
            })
            .await
            .expect("client in B connects")
    };
    let url = client_b.url().expect("connected");
    assert!(url.starts_with(&url_b), "the client in B chose {url}");

    // 2. Published in A: subscribers in A and B get it once each, in order.
    let client_a = Client::builder()
        .url(&url_a)
        .app(&app.id)
        .token(app.token("phone-a", tokens::caps(&[">"], &[">"])))
        .connect()
        .await
        .unwrap();
    let mut news_a = client_a.subscribe("news").await.unwrap();
    let mut news_b = client_b.subscribe("news").await.unwrap();
    for n in 1..=20 {
        let (s, body) = app.publish(&gateway_a_http, "news", "n", json!(n)).await;
        assert_eq!(s, 200, "{body}");
    }
    for n in 1..=20 {
        assert_eq!(next_n(&mut news_a, "news in A").await, n);
        assert_eq!(next_n(&mut news_b, "news in B").await, n);
    }
    // Presence of a member in A is seen in B.
    let _room_a = client_a.subscribe("presence.room").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let members = client_b.members("presence.room").await.unwrap();
        if members.iter().any(|m| m.id == "phone-a") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never saw A's member: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 3. B's gateway is killed mid-stream: the client moves to A, then back to B when B's
    // gateway returns, and gets every message once, in order.
    let mut ticks_b = client_b.subscribe("ticks").await.unwrap();
    let publisher = {
        let app = TestApp {
            id: app.id.clone(),
            api_key: app.api_key.clone(),
            jwt_secret: String::new(),
        };
        let base = gateway_a_http.clone();
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut n = 0;
            while stop.try_recv().is_err() {
                n += 1;
                let (s, body) = app.publish(&base, "ticks", "n", json!(n)).await;
                assert_eq!(s, 200, "{body}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        });
        (stop_tx, task)
    };
    let mut ticks = Vec::new();
    while ticks.len() < 100 {
        ticks.push(next_n(&mut ticks_b, "ticks before the kill").await);
    }
    drop(regions.gateway_b.take());
    let moved = tokio::spawn({
        let mut events = client_b.events();
        let url_a = url_a.clone();
        async move { connected_to(&mut events, &url_a).await }
    });
    while !moved.is_finished() {
        ticks.push(next_n(&mut ticks_b, "ticks while failing over").await);
    }
    regions.start_gateway_b();
    let back = tokio::spawn({
        let mut events = client_b.events();
        let url_b = url_b.clone();
        async move { connected_to(&mut events, &url_b).await }
    });
    while !back.is_finished() {
        ticks.push(next_n(&mut ticks_b, "ticks while moving back").await);
    }
    let more = ticks.len() + 100;
    while ticks.len() < more {
        ticks.push(next_n(&mut ticks_b, "ticks after moving back").await);
    }
    let _ = publisher.0.send(());
    let total = publisher.1.await.unwrap();
    while (ticks.len() as u64) < total {
        ticks.push(next_n(&mut ticks_b, "the last ticks").await);
    }
    assert_eq!(
        ticks,
        (1..=total).collect::<Vec<_>>(),
        "every tick once, in order"
    );
    assert!(client_b.url().unwrap().starts_with(&url_b));

    // 4. The link between the regions is cut: each region keeps serving its local clients.
    let local = regions
        .create_app("regionslocal", json!({"limits": {"history_size": 0}}))
        .await;
    let local_b = {
        let (url, id) = (url_b.clone(), local.id.clone());
        let token = local.token("local-b", tokens::caps(&[">"], &[">"]));
        regions
            .in_b(async move {
                Client::builder()
                    .url(url)
                    .app(id)
                    .token(token)
                    .backoff(backoff())
                    .connect()
                    .await
            })
            .await
            .unwrap()
    };
    let mut local_b_sub = local_b.subscribe("chat").await.unwrap();
    let mut during_a = client_a.subscribe("during").await.unwrap();
    let mut during_b = client_b.subscribe("during").await.unwrap();
    let mut disconnects = client_b.events();
    regions.link.cut();
    let cut_at = Instant::now();
    // In B: the cached app takes new connections (its secret is cached: the control-plane, in
    // A, is out of reach) and publishes of an app without history reach B's subscribers.
    let late = {
        let (url, id) = (url_b.clone(), local.id.clone());
        let token = local.token("late-b", tokens::caps(&[">"], &[">"]));
        regions
            .in_b(async move {
                Client::builder()
                    .url(url)
                    .app(id)
                    .token(token)
                    .connect()
                    .await
            })
            .await
            .expect("a new connection in B while A is cut off")
    };
    late.publish("chat", "n", &1u64).await.unwrap();
    assert_eq!(next_n(&mut local_b_sub, "local publish in B").await, 1);
    // In A: publishes of the history app go on (its stream is in A).
    for n in 1..=5 {
        let (s, body) = app.publish(&gateway_a_http, "during", "n", json!(n)).await;
        assert_eq!(s, 200, "{body}");
    }
    for n in 1..=5 {
        assert_eq!(next_n(&mut during_a, "A during the cut").await, n);
    }
    // In B: a publish of the history app is not acknowledged (its stream is in A): refused, or
    // timed out with its outcome unknown.
    let refused = client_b.publish("during", "n", &100u64).await;
    match refused {
        Err(Error::Rejected { code, .. }) => assert_eq!(code, ErrorCode::Unavailable),
        Err(Error::Timeout { .. }) => {}
        other => panic!("a history publish in B during the cut: {other:?}"),
    }
    let left = CUT.saturating_sub(cut_at.elapsed());
    tokio::time::sleep(left).await;
    regions.link.heal();

    // 5. After the link heals, cross-region delivery resumes by itself, and what A
    // acknowledged during the cut reaches B's subscriber too, in order, once, and no
    // `unrecovered`. With nats-server's default pings (2 min) a 10 s cut does not close the
    // gateway connection between the regions: TCP delivers the backlog once the link is back
    // (docs/regions.md says what happens after a longer cut).
    let (got, n) = publish_until_delivered(&gateway_a_http, &app, "during", 6, &mut during_b).await;
    let events = reported(&mut disconnects).await;
    // B's publish during the cut timed out: its outcome is unknown, and the gateway's retry may
    // have stored it once the link was back. At most once, then.
    let from_b = got.iter().filter(|&&x| x == 100).count();
    assert!(from_b <= 1, "B's own publish twice: {got:?}");
    let from_a: Vec<u64> = got.iter().copied().filter(|&x| x != 100).collect();
    assert_eq!(
        from_a,
        (1..=n).collect::<Vec<_>>(),
        "B got A's messages once, in order (events: {events:?})"
    );
    // No gap reported, and the client in B stayed on B's gateway the whole time.
    assert_no_gap_nor_disconnect(&events);
}

/// The link is cut long enough for NATS to close the gateway connection between the regions
/// (pings shortened to 1 s × 2, as a cut of minutes would with the defaults). What A's stream
/// stored meanwhile never crosses live; after the heal B's gateway reads it from history, so
/// B's subscribers get every message A acknowledged, once, in order, without `unrecovered`:
/// on a channel that goes on after the heal (its next message says what B missed) and on one
/// that gets nothing new (B's gateway checks its live channels when the link is back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_cut_closes_the_link_and_b_still_gets_every_message() {
    if let Err(why) = netns_usable() {
        eprintln!("SKIPPED: the regions test needs root and `ip netns`: {why}");
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let regions = Regions::start_with(Some(SHORT_PINGS)).await;
    let gateway_a_http = format!("http://{}", regions.gateway_a.addr);
    let app = regions
        .create_app("longcut", json!({"limits": {"history_size": 50_000}}))
        .await;
    // The app's stream lives in A: its first publish is A's.
    let (s, body) = app.publish(&gateway_a_http, "warmup", "n", json!(0)).await;
    assert_eq!(s, 200, "{body}");
    let client_b = {
        let (url, id) = (Regions::url_b(), app.id.clone());
        let token = app.token("phone-b", tokens::caps(&[">"], &[">"]));
        regions
            .in_b(async move {
                Client::builder()
                    .url(url)
                    .app(id)
                    .token(token)
                    .backoff(backoff())
                    .connect()
                    .await
            })
            .await
            .expect("client in B connects")
    };
    let mut busy_b = client_b.subscribe("busy").await.unwrap();
    let mut quiet_b = client_b.subscribe("quiet").await.unwrap();
    // Across the regions before the cut.
    for (channel, sub) in [("busy", &mut busy_b), ("quiet", &mut quiet_b)] {
        let (s, body) = app.publish(&gateway_a_http, channel, "n", json!(1)).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(next_n(sub, "before the cut").await, 1);
    }
    let mut events = client_b.events();

    regions.link.cut();
    // Stored in A while the gateway connection still stands (lost in its buffers)...
    for (channel, n) in [("busy", 2), ("quiet", 2)] {
        let (s, body) = app.publish(&gateway_a_http, channel, "n", json!(n)).await;
        assert_eq!(s, 200, "{body}");
    }
    regions.wait_gateways_closed().await;
    // ... and once NATS closed it.
    for (channel, n) in [("busy", 3), ("busy", 4), ("quiet", 3), ("busy", 5)] {
        let (s, body) = app.publish(&gateway_a_http, channel, "n", json!(n)).await;
        assert_eq!(s, 200, "{body}");
    }
    regions.link.heal();

    // A channel that goes on after the heal: everything from 2 on, once, in order.
    let (got, n) = publish_until_delivered(&gateway_a_http, &app, "busy", 6, &mut busy_b).await;
    let reported_now = reported(&mut events).await;
    assert_eq!(
        got,
        (2..=n).collect::<Vec<_>>(),
        "busy: B got A's messages once, in order (events: {reported_now:?})"
    );
    assert_no_gap_nor_disconnect(&reported_now);
    // A channel with nothing new after the heal catches up all the same.
    for q in 2..=3 {
        assert_eq!(next_n(&mut quiet_b, "quiet after the heal").await, q);
    }
    assert_no_gap_nor_disconnect(&reported(&mut events).await);
}
