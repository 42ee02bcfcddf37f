//! Socket.IO v5 over the Engine.IO v4 WebSocket transport, against `loadtest/peers/socketio`.
//!
//! One Engine.IO packet per WebSocket text frame, its type the first character: `0` open (JSON
//! handshake follows), `1` close, `2` ping (answer `3` pong), `4` message. A message carries a
//! Socket.IO packet, again typed by its first character: `0` connect, `1` disconnect, `2` event,
//! `3` ack, `4` connect error; an ack id, when there is one, sits between the type and the JSON
//! array. So `40` connects to the main namespace, `420["subscribe","bench"]` emits with ack id 0,
//! `430[]` is its ack, and `42["tick",{...}]` a delivered event.

use super::{close_code, Ctx, Publisher, Ready};
use crate::stats::Stats;
use crate::ws::{self, Endpoint, Ws};
use anyhow::{bail, Result};
use fastwebsockets::{Frame, OpCode, Payload, WebSocketRead, WebSocketWrite};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// A Socket.IO packet as this client cares about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// Engine.IO ping: answer with a pong.
    Ping,
    /// Socket.IO connect accepted.
    Connected,
    /// Socket.IO event; the text is the whole packet.
    Event,
    /// Socket.IO ack with its id.
    Ack(u64),
    /// Engine.IO close, Socket.IO disconnect or connect error, with the packet text.
    Closed(&'a str),
    /// Anything else (open, noop, ...).
    Other,
}

pub(crate) fn classify(text: &str) -> Packet<'_> {
    let b = text.as_bytes();
    match b {
        [b'2', ..] => Packet::Ping,
        [b'1', ..] => Packet::Closed(text),
        [b'4', b'0', ..] => Packet::Connected,
        [b'4', b'2', ..] => Packet::Event,
        [b'4', b'3', rest @ ..] => {
            let len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            match text[2..2 + len].parse() {
                Ok(id) => Packet::Ack(id),
                Err(_) => Packet::Other,
            }
        }
        [b'4', b'1' | b'4', ..] => Packet::Closed(text),
        _ => Packet::Other,
    }
}

async fn send(ws: &mut Ws, text: &str) -> Result<()> {
    ws.write_frame(Frame::text(Payload::Owned(text.as_bytes().to_vec())))
        .await?;
    Ok(())
}

/// Opens an Engine.IO session and connects to the main namespace.
async fn open(endpoint: &Endpoint, source: Option<IpAddr>) -> Result<Ws> {
    let mut ws = ws::connect(endpoint, source, PATH, None).await?;
    let mut connect_sent = false;
    loop {
        let text = read_text(&mut ws).await?;
        match classify(&text) {
            Packet::Ping => send(&mut ws, "3").await?,
            Packet::Connected => return Ok(ws),
            Packet::Closed(p) => bail!("refused: {p}"),
            _ if text.starts_with('0') && !connect_sent => {
                send(&mut ws, "40").await?;
                connect_sent = true;
            }
            _ => {}
        }
    }
}

/// Waits for the ack `id`, answering pings meanwhile.
async fn wait_ack(ws: &mut Ws, id: u64) -> Result<()> {
    loop {
        let text = read_text(ws).await?;
        match classify(&text) {
            Packet::Ping => send(ws, "3").await?,
            Packet::Ack(got) if got == id => return Ok(()),
            Packet::Closed(p) => bail!("closed: {p}"),
            _ => {}
        }
    }
}

async fn read_text(ws: &mut Ws) -> Result<String> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text => return Ok(String::from_utf8(frame.payload.to_vec())?),
            OpCode::Close => bail!("closed {}", close_code(&frame.payload)),
            _ => continue,
        }
    }
}

