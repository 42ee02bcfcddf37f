//! Every open connection on this node, for the work that concerns all of them: heartbeats,
//! idle and expiry checks, and the drain on shutdown. The hot path (fan-out) never looks here.

use crate::outbound::Outbound;
use crate::wsframe;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;
use waas_protocol::CloseCode;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<u64, Arc<Tracked>>>;

/// What the sweeper needs to know about a connection besides its queue.
pub struct Tracked {
    pub out: Arc<Outbound>,
    /// The app id from the URL, so an app's connections can be closed when it is deleted.
    pub app: String,
    /// Token expiry in seconds since the epoch; 0 = none (or not yet authenticated).
    pub expires_at: AtomicU64,
    /// 0 until authenticated, so the sweeper can enforce the connect timeout.
    pub authenticated_at_ms: AtomicU64,
    pub opened_ms: u64,
}

pub struct Connections {
    shards: Box<[Shard]>,
    next_id: AtomicU64,
    /// This process's part of connection ids: random per process, so that the counter's ids
    /// (which every gateway starts at 1) name one connection in the whole cluster.
    node: String,
    /// This process's part of Pusher socket ids (`{socket_node}.{id}`), random per process for
    /// the same reason as `node`; Pusher clients expect digits.
    socket_node: u32,
    origin: Instant,
    /// Signalled whenever a connection leaves, so shutdown can wait for the last one.
    left: Notify,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(1),
            node: format!("{:016x}", rand::random::<u64>()),
            socket_node: rand::random::<u32>(),
            origin: Instant::now(),
            left: Notify::new(),
        }
    }
}

/// Removes its connection from the registry on drop.
pub struct Registration {
    conns: Arc<Connections>,
    pub tracked: Arc<Tracked>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.tracked.out.id;
        self.conns
            .shard(id)
            .lock()
            .expect("registry poisoned")
            .remove(&id);
        self.conns.left.notify_waiters();
        waas_core::metrics::METRICS.connections.dec();
    }
}

impl Connections {
    fn shard(&self, id: u64) -> &Shard {
        &self.shards[id as usize % SHARDS]
    }

    /// The `connection_id` of connection `id` (its [`Outbound::id`]) of `app`, unique in the
    /// cluster: `{app}-{node}-{id}`, `node` being 16 hex digits drawn at start-up. Services and
    /// webhooks receive it as the caller's identity, so two gateways must never both say
    /// `shop-1`.
    pub fn connection_id(&self, app: &waas_protocol::AppId, id: u64) -> String {
        format!("{app}-{}-{id}", self.node)
    }

    /// This process's node id, the `{node}` of its connection ids.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Milliseconds on this node's monotonic clock.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The Pusher socket id of connection `id`: `{node}.{id}`, digits only, unique in the
    /// cluster like [`Connections::connection_id`].
    pub fn socket_id(&self, id: u64) -> String {
        format!("{}.{id}", self.socket_node)
    }

    pub fn register(
        self: &Arc<Self>,
        app: &str,
        max_frames: usize,
        max_bytes: usize,
    ) -> Registration {
        self.register_as(app, false, max_frames, max_bytes)
    }

    /// Registers a connection, of the Pusher front when `pusher` (its queue then carries its
    /// socket id, [`Outbound::pusher`]).
    pub fn register_as(
        self: &Arc<Self>,
        app: &str,
        pusher: bool,
        max_frames: usize,
        max_bytes: usize,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let out = if pusher {
            Outbound::pusher(id, max_frames, max_bytes, now, self.socket_id(id))
        } else {
            Outbound::new(id, max_frames, max_bytes, now)
        };
        let tracked = Arc::new(Tracked {
            out: Arc::new(out),
            app: app.to_owned(),
            expires_at: AtomicU64::new(0),
            authenticated_at_ms: AtomicU64::new(0),
            opened_ms: now,
        });
        self.shard(id)
            .lock()
            .expect("registry poisoned")
            .insert(id, Arc::clone(&tracked));
        let metrics = &waas_core::metrics::METRICS;
        metrics.connections.inc();
        metrics.connections_opened.inc();
        Registration {
            conns: Arc::clone(self),
            tracked,
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("registry poisoned").len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn each(&self, mut f: impl FnMut(&Tracked)) {
        for shard in self.shards.iter() {
            let snapshot: Vec<Arc<Tracked>> = shard
                .lock()
                .expect("registry poisoned")
                .values()
                .cloned()
                .collect();
            for t in snapshot {
                f(&t);
            }
        }
    }

    /// One sweep: close connections that are idle, expired or never authenticated, and ping
    /// the rest when `ping` is set.
    pub fn sweep(&self, idle_ms: u64, connect_ms: u64, ping: bool) {
        let now = self.now_ms();
        let now_s = waas_core::time::now_ms() / 1000;
        let ping_frame = wsframe::ping();
        self.each(|t| {
            let out = &t.out;
            let authenticated = t.authenticated_at_ms.load(Ordering::Acquire) != 0;
            let expires = t.expires_at.load(Ordering::Acquire);
            if !authenticated && now.saturating_sub(t.opened_ms) > connect_ms {
                out.close(CloseCode::CONNECT_TIMEOUT);
            } else if now.saturating_sub(out.last_seen_ms.load(Ordering::Relaxed)) > idle_ms {
                out.close(CloseCode::HEARTBEAT_TIMEOUT);
            } else if expires != 0 && now_s >= expires {
                out.close(CloseCode::TOKEN_EXPIRED);
            } else if ping {
                out.push(ping_frame.clone());
            }
        });
    }

    /// Asks every connection to close with `code`.
    pub fn close_all(&self, code: CloseCode) {
        self.each(|t| t.out.close(code));
    }

    /// Asks every connection of `app` to close with `code`.
    pub fn close_app(&self, app: &str, code: CloseCode) {
        self.each(|t| {
            if t.app == app {
                t.out.close(code)
            }
        });
    }

    /// Waits until no connection is left.
    pub async fn wait_empty(&self) {
        loop {
            let left = self.left.notified();
            if self.is_empty() {
                return;
            }
            left.await;
        }
    }
}
