//! The protocol state of a client, kept apart from any I/O so it can be tested frame by frame.
//!
//! A [`Session`] outlives connections: it remembers which channels the application subscribed
//! to, which requests are waiting for an answer and what to send once connected again. The
//! connection task feeds it commands and server frames and writes out what it queues in its
//! outbox.
//!
//! Several local subscriptions may share a channel, while the server knows one subscription per
//! channel per connection. So the server is sent `subscribe` for the first local subscriber and
//! `unsubscribe` after the last one leaves; the ones in between are answered locally. A channel's
//! state moves through: waiting for the server's ack (`subscribing`), live (`acked`), and back to
//! not subscribed on disconnect, when every channel with subscribers is subscribed again.

use crate::error::{Error, Result};
use crate::message::Message;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use waas_protocol::frame::{ClientFrame, ServerFrame};
use waas_protocol::history::{HistoryPage, Since};

/// What [`crate::Client::history`] asks for.
#[derive(Debug)]
pub(crate) struct HistoryQuery {
    pub channel: String,
    pub since: Option<u64>,
    pub limit: Option<usize>,
    pub reverse: bool,
}

/// One local subscription's end of its message buffer.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub id: u64,
    pub tx: mpsc::Sender<Message>,
    pub dropped: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Waiter {
    subscriber: Subscriber,
    reply: oneshot::Sender<Result<()>>,
}

#[derive(Debug, Default)]
struct ChannelState {
    /// Receiving messages.
    live: Vec<Subscriber>,
    /// Subscribed by the application, waiting for the server's ack.
    waiting: Vec<Waiter>,
    /// Frame id of the `subscribe` in flight on this connection.
    subscribing: Option<u64>,
    /// The server has acknowledged the subscription on this connection.
    acked: bool,
    /// The channel's epoch and the last offset delivered, once a server gave an epoch: sent as
    /// `since` when subscribing again, and the bar a message must pass not to be a duplicate.
    position: Option<Since>,
    /// Messages that arrived while a `subscribe` was in flight (recovered ones among them):
    /// they are only known to be new once its `ack` tells the epoch.
    held: Vec<Held>,
    /// Epoch, offset and `recovered` of the `ack` being applied.
    ack: Option<(String, u64, Option<bool>)>,
}

#[derive(Debug)]
struct Held {
    event: String,
    data: Box<RawValue>,
    stamp: Stamp,
}

/// Where and when a message was published.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    offset: u64,
    ts: u64,
    replayed: bool,
}

impl ChannelState {
    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.waiting.is_empty()
    }
}

#[derive(Debug)]
pub(crate) enum Pending {
    /// `at_connect`: one of the subscribes sent when a connection became ready.
    Subscribe {
        channel: String,
        at_connect: bool,
    },
    Unsubscribe {
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Publish {
        reply: oneshot::Sender<Result<u64>>,
    },
    Ping {
        reply: oneshot::Sender<Result<Duration>>,
        sent: Instant,
    },
    Heartbeat,
    /// A request, `serve` or `unserve` (`rpc.rs`).
    Rpc(crate::rpc::Waiting),
    Members {
        reply: oneshot::Sender<Result<Vec<waas_protocol::presence::Member>>>,
    },
    History {
        reply: oneshot::Sender<Result<HistoryPage>>,
    },
    /// A key directory op (`e2ee/wire.rs`): answered by `ack`, `keys` or `room_keys`.
    Keys {
        reply: oneshot::Sender<Result<ServerFrame>>,
    },
}

/// A request made while disconnected, sent once connected again.
#[derive(Debug)]
enum Queued {
    Publish {
        channel: String,
        event: String,
        data: Box<RawValue>,
        reply: oneshot::Sender<Result<u64>>,
    },
    Ping {
        reply: oneshot::Sender<Result<Duration>>,
    },
}

/// Things the connection task should tell the application about.
#[derive(Debug)]
pub(crate) enum Notice {
    /// Connected and every subscription acknowledged (or refused).
    AllLive,
    ResubscribeFailed {
        channel: String,
        error: Error,
    },
    /// A resubscribe could not recover every message missed while disconnected.
    Unrecovered {
        channel: String,
    },
    Presence(crate::presence::PresenceEvent),
}

#[derive(Debug)]
pub(crate) struct Session {
    next_id: u64,
    pub(crate) online: bool,
    channels: HashMap<String, ChannelState>,
    pub(crate) pending: HashMap<u64, Pending>,
    queued: VecDeque<Queued>,
    offline_queue: usize,
    /// Subscribes sent at connect that are not answered yet; `AllLive` waits for them.
    resubscribing: usize,
    heartbeat: Option<u64>,
    pub(crate) outbox: Vec<String>,
    notices: Vec<Notice>,
    /// Services served and the connection generation (`rpc.rs`).
    pub(crate) rpc: crate::rpc::RpcState,
}

fn encode(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).expect("client frames hold only strings, numbers and raw JSON")
}

