//! The Rust SDK's nearest-gateway choice (`ClientBuilder::nearest`, `docs/regions.md`) against
//! real gateways of the `waas` binary over NATS, each reached through a proxy that delays its
//! packets like a link to another region: the client picks the nearer, fails over to the
//! farther when the nearer goes away, and moves back once it returns, with every message of a
//! steady stream delivered once, in order.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use waas_sdk::{Backoff, Client, ConnectionEvent, Error, ErrorCode};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::delay_proxy::DelayProxy;
use waas_test_support::nats::shared_url;
use waas_test_support::tokens;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");
/// One way; the far gateway's round trip is twice this.
const FAR: Duration = Duration::from_millis(40);

async fn publish(http: &reqwest::Client, base: &str, app: &TestApp, channel: &str, n: u64) {
    let r = http
        .post(format!("{base}/v1/apps/{}/publish", app.id))
        .bearer_auth(&app.api_key)
        .json(&json!({"channel": channel, "event": "n", "data": n}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200, "{:?}", r.json::<Value>().await);
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_the_nearer_gateway_fails_over_and_moves_back_with_nothing_lost() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster
        .create_app_with("nearest", json!({"limits": {"history_size": 20_000}}))
        .await;
    let far = DelayProxy::start(cluster.gateways[0].addr, FAR).await;
    let near = DelayProxy::start(cluster.gateways[1].addr, Duration::ZERO).await;

    // The far gateway is listed first: only the probe can make the client pick the near one.
    let client = Client::builder()
        .urls([far.ws_url(), near.ws_url()])
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["ticks"], &[])))
        .nearest(true)
        .probe_samples(3)
        .reprobe_interval(Duration::from_millis(200))
        .backoff(fast_backoff())
        .subscription_capacity(100_000)
        .connect()
        .await
        .unwrap();
    let url = client.url().expect("connected");
    assert!(url.starts_with(&near.ws_url()), "connected to {url}");
    let mut events = client.events();
    let mut ticks = client.subscribe("ticks").await.unwrap();

    // A steady stream published straight to a gateway, until the test has seen the move back.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn({
        let base = cluster.gateway_http(0);
        let app = TestApp {
            id: app.id.clone(),
            api_key: app.api_key.clone(),
            jwt_secret: app.jwt_secret.clone(),
        };
        let stop = stop.clone();
        async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                tick.tick().await;
                n += 1;
                publish(&http, &base, &app, "ticks", n).await;
            }
            n
        }
    });

    #[derive(Debug, PartialEq)]
    enum Phase {
        OnNear,
        NearCut,
        OnFar,
        BackOnNear { at: usize },
    }
    let mut phase = Phase::OnNear;
    let mut received: Vec<u64> = Vec::new();
    let mut total = None;
    loop {
        if let Phase::BackOnNear { at } = phase {
            if total.is_none() && received.len() >= at + 200 {
                stop.store(true, Ordering::Release);
                total = Some(publisher.await.unwrap());
                break;
            }
        }
        tokio::select! {
            m = ticks.next() => {
                let m = m.expect("subscription open");
                received.push(m.data::<u64>().unwrap());
                if phase == Phase::OnNear && received.len() == 300 {
                    near.cut();
                    phase = Phase::NearCut;
                }
            }
            e = events.next() => match e.expect("events open") {
                ConnectionEvent::Connected { url, .. } => {
                    if phase == Phase::NearCut && url.starts_with(&far.ws_url()) {
                        phase = Phase::OnFar;
                        near.restore();
                    } else if phase == Phase::OnFar && url.starts_with(&near.ws_url()) {
                        phase = Phase::BackOnNear { at: received.len() };
                    }
                }
                ConnectionEvent::Unrecovered { channel } => panic!("{channel} lost messages"),
                ConnectionEvent::Closed { error } => panic!("client stopped: {error:?}"),
                _ => {}
            },
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                panic!("stalled in {phase:?} after {} messages", received.len())
            }
        }
    }
    let total = total.expect("publisher stopped");
    while (received.len() as u64) < total {
        let m = tokio::time::timeout(Duration::from_secs(30), ticks.next())
            .await
            .unwrap_or_else(|_| panic!("stalled at {} of {total}", received.len()))
            .expect("subscription open");
        received.push(m.data::<u64>().unwrap());
    }
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(received, expected, "every message once, in order");
    assert!(client.url().unwrap().starts_with(&near.ws_url()));
}

/// A token every gateway refuses fails the probe at once with the server's reason, like a
/// single-URL connect does, instead of ranking every gateway as unreachable.
#[tokio::test]
async fn a_refused_token_fails_the_probing_connect_with_the_reason() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("nearestbad").await;
    let e = Client::builder()
        .urls([cluster.gateway_http(0), cluster.gateway_http(1)])
        .app(&app.id)
        .token("not-a-jwt")
        .nearest(true)
        .connect()
        .await
        .unwrap_err();
    match e {
        Error::Rejected { code, .. } => assert_eq!(code, ErrorCode::InvalidToken),
        Error::Http { status, .. } => assert_eq!(status, 401),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
