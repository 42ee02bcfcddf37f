//! One WebSocket connection: a task that owns its socket and runs one `select!` over frames
//! from the client, frames queued for it by the fan-out, and requests to close.

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
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use waas_core::app::{App, ConnectionSlot};
use waas_core::auth::{self, AuthError, Identity};
use waas_protocol::{ChannelName, ClientFrame, CloseCode, ErrorCode, ServerFrame};

mod ops;
mod pipeline;
mod publish;

use pipeline::Pipeline;

/// How long a closing connection waits for its last frames to be written and read.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How the connection was authenticated during the upgrade, if at all.
pub enum Upfront {
    /// No credentials in the URL or headers: the client must send `connect`.
    None,
    Authenticated(Identity),
    Refused(AuthError),
    NoSuchApp,
    /// The app could not be looked up (control-plane unreachable); worth retrying.
    Unavailable(String),
    /// The handshake's `Origin` (given) is not in the app's `allowed_origins`.
    OriginRefused(String),
}

struct Conn {
    gw: Arc<Gateway>,
    app: Option<Arc<App>>,
    reg: Registration,
    writer: SocketWriter,
    identity: Option<Identity>,
    /// Channel and bus subject of each subscription; a few at most, so a Vec beats a map.
    subs: Vec<(ChannelName, String)>,
    bucket: TokenBucket,
    batch: VecDeque<Bytes>,
    _slot: Option<ConnectionSlot>,
    /// Requests in flight and services served (`docs/rpc.md`).
    rpc: crate::rpc::ConnRpc,
    /// The `server_name` of the handshake: listed with the connection when it turns out to be a
    /// server's (API key), ignored otherwise.
    server_name: Option<waas_protocol::ServerName>,
    /// Publishes handed to storage, acknowledged in order once stored ([`pipeline`]).
    pipeline: Pipeline,
}

/// A frame detached from the reader's buffer, so the reader can be polled again.
struct Incoming {
    opcode: OpCode,
    fin: bool,
    /// RFC 6455 §5.1: every client frame is masked; one that is not closes the connection.
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
    Close(CloseCode),
    /// The socket failed or the client went away; nothing more can be sent.
    Gone,
}

