//! A TCP proxy on loopback that delays every byte by a set time in each direction, like a long
//! link between regions, and that a test can cut and restore. Bytes keep their order and
//! pipelining: what is read at `t` is written at `t + delay`, whatever else is in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Forwards every connection it accepts to `upstream`, each direction delayed by `delay`.
/// While [`cut`](Self::cut), it drops the connections it carries and refuses new ones (accepts
/// and closes them at once); [`restore`](Self::restore) lets them in again on the same address.
/// Stops on drop.
pub struct DelayProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    links: Mutex<Vec<JoinHandle<()>>>,
    /// Bytes written to clients, that is delivered from the upstream after the delay.
    to_clients: AtomicU64,
}

impl DelayProxy {
    pub async fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if shared.down.load(Ordering::Acquire) {
                        drop(client);
                        continue;
                    }
                    let link_shared = Arc::clone(&shared);
                    let link = tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        // Either direction ending ends the link (both sockets close).
                        tokio::select! {
                            _ = pump(cr, sw, delay, None) => {}
                            _ = pump(sr, cw, delay, Some(&link_shared.to_clients)) => {}
                        }
                    });
                    let mut links = shared.links.lock().expect("links");
                    links.retain(|l| !l.is_finished());
                    links.push(link);
                }
            }
        });
        DelayProxy {
            addr,
            shared,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` URL of the proxy, for a gateway behind it.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.down.store(true, Ordering::Release);
        for link in self.shared.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.shared.down.store(false, Ordering::Release);
    }

    /// Bytes the proxy has delivered to its clients so far (after the delay): while it is 0,
    /// no client has heard anything from the upstream, not even the answer to its handshake.
    pub fn delivered_to_clients(&self) -> u64 {
        self.shared.to_clients.load(Ordering::Acquire)
    }

    /// Connections accepted so far and still open.
    pub fn open_links(&self) -> usize {
        let mut links = self.shared.links.lock().expect("links");
        links.retain(|l| !l.is_finished());
        links.len()
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, counting the bytes
/// written in `counted`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    counted: Option<&AtomicU64>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
            if let Some(c) = counted {
                c.fetch_add(chunk.len() as u64, Ordering::AcqRel);
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    // The reader ends first (EOF); the writer then drains what is due and shuts down.
    tokio::join!(reader, writer);
}
