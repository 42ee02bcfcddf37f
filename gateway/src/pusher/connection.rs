//! One Pusher-protocol connection: like the native one ([`crate::connection`]), a task that
//! owns its socket and runs one `select!` over client frames, frames queued for it by the
//! fan-out, and requests to close. Its ops are in [`super::subscribe`], [`super::events`] and
//! [`super::signin`].

use super::codes::PusherCode;
use super::users::SignedIn;
use super::wire;
use crate::connections::Registration;
use crate::fragments::{Assembled, Fragments};
use crate::gateway::Gateway;
use crate::outbound::Outbound;
use crate::ratelimit::TokenBucket;
use crate::socket::{SocketReader, SocketWriter};
use crate::wsframe;
use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocketError};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use waas_core::app::{App, ConnectionSlot};
use waas_protocol::{ChannelName, CloseCode};

/// How long a closing connection waits for its last frames to be written and read.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What the upgrade decided: serve the app, or refuse with a Pusher code.
pub enum Verdict {
    Accept(Arc<App>),
    Refuse(PusherCode, String),
}

/// One subscription.
pub(super) struct Sub {
    pub channel: ChannelName,
    pub subject: String,
    /// The member this connection is on a presence channel.
    pub member: Option<String>,
}

pub(super) struct Conn {
    pub gw: Arc<Gateway>,
    pub app: Option<Arc<App>>,
    pub reg: Registration,
    writer: SocketWriter,
    pub socket_id: String,
    pub subs: Vec<Sub>,
    /// Client events per second (`pusher_client_event_rate`).
    pub client_events: TokenBucket,
    batch: VecDeque<Bytes>,
    _slot: Option<ConnectionSlot>,
    pub user: Option<SignedIn>,
    /// The Pusher code this connection closes with when it closes itself; closes requested
    /// from outside carry native codes, mapped by [`PusherCode::from_native`].
    close: Option<PusherCode>,
}

struct Incoming {
    opcode: OpCode,
    fin: bool,
    masked: bool,
    payload: BytesMut,
}

impl From<Frame<'_>> for Incoming {
    fn from(frame: Frame<'_>) -> Self {
        let masked = frame.is_masked();
        let payload = match frame.payload {
            Payload::Bytes(b) => b,
            other => BytesMut::from(&other[..]),
        };
        Incoming {
            opcode: frame.opcode,
            fin: frame.fin,
            masked,
            payload,
        }
    }
}

enum Exit {
    Close(u16),
    Gone,
}

#[derive(Serialize)]
struct Established<'a> {
    socket_id: &'a str,
    activity_timeout: u64,
}

