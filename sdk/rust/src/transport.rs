//! One WebSocket connection to a gateway: dialing, the upgrade, and frame I/O.
//!
//! The socket is split in two. A reader task owns the read half and turns frames into
//! [`Inbound`] items on a bounded channel; the connection task (see `actor.rs`) owns the write
//! half. The split exists because fastwebsockets' `read_frame` is not cancel-safe (a header
//! half-read is lost if the future is dropped), so it cannot sit in the actor's `select!`; a
//! dedicated task may await it to completion. The channel being bounded keeps backpressure: a
//! slow actor stops the reader, TCP stops the server, and the server applies its slow-consumer
//! policy (close 4000) instead of this process buffering without limit.
//!
//! The upgrade is done by hand with hyper rather than `fastwebsockets::handshake::client` so that
//! a refused upgrade (404, 426, ...) can be read as the REST error body it is.

use crate::error::{Error, Result};
use bytes::Bytes;
use fastwebsockets::{
    FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocket, WebSocketWrite,
};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::WriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use waas_protocol::frame::ServerFrame;
use waas_protocol::rest::ErrorBody;
use waas_protocol::server_name::SERVER_NAME_PARAM;
use waas_protocol::{AppId, ServerName};

/// Frames the reader task hands to the connection task; more wait in the socket.
const INBOUND_CAPACITY: usize = 256;
/// Largest refused-upgrade body read for its error message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A parsed gateway base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    /// `host[:port]` as given, for the `Host` header.
    authority: String,
    /// Path prefix without a trailing slash (usually empty).
    prefix: String,
    /// `?server_name=...` when the client has a server name, else empty.
    query: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::Config(format!("gateway URL {url:?}: {e}")))?;
        match uri.scheme_str() {
            Some("ws") | Some("http") => {}
            Some("wss") | Some("https") => {
                return Err(Error::Config(format!(
                    "gateway URL {url:?}: TLS is not supported by this SDK yet; put a local TLS \
                     terminator in front or use ws://"
                )))
            }
            _ => {
                return Err(Error::Config(format!(
                    "gateway URL {url:?}: expected ws:// or http://"
                )))
            }
        }
        let authority = uri
            .authority()
            .ok_or_else(|| Error::Config(format!("gateway URL {url:?} has no host")))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint {
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            query: String::new(),
        })
    }

    /// Sends `name` as the connection's `server_name` (its characters need no escaping).
    pub(crate) fn with_server_name(mut self, name: Option<&ServerName>) -> Endpoint {
        self.query = name.map_or_else(String::new, |n| {
            format!("?{SERVER_NAME_PARAM}={}", n.as_str())
        });
        self
    }

    fn ws_path(&self, app: &str) -> String {
        format!("{}/v1/apps/{app}/ws{}", self.prefix, self.query)
    }

    /// The full WebSocket URL, for events and logs.
    pub(crate) fn ws_url(&self, app: &str) -> String {
        format!("ws://{}{}", self.authority, self.ws_path(app))
    }
}

/// A control frame the WebSocket protocol obliges the client to send (a pong answering the
/// server's ping, the echo of its close); the reader cannot write, so it passes them on.
#[derive(Debug)]
pub(crate) struct Obligation {
    opcode: OpCode,
    payload: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum Inbound {
    Frame(ServerFrame),
    Obligation(Obligation),
    /// The server sent a close frame; the reader has stopped.
    Closed {
        code: Option<u16>,
        reason: String,
    },
    /// The socket failed; the reader has stopped.
    Failed(Error),
}

/// What the server said in `ready`.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub connection_id: String,
    pub sub: String,
}

type Writer = WebSocketWrite<WriteHalf<TokioIo<Upgraded>>>;

