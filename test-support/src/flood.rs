//! An HTTP server that answers every request `200` with a body far larger than any client
//! should read — a stand-in for a webhook receiver or an upstream that streams without end —
//! and counts the body bytes it managed to hand to the socket. A client that stops reading
//! and closes the connection makes the count stop near what the socket buffers hold; a client
//! that reads everything makes it reach the whole size. Stopped on drop.

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Size of each chunk of the body.
const CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Counts {
    /// Body bytes handed to hyper, which writes them (its write buffer holds a few hundred KiB).
    written: AtomicU64,
    /// Requests received.
    requests: AtomicUsize,
    /// Connections accepted.
    accepted: AtomicUsize,
    /// Connections over: the body was all sent, or the client went away.
    ended: AtomicUsize,
    changed: Notify,
}

pub struct Flood {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

/// `size` bytes of `a`, one chunk at a time, counted as hyper takes them.
struct FloodBody {
    left: u64,
    chunk: Bytes,
    counts: Arc<Counts>,
}

impl Body for FloodBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64) as usize;
        self.left -= n as u64;
        self.counts.written.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

impl Flood {
    /// Answers every request with a chunked (no `content-length`) body of `size` bytes.
    pub async fn start(size: u64) -> Flood {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let counts: Arc<Counts> = Arc::default();
        let c = Arc::clone(&counts);
        let chunk = Bytes::from(vec![b'a'; CHUNK]);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.accepted.fetch_add(1, Ordering::SeqCst);
                c.changed.notify_waiters();
                let (c, chunk) = (Arc::clone(&c), chunk.clone());
                tokio::spawn(async move {
                    let service = service_fn(|_req: Request<hyper::body::Incoming>| {
                        c.requests.fetch_add(1, Ordering::SeqCst);
                        let body = FloodBody {
                            left: size,
                            chunk: chunk.clone(),
                            counts: Arc::clone(&c),
                        };
                        async move { Ok::<_, hyper::Error>(Response::new(body)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    c.ended.fetch_add(1, Ordering::SeqCst);
                    c.changed.notify_waiters();
                });
            }
        });
        Flood { addr, counts, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Body bytes sent so far, all connections together.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Waits until every connection accepted (at least one) is over, or panics after
    /// `deadline`. Then [`Flood::written`] is final.
    pub async fn wait_all_ended(&self, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            let changed = self.counts.changed.notified();
            let accepted = self.accepted();
            if accepted > 0 && self.counts.ended.load(Ordering::SeqCst) == accepted {
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "connections still open after {deadline:?}: {accepted} accepted, {} bytes written",
                self.written()
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), changed).await;
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.task.abort();
    }
}