/// Runs a connection to its end.
pub async fn run(
    gw: Arc<Gateway>,
    app_id: String,
    verdict: Verdict,
    stream: TcpStream,
    pending: Bytes,
) {
    let stream = Arc::new(stream);
    let limits = &gw.config.limits;
    let reg = gw.connections.register_as(
        &app_id,
        true,
        limits.max_queued_messages,
        limits.max_queued_bytes,
    );
    reg.tracked.out.attach(Arc::clone(&stream));
    let (mut reader, _) = fastwebsockets::after_handshake_split(
        SocketReader::new(Arc::clone(&stream), pending),
        tokio::io::sink(),
        Role::Server,
    );
    reader.set_auto_close(false);
    reader.set_auto_pong(false);
    reader.set_max_message_size(limits.max_frame_bytes + 1);
    let socket_id = reg
        .tracked
        .out
        .pusher
        .as_deref()
        .expect("registered as a Pusher connection")
        .to_owned();
    let rate = limits.pusher_client_event_rate;
    let mut conn = Conn {
        gw: Arc::clone(&gw),
        app: None,
        reg,
        writer: SocketWriter::new(stream),
        socket_id,
        subs: Vec::new(),
        client_events: TokenBucket::new(rate, rate),
        batch: VecDeque::new(),
        _slot: None,
        user: None,
        close: None,
    };
    conn.start(verdict);

    let frames = futures_util::stream::unfold(reader, |mut r| async move {
        let res = r
            .read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) })
            .await
            .map(Incoming::from);
        Some((res, r))
    });
    tokio::pin!(frames);
    let mut fragments = Fragments::default();
    let max_frame_bytes = limits.max_frame_bytes;
    let out = Arc::clone(&conn.reg.tracked.out);
    let exit = loop {
        tokio::select! {
            biased;
            _ = out.killed() => break conn.exit_code(&out),
            _ = out.ready() => {
                if let Err(exit) = conn.flush(&out).await {
                    break exit;
                }
            }
            frame = frames.next() => {
                out.touch(conn.gw.connections.now_ms());
                match frame {
                    Some(Ok(frame)) if !frame.masked => break Exit::Close(CloseCode::PROTOCOL_ERROR.0),
                    Some(Ok(frame)) => match frame.opcode {
                        OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                            match fragments.push(frame.opcode, frame.fin, frame.payload, max_frame_bytes) {
                                Assembled::Message(op, payload) => Box::pin(conn.on_message(op, &payload)).await,
                                Assembled::Pending => {}
                                Assembled::TooLarge => conn.too_large(),
                                Assembled::ProtocolError => break Exit::Close(CloseCode::PROTOCOL_ERROR.0),
                            }
                        }
                        OpCode::Ping => out.push(wsframe::pong(&frame.payload)),
                        OpCode::Pong => {}
                        OpCode::Close => break Exit::Close(match frame.payload.get(..2) {
                            Some(code) => match u16::from_be_bytes([code[0], code[1]]) {
                                c @ (1000..=1003 | 1007..=1011 | 3000..=4999) => c,
                                _ => CloseCode::PROTOCOL_ERROR.0,
                            },
                            None => CloseCode::NORMAL.0,
                        }),
                    },
                    Some(Err(WebSocketError::FrameTooLarge)) => conn.too_large(),
                    Some(Err(WebSocketError::UnexpectedEOF | WebSocketError::IoError(_))) | None => break Exit::Gone,
                    Some(Err(_)) => break Exit::Close(CloseCode::PROTOCOL_ERROR.0),
                }
            }
        }
    };
    Box::pin(conn.finish(exit)).await;
    out.detach();
}

impl Conn {
    pub fn out(&self) -> &Arc<Outbound> {
        &self.reg.tracked.out
    }

    pub fn send(&self, frame: Bytes) {
        self.out().push(frame);
    }

    /// `pusher:error` without closing.
    pub fn error(&self, code: Option<PusherCode>, message: &str) {
        self.send(wire::error(code, message));
    }

    /// `pusher:error` with `code`, then close with it.
    pub fn fail(&mut self, code: PusherCode, message: &str) {
        self.error(Some(code), message);
        self.close.get_or_insert(code);
        self.out().close(CloseCode(code.0));
    }

    fn exit_code(&self, out: &Outbound) -> Exit {
        let code = match (self.close, out.close_requested()) {
            (Some(own), _) => own.0,
            (None, Some(native)) => PusherCode::from_native(native),
            (None, None) => PusherCode::RECONNECT.0,
        };
        Exit::Close(code)
    }

    fn too_large(&mut self) {
        let max = self.gw.config.limits.max_frame_bytes;
        self.error(None, &format!("frame larger than max_frame_bytes ({max})"));
        self.close
            .get_or_insert(PusherCode(CloseCode::MESSAGE_TOO_BIG.0));
        self.out().close(CloseCode::MESSAGE_TOO_BIG);
    }