/// Runs a connection to its end. Errors stay inside: one client's failure ends only its task.
pub async fn run(
    gw: Arc<Gateway>,
    app_id: String,
    app: Option<Arc<App>>,
    upfront: Upfront,
    server_name: Option<waas_protocol::ServerName>,
    stream: TcpStream,
    pending: Bytes,
) {
    let stream = Arc::new(stream);
    // Borrowed, not cloned: a copy of every limit would sit in each connection's task for its
    // whole life (half a kilobyte).
    let limits = &gw.config.limits;
    let reg = gw
        .connections
        .register(&app_id, limits.max_queued_messages, limits.max_queued_bytes);
    reg.tracked.out.attach(Arc::clone(&stream));
    let (mut reader, _) = fastwebsockets::after_handshake_split(
        SocketReader::new(Arc::clone(&stream), pending),
        tokio::io::sink(),
        Role::Server,
    );
    reader.set_auto_close(false);
    reader.set_auto_pong(false);
    // fastwebsockets refuses payloads >= the limit; ours is inclusive.
    reader.set_max_message_size(limits.max_frame_bytes + 1);

    let mut conn = Conn {
        gw: Arc::clone(&gw),
        app,
        reg,
        writer: SocketWriter::new(stream),
        identity: None,
        subs: Vec::new(),
        bucket: TokenBucket::new(limits.publish_rate, limits.publish_burst),
        batch: VecDeque::new(),
        _slot: None,
        rpc: Default::default(),
        server_name,
        pipeline: Pipeline::default(),
    };
    conn.start(upfront);

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
    let max_in_flight = limits.max_publishes_in_flight;

    let out = Arc::clone(&conn.reg.tracked.out);
    let exit = loop {
        tokio::select! {
            biased;
            _ = out.killed() => break Exit::Close(out.close_requested().unwrap_or(CloseCode::SERVER_ERROR)),
            _ = out.ready() => {
                if let Err(exit) = conn.flush(&out).await {
                    break exit;
                }
            }
            done = conn.pipeline.next(), if !conn.pipeline.is_empty() => conn.published(done),
            // A full pipeline stops reading: the client waits for acknowledgements.
            frame = frames.next(), if conn.pipeline.len() < max_in_flight => {
                out.touch(conn.gw.connections.now_ms());
                match frame {
                    Some(Ok(frame)) if !frame.masked => {
                        tracing::debug!(conn = out.id, "unmasked client frame");
                        break Exit::Close(CloseCode::PROTOCOL_ERROR);
                    }
                    Some(Ok(frame)) => match frame.opcode {
                        OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                            match fragments.push(frame.opcode, frame.fin, frame.payload, max_frame_bytes) {
                                // Boxed: client requests are rare next to deliveries, and their
                                // futures would otherwise enlarge every idle connection's task.
                                Assembled::Message(op, payload) => Box::pin(conn.on_message(op, &payload)).await,
                                Assembled::Pending => {}
                                Assembled::TooLarge => conn.too_large(),
                                Assembled::ProtocolError => break Exit::Close(CloseCode::PROTOCOL_ERROR),
                            }
                        }
                        OpCode::Ping => out.push(wsframe::pong(&frame.payload)),
                        OpCode::Pong => conn.pong(),
                        // Echo the client's code, as RFC 6455 §5.5.1 asks.
                        OpCode::Close => break Exit::Close(match frame.payload.get(..2) {
                            Some(code) => match u16::from_be_bytes([code[0], code[1]]) {
                                c @ (1000..=1003 | 1007..=1011 | 3000..=4999) => CloseCode(c),
                                _ => CloseCode::PROTOCOL_ERROR,
                            },
                            None => CloseCode::NORMAL,
                        }),
                    },
                    Some(Err(WebSocketError::FrameTooLarge)) => conn.too_large(),
                    Some(Err(WebSocketError::UnexpectedEOF | WebSocketError::IoError(_))) | None => break Exit::Gone,
                    Some(Err(e)) => {
                        tracing::debug!(conn = out.id, error = %e, "websocket protocol error");
                        break Exit::Close(CloseCode::PROTOCOL_ERROR);
                    }
                }
            }
        }
    };
    Box::pin(conn.finish(exit)).await;
    out.detach();
}

impl Conn {
    fn out(&self) -> &Outbound {
        &self.reg.tracked.out
    }

    fn reply(&self, frame: &ServerFrame) {
        self.out().push(wsframe::json(frame));
    }

    fn error(&self, id: Option<u64>, code: ErrorCode, message: impl Into<String>) {
        self.reply(&ServerFrame::Error {
            id,
            code,
            message: message.into(),
        });
    }

    fn ack(&self, id: u64, offset: Option<u64>) {
        self.reply(&ServerFrame::Ack {
            id,
            offset,
            epoch: None,
            recovered: None,
        });
    }

    /// A frame over the limit cannot be skipped (its payload is still on the wire), so the
    /// client is told why and the connection closes.
    fn too_large(&self) {
        let max = self.gw.config.limits.max_frame_bytes;
        self.error(
            None,
            ErrorCode::MessageTooLarge,
            format!("frame larger than max_frame_bytes ({max})"),
        );
        self.out().close(CloseCode::MESSAGE_TOO_BIG);
    }

