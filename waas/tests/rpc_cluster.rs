//! Requests over the socket in a cluster of real processes (control-plane and gateways of the
//! `waas` binary over NATS and PostgreSQL): routes set through the admin API, a service served
//! on one gateway answering callers on another, several servers sharing a service, and one of
//! them dying mid-run.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waas_sdk::server::{Json, Reply, Request};
use waas_sdk::{Client, Error, ErrorCode};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;
use waas_test_support::tokens;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

async fn connect(url: &str, app: &str, credential: &str) -> Client {
    Client::builder()
        .url(url)
        .app(app)
        .token(credential)
        .connect()
        .await
        .expect("connect")
}

/// A cluster of `gateways` gateways with app `id` routing `/work` to the service `work`, set
/// through the admin API before any client connects.
async fn cluster(id: &str, gateways: usize) -> (Cluster, TestApp, Vec<String>) {
    let cluster = Cluster::start(WAAS, &shared_url(), gateways).await;
    let app = cluster.create_app(id).await;
    let (status, body) = cluster
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/{id}"),
            Some(json!({"routes": [{"prefix": "/work", "service": "work"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["routes"][0]["service"], "work", "{body}");
    let (status, body) = cluster
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/{id}"),
            Some(json!({"routes": [{"prefix": "/x", "upstream": "ftp://nowhere"}]})),
        )
        .await;
    assert_eq!(status, 400, "a route gateways could not follow: {body}");
    let urls = cluster
        .gateways
        .iter()
        .map(|g| format!("ws://{}", g.addr))
        .collect();
    (cluster, app, urls)
}

/// A server process in miniature: an SDK client serving `work` on a runtime of its own, so that
/// killing it drops its socket without a goodbye, as a crashed process would.
struct Server {
    served: Arc<AtomicUsize>,
    /// While set, requests are taken and never answered.
    hold: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(name: &'static str, url: String, app: String, key: String) -> Server {
        let served = Arc::new(AtomicUsize::new(0));
        let hold = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let (s, h, hd) = (served.clone(), hold.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = connect(&url, &app, &key).await;
                let handler = move |req: Request| {
                    let (s, h, hd) = (s.clone(), h.clone(), hd.clone());
                    async move {
                        if h.load(Ordering::SeqCst) {
                            hd.fetch_add(1, Ordering::SeqCst);
                            std::future::pending::<()>().await;
                        }
                        s.fetch_add(1, Ordering::SeqCst);
                        let n: u64 = req.json().map_err(|e| Reply::error(400, &e.to_string()))?;
                        Ok::<_, Reply>(Json(json!({"by": name, "n": n, "sub": req.caller.sub})))
                    }
                };
                let serving = client.serve("work", handler).await.unwrap();
                ready_tx.send(()).unwrap();
                // Keep serving until killed; the handles are leaked so that nothing says goodbye.
                tokio::task::spawn_blocking(move || {
                    let _ = killed.recv();
                })
                .await
                .unwrap();
                std::mem::forget(serving);
                std::mem::forget(client);
            });
            // Dropping the runtime drops the connection task and its socket: no close frame.
            drop(rt);
        });
        ready
            .recv_timeout(Duration::from_secs(20))
            .expect("server ready");
        Server {
            served,
            hold,
            held,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn until(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !check() {
        assert!(
            Instant::now() < end,
            "{what} did not happen within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_service_on_one_gateway_answers_callers_on_the_other() {
    let (_cluster, app, urls) = cluster("rpc-cross", 2).await;
    let _server = Server::start("a", urls[0].clone(), app.id.clone(), app.api_key.clone());
    let alice = connect(
        &urls[1],
        &app.id,
        &app.token("alice", tokens::call_caps(&["/work"])),
    )
    .await;
    let r = alice.request("POST", "/work/x", &41).await.unwrap();
    assert_eq!(r.status, 200);
    let body: Value = r.json().unwrap();
    assert_eq!(
        (body["by"].as_str(), body["n"].as_u64()),
        (Some("a"), Some(41))
    );
    assert_eq!(body["sub"], "alice");
    // Refusals work the same on any gateway.
    let nope = connect(
        &urls[1],
        &app.id,
        &app.token("bob", tokens::call_caps(&["/other"])),
    )
    .await;
    assert!(matches!(
        nope.request("POST", "/work/x", &1).await,
        Err(Error::Rejected {
            code: ErrorCode::Forbidden,
            ..
        })
    ));
}

#[tokio::test]
async fn servers_share_requests_and_a_killed_one_fails_only_its_own() {
    // Servers on gateways 0 and 1, callers on gateway 2, which has none: every request goes
    // through the bus to the service's queue group (callers next to a server would get it
    // directly, see docs/rpc.md).
    let (_cluster, app, urls) = cluster("rpc-share", 3).await;
    let start =
        |name, i: usize| Server::start(name, urls[i].clone(), app.id.clone(), app.api_key.clone());
    let (a, b, mut c) = (start("a", 0), start("b", 1), start("c", 0));
    let callers = [
        connect(
            &urls[2],
            &app.id,
            &app.token("u0", tokens::call_caps(&["/work"])),
        )
        .await,
        connect(
            &urls[2],
            &app.id,
            &app.token("u1", tokens::call_caps(&["/work"])),
        )
        .await,
    ];

    // 3,000 requests, 64 at a time, from callers on both gateways: every one answered once.
    let results: Vec<(u64, Result<Value, Error>)> = futures_util::stream::iter(0..3000u64)
        .map(|n| {
            let caller = callers[n as usize % 2].clone();
            async move {
                let r = caller.request("POST", "/work/job", &n).await;
                (n, r.and_then(|r| r.json::<Value>()))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    for (n, r) in &results {
        let body = r.as_ref().unwrap_or_else(|e| panic!("request {n}: {e}"));
        assert_eq!(body["n"].as_u64(), Some(*n), "{body}");
    }
    let shares = [a.served(), b.served(), c.served()];
    assert_eq!(shares.iter().sum::<usize>(), 3000, "{shares:?}");
    assert!(
        shares.iter().all(|&s| s >= 300),
        "shared unevenly: {shares:?}"
    );

    // c starts holding its requests; callers keep sending; then c dies.
    c.hold.store(true, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let caller = callers[w % 2].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut n = 10_000 + w as u64 * 100_000;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    outcomes.push(
                        caller
                            .request("POST", "/work/job", &n)
                            .await
                            .map(|r| r.status),
                    );
                }
                outcomes
            })
        })
        .collect();
    until("c holding requests", Duration::from_secs(20), || {
        c.held.load(Ordering::SeqCst) >= 5
    })
    .await;
    let killed_at = Instant::now();
    c.kill();
    let held = c.held.load(Ordering::SeqCst);
    let before_new = a.served() + b.served();
    // Let the callers go on for a while against a and b alone.
    until(
        "200 more answers from a and b",
        Duration::from_secs(30),
        || a.served() + b.served() >= before_new + 200,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut errors = Vec::new();
    let mut answered = 0;
    for w in workers {
        for outcome in w.await.unwrap() {
            match outcome {
                Ok(status) => {
                    assert_eq!(status, 200);
                    answered += 1;
                }
                Err(e) => errors.push(e),
            }
        }
    }
    // Each request c held failed, promptly and saying why; no other failed.
    assert!(
        errors.len() >= held,
        "{} errors for {held} held",
        errors.len()
    );
    for e in &errors {
        match e {
            Error::Rejected {
                code: ErrorCode::UpstreamError,
                message,
            } => assert!(message.contains("disconnected"), "{message}"),
            other => panic!("unexpected failure: {other}"),
        }
    }
    assert!(
        errors.len() <= held + 16,
        "{} errors, {held} held: requests after the kill failed",
        errors.len()
    );
    assert!(killed_at.elapsed() < Duration::from_secs(30));
    assert!(answered >= 200, "{answered}");
    assert_eq!(c.served(), shares[2], "nothing answered by the dead server");
}
