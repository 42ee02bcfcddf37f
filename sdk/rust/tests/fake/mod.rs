//! A scripted stand-in for the gateway, to drive the SDK into situations a healthy gateway does
//! not produce on demand: silence, any close code at any moment, errors at connect.
//!
//! Every accepted WebSocket is handed to the test as a [`FakeConn`], which speaks raw protocol
//! JSON. Nothing is answered unless the test does it.

#![allow(dead_code)]

use bytes::Bytes;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

pub struct FakeGateway {
    pub addr: SocketAddr,
    conns: mpsc::UnboundedReceiver<FakeConn>,
    task: JoinHandle<()>,
}

pub struct FakeConn {
    ws: FragmentCollector<TokioIo<hyper::upgrade::Upgraded>>,
    /// The `Authorization` header of the upgrade request.
    pub authorization: String,
    pub path: String,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGateway {
    pub async fn start() -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |mut req: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let header = |name| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let authorization = header(hyper::header::AUTHORIZATION);
                            let path = req.uri().path().to_owned();
                            let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
                            tokio::spawn(async move {
                                if let Ok(ws) = upgrade.await {
                                    let _ = tx.send(FakeConn {
                                        ws: FragmentCollector::new(ws),
                                        authorization,
                                        path,
                                    });
                                }
                            });
                            Ok::<Response<Empty<Bytes>>, WebSocketError>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        FakeGateway { addr, conns, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The next connection the SDK opens.
    pub async fn accept(&mut self) -> FakeConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("the SDK connects in time")
            .expect("fake gateway running")
    }

    /// Accepts a connection and sends `ready`.
    pub async fn accept_ready(&mut self, connection_id: &str) -> FakeConn {
        let mut conn = self.accept().await;
        conn.ready(connection_id).await;
        conn
    }

    /// Stops accepting; later connects are refused.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl FakeConn {
    pub async fn send(&mut self, frame: Value) {
        let text = frame.to_string().into_bytes();
        self.ws
            .write_frame(Frame::text(Payload::Owned(text)))
            .await
            .unwrap();
    }

    pub async fn ready(&mut self, connection_id: &str) {
        self.send(json!({"op": "ready", "connection_id": connection_id, "sub": "test", "version": 1, "heartbeat": 25}))
            .await;
    }

    /// The next text frame as JSON; skips control frames.
    pub async fn recv(&mut self) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let frame = self.ws.read_frame().await.expect("read a frame");
                match frame.opcode {
                    OpCode::Text => return serde_json::from_slice(&frame.payload).unwrap(),
                    OpCode::Close => panic!("the SDK closed the connection"),
                    _ => {}
                }
            }
        })
        .await
        .expect("a frame in time")
    }

    /// The next frame of any kind, as (opcode, payload).
    pub async fn recv_raw(&mut self) -> (OpCode, Vec<u8>) {
        let frame = tokio::time::timeout(WAIT, self.ws.read_frame())
            .await
            .expect("a frame in time")
            .expect("read a frame");
        (frame.opcode, frame.payload.to_vec())
    }

    /// Receives a request with `op`, and answers `ack` (with `offset` for publishes).
    pub async fn ack(&mut self, op: &str, offset: Option<u64>) -> Value {
        let request = self.recv().await;
        assert_eq!(request["op"], op, "{request}");
        let mut ack = json!({"op": "ack", "id": request["id"]});
        if let Some(offset) = offset {
            ack["offset"] = json!(offset);
        }
        self.send(ack).await;
        request
    }

    pub async fn write_raw(&mut self, opcode: OpCode, payload: &[u8]) {
        self.ws
            .write_frame(Frame::new(
                true,
                opcode,
                None,
                Payload::Owned(payload.to_vec()),
            ))
            .await
            .unwrap();
    }

    pub async fn close(mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .write_frame(Frame::close(code, reason.as_bytes()))
            .await;
    }
}
