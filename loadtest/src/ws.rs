//! Client WebSocket handshake: a tokio `TcpStream` (optionally bound to a chosen local address,
//! optionally opened in another network namespace), hyper 1's HTTP/1.1 upgrade, then
//! fastwebsockets frames.

use crate::netns::NetNs;
use anyhow::{Context, Result};
use bytes::Bytes;
use fastwebsockets::{handshake, WebSocket};
use http_body_util::Empty;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpSocket;

/// A client WebSocket as the handshake leaves it.
pub type Ws = WebSocket<TokioIo<Upgraded>>;

/// Where to connect, resolved once.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `Host` header value (what the user typed).
    pub host: String,
    /// The network namespace to connect from (`--subscriber-netns`); `None`: the process's.
    pub netns: Option<Arc<NetNs>>,
}

impl Endpoint {
    pub async fn resolve(addr: &str) -> Result<Endpoint> {
        let resolved = tokio::net::lookup_host(addr)
            .await
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .with_context(|| format!("{addr} resolves to no address"))?;
        Ok(Endpoint {
            addr: resolved,
            host: addr.to_string(),
            netns: None,
        })
    }
}

/// Opens a WebSocket to `path_and_query`, with `Authorization: Bearer <bearer>` when given.
pub async fn connect(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    path_and_query: &str,
    bearer: Option<&str>,
) -> Result<Ws> {
    let socket = match &endpoint.netns {
        Some(ns) => ns.tcp_socket(endpoint.addr.is_ipv4())?,
        None if endpoint.addr.is_ipv4() => TcpSocket::new_v4()?,
        None => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding to {ip}"))?;
    }
    let stream = socket
        .connect(endpoint.addr)
        .await
        .with_context(|| format!("connecting to {}", endpoint.addr))?;
    stream.set_nodelay(true)?;

    let mut req = Request::builder()
        .method("GET")
        .uri(path_and_query)
        .header(HOST, &endpoint.host)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13");
    if let Some(token) = bearer {
        req = req.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let (ws, _response) = handshake::client(&SpawnExecutor, req, stream)
        .await
        .context("WebSocket handshake")?;
    Ok(ws)
}

/// Runs hyper's connection future (which ends at the upgrade) on the tokio runtime.
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::task::spawn(fut);
    }
}

/// The `i`-th source address, round robin; `None` lets the kernel choose.
pub fn source_for(sources: &[IpAddr], i: usize) -> Option<IpAddr> {
    (!sources.is_empty()).then(|| sources[i % sources.len()])
}
