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
//!
//! Layout: this file holds the session's state, its outgoing requests and connection changes;
//! `channels` the subscriptions and message delivery; `inbound` the routing of server frames.

mod channels;
mod inbound;

pub(crate) use channels::Subscriber;

use crate::error::{Error, Result};
use channels::ChannelState;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use waas_protocol::frame::{ClientFrame, ServerFrame};
use waas_protocol::history::HistoryPage;

/// What [`crate::Client::history`] asks for.
#[derive(Debug)]
pub(crate) struct HistoryQuery {
    pub channel: String,
    pub since: Option<u64>,
    pub limit: Option<usize>,
    pub reverse: bool,
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

    /// Nothing but a heartbeat waits for an answer: the connection may be swapped for another
    /// (a move to a nearer gateway) without failing a request.
    pub(crate) fn quiet(&self) -> bool {
        self.pending
            .values()
            .all(|p| matches!(p, Pending::Heartbeat))
    }

    pub(crate) fn heartbeat_outstanding(&self) -> bool {
        self.heartbeat.is_some()
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