impl Session {
    pub(crate) fn new(offline_queue: usize) -> Self {
        Session {
            next_id: 1,
            online: false,
            channels: HashMap::new(),
            pending: HashMap::new(),
            queued: VecDeque::new(),
            offline_queue,
            resubscribing: 0,
            heartbeat: None,
            outbox: Vec::new(),
            notices: Vec::new(),
            rpc: Default::default(),
        }
    }

    /// Frames to write, in order.
    pub(crate) fn take_outbox(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outbox)
    }

    pub(crate) fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    pub(crate) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send_subscribe(&mut self, channel: &str, at_connect: bool) -> u64 {
        let id = self.id();
        let since = self.channels.get(channel).and_then(|s| s.position.clone());
        self.outbox.push(encode(&ClientFrame::Subscribe {
            id,
            channel: channel.to_owned(),
            since,
        }));
        self.pending.insert(
            id,
            Pending::Subscribe {
                channel: channel.to_owned(),
                at_connect,
            },
        );
        id
    }

    fn send_unsubscribe(&mut self, channel: &str, reply: Option<oneshot::Sender<Result<()>>>) {
        let id = self.id();
        self.outbox.push(encode(&ClientFrame::Unsubscribe {
            id,
            channel: channel.to_owned(),
        }));
        self.pending.insert(id, Pending::Unsubscribe { reply });
    }

    pub(crate) fn subscribe(
        &mut self,
        channel: String,
        subscriber: Subscriber,
        reply: oneshot::Sender<Result<()>>,
    ) {
        let online = self.online;
        let state = self.channels.entry(channel.clone()).or_default();
        if state.acked {
            // Already live on the server: the new subscriber is live as soon as it is listed.
            state.live.push(subscriber);
            if reply.send(Ok(())).is_err() {
                state.live.pop();
            }
            return;
        }
        state.waiting.push(Waiter { subscriber, reply });
        if online && state.subscribing.is_none() {
            let id = self.send_subscribe(&channel, false);
            if let Some(state) = self.channels.get_mut(&channel) {
                state.subscribing = Some(id);
            }
        }
    }

    pub(crate) fn unsubscribe(
        &mut self,
        channel: &str,
        subscriber_id: u64,
        reply: Option<oneshot::Sender<Result<()>>>,
    ) {
        let Some(state) = self.channels.get_mut(channel) else {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        };
        state.live.retain(|s| s.id != subscriber_id);
        state.waiting.retain(|w| w.subscriber.id != subscriber_id);
        if !state.is_empty() {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return;
        }
        self.remove_channel(channel, reply);
    }

    /// Forgets an empty channel, telling the server when it still has it.
    fn remove_channel(&mut self, channel: &str, reply: Option<oneshot::Sender<Result<()>>>) {
        let Some(state) = self.channels.remove(channel) else {
            return;
        };
        // A subscribe in flight will be acked, so the server must be told to undo it too.
        if self.online && (state.acked || state.subscribing.is_some()) {
            self.send_unsubscribe(channel, reply);
        } else if let Some(reply) = reply {
            // Offline: the server dropped every subscription with the connection.
            let _ = reply.send(Ok(()));
        }
    }

    pub(crate) fn publish(
        &mut self,
        channel: String,
        event: String,
        data: Box<RawValue>,
        reply: oneshot::Sender<Result<u64>>,
    ) {
        if !self.online {
            if self.queued.len() >= self.offline_queue {
                let _ = reply.send(Err(Error::Disconnected));
            } else {
                self.queued.push_back(Queued::Publish {
                    channel,
                    event,
                    data,
                    reply,
                });
            }
            return;
        }
        let id = self.id();
        self.outbox.push(encode(&ClientFrame::Publish {
            id,
            channel,
            event,
            data,
        }));
        self.pending.insert(id, Pending::Publish { reply });
    }

    pub(crate) fn ping(&mut self, reply: oneshot::Sender<Result<Duration>>) {
        if !self.online {
            if self.queued.len() >= self.offline_queue {
                let _ = reply.send(Err(Error::Disconnected));
            } else {
                self.queued.push_back(Queued::Ping { reply });
            }
            return;
        }
        let id = self.id();
        self.outbox
            .push(encode(&ClientFrame::Ping { id: Some(id) }));
        self.pending.insert(
            id,
            Pending::Ping {
                reply,
                sent: Instant::now(),
            },
        );
    }

    /// Sends a keepalive ping unless one is already unanswered.
    pub(crate) fn send_heartbeat(&mut self) {
        if !self.online || self.heartbeat.is_some() {
            return;
        }
        let id = self.id();
        self.outbox
            .push(encode(&ClientFrame::Ping { id: Some(id) }));
        self.pending.insert(id, Pending::Heartbeat);
        self.heartbeat = Some(id);
    }

    pub(crate) fn heartbeat_outstanding(&self) -> bool {
        self.heartbeat.is_some()
    }

    pub(crate) fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message {
                channel,
                event,
                data,
                offset,
                ts,
                replayed,
            } => self.deliver(
                channel,
                event,
                data,
                Stamp {
                    offset,
                    ts,
                    replayed,
                },
            ),
            ServerFrame::Ack {
                id,
                offset,
                epoch,
                recovered,
            } => {
                if let (Some(Pending::Subscribe { channel, .. }), Some(epoch)) =
                    (self.pending.get(&id), epoch)
                {
                    if let Some(state) = self.channels.get_mut(channel) {
                        state.ack = Some((epoch, offset.unwrap_or(0), recovered));
                    }
                }
                self.on_answer(id, Ok(offset))
            }
            ServerFrame::Pong { id: Some(id) } => self.on_answer(id, Ok(None)),
            ServerFrame::Pong { id: None } => {}
            ServerFrame::Error {
                id: Some(id),
                code,
                message,
            } if self.pending.contains_key(&id) => {
                self.on_answer(id, Err(Error::Rejected { code, message }))
            }
            ServerFrame::Error { code, message, .. } => {
                tracing::warn!(%code, %message, "server reported an error not tied to a request");
            }
            ServerFrame::Ready { .. } => {
                tracing::debug!("ignoring a second ready");
            }
            frame @ (ServerFrame::Response { .. } | ServerFrame::Request { .. }) => {
                self.on_rpc_frame(frame)
            }
            ServerFrame::Members {
                id,
                channel,
                members,
            } => {
                if let Some(Pending::Members { .. }) = id.and_then(|id| self.pending.get(&id)) {
                    if let Some(Pending::Members { reply }) =
                        id.and_then(|id| self.pending.remove(&id))
                    {
                        let _ = reply.send(Ok(members.clone()));
                    }
                }
                self.notices
                    .push(Notice::Presence(crate::presence::PresenceEvent::Members {
                        channel,
                        members,
                    }));
            }
            ServerFrame::MemberAdded { channel, member } => self.notices.push(Notice::Presence(
                crate::presence::PresenceEvent::MemberAdded { channel, member },
            )),
            ServerFrame::MemberRemoved { channel, member } => self.notices.push(Notice::Presence(
                crate::presence::PresenceEvent::MemberRemoved { channel, member },
            )),
            frame @ (ServerFrame::Keys { .. } | ServerFrame::RoomKeys { .. }) => {
                self.on_key_frame(frame)
            }
            ServerFrame::Gap {
                channel,
                offset,
                epoch,
            } => self.on_gap(channel, offset, epoch),
            ServerFrame::History { id, page } => match self.pending.remove(&id) {
                Some(Pending::History { reply }) => {
                    let _ = reply.send(Ok(page));
                }
                Some(other) => {
                    // Not ours to answer with a page: put it back for its own answer.
                    self.pending.insert(id, other);
                    tracing::debug!(id, "history page answering another request");
                }
                None => tracing::debug!(id, "history page for a request this client did not make"),
            },
        }
    }

    /// The server lost messages of `channel` it could not recover (its bus was down): the
    /// application is told as for `recovered: false`, and the position moves to where the
    /// server goes on from, so that later messages (of a new epoch, maybe) are not taken for
    /// duplicates.
    fn on_gap(&mut self, channel: String, offset: u64, epoch: String) {
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        state.position = match state.position.take() {
            Some(p) if p.epoch == epoch => Some(Since {
                offset: p.offset.max(offset),
                epoch,
            }),
            _ => Some(Since { offset, epoch }),
        };
        self.notices.push(Notice::Unrecovered { channel });
    }

    fn deliver(&mut self, channel: String, event: String, data: Box<RawValue>, stamp: Stamp) {
        let Some(state) = self.channels.get_mut(&channel) else {
            // Late message for a channel just unsubscribed.
            return;
        };
        if state.subscribing.is_some() {
            state.held.push(Held { event, data, stamp });
            return;
        }
        self.dispatch(channel, event, data, stamp);
    }

    /// Hands a message to the channel's subscribers, unless its offset shows it was delivered
    /// already (sent again by a recovery).
    fn dispatch(&mut self, channel: String, event: String, data: Box<RawValue>, stamp: Stamp) {
        let Stamp {
            offset,
            ts,
            replayed,
        } = stamp;
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        if let Some(position) = &mut state.position {
            if offset <= position.offset {
                tracing::debug!(%channel, offset, "dropping a message delivered already");
                return;
            }
            position.offset = offset;
        }
        let data: Arc<RawValue> = Arc::from(data);
        let mut gone = false;
        state.live.retain(|s| {
            let mut message =
                Message::new(channel.clone(), event.clone(), data.clone(), offset, ts);
            message.replayed = replayed;
            match s.tx.try_send(message) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let n = s.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(%channel, dropped = n, "subscription buffer full: dropping messages");
                    }
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    gone = true;
                    false
                }
            }
        });
        if gone && state.is_empty() {
            self.remove_channel(&channel, None);
        }
    }

    fn on_answer(&mut self, id: u64, answer: Result<Option<u64>>) {
        let Some(pending) = self.pending.remove(&id) else {
            tracing::debug!(id, "answer to an unknown request");
            return;
        };
        match pending {
            Pending::Subscribe {
                channel,
                at_connect,
            } => self.on_subscribe_answer(channel, at_connect, answer.map(|_| ())),
            Pending::Unsubscribe { reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(answer.map(|_| ()));
                }
            }
            Pending::Publish { reply } => {
                let result = answer.and_then(|offset| {
                    offset.ok_or_else(|| Error::Protocol("publish ack without an offset".into()))
                });
                let _ = reply.send(result);
            }
            Pending::Ping { reply, sent } => {
                let _ = reply.send(answer.map(|_| sent.elapsed()));
            }
            Pending::Heartbeat => {
                // Any answer, even an error, shows the connection is alive.
                self.heartbeat = None;
            }
            Pending::Rpc(waiting) => self.on_rpc_answer(waiting, answer),
            Pending::Members { reply } => {
                let _ = reply.send(answer.and_then(|_| {
                    Err(Error::Protocol(
                        "presence answered by ack, not members".into(),
                    ))
                }));
            }
            Pending::History { reply } => {
                let _ = reply.send(answer.and_then(|_| {
                    Err(Error::Protocol(
                        "history answered by ack, not a page".into(),
                    ))
                }));
            }
            Pending::Keys { reply } => {
                let _ = reply.send(answer.map(|offset| ServerFrame::Ack {
                    id,
                    offset,
                    epoch: None,
                    recovered: None,
                }));
            }
        }
    }

    fn on_subscribe_answer(&mut self, channel: String, at_connect: bool, answer: Result<()>) {
        self.apply_subscribe_answer(channel, answer);
        if at_connect {
            self.resubscribing = self.resubscribing.saturating_sub(1);
            if self.resubscribing == 0 {
                self.notices.push(Notice::AllLive);
            }
        }
    }

    fn apply_subscribe_answer(&mut self, channel: String, answer: Result<()>) {
        let Some(state) = self.channels.get_mut(&channel) else {
            return;
        };
        state.subscribing = None;
        let held = std::mem::take(&mut state.held);
        let ack = state.ack.take();
        match answer {
            Ok(()) => {
                state.acked = true;
                for w in state.waiting.drain(..) {
                    if w.reply.send(Ok(())).is_ok() {
                        state.live.push(w.subscriber);
                    }
                }
                if let Some((epoch, offset, recovered)) = ack {
                    // Offsets compare only within an epoch: a new one starts from nothing.
                    state.position = match state.position.take() {
                        Some(p) if p.epoch == epoch => Some(p),
                        _ => Some(Since { offset: 0, epoch }),
                    };
                    for m in held {
                        self.dispatch(channel.clone(), m.event, m.data, m.stamp);
                    }
                    // Live from the ack's offset on, whatever came before it.
                    if let Some(p) = self
                        .channels
                        .get_mut(&channel)
                        .and_then(|s| s.position.as_mut())
                    {
                        p.offset = p.offset.max(offset);
                    }
                    if recovered == Some(false) {
                        self.notices.push(Notice::Unrecovered {
                            channel: channel.clone(),
                        });
                    }
                } else {
                    for m in held {
                        self.dispatch(channel.clone(), m.event, m.data, m.stamp);
                    }
                }
                let Some(state) = self.channels.get_mut(&channel) else {
                    return;
                };
                if state.is_empty() {
                    // Every waiter gave up (timed out) meanwhile.
                    self.remove_channel(&channel, None);
                }
            }
            Err(error) => {
                let had_live = !state.live.is_empty();
                // Dropping the live senders ends their streams.
                let state = self.channels.remove(&channel).unwrap_or_default();
                for w in state.waiting {
                    let _ = w.reply.send(Err(error.clone_lossy()));
                }
                if had_live {
                    self.notices
                        .push(Notice::ResubscribeFailed { channel, error });
                }
            }
        }
    }

    /// Asks for the members of a presence channel; fails at once while disconnected.
    pub(crate) fn members(
        &mut self,
        channel: String,
        reply: oneshot::Sender<Result<Vec<waas_protocol::presence::Member>>>,
    ) {
        if !self.online {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        let id = self.id();
        self.outbox
            .push(encode(&ClientFrame::Presence { id, channel }));
        self.pending.insert(id, Pending::Members { reply });
    }

    /// Reads a page of a channel's history; fails at once while disconnected.
    pub(crate) fn history(
        &mut self,
        query: HistoryQuery,
        reply: oneshot::Sender<Result<HistoryPage>>,
    ) {
        if !self.online {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        let id = self.id();
        self.outbox.push(encode(&ClientFrame::History {
            id,
            channel: query.channel,
            since: query.since,
            limit: query.limit,
            reverse: query.reverse,
        }));
        self.pending.insert(id, Pending::History { reply });
    }

    /// The connection is gone: requests that cannot be resent fail, channels wait to be
    /// subscribed again.
    pub(crate) fn on_disconnect(&mut self) {
        self.online = false;
        self.heartbeat = None;
        self.resubscribing = 0;
        self.outbox.clear();
        for (_, pending) in self.pending.drain() {
            match pending {
                Pending::Publish { reply } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::Ping { reply, .. } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::Unsubscribe { reply: Some(reply) } => {
                    // The server forgets every subscription of a closed connection.
                    let _ = reply.send(Ok(()));
                }
                Pending::Members { reply } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::History { reply } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::Keys { reply } => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::Rpc(waiting) => waiting.disconnected(),
                Pending::Unsubscribe { reply: None }
                | Pending::Subscribe { .. }
                | Pending::Heartbeat => {}
            }
        }
        for state in self.channels.values_mut() {
            state.subscribing = None;
            state.acked = false;
            state.held.clear();
            state.ack = None;
        }
    }

    /// A connection is ready: subscribe every channel again, then send what was queued.
    pub(crate) fn on_connect(&mut self) {
        self.online = true;
        self.rpc_on_connect();
        self.channels.retain(|_, s| !s.is_empty());
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        for channel in channels {
            let id = self.send_subscribe(&channel, true);
            if let Some(state) = self.channels.get_mut(&channel) {
                state.subscribing = Some(id);
            }
        }
        self.resubscribing = self.channels.len();
        for queued in std::mem::take(&mut self.queued) {
            match queued {
                Queued::Publish {
                    channel,
                    event,
                    data,
                    reply,
                } => {
                    if !reply.is_closed() {
                        self.publish(channel, event, data, reply);
                    }
                }
                Queued::Ping { reply } => {
                    if !reply.is_closed() {
                        self.ping(reply);
                    }
                }
            }
        }
        if self.resubscribing == 0 {
            self.notices.push(Notice::AllLive);
        }
    }

    /// The client is finished: every waiting request fails with `error()`, every stream ends.
    pub(crate) fn shutdown(&mut self, error: impl Fn() -> Error) {
        self.on_disconnect();
        for (_, state) in self.channels.drain() {
            for w in state.waiting {
                let _ = w.reply.send(Err(error()));
            }
        }
        for queued in self.queued.drain(..) {
            match queued {
                Queued::Publish { reply, .. } => {
                    let _ = reply.send(Err(error()));
                }
                Queued::Ping { reply } => {
                    let _ = reply.send(Err(error()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
