//! A webhook receiver for tests: a real HTTP server on a free loopback port that records every
//! request and answers as the test scripts it (statuses to return first, a delay before each
//! answer). Stopped on drop.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Default)]
struct Script {
    /// Statuses for the next requests, in order; then `default_status`.
    next: VecDeque<u16>,
    default_status: Option<u16>,
    delay: Duration,
    received: Vec<Received>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    arrived: Arc<Notify>,
    /// TCP connections accepted, requests or not.
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering 200 to everything.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let script: Arc<Mutex<Script>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (s, n) = (Arc::clone(&script), Arc::clone(&arrived));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let (s, n) = (Arc::clone(&s), Arc::clone(&n));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (s, n) = (Arc::clone(&s), Arc::clone(&n));
                        async move {
                            let path = req.uri().path().to_owned();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_ascii_lowercase(),
                                        v.to_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, delay) = {
                                let mut script = s.lock().expect("receiver poisoned");
                                let status = script
                                    .next
                                    .pop_front()
                                    .or(script.default_status)
                                    .unwrap_or(200);
                                (status, script.delay)
                            };
                            tokio::time::sleep(delay).await;
                            s.lock()
                                .expect("receiver poisoned")
                                .received
                                .push(Received {
                                    path,
                                    headers,
                                    body,
                                    status,
                                    at: Instant::now(),
                                });
                            n.notify_waiters();
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            script,
            arrived,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these statuses, in order.
    pub fn respond_next(&self, statuses: &[u16]) {
        self.script
            .lock()
            .expect("receiver poisoned")
            .next
            .extend(statuses);
    }

    /// Answers every request (after the scripted ones) with `status`.
    pub fn respond_always(&self, status: u16) {
        self.script
            .lock()
            .expect("receiver poisoned")
            .default_status = Some(status);
    }

    /// TCP connections accepted so far, whether or not a request came on them.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, delay: Duration) {
        self.script.lock().expect("receiver poisoned").delay = delay;
    }

    /// Everything received so far, in order of answer.
    pub fn received(&self) -> Vec<Received> {
        self.script
            .lock()
            .expect("receiver poisoned")
            .received
            .clone()
    }

    /// Waits until `done` holds for what was received, or panics after `deadline`.
    pub async fn wait_until(
        &self,
        what: &str,
        deadline: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let end = Instant::now() + deadline;
        loop {
            let arrived = self.arrived.notified();
            let received = self.received();
            if done(&received) {
                return received;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: not within {deadline:?}; received {} requests",
                received.len()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), arrived).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
