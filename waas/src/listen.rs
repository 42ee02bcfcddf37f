//! The listening socket. Tokio's `TcpListener::bind` uses a backlog of 128: a burst of clients
//! reconnecting at once (a gateway restart, a load test) overflows it and the kernel drops SYNs,
//! costing each of them a one-second retransmit. The backlog is a setting instead.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
