//! A [`Session`]'s channels: local subscribers sharing one server subscription per channel,
//! the `subscribe` / `unsubscribe` sent for them, and delivering messages once each in offset
//! order, held back while a `subscribe` is in flight until its `ack` tells the epoch.

use super::{encode, Notice, Pending, Session};
use crate::error::Result;
use crate::message::Message;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use waas_protocol::frame::ClientFrame;
use waas_protocol::history::Since;

/// One local subscription's end of its message buffer.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub id: u64,
    pub tx: mpsc::Sender<Message>,
    pub dropped: Arc<AtomicU64>,
}

#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) subscriber: Subscriber,
    pub(super) reply: oneshot::Sender<Result<()>>,
}

#[derive(Debug, Default)]
pub(super) struct ChannelState {
    /// Receiving messages.
    pub(super) live: Vec<Subscriber>,
    /// Subscribed by the application, waiting for the server's ack.
    pub(super) waiting: Vec<Waiter>,
    /// Frame id of the `subscribe` in flight on this connection.
    pub(super) subscribing: Option<u64>,
    /// The server has acknowledged the subscription on this connection.
    pub(super) acked: bool,
    /// The channel's epoch and the last offset delivered, once a server gave an epoch: sent as
    /// `since` when subscribing again, and the bar a message must pass not to be a duplicate.
    pub(super) position: Option<Since>,
    /// Messages that arrived while a `subscribe` was in flight (recovered ones among them):
    /// they are only known to be new once its `ack` tells the epoch.
    pub(super) held: Vec<Held>,
    /// Epoch, offset and `recovered` of the `ack` being applied.
    pub(super) ack: Option<(String, u64, Option<bool>)>,
}

#[derive(Debug)]
pub(super) struct Held {
    event: String,
    data: Box<RawValue>,
    stamp: Stamp,
}

/// Where and when a message was published.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    pub(super) offset: u64,
    pub(super) ts: u64,
    pub(super) replayed: bool,
}

impl ChannelState {
    pub(super) fn is_empty(&self) -> bool {
        self.live.is_empty() && self.waiting.is_empty()
    }
}

impl Session {
    pub(super) fn send_subscribe(&mut self, channel: &str, at_connect: bool) -> u64 {
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

    /// The server lost messages of `channel` it could not recover (its bus was down): the
    /// application is told as for `recovered: false`, and the position moves to where the
    /// server goes on from, so that later messages (of a new epoch, maybe) are not taken for
    /// duplicates.
    pub(super) fn on_gap(&mut self, channel: String, offset: u64, epoch: String) {
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

    pub(super) fn deliver(
        &mut self,
        channel: String,
        event: String,
        data: Box<RawValue>,
        stamp: Stamp,
    ) {
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

    pub(super) fn on_subscribe_answer(
        &mut self,
        channel: String,
        at_connect: bool,
        answer: Result<()>,
    ) {
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
}
