//! What differs per server under test. Each target module offers:
//! - `subscriber(ctx, i, ready)`: a task that connects, subscribes to its channels
//!   (`ctx.spread.names_of(i)`), reports to
//!   `ready`, then records every delivery into `ctx.stats` until it is aborted or the server
//!   closes the connection;
//! - a publisher implementing [`Publisher`], counting accepted and rejected messages in
//!   `ctx.published`.

pub mod pusher;
pub mod socketio;
pub mod waas;

use crate::spread::Spread;
use crate::stats::Stats;
use crate::ws::Endpoint;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Everything a subscriber or publisher needs, shared by all tasks.
pub struct Ctx {
    /// Where subscribers connect, round robin (one server, or the gateways of a cluster).
    pub endpoints: Vec<Endpoint>,
    /// Where the publisher connects.
    pub publish_endpoint: Endpoint,
    pub app: String,
    pub api_key: String,
    /// The channels and who subscribes to which.
    pub spread: Spread,
    /// One JWT per subscriber (`--auth hs256|rs256`); empty: every subscriber uses `api_key`.
    pub tokens: Vec<String>,
    pub source_ips: Vec<IpAddr>,
    pub stats: Stats,
    pub published: PublishCounters,
}

impl Ctx {
    /// The server subscriber `i` connects to.
    pub fn subscriber_endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// The bearer credential of WaaS subscriber `i`: its token, or the API key.
    pub fn bearer(&self, i: usize) -> &str {
        self.tokens.get(i).map_or(&self.api_key, String::as_str)
    }
}

/// What happened to the published messages.
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// Handed to the socket (or to the HTTP client).
    pub sent: AtomicU64,
    /// Acknowledged by the server: these are delivered to every subscriber.
    pub accepted: AtomicU64,
    /// Refused by the server (error frame, non-2xx) or lost with the connection.
    pub rejected: AtomicU64,
}

impl PublishCounters {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    pub(crate) fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// A subscriber's report that it is subscribed (or why it is not). Holding it holds one of the
/// connect-phase permits, so that only `--connect-concurrency` handshakes run at once.
pub struct Ready {
    /// The subscriber's index.
    i: usize,
    tx: mpsc::UnboundedSender<(usize, anyhow::Result<()>)>,
    _permit: OwnedSemaphorePermit,
}

impl Ready {
    pub fn new(
        i: usize,
        tx: mpsc::UnboundedSender<(usize, anyhow::Result<()>)>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        Ready {
            i,
            tx,
            _permit: permit,
        }
    }

    pub fn report(self, result: anyhow::Result<()>) {
        let _ = self.tx.send((self.i, result));
    }
}

/// The publishing connection of a target.
pub trait Publisher {
    /// Publishes message `id` whose data is the JSON object `data`, to `channel`. Returns once
    /// the message is written (acknowledgements are counted in the background); an error means the
    /// publisher cannot go on.
    fn publish(
        &mut self,
        id: u64,
        channel: &str,
        data: &str,
    ) -> impl Future<Output = anyhow::Result<()>>;

    /// Closes the connection.
    fn close(self) -> impl Future<Output = ()>;
}

/// The close code of a close frame's payload (1005, "no status", when it has none).
pub(crate) fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 1005,
    }
}
