//! The four ways of sending the same request, each timed end to end on the client: (a) HTTP/1.1
//! with a new TCP connection per request, (b) HTTP/1.1 over kept-alive connections, (c) a WaaS
//! request over an open socket to a service answered by an SDK server, (d) the same to a route
//! whose responder is the HTTP backend. With N in flight, (a) and (b) use N workers with a
//! connection each (HTTP/1.1 has one request at a time per connection); (c) and (d) use N workers
//! sharing one socket, as one client holding one connection would.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::value::RawValue;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::TcpStream;
use waas_sdk::rpc::Call;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    NewConnection,
    KeepAlive,
    RpcService,
    RpcUpstream,
    /// Experiments: the SDK's `ping` (one hop), a bare WebSocket `ping`, a bare WebSocket
    /// `request` to the SDK server.
    SdkPing,
    RawPing,
    RawRpc,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::NewConnection,
        Mode::KeepAlive,
        Mode::RpcService,
        Mode::RpcUpstream,
    ];

    pub fn letter(self) -> char {
        match self {
            Mode::NewConnection => 'a',
            Mode::KeepAlive => 'b',
            Mode::RpcService => 'c',
            Mode::RpcUpstream => 'd',
            Mode::SdkPing => 'p',
            Mode::RawPing => 'q',
            Mode::RawRpc => 'r',
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::NewConnection => "(a) HTTP/1.1, new connection per request",
            Mode::KeepAlive => "(b) HTTP/1.1 keep-alive",
            Mode::RpcService => "(c) WaaS request -> SDK server",
            Mode::RpcUpstream => "(d) WaaS request -> HTTP upstream",
            Mode::SdkPing => "(p) SDK ping to the gateway",
            Mode::RawPing => "(q) bare WebSocket ping to the gateway",
            Mode::RawRpc => "(r) bare WebSocket request -> SDK server",
        }
    }
}

/// Where requests go.
#[derive(Clone)]
pub struct Target {
    /// The HTTP backend, for (a) and (b).
    pub backend: SocketAddr,
    /// A client connected to the gateway, for (c) and (d).
    pub client: waas_sdk::Client,
    /// The gateway, for bare WebSocket clients.
    pub gateway: SocketAddr,
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Sends `requests` requests with `in_flight` at a time; latencies in nanoseconds.
pub async fn run(
    mode: Mode,
    target: &Target,
    payload: &Bytes,
    requests: usize,
    in_flight: usize,
) -> Result<Histogram<u64>> {
    let mut workers = Vec::new();
    for w in 0..in_flight {
        let share = requests / in_flight + usize::from(w < requests % in_flight);
        let (target, payload) = (target.clone(), payload.clone());
        workers.push(tokio::spawn(async move {
            worker(mode, &target, &payload, share).await
        }));
    }
    let mut total = histogram();
    for w in workers {
        total.add(w.await??)?;
    }
    Ok(total)
}

async fn worker(mode: Mode, target: &Target, payload: &Bytes, n: usize) -> Result<Histogram<u64>> {
    let mut h = histogram();
    match mode {
        Mode::NewConnection => {
            for _ in 0..n {
                let started = Instant::now();
                let mut sender = connect(target.backend).await?;
                post(&mut sender, target.backend, payload).await?;
                drop(sender);
                h.record(started.elapsed().as_nanos() as u64)?;
            }
        }
        Mode::KeepAlive => {
            let mut sender = connect(target.backend).await?;
            for _ in 0..n {
                let started = Instant::now();
                post(&mut sender, target.backend, payload).await?;
                h.record(started.elapsed().as_nanos() as u64)?;
            }
        }
        Mode::SdkPing => {
            for _ in 0..n {
                let started = Instant::now();
                target.client.ping().await?;
                h.record(started.elapsed().as_nanos() as u64)?;
            }
        }
        Mode::RawPing | Mode::RawRpc => {
            let endpoint = loadtest::ws::Endpoint {
                addr: target.gateway,
                host: target.gateway.to_string(),
                netns: None,
            };
            let mut ws =
                loadtest::ws::connect(&endpoint, None, "/v1/apps/demo/ws?token=demo-key", None)
                    .await?;
            ws.set_auto_pong(true);
            let ready = ws.read_frame().await?;
            let text = if mode == Mode::RawPing {
                r#"{"op":"ping","id":1}"#.to_owned()
            } else {
                format!(
                    r#"{{"op":"request","id":1,"method":"POST","path":"/svc/echo","body":{}}}"#,
                    std::str::from_utf8(payload)?
                )
            };
            drop(ready);
            for _ in 0..n {
                let started = Instant::now();
                ws.write_frame(fastwebsockets::Frame::text(
                    fastwebsockets::Payload::Borrowed(text.as_bytes()),
                ))
                .await?;
                loop {
                    let f = ws.read_frame().await?;
                    if f.opcode == fastwebsockets::OpCode::Text {
                        break;
                    }
                }
                h.record(started.elapsed().as_nanos() as u64)?;
            }
        }
        Mode::RpcService | Mode::RpcUpstream => {
            let path = if mode == Mode::RpcService {
                "/svc/echo"
            } else {
                "/http/echo"
            };
            let body: Box<RawValue> =
                serde_json::from_slice(payload).context("the payload is JSON")?;
            let call = Call::post(path).json(&body)?;
            for _ in 0..n {
                let started = Instant::now();
                let r = target.client.call(call.clone()).await?;
                if r.status != 200 || r.body().get().len() != payload.len() {
                    bail!(
                        "{}: unexpected answer {} of {} bytes",
                        mode.label(),
                        r.status,
                        r.body().get().len()
                    );
                }
                h.record(started.elapsed().as_nanos() as u64)?;
            }
        }
    }
    Ok(h)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn post(sender: &mut Sender, addr: SocketAddr, payload: &Bytes) -> Result<()> {
    sender.ready().await?;
    let req = Request::post("/echo")
        .header(HOST, addr.to_string())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(payload.clone()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status != 200 || body.len() != payload.len() {
        bail!("HTTP: unexpected answer {status} of {} bytes", body.len());
    }
    Ok(())
}
