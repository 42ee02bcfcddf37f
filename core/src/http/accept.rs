//! The accept loop of every HTTP listener (gateway, `waas dev`, the control-plane's admin API)
//! and the bounds on a connection before it becomes a WebSocket: how long a client may take to
//! send a request's headers, how long a kept-alive connection may sit idle between requests, and
//! how many connections one source address may hold.
//!
//! Without them, a client opening connections and sending nothing (or a header byte a second)
//! holds a socket and a task each until it gives up, and a thousand of them exhaust the
//! process's file descriptors: `/healthz` stops answering for everyone.
//!
//! The two timeouts are ours rather than hyper's `header_read_timeout`: hyper starts that clock
//! as soon as it waits for a request, so a kept-alive connection could never idle longer than
//! headers may take to arrive. Load balancers want the opposite (a keep-alive above their own
//! idle timeout, 60 s on common ones, and a short header timeout), so the clocks are separate:
//! - a new connection has `http_header_timeout` to deliver its first request's headers;
//! - after a response, a connection may stay silent for `http_keepalive_timeout`;
//! - from the first byte of a later request, its headers must be complete within
//!   `http_header_timeout`.
//!
//! Time spent in a handler (reading a body, answering) is not bounded here.

pub use super::stream::HttpStream;
use axum::Router;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The limits that apply to HTTP connections (from the gateway's `Limits`, whose
/// `http_header_timeout_ms`, `http_keepalive_timeout_ms` and `max_connections_per_address`
/// they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// 0 = unlimited.
    pub max_connections_per_address: usize,
}

/// Open connections per source address. A plain map behind a mutex: it is touched once when a
/// connection is accepted and once when it ends, never across an `.await`, and those two moments
/// are rare next to the traffic on a connection.
#[derive(Debug, Default, Clone)]
pub struct AddressCounts(Arc<Counts>);

type Counts = Mutex<HashMap<IpAddr, usize>>;

impl AddressCounts {
    /// A slot for `ip`, or `None` when it already holds `max` connections (0 = unlimited,
    /// nothing counted).
    pub fn acquire(&self, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        if max == 0 {
            return Some(AddressSlot(None));
        }
        // An IPv4 client on a dual-stack socket shows up as `::ffff:a.b.c.d`: one address.
        let ip = ip.to_canonical();
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot(Some((Arc::clone(&self.0), ip))))
    }

    /// Connections `ip` holds now.
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

/// One counted connection; released on drop. An upgraded WebSocket carries it for its life.
#[derive(Debug)]
pub struct AddressSlot(Option<(Arc<Counts>, IpAddr)>);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((counts, ip)) = self.0.take() {
            let mut counts = counts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request since `since`; `first_byte` is when its first byte arrived.
    Waiting {
        since: Instant,
        first_byte: Option<Instant>,
        first_request: bool,
    },
    /// A request is being handled (or the connection was upgraded): no deadline.
    Busy,
}

/// A connection's phase, shared by its socket (which sees bytes arrive), its service (which
/// sees requests start and end) and its task (which enforces the deadline).
pub(super) struct Activity {
    phase: Mutex<Phase>,
    /// Woken when the deadline may have moved earlier, so the task re-arms its timer.
    changed: Notify,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                first_byte: None,
                first_request: true,
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn bytes_arrived(&self) {
        let mut phase = self.phase();
        if let Phase::Waiting { first_byte, .. } = &mut *phase {
            if first_byte.is_none() {
                *first_byte = Some(Instant::now());
                drop(phase);
                self.changed.notify_one();
            }
        }
    }

    fn busy(&self) {
        *self.phase() = Phase::Busy;
    }

    fn idle(&self) {
        *self.phase() = Phase::Waiting {
            since: Instant::now(),
            first_byte: None,
            first_request: false,
        };
        self.changed.notify_one();
    }

    /// When the connection must have delivered its request's headers, if it is waiting for one.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Busy => None,
            Phase::Waiting {
                first_byte: Some(at),
                ..
            } => Some(at + limits.header_timeout),
            Phase::Waiting {
                since,
                first_request: true,
                ..
            } => Some(since + limits.header_timeout),
            Phase::Waiting { since, .. } => Some(since + limits.keepalive_timeout),
        }
    }
}