    fn start(&mut self, verdict: Verdict) {
        let app = match verdict {
            Verdict::Refuse(code, message) => return self.fail(code, &message),
            Verdict::Accept(app) => app,
        };
        let Some(slot) = app.acquire_connection(self.gw.config.limits.max_connections_per_app)
        else {
            return self.fail(PusherCode::OVER_QUOTA, "the app is at its connection limit");
        };
        self._slot = Some(slot);
        // No token to wait for: the connection counts as authenticated for the sweeper.
        self.reg
            .tracked
            .authenticated_at_ms
            .store(self.gw.connections.now_ms().max(1), Ordering::Release);
        let data = wire::string_data(&Established {
            socket_id: &self.socket_id,
            activity_timeout: self.gw.config.limits.pusher_activity_timeout_secs,
        });
        self.send(wire::event(
            "pusher:connection_established",
            None,
            Some(&data),
        ));
        self.app = Some(app);
    }

    async fn flush(&mut self, out: &Outbound) -> Result<(), Exit> {
        use tracing::Instrument;
        let trace = out.take(&mut self.batch);
        let span = crate::socket::write_span(trace, self.batch.len());
        tokio::select! {
            res = self.writer.write_all(&mut self.batch).instrument(span) => {
                res.map_err(|_| Exit::Gone)?;
                out.written();
                Ok(())
            }
            _ = out.killed() => Err(self.exit_code(out)),
        }
    }

    /// Takes the app's current definition from the registry, as the native connection does.
    fn follow_app_changes(&mut self) {
        let Some(app) = &self.app else { return };
        if let Some(current) = self.gw.apps.cached(app.id().as_str()) {
            if !Arc::ptr_eq(&current, app) {
                self.app = Some(current);
            }
        }
    }

    async fn on_message(&mut self, opcode: OpCode, payload: &[u8]) {
        // A refused connection is closing: what it still sends is ignored.
        if self.app.is_none() {
            return;
        }
        let text = match (opcode, std::str::from_utf8(payload)) {
            (OpCode::Text, Ok(text)) => text,
            _ => return self.error(None, "frames must be UTF-8 JSON text frames"),
        };
        let frame = match wire::Incoming::parse(text) {
            Ok(f) => f,
            Err(message) => return self.error(None, &message),
        };
        self.follow_app_changes();
        match &*frame.event {
            "pusher:ping" => {
                let data = wire::string_data(&serde_json::json!({}));
                self.send(wire::event("pusher:pong", None, Some(&data)))
            }
            "pusher:pong" => {}
            "pusher:subscribe" => match frame.data_as::<wire::Subscribe>() {
                Ok(s) => self.subscribe(s).await,
                Err(message) => self.error(None, &message),
            },
            "pusher:unsubscribe" => match frame.data_as::<wire::Unsubscribe>() {
                Ok(u) => self.unsubscribe(&u.channel).await,
                Err(message) => self.error(None, &message),
            },
            "pusher:signin" => match frame.data_as::<wire::Signin>() {
                Ok(s) => self.signin(s).await,
                Err(message) => self.error(None, &message),
            },
            event if event.starts_with("client-") => self.client_event(&frame).await,
            event => {
                let message = format!("unknown event {event:?}");
                self.error(None, &message)
            }
        }
    }

    /// Leaves every channel, then closes: queued frames and the close frame, bounded by
    /// [`CLOSE_LINGER`].
    async fn finish(mut self, exit: Exit) {
        let id = self.out().id;
        for sub in std::mem::take(&mut self.subs) {
            self.gw.hub.unsubscribe(&sub.subject, id).await;
            self.leave_presence(&sub);
        }
        self.user = None;
        if let Exit::Close(code) = exit {
            let out = Arc::clone(self.out());
            let slow = out.close_requested() == Some(CloseCode::SLOW_CONSUMER);
            out.take_before_close(&mut self.batch, slow);
            self.batch
                .push_back(wsframe::close(code, PusherCode(code).reason()));
            let write = self.writer.write_all(&mut self.batch);
            if tokio::time::timeout(CLOSE_LINGER, write).await.is_ok() {
                self.writer.shutdown_and_drain(CLOSE_LINGER).await;
            }
        }
    }
}