/// An established, authenticated connection.
pub(crate) struct Transport {
    writer: Writer,
    pub inbound: mpsc::Receiver<Inbound>,
    reader: JoinHandle<()>,
    pub ready: Ready,
    pub url: String,
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Transport {
    /// Opens a connection and waits for `ready`, all within `timeout`.
    pub(crate) async fn dial(
        endpoint: &Endpoint,
        app: &AppId,
        token: &str,
        timeout: Duration,
    ) -> Result<Transport> {
        tokio::time::timeout(timeout, Self::dial_inner(endpoint, app, token))
            .await
            .map_err(|_| Error::Timeout {
                operation: "connect",
            })?
    }

    async fn dial_inner(endpoint: &Endpoint, app: &AppId, token: &str) -> Result<Transport> {
        let ws = upgrade(endpoint, app.as_str(), token).await?;
        let (read, writer) = ws.split(tokio::io::split);
        let (tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let reader = tokio::spawn(read_loop(FragmentCollectorRead::new(read), tx));
        let mut transport = Transport {
            writer,
            inbound,
            reader,
            ready: Ready {
                connection_id: String::new(),
                sub: String::new(),
            },
            url: endpoint.ws_url(app.as_str()),
        };
        transport.ready = transport.await_ready().await?;
        Ok(transport)
    }

    async fn await_ready(&mut self) -> Result<Ready> {
        loop {
            let item = self.inbound.recv().await.ok_or_else(|| {
                Error::WebSocket("connection ended before the server was ready".into())
            })?;
            match item {
                Inbound::Frame(ServerFrame::Ready {
                    connection_id, sub, ..
                }) => return Ok(Ready { connection_id, sub }),
                Inbound::Frame(ServerFrame::Error { code, message, .. }) => {
                    return Err(Error::Rejected { code, message })
                }
                Inbound::Frame(other) => {
                    tracing::debug!(frame = ?other, "frame before ready ignored");
                }
                Inbound::Obligation(o) => {
                    // If this fails the reader reports why next.
                    let _ = self.fulfil(o).await;
                }
                Inbound::Closed { code, reason } => {
                    return Err(match code {
                        Some(code) => Error::Closed { code, reason },
                        None => Error::WebSocket("closed before ready".into()),
                    })
                }
                Inbound::Failed(e) => return Err(e),
            }
        }
    }

    pub(crate) async fn send_text(&mut self, text: String) -> Result<()> {
        self.write(Frame::text(Payload::Owned(text.into_bytes())))
            .await
    }

    pub(crate) async fn fulfil(&mut self, o: Obligation) -> Result<()> {
        self.write(Frame::new(true, o.opcode, None, Payload::Owned(o.payload)))
            .await
    }

    /// Sends a close frame. The caller drops the transport afterwards; waiting for the server's
    /// echo would only delay shutdown, and the server tolerates a missing one.
    pub(crate) async fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        self.write(Frame::close(code, reason.as_bytes())).await
    }

    async fn write(&mut self, frame: Frame<'_>) -> Result<()> {
        self.writer.write_frame(frame).await.map_err(ws_error)?;
        self.writer.flush().await.map_err(ws_error)
    }
}

fn ws_error(e: fastwebsockets::WebSocketError) -> Error {
    match e {
        fastwebsockets::WebSocketError::IoError(io) => Error::Io(io),
        fastwebsockets::WebSocketError::UnexpectedEOF => {
            Error::WebSocket("connection closed without a close frame".into())
        }
        other => Error::WebSocket(other.to_string()),
    }
}

/// TCP connect and HTTP/1.1 upgrade to a WebSocket.
async fn upgrade(
    endpoint: &Endpoint,
    app: &str,
    token: &str,
) -> Result<WebSocket<TokioIo<Upgraded>>> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    // Requests are small frames that must go out now, not wait for Nagle.
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| Error::Handshake(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upgrade connection ended");
        }
    });
    let request = Request::builder()
        .method("GET")
        .uri(endpoint.ws_path(app))
        .header(HOST, endpoint.authority.as_str())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::Config(format!("cannot build the upgrade request: {e}")))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| Error::Handshake(e.to_string()))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => Error::Http {
                status,
                code: b.error.code,
                message: b.error.message,
            },
            Err(_) => Error::Handshake(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        });
    }
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| Error::Handshake(e.to_string()))?;
    Ok(WebSocket::after_handshake(
        TokioIo::new(upgraded),
        Role::Client,
    ))
}

/// Reads frames until the socket closes or fails, or the connection task goes away.
async fn read_loop<S>(mut reader: FragmentCollectorRead<S>, tx: mpsc::Sender<Inbound>)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let obligations = tx.clone();
    let mut oblige = move |frame: Frame<'_>| {
        let tx = obligations.clone();
        let o = Obligation {
            opcode: frame.opcode,
            payload: frame.payload.to_vec(),
        };
        async move {
            tx.send(Inbound::Obligation(o))
                .await
                .map_err(|_| std::io::Error::other("connection task gone"))
        }
    };
    loop {
        let item = match reader.read_frame(&mut oblige).await {
            Ok(frame) => match frame.opcode {
                OpCode::Text => match std::str::from_utf8(&frame.payload)
                    .map_err(|e| e.to_string())
                    .and_then(|t| ServerFrame::parse(t).map_err(|e| e.to_string()))
                {
                    Ok(f) => Inbound::Frame(f),
                    Err(e) => {
                        // Servers may add ops; clients must skip what they do not know.
                        tracing::debug!(error = %e, "skipping server frame");
                        continue;
                    }
                },
                OpCode::Close => {
                    let (code, reason) = parse_close(&frame.payload);
                    let _ = tx.send(Inbound::Closed { code, reason }).await;
                    return;
                }
                OpCode::Binary => {
                    tracing::debug!("skipping binary frame: protocol v1 is text only");
                    continue;
                }
                _ => continue,
            },
            Err(e) => {
                let _ = tx.send(Inbound::Failed(ws_error(e))).await;
                return;
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

fn parse_close(payload: &[u8]) -> (Option<u16>, String) {
    if payload.len() < 2 {
        return (None, String::new());
    }
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (
        Some(code),
        String::from_utf8_lossy(&payload[2..]).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let e = Endpoint::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8080));
        assert_eq!(e.ws_path("demo"), "/v1/apps/demo/ws");
        let e = Endpoint::parse("http://example.test/base/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("example.test", 80));
        assert_eq!(e.ws_url("demo"), "ws://example.test/base/v1/apps/demo/ws");
        let e = Endpoint::parse("ws://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.authority, "[::1]:9000");
    }

    #[test]
    fn refuses_tls_and_other_schemes() {
        assert!(matches!(Endpoint::parse("wss://h"), Err(Error::Config(m)) if m.contains("TLS")));
        assert!(matches!(Endpoint::parse("ftp://h"), Err(Error::Config(_))));
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]), (None, String::new()));
        let mut p = 4501u16.to_be_bytes().to_vec();
        p.extend_from_slice(b"token expired");
        assert_eq!(parse_close(&p), (Some(4501), "token expired".into()));
    }
}
