//! WaaS protocol v1 (`docs/protocol.md`): `GET /v1/apps/{app}/ws` with the API key as bearer,
//! `subscribe` → `ack`, deliveries as `message` frames; publishing over a WebSocket (`publish` →
//! `ack {offset}`) or `POST /v1/apps/{app}/publish`.

use super::{close_code, Ctx, Publisher, Ready};
use crate::stats::Stats;
use crate::ws::{self, Ws};
use anyhow::{bail, Context, Result};
use fastwebsockets::{Frame, OpCode, Payload, WebSocketRead, WebSocketWrite};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ServerFrame;

/// REST publish requests in flight at once.
const REST_CONCURRENCY: usize = 64;

fn ws_path(ctx: &Ctx) -> String {
    format!("/v1/apps/{}/ws", ctx.app)
}

/// Connects subscriber `i`, subscribes it, then records deliveries until aborted.
pub async fn subscriber(ctx: Arc<Ctx>, i: usize, ready: Ready) {
    let ws = match subscribe(&ctx, i).await {
        Ok(ws) => {
            ready.report(Ok(()));
            ws
        }
        Err(e) => {
            ready.report(Err(e));
            return;
        }
    };
    receive(ws, &ctx.stats).await;
}

async fn subscribe(ctx: &Ctx, i: usize) -> Result<Ws> {
    let source = ws::source_for(&ctx.source_ips, i);
    let mut ws = ws::connect(
        ctx.subscriber_endpoint(i),
        source,
        &ws_path(ctx),
        Some(ctx.bearer(i)),
    )
    .await?;
    let channels = ctx.spread.names_of(i);
    for (id, channel) in (1..).zip(&channels) {
        let channel = serde_json::to_string(channel)?;
        let subscribe =
            format!(r#"{{"op":"subscribe","id":{id},"channel":{channel}}}"#).into_bytes();
        ws.write_frame(Frame::text(Payload::Owned(subscribe)))
            .await?;
    }
    let mut acked = 0;
    while acked < channels.len() {
        match read_server_frame(&mut ws).await? {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
            _ => continue,
        }
    }
    Ok(ws)
}

/// The next text frame, parsed; a close frame is an error.
async fn read_server_frame(ws: &mut Ws) -> Result<ServerFrame> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text => {
                let text = std::str::from_utf8(&frame.payload)?;
                return ServerFrame::parse(text).with_context(|| format!("frame {text}"));
            }
            OpCode::Close => bail!("closed {}", close_code(&frame.payload)),
            _ => continue,
        }
    }
}

async fn receive(mut ws: Ws, stats: &Stats) {
    loop {
        match ws.read_frame().await {
            Ok(frame) => match frame.opcode {
                OpCode::Text if stats.record_delivery(&frame.payload) => {}
                OpCode::Text => other_frame(stats, &frame.payload),
                OpCode::Close => {
                    stats.error(format!("subscriber closed {}", close_code(&frame.payload)));
                    return;
                }
                _ => {}
            },
            Err(e) => {
                stats.error(format!("subscriber read: {e}"));
                return;
            }
        }
    }
}

/// A text frame that is no delivery: errors are counted, the rest ignored.
fn other_frame(stats: &Stats, payload: &[u8]) {
    match std::str::from_utf8(payload).map(ServerFrame::parse) {
        Ok(Ok(ServerFrame::Error { code, .. })) => stats.error(format!("error frame {code}")),
        Ok(Ok(_)) => {}
        _ => stats.error("unreadable frame"),
    }
}

type Io = TokioIo<Upgraded>;

/// Publishes over its own WebSocket; a background task counts the `ack`s and `error`s.
pub struct WsPublisher {
    write: WebSocketWrite<WriteHalf<Io>>,
    reader: JoinHandle<()>,
    buf: String,
}

impl WsPublisher {
    pub async fn connect(ctx: Arc<Ctx>) -> Result<WsPublisher> {
        let mut ws = ws::connect(
            &ctx.publish_endpoint,
            None,
            &ws_path(&ctx),
            Some(&ctx.api_key),
        )
        .await
        .context("publisher")?;
        match read_server_frame(&mut ws).await.context("publisher")? {
            ServerFrame::Ready { .. } => {}
            other => bail!("publisher: expected ready, got {other:?}"),
        }
        let (read, write) = ws.split(tokio::io::split);
        let reader = tokio::spawn(count_acks(read, ctx));
        Ok(WsPublisher {
            write,
            reader,
            buf: String::new(),
        })
    }
}