/// Connects subscriber `i`, joins the room, then records deliveries until aborted.
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
    let mut ws = open(ctx.subscriber_endpoint(i), source).await?;
    // One emit per room, ack ids 0, 1, ...; acks come back in order.
    let channels = ctx.spread.names_of(i);
    for (id, channel) in channels.iter().enumerate() {
        let channel = serde_json::to_string(channel)?;
        send(&mut ws, &format!(r#"42{id}["subscribe",{channel}]"#)).await?;
    }
    for id in 0..channels.len() {
        wait_ack(&mut ws, id as u64).await?;
    }
    Ok(ws)
}

async fn receive(mut ws: Ws, stats: &Stats) {
    loop {
        let frame = match ws.read_frame().await {
            Ok(frame) => frame,
            Err(e) => {
                stats.error(format!("subscriber read: {e}"));
                return;
            }
        };
        match frame.opcode {
            OpCode::Text => {
                // Deliveries first: they are nearly every frame.
                if frame.payload.starts_with(b"42") && stats.record_delivery(&frame.payload) {
                    continue;
                }
                match std::str::from_utf8(&frame.payload).map(classify) {
                    Ok(Packet::Ping) => {
                        if let Err(e) = send(&mut ws, "3").await {
                            stats.error(format!("subscriber write: {e}"));
                            return;
                        }
                    }
                    Ok(Packet::Closed(p)) => {
                        stats.error(format!("subscriber closed: {p}"));
                        return;
                    }
                    _ => {}
                }
            }
            OpCode::Close => {
                stats.error(format!("subscriber closed {}", close_code(&frame.payload)));
                return;
            }
            _ => {}
        }
    }
}

type Io = TokioIo<Upgraded>;
type Writer = Arc<Mutex<WebSocketWrite<WriteHalf<Io>>>>;

/// Emits `publish` with an ack id per message; a background task counts the acks and answers
/// pings through the shared writer.
pub struct SioPublisher {
    write: Writer,
    reader: JoinHandle<()>,
    buf: String,
}

impl SioPublisher {
    pub async fn connect(ctx: Arc<Ctx>) -> Result<SioPublisher> {
        let ws = open(&ctx.publish_endpoint, None).await?;
        let (read, write) = ws.split(tokio::io::split);
        let write = Arc::new(Mutex::new(write));
        let reader = tokio::spawn(count_acks(read, write.clone(), ctx));
        Ok(SioPublisher {
            write,
            reader,
            buf: String::new(),
        })
    }
}

async fn count_acks(mut read: WebSocketRead<ReadHalf<Io>>, write: Writer, ctx: Arc<Ctx>) {
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
            OpCode::Text => match std::str::from_utf8(&frame.payload).map(classify) {
                Ok(Packet::Ack(_)) => ctx.published.accept(),
                Ok(Packet::Ping) => {
                    let pong = Frame::text(Payload::Owned(b"3".to_vec()));
                    if let Err(e) = write.lock().await.write_frame(pong).await {
                        ctx.stats.error(format!("publisher write: {e}"));
                        return;
                    }
                }
                Ok(Packet::Closed(p)) => {
                    ctx.stats.error(format!("publisher closed: {p}"));
                    return;
                }
                _ => {}
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

impl Publisher for SioPublisher {
    async fn publish(&mut self, id: u64, channel: &str, data: &str) -> Result<()> {
        use std::fmt::Write;
        self.buf.clear();
        write!(
            self.buf,
            r#"42{id}["publish",{{"channel":{},"event":"tick","data":{data}}}]"#,
            serde_json::to_string(channel)?
        )?;
        let frame = Frame::text(Payload::Owned(self.buf.as_bytes().to_vec()));
        self.write.lock().await.write_frame(frame).await?;
        Ok(())
    }

    async fn close(self) {
        // Stop counting first: the server's echo of our close is no error.
        self.reader.abort();
        let _ = self
            .write
            .lock()
            .await
            .write_frame(Frame::close(1000, b""))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_packets() {
        assert_eq!(classify("2"), Packet::Ping);
        assert_eq!(
            classify(r#"0{"sid":"x","pingInterval":25000}"#),
            Packet::Other
        );
        assert_eq!(classify(r#"40{"sid":"y"}"#), Packet::Connected);
        assert_eq!(classify(r#"42["tick",{"t":1}]"#), Packet::Event);
        assert_eq!(classify("430[]"), Packet::Ack(0));
        assert_eq!(classify("4317[]"), Packet::Ack(17));
        assert_eq!(classify("43[]"), Packet::Other);
        assert_eq!(classify("41"), Packet::Closed("41"));
        assert_eq!(
            classify(r#"44{"message":"nope"}"#),
            Packet::Closed(r#"44{"message":"nope"}"#)
        );
        assert_eq!(classify("1"), Packet::Closed("1"));
        assert_eq!(classify(""), Packet::Other);
    }
}
