//! A bare WebSocket client: sends exactly what the test says, returns each server frame, and
//! reports the close code. It is how tests send what no SDK would.

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::header::{CONNECTION, UPGRADE};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

struct SpawnExecutor;

impl<F> hyper::rt::Executor<F> for SpawnExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

/// What the server sent next.
#[derive(Debug)]
pub enum Received {
    Json(Value),
    Close(u16, String),
    /// The connection ended without a close frame.
    Ended,
}

/// The `code` of an error frame; panics, showing the frame, when it is not one.
pub fn error_code(f: &Value) -> &str {
    assert_eq!(f["op"], "error", "expected an error frame, got {f}");
    f["code"].as_str().expect("error frame has a code")
}

/// Every wait in a test is bounded, so a missing frame fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct RawClient {
    ws: WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
}

impl RawClient {
    /// Opens `path` (e.g. `/v1/apps/demo/ws?token=...`) with optional bearer header.
    pub async fn connect(addr: SocketAddr, path: &str, bearer: Option<&str>) -> RawClient {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        Self::connect_with(addr, path, &headers).await
    }

    /// Opens `path` with extra request headers (`Origin`, `Authorization`...).
    pub async fn connect_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        let mut req = Request::builder()
            .method("GET")
            .uri(format!("http://{addr}{path}"))
            .header("Host", addr.to_string())
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::<Bytes>::new()).expect("request");
        let (mut ws, _) = fastwebsockets::handshake::client(&SpawnExecutor, req, stream)
            .await
            .expect("websocket handshake");
        // Never answers pings: tests decide whether a client looks alive. (A pong written to a
        // server that already closed would also draw a reset and lose the close frame.)
        ws.set_auto_pong(false);
        ws.set_max_message_size(64 << 20);
        RawClient { ws }
    }

    /// Connects with `token` in the query string and waits for `ready`.
    pub async fn ready(addr: SocketAddr, app: &str, token: &str) -> RawClient {
        let mut c = Self::connect(addr, &format!("/v1/apps/{app}/ws?token={token}"), None).await;
        let f = c.json().await;
        assert_eq!(f["op"], "ready", "expected ready, got {f}");
        c
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .write_frame(Frame::text(Payload::Owned(text.as_bytes().to_vec())))
            .await
            .expect("send text");
    }

    pub async fn send(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .write_frame(Frame::binary(Payload::Owned(bytes.to_vec())))
            .await
            .expect("send binary");
    }

    /// Sends one message split into `parts`: the first with `opcode`, the rest as
    /// continuations.
    pub async fn send_fragments(&mut self, opcode: OpCode, parts: &[&[u8]]) {
        for (i, part) in parts.iter().enumerate() {
            let op = if i == 0 { opcode } else { OpCode::Continuation };
            let fin = i + 1 == parts.len();
            let frame = Frame::new(fin, op, None, Payload::Owned(part.to_vec()));
            self.ws.write_frame(frame).await.expect("send fragment");
        }
    }

    /// Sends one frame exactly as given (`fin` false leaves a message open).
    pub async fn send_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let frame = Frame::new(fin, opcode, None, Payload::Owned(payload.to_vec()));
        self.ws.write_frame(frame).await.expect("send frame");
    }

    /// Sends a text frame without a masking key, which RFC 6455 forbids from clients.
    pub async fn send_unmasked_text(&mut self, text: &str) {
        self.ws.set_auto_apply_mask(false);
        let frame = Frame::text(Payload::Owned(text.as_bytes().to_vec()));
        self.ws.write_frame(frame).await.expect("send unmasked");
        self.ws.set_auto_apply_mask(true);
    }

    /// Sends a close frame with `code`.
    pub async fn send_close(&mut self, code: u16) {
        self.ws
            .write_frame(Frame::close(code, b"bye"))
            .await
            .expect("send close");
    }

    /// The next data frame or close, skipping pings; bounded by [`WAIT`].
    pub async fn recv(&mut self) -> Received {
        let next = async {
            loop {
                match self.ws.read_frame().await {
                    Ok(f) => match f.opcode {
                        OpCode::Text => {
                            let v: Value =
                                serde_json::from_slice(&f.payload).expect("server sent JSON");
                            return Received::Json(v);
                        }
                        OpCode::Close => {
                            let code = if f.payload.len() >= 2 {
                                u16::from_be_bytes([f.payload[0], f.payload[1]])
                            } else {
                                1005
                            };
                            let reason =
                                String::from_utf8_lossy(&f.payload[2.min(f.payload.len())..])
                                    .into_owned();
                            return Received::Close(code, reason);
                        }
                        _ => continue,
                    },
                    Err(_) => return Received::Ended,
                }
            }
        };
        tokio::time::timeout(WAIT, next)
            .await
            .expect("timed out waiting for a server frame")
    }

    /// The next JSON frame; panics on close.
    pub async fn json(&mut self) -> Value {
        match self.recv().await {
            Received::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame with op `op`, skipping others (deliveries, presence events...).
    pub async fn next_op(&mut self, op: &str) -> Value {
        loop {
            let f = self.json().await;
            if f["op"] == op {
                return f;
            }
        }
    }

    /// Sends a request and returns the first frame answering its `id`, skipping deliveries.
    pub async fn request(&mut self, value: Value) -> Value {
        let id = value["id"].clone();
        self.send(&value).await;
        loop {
            let f = self.json().await;
            if f["id"] == id
                && (f["op"] == "ack"
                    || f["op"] == "error"
                    || f["op"] == "pong"
                    || f["op"] == "ready")
            {
                return f;
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match self.recv().await {
                Received::Close(code, _) => return code,
                Received::Ended => panic!("connection ended without a close frame"),
                Received::Json(_) => continue,
            }
        }
    }
}