async fn count_acks(mut read: WebSocketRead<ReadHalf<Io>>, ctx: Arc<Ctx>) {
    // The server's pings go unanswered: the publisher's own frames keep the connection alive.
    let mut ignore = |_: Frame<'_>| async { Ok::<(), Infallible>(()) };
    loop {
        let frame = match read.read_frame(&mut ignore).await {
            Ok(frame) => frame,
            Err(e) => {
                ctx.stats.error(format!("publisher read: {e}"));
                return;
            }
        };
        match frame.opcode {
            OpCode::Text => match std::str::from_utf8(&frame.payload).map(ServerFrame::parse) {
                Ok(Ok(ServerFrame::Ack { .. })) => ctx.published.accept(),
                Ok(Ok(ServerFrame::Error { code, .. })) => {
                    ctx.published.reject();
                    ctx.stats.error(format!("publish {code}"));
                }
                Ok(Ok(_)) => {}
                _ => ctx.stats.error("unreadable frame"),
            },
            OpCode::Close => {
                ctx.stats
                    .error(format!("publisher closed {}", close_code(&frame.payload)));
                return;
            }
            _ => {}
        }
    }
}

impl Publisher for WsPublisher {
    async fn publish(&mut self, id: u64, channel: &str, data: &str) -> Result<()> {
        use std::fmt::Write;
        self.buf.clear();
        write!(
            self.buf,
            r#"{{"op":"publish","id":{id},"channel":{},"event":"tick","data":{data}}}"#,
            serde_json::to_string(channel)?
        )?;
        self.write
            .write_frame(Frame::text(Payload::Owned(self.buf.as_bytes().to_vec())))
            .await?;
        Ok(())
    }

    async fn close(mut self) {
        // Stop counting first: the server's echo of our close is no error.
        self.reader.abort();
        let _ = self.write.write_frame(Frame::close(1000, b"")).await;
    }
}

/// Publishes with `POST /v1/apps/{app}/publish`, up to [`REST_CONCURRENCY`] requests at once.
pub struct RestPublisher {
    ctx: Arc<Ctx>,
    client: reqwest::Client,
    url: String,
    in_flight: Arc<Semaphore>,
}

impl RestPublisher {
    pub fn new(ctx: Arc<Ctx>) -> Result<RestPublisher> {
        let url = format!(
            "http://{}/v1/apps/{}/publish",
            ctx.publish_endpoint.host, ctx.app
        );
        Ok(RestPublisher {
            ctx,
            client: reqwest::Client::builder().no_proxy().build()?,
            url,
            in_flight: Arc::new(Semaphore::new(REST_CONCURRENCY)),
        })
    }
}

impl Publisher for RestPublisher {
    async fn publish(&mut self, _id: u64, channel: &str, data: &str) -> Result<()> {
        let permit = self.in_flight.clone().acquire_owned().await?;
        let body = format!(
            r#"{{"channel":{},"event":"tick","data":{data}}}"#,
            serde_json::to_string(channel)?
        );
        let request = self
            .client
            .post(&self.url)
            .bearer_auth(&self.ctx.api_key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            match request.send().await {
                Ok(resp) if resp.status().is_success() => ctx.published.accept(),
                Ok(resp) => {
                    let status = resp.status();
                    let code = resp
                        .json::<ErrorBody>()
                        .await
                        .map(|b| b.error.code.to_string())
                        .unwrap_or_else(|_| status.to_string());
                    ctx.published.reject();
                    ctx.stats.error(format!("publish {code}"));
                }
                Err(e) => {
                    ctx.published.reject();
                    ctx.stats.error(format!("publish http: {e}"));
                }
            }
            drop(permit);
        });
        Ok(())
    }

    async fn close(self) {
        // Wait for the requests in flight.
        let _ = self.in_flight.acquire_many(REST_CONCURRENCY as u32).await;
    }
}