    fn start(&mut self, upfront: Upfront) {
        match upfront {
            Upfront::NoSuchApp => {
                self.error(None, ErrorCode::AppNotFound, "no such app");
                self.out().close(CloseCode::APP_NOT_FOUND);
            }
            Upfront::Unavailable(reason) => {
                self.error(None, ErrorCode::Unavailable, reason);
                self.out().close(CloseCode::SERVER_ERROR);
            }
            Upfront::OriginRefused(origin) => {
                self.error(
                    None,
                    ErrorCode::Forbidden,
                    format!("origin {origin:?} is not allowed for this app"),
                );
                self.out().close(CloseCode::ORIGIN_NOT_ALLOWED);
            }
            Upfront::Refused(e) => self.refuse(None, &e),
            Upfront::Authenticated(identity) => self.accept(None, identity),
            Upfront::None => {}
        }
    }

    fn refuse(&self, id: Option<u64>, e: &AuthError) {
        self.error(id, e.code(), e.to_string());
        let close = match e {
            AuthError::Expired => CloseCode::TOKEN_EXPIRED,
            _ => CloseCode::INVALID_TOKEN,
        };
        self.out().close(close);
    }

    fn accept(&mut self, id: Option<u64>, identity: Identity) {
        let Some(app) = self.app.clone() else { return };
        let Some(slot) = app.acquire_connection(self.gw.config.limits.max_connections_per_app)
        else {
            self.error(
                id,
                ErrorCode::ConnectionLimit,
                "the app is at its connection limit",
            );
            self.out().close(CloseCode::CONNECTION_LIMIT);
            return;
        };
        self._slot = Some(slot);
        let limits = &self.gw.config.limits;
        let own = &app.config.limits;
        self.bucket = TokenBucket::new(
            own.publish_rate.unwrap_or(limits.publish_rate),
            own.publish_burst.unwrap_or(limits.publish_burst),
        );
        let tracked = &self.reg.tracked;
        tracked
            .expires_at
            .store(identity.expires_at.unwrap_or(0), Ordering::Release);
        tracked
            .authenticated_at_ms
            .store(self.gw.connections.now_ms().max(1), Ordering::Release);
        self.reply(&ServerFrame::Ready {
            id,
            connection_id: self.gw.connections.connection_id(app.id(), self.out().id),
            sub: identity.sub.clone(),
            version: waas_protocol::PROTOCOL_VERSION,
            heartbeat: self.gw.config.limits.heartbeat_interval_ms / 1000,
        });
        if identity.is_server {
            // Listed first, then pinged: the ping is timed from the listing.
            let id = self.out().id;
            let name = self.server_name.take();
            let connection_id = self.gw.connections.connection_id(app.id(), id);
            self.gw
                .servers
                .add(id, app.id().clone(), connection_id, name);
            self.out().push(wsframe::ping());
        }
        self.identity = Some(identity);
    }

    fn is_server(&self) -> bool {
        self.identity.as_ref().is_some_and(|i| i.is_server)
    }