/// The app's service, telling the connection's [`Activity`] when a request starts and ends.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<B>, S::Error>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.busy();
        let activity = Arc::clone(&self.activity);
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await;
            // An upgraded connection leaves HTTP: no more requests, no deadline.
            let upgraded = matches!(&res, Ok(r) if r.status() == StatusCode::SWITCHING_PROTOCOLS);
            if !upgraded {
                activity.idle();
            }
            res
        })
    }
}

/// Serves one accepted connection with `http` and `service` until it ends, its deadline passes
/// (then it is dropped: the socket closes), or `stopped` asks it to finish.
pub(crate) async fn serve_connection<S, B>(
    http: hyper::server::conn::http1::Builder,
    stream: TcpStream,
    slot: AddressSlot,
    service: S,
    limits: HttpLimits,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let io = HttpStream::new(stream, Arc::clone(&activity), slot);
    let service = Tracked {
        inner: service,
        activity: Arc::clone(&activity),
    };
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let far = || Instant::now() + Duration::from_secs(86_400);
    let timer = tokio::time::sleep_until(activity.deadline(&limits).unwrap_or_else(far));
    tokio::pin!(timer);
    let mut stopping = false;
    let res = loop {
        tokio::select! {
            res = conn.as_mut() => break res,
            _ = stopped.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.changed.notified() => {
                timer.as_mut().reset(activity.deadline(&limits).unwrap_or_else(far));
            }
            _ = timer.as_mut() => match activity.deadline(&limits) {
                Some(deadline) if deadline <= Instant::now() => {
                    tracing::debug!("http connection closed: no complete request in time");
                    return;
                }
                deadline => timer.as_mut().reset(deadline.unwrap_or_else(far)),
            },
        }
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

/// HTTP connections still finishing after the accept loop stopped.
pub struct InFlight {
    /// Each HTTP connection task holds a receiver; `closed()` then waits for all of them.
    stop: tokio::sync::watch::Sender<bool>,
}

impl InFlight {
    /// Asks every HTTP connection to finish its current request, and waits until they have.
    pub async fn drain(self) {
        let _ = self.stop.send(true);
        self.stop.closed().await;
    }
}

/// The source address of the connection a request came on, in every request's extensions:
/// what per-address limits above HTTP (the dashboard's sign-in attempts) count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Accepts HTTP/1 connections for `routes` until `shutdown` resolves, within `limits`
/// (header and keep-alive timeouts, connections per source address: this module's).
///
/// The accept loop is ours rather than `axum::serve` so that upgraded connections hand back
/// the plain `TcpStream` (hyper's HTTP/1 connection, not the auto-detecting one, which wraps
/// it), letting the connection task write frames straight to the socket.
pub async fn accept_until(
    listener: TcpListener,
    routes: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> InFlight {
    let service = TowerToHyperService::new(routes);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let http = hyper::server::conn::http1::Builder::new();
    let addresses = AddressCounts::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = addresses.acquire(peer.ip(), limits.max_connections_per_address) else {
            // Dropped at once: the socket closes before anything is read.
            tracing::debug!(%peer, "connection refused: max_connections_per_address reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let routes = service.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            hyper::service::Service::call(&routes, req)
        });
        tokio::spawn(serve_connection(
            http.clone(),
            stream,
            slot,
            service,
            limits,
            stopped.clone(),
        ));
    }
    InFlight { stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_slots_count_and_release() {
        let counts = AddressCounts::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = counts.acquire(a, 2).expect("first");
        let two = counts.acquire(mapped, 2).expect("second, same address");
        assert!(counts.acquire(a, 2).is_none(), "third refused");
        let other = counts
            .acquire(b, 2)
            .expect("another address has its own count");
        drop(one);
        assert_eq!(counts.count(a), 1);
        let three = counts.acquire(a, 2).expect("a released slot is reusable");
        drop((two, three, other));
        assert!(counts.0.lock().unwrap().is_empty(), "no entry left behind");
        let _unlimited: Vec<_> = (0..5).map(|_| counts.acquire(a, 0).unwrap()).collect();
        assert_eq!(counts.count(a), 0, "0 = unlimited, not counted");
    }
}
