//! A TCP proxy on loopback that a test can cut and restore, to take one process off a shared
//! server (one gateway off NATS) while the others keep using it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards every connection it accepts to `upstream`. While [`cut`](Self::cut), it drops the
/// connections it carries and refuses new ones (accepts and closes them at once), so clients
/// see the server go away and come back on the same address after [`restore`](Self::restore).
/// Stops on drop.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    links: Mutex<Vec<JoinHandle<()>>>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if shared.down.load(Ordering::Acquire) {
                        drop(client);
                        continue;
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    let mut links = shared.links.lock().expect("links");
                    links.retain(|l| !l.is_finished());
                    links.push(link);
                }
            }
        });
        TcpProxy {
            addr,
            shared,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