    /// A pong: timed when this is a server connection (`crate::servers`).
    fn pong(&self) {
        if self.is_server() {
            self.gw.servers.pong(self.out().id);
        }
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
            _ = out.killed() => Err(Exit::Close(out.close_requested().unwrap_or(CloseCode::SERVER_ERROR))),
        }
    }

    async fn on_message(&mut self, opcode: OpCode, payload: &[u8]) {
        let text = match (opcode, std::str::from_utf8(payload)) {
            (OpCode::Text, Ok(text)) => text,
            _ => {
                return self.error(
                    None,
                    ErrorCode::MalformedFrame,
                    "frames must be UTF-8 JSON text frames",
                )
            }
        };
        let frame = match ClientFrame::parse(text) {
            Ok(frame) => frame,
            Err(e) => return self.error(e.id, e.code, e.message),
        };
        self.follow_app_changes();
        // Every other request is answered after the publishes before it, and sees them stored.
        if !matches!(frame, ClientFrame::Publish { .. }) {
            self.settle().await;
        }
        match (frame, self.identity.is_some()) {
            (ClientFrame::Ping { id }, _) => self.reply(&ServerFrame::Pong { id }),
            (ClientFrame::Connect { id, token }, false) => self.connect(id, &token),
            (ClientFrame::Connect { id, .. }, true) => {
                self.error(Some(id), ErrorCode::AlreadyConnected, "already connected")
            }
            (other, false) => self.error(
                other.id(),
                ErrorCode::NotConnected,
                "send connect with a token first",
            ),
            (ClientFrame::Subscribe { id, channel, since }, true) => {
                self.subscribe(id, &channel, since.as_ref()).await
            }
            (
                ClientFrame::History {
                    id,
                    channel,
                    since,
                    limit,
                    reverse,
                },
                true,
            ) => self.history(id, &channel, since, limit, reverse).await,
            (ClientFrame::Unsubscribe { id, channel }, true) => {
                self.unsubscribe(id, &channel).await
            }
            (ClientFrame::Presence { id, channel }, true) => self.presence(id, &channel),
            (
                frame @ (ClientFrame::Request { .. }
                | ClientFrame::Response { .. }
                | ClientFrame::Serve { .. }
                | ClientFrame::Unserve { .. }),
                true,
            ) => self.rpc(frame).await,
            (
                frame @ (ClientFrame::KeysPublish { .. }
                | ClientFrame::KeysGet { .. }
                | ClientFrame::RoomKeyPut { .. }
                | ClientFrame::RoomKeyGet { .. }),
                true,
            ) => self.keys(frame).await,
            (
                ClientFrame::Publish {
                    id,
                    channel,
                    event,
                    data,
                },
                true,
            ) => self.publish(id, &channel, &event, &data).await,
        }
    }

    /// Takes the app's current definition from the registry, so that changes to its routes
    /// and limits apply to connections already open, not only to new ones. A deleted app keeps
    /// the definition it had: its connections are being closed.
    fn follow_app_changes(&mut self) {
        let Some(app) = &self.app else { return };
        if let Some(current) = self.gw.apps.cached(app.id().as_str()) {
            if !Arc::ptr_eq(&current, app) {
                self.app = Some(current);
            }
        }
    }

    fn connect(&mut self, id: u64, token: &str) {
        let Some(app) = self.app.clone() else { return };
        match auth::authenticate(&app, token) {
            Ok(identity) => self.accept(Some(id), identity),
            Err(e) => self.refuse(Some(id), &e),
        }
    }

    fn channel(&self, id: u64, name: &str) -> Option<ChannelName> {
        match ChannelName::parse(name) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(
                    Some(id),
                    ErrorCode::InvalidChannel,
                    format!("invalid channel {name:?}: {e}"),
                );
                None
            }
        }
    }

    async fn subscribe(
        &mut self,
        id: u64,
        name: &str,
        since: Option<&waas_protocol::history::Since>,
    ) {
        let Some(channel) = self.channel(id, name) else {
            return;
        };
        let identity = self.identity.as_ref().expect("subscribe after connect");
        if !identity.may_subscribe(&channel) {
            return self.error(
                Some(id),
                ErrorCode::Forbidden,
                format!("the token does not allow subscribing to {channel}"),
            );
        }
        if self.subs.iter().any(|(c, _)| *c == channel) {
            return self.ack(id, None);
        }
        let max = self
            .app
            .as_ref()
            .and_then(|a| a.config.limits.max_channels_per_connection)
            .unwrap_or(self.gw.config.limits.max_channels_per_connection);
        if self.subs.len() >= max {
            return self.error(
                Some(id),
                ErrorCode::TooManyChannels,
                format!("at most {max} channels per connection"),
            );
        }
        let Some(app) = self.app.as_ref() else { return };
        let subject = self.gw.publisher.subject(app.id(), &channel);
        let out = Arc::clone(&self.reg.tracked.out);
        let member = match self.presence_member(&channel) {
            Ok(member) => member,
            Err(message) => return self.error(Some(id), ErrorCode::BadRequest, message),
        };
        let key = crate::presence::Presence::key(app.id(), &channel);
        if let Some(m) = &member {
            let max = self.gw.config.limits.max_presence_members;
            if !self.gw.presence.has_room(&key, &m.id, max) {
                return self.error(
                    Some(id),
                    ErrorCode::PresenceFull,
                    format!("{channel} already has {max} members (max_presence_members)"),
                );
            }
        }
        let member_id = member.as_ref().map(|m| m.id.clone());
        self.gw.presence.joined(&self.gw.hub, &key, member);
        // Answers with history (when recovering) and the ack itself.
        match crate::history_api::subscribe(&self.gw, app, &out, &channel, &subject, id, since)
            .await
        {
            Ok(()) => {
                if waas_protocol::presence::is_presence(&channel) {
                    self.reply(&ServerFrame::Members {
                        id: Some(id),
                        channel: channel.to_string(),
                        members: self.gw.presence.members(&key),
                    });
                }
                // Grown by doubling from one: `push` would start at four (192 bytes) for the
                // connection that, most often, holds a single subscription.
                if self.subs.len() == self.subs.capacity() {
                    self.subs.reserve_exact(self.subs.len().max(1));
                }
                self.subs.push((channel, subject));
            }
            Err(e) => {
                self.gw
                    .presence
                    .left(&self.gw.hub, &key, member_id.as_deref());
                self.error(Some(id), e.code, e.message)
            }
        }
    }

    async fn history(
        &mut self,
        id: u64,
        name: &str,
        since: Option<u64>,
        limit: Option<usize>,
        reverse: bool,
    ) {
        let Some(channel) = self.channel(id, name) else {
            return;
        };
        let identity = self.identity.as_ref().expect("history after connect");
        if !identity.may_subscribe(&channel) {
            return self.error(
                Some(id),
                ErrorCode::Forbidden,
                format!("the token does not allow reading the history of {channel}"),
            );
        }
        let Some(app) = self.app.as_ref() else { return };
        let page =
            crate::history_api::read(&self.gw, app, &channel, since, limit, reverse, Some(id));
        match page.await {
            Ok(json) => self.out().push(crate::history_api::frame(&json)),
            Err(e) => self.error(Some(id), e.code, e.message),
        }
    }

    async fn unsubscribe(&mut self, id: u64, name: &str) {
        let Some(channel) = self.channel(id, name) else {
            return;
        };
        if let Some(i) = self.subs.iter().position(|(c, _)| *c == channel) {
            let (channel, subject) = self.subs.swap_remove(i);
            self.gw.hub.unsubscribe(&subject, self.out().id).await;
            self.presence_leave(&channel);
        }
        self.ack(id, None);
    }

    /// Leaves every channel, then says goodbye: queued frames and a close frame when the
    /// socket still works, bounded by [`CLOSE_LINGER`] so a stuck client cannot hold the task.
    async fn finish(mut self, exit: Exit) {
        let id = self.out().id;
        if self.is_server() {
            self.gw.servers.remove(id);
        }
        self.rpc.shutdown().await;
        for (channel, subject) in std::mem::take(&mut self.subs) {
            self.gw.hub.unsubscribe(&subject, id).await;
            self.presence_leave(&channel);
        }
        if let Exit::Close(code) = exit {
            tracing::debug!(conn = id, code = code.0, "closing connection");
            // Publishes in flight are answered before the close frame; they are stored (or
            // not) whether or not the client is still there to read the answers.
            if code != CloseCode::SLOW_CONSUMER {
                let _ = tokio::time::timeout(CLOSE_LINGER, self.settle()).await;
            }
            // `batch` may start with a frame cut short by the kill: it is finished first, or the
            // close frame would land in the middle of it.
            let slow = code == CloseCode::SLOW_CONSUMER;
            self.reg
                .tracked
                .out
                .take_before_close(&mut self.batch, slow);
            self.batch.push_back(wsframe::close(code.0, code.reason()));
            let write = self.writer.write_all(&mut self.batch);
            if tokio::time::timeout(CLOSE_LINGER, write).await.is_ok() {
                self.writer.shutdown_and_drain(CLOSE_LINGER).await;
            }
        }
    }
}
