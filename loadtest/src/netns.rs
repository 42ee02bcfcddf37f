//! Opening sockets in another network namespace (`ip netns`), so that one load client can place
//! its subscribers in one region and its publisher in another (`loadtest/regions-bench.sh`) while
//! both read the same clock for latency.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life. Each
//! socket is therefore created on a short-lived thread that first enters the namespace; the
//! runtime's own threads never change namespace, so the publisher and everything else stay where
//! the process started.

use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use tokio::net::TcpSocket;

/// A network namespace, held open by its file.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    file: File,
}

impl NetNs {
    /// Opens `/run/netns/NAME` (what `ip netns add NAME` makes), or NAME itself when it is a path.
    pub fn open(name: &str) -> Result<NetNs> {
        let path = if name.contains('/') {
            PathBuf::from(name)
        } else {
            PathBuf::from("/run/netns").join(name)
        };
        let file = File::open(&path)
            .with_context(|| format!("opening network namespace {}", path.display()))?;
        Ok(NetNs {
            name: name.to_owned(),
            file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new TCP socket (IPv4 or IPv6) in this namespace.
    pub fn tcp_socket(&self, v4: bool) -> Result<TcpSocket> {
        std::thread::scope(|s| {
            s.spawn(|| -> Result<TcpSocket> {
                rustix::thread::move_into_link_name_space(
                    self.file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .with_context(|| format!("entering network namespace {}", self.name))?;
                Ok(if v4 {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }?)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
        })
    }
}
