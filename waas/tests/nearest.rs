//! The Rust SDK's nearest-gateway choice (`ClientBuilder::nearest`, `docs/regions.md`) against
//! real gateways of the `waas` binary over NATS, each reached through a proxy that delays its
//! packets like a link to another region: the client picks the nearer, fails over to the
//! farther when the nearer goes away, and moves back once it returns, with every message of a
//! steady stream delivered once, in order. Also: the probe not waiting for a far gateway, and
//! the discovery URL (`GET /v1/regions`).

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

/// The probe stops waiting once no slower gateway can rank first (`nearest::stop_waiting_at`):
/// with the far gateway 5 s away each way, the connect returns on the near gateway while the far
/// proxy has not delivered a single byte to the client — not even the answer to its WebSocket
/// handshake — so the far gateway's probe cannot have finished, and was not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_the_near_gateway_without_waiting_for_the_far_one() {
    const VERY_FAR: Duration = Duration::from_secs(5);
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("nearestfast").await;
    let far = DelayProxy::start(cluster.gateways[0].addr, VERY_FAR).await;
    let near = DelayProxy::start(cluster.gateways[1].addr, Duration::ZERO).await;
    let started = std::time::Instant::now();
    let client = Client::builder()
        .urls([far.ws_url(), near.ws_url()])
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["ticks"], &[])))
        .nearest(true)
        .connect_timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(
        far.delivered_to_clients(),
        0,
        "the far gateway's handshake answer reached the client before the connect returned"
    );
    assert!(took < VERY_FAR, "connect took {took:?}");
    let url = client.url().expect("connected");
    assert!(url.starts_with(&near.ws_url()), "connected to {url}");
    // The far probe's connection was opened and is still running in the background.
    assert_eq!(far.open_links(), 1);
    client.close().await.unwrap();
}

/// A probe still running when the client connected finishes in the background and closes its
/// connection: nothing is left open at the far gateway, and the client stays on the near one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_probe_closes_its_connection_when_it_finishes() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("nearestlate").await;
    let far = DelayProxy::start(cluster.gateways[0].addr, Duration::from_millis(100)).await;
    let near = DelayProxy::start(cluster.gateways[1].addr, Duration::ZERO).await;
    let client = Client::builder()
        .urls([far.ws_url(), near.ws_url()])
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["ticks"], &[])))
        .nearest(true)
        .connect()
        .await
        .unwrap();
    assert!(client.url().unwrap().starts_with(&near.ws_url()));
    // The far probe: upgrade, ready and three pings of 200 ms each, then its close; the proxy
    // ends the link once the close went through. Polled: the proxy has no event for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while far.open_links() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late probe's connection is still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        far.delivered_to_clients() > 0,
        "the far gateway was probed to the end"
    );
    assert!(client.url().unwrap().starts_with(&near.ws_url()));
    client.ping().await.unwrap();
}

/// `GET /v1/regions` on a gateway started with `--regions`, and a client given only that
/// discovery URL: it probes the listed gateways and connects to the nearer one. A gateway
/// without regions answers 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_url_lists_the_regions_and_the_client_picks_the_nearest() {
    let mut cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("nearestdisc").await;
    let far = DelayProxy::start(cluster.gateways[0].addr, FAR).await;
    let near = DelayProxy::start(cluster.gateways[1].addr, Duration::ZERO).await;
    let regions = format!("far={},near={}", far.ws_url(), near.ws_url());
    let directory = cluster.add_gateway_with(&["--regions", &regions]);
    let discovery = format!("{}/v1/regions", cluster.gateway_http(directory));

    let http = reqwest::Client::new();
    let r = http.get(&discovery).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("*".into())
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"regions": [
            {"name": "far", "url": far.ws_url()},
            {"name": "near", "url": near.ws_url()},
        ]})
    );
    let r = http
        .get(format!("{}/v1/regions", cluster.gateway_http(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let client = Client::builder()
        .discovery_url(&discovery)
        .app(&app.id)
        .token(app.token("phone", tokens::caps(&["ticks"], &[])))
        .connect()
        .await
        .unwrap();
    let url = client.url().expect("connected");
    assert!(url.starts_with(&near.ws_url()), "connected to {url}");
    client.close().await.unwrap();
}

/// Serves one fixed HTTP answer to every request, for documents no gateway would serve.
async fn serve_fixed(status: u16, body: String) -> String {
    serve_document(status, Arc::new(std::sync::Mutex::new(body))).await
}

/// Serves `body` as it is at each request (a test may change it), with `status`.
async fn serve_document(status: u16, body: Arc<std::sync::Mutex<String>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/regions")
}

/// A bad discovery document fails the connect with `Error::Discovery` saying what is wrong:
/// too large, a URL that is not ws/wss, not JSON, an HTTP error. With a URL given as well, the
/// client falls back to it instead.
#[tokio::test]
async fn a_bad_discovery_document_is_refused_with_the_reason() {
    let cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster.create_app("nearestbaddoc").await;
    let huge = format!(
        r#"{{"regions":[{{"name":"a","url":"ws://a/{}"}}]}}"#,
        "x".repeat(100_000)
    );
    let cases = [
        (200, huge, "larger than"),
        (
            200,
            r#"{"regions":[{"name":"a","url":"javascript:alert(1)"}]}"#.to_owned(),
            "ws://",
        ),
        (
            200,
            "<html>hello</html>".to_owned(),
            "not a regions document",
        ),
        (500, "{}".to_owned(), "HTTP 500"),
    ];
    for (status, body, want) in cases {
        let url = serve_fixed(status, body).await;
        let e = Client::builder()
            .discovery_url(&url)
            .app(&app.id)
            .token(&app.api_key)
            .connect()
            .await
            .unwrap_err();
        match &e {
            Error::Discovery { reason, .. } => assert!(reason.contains(want), "{e}"),
            other => panic!("expected a discovery error, got {other:?}"),
        }
        // The URL given is the fallback.
        let client = Client::builder()
            .discovery_url(&url)
            .url(cluster.gateway_http(0))
            .app(&app.id)
            .token(&app.api_key)
            .connect()
            .await
            .unwrap();
        client.close().await.unwrap();
    }
}

/// The discovery document is fetched again before every re-probe: a client that connected to
/// the only region listed moves to a nearer one once the document lists it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_added_to_the_discovery_document_is_probed_at_the_next_reprobe() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("nearestadd").await;
    let far = DelayProxy::start(cluster.gateways[0].addr, FAR).await;
    let near = DelayProxy::start(cluster.gateways[1].addr, Duration::ZERO).await;
    let region = |name: &str, url: String| json!({"name": name, "url": url});
    let document = Arc::new(std::sync::Mutex::new(
        json!({"regions": [region("far", far.ws_url())]}).to_string(),
    ));
    let discovery = serve_document(200, document.clone()).await;
    let client = Client::builder()
        .discovery_url(&discovery)
        .app(&app.id)
        .token(&app.api_key)
        .reprobe_interval(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut events = client.events();
    assert!(client.url().unwrap().starts_with(&far.ws_url()));
    *document.lock().unwrap() =
        json!({"regions": [region("far", far.ws_url()), region("near", near.ws_url())]})
            .to_string();
    let moved = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.next().await.expect("events open") {
                ConnectionEvent::Connected { url, .. } if url.starts_with(&near.ws_url()) => {
                    return url
                }
                ConnectionEvent::Closed { error } => panic!("client stopped: {error:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("moved to the region added to the document");
    assert_eq!(client.url().as_deref(), Some(moved.as_str()));
    client.close().await.unwrap();
}
