//! History in NATS JetStream, for cluster mode: one stream per app, shared by every gateway.
//!
//! A gateway publishes a channel's message — its frame without the offset ([`Head`]) — to the
//! app's history subject `{prefix}.~h.{app}.{channel}`, which the stream `{prefix}_history_{app}`
//! captures. JetStream numbers it with the stream sequence (the offset: strictly increasing per
//! channel, not contiguous) and *republishes* it, with a `Nats-Sequence` header, to the channel's
//! ordinary subject `{prefix}.{app}.{channel}`, where gateways' live subscriptions receive it and
//! append the offset. Republishing happens as the stream stores, so every subscriber of every
//! gateway sees a channel in offset order, whichever gateway accepted each publish; and a message
//! is stored before anyone receives it, which recovery relies on.
//!
//! The stream keeps `policy.size` messages per channel (`max_messages_per_subject`) for
//! `policy.ttl` (`max_age`). A namespace with a history rule of its own ([`Policy::namespaced`])
//! has a stream of its own, `{prefix}_nshistory_{app}_{hash}` ([`stream_names`]), fed from
//! `{prefix}.~hn.{app}.{channel}` — a subject space apart, because one subject may belong to one
//! stream only. Its epoch is its creation time, so deleting and recreating it
//! changes every channel's epoch. Apps that keep no history skip JetStream: they go through a
//! [`MemoryHistory`] on this gateway, which also numbers their messages again as this gateway
//! delivers them, whichever gateway published them (offsets and epochs per delivering gateway).
//!
//! Only JetStream features of nats-server 2.9 are used (republish, ephemeral pull consumers,
//! `CONSUMER.CREATE` without a filter in the subject).

mod acks;
mod direct;
mod fresh;
mod read;
mod streams;

use super::memory::MemoryHistory;
use super::stream_names;
use super::tap::{self, TapStream, Tapped};
use super::{Head, History, HistoryError, Page, Policy, Query, Recovery, Stored};
use crate::bus::nats::NatsBus;
use crate::bus::nats::{trace_headers, trace_of};
use crate::bus::{Bus, BusError, BusMessage, TracedSubscription};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream;
use async_nats::jetstream::Context;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::{ready, Either};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streams::Place;
use waas_protocol::history::Since;

/// Header JetStream puts on republished messages: the stream sequence.
const SEQUENCE: &str = "Nats-Sequence";
/// Header JetStream puts on republished messages: the sequence of the stream's previous message
/// on the same subject (0 for the first), which tells a subscriber it missed one.
const LAST_SEQUENCE: &str = "Nats-Last-Sequence";

/// How long a stored message's acknowledgement is awaited (as long as the JetStream context
/// waits for one).
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages a tap asks JetStream for at a time.
const TAP_BATCH: usize = 1000;

/// Longest a message waits in an app's recording stream for every recorder to store it.
const RECORD_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a tapped message may stay unacknowledged before JetStream delivers it again: how
/// soon a restarted recorder gets what its predecessor had taken but not stored.
const TAP_ACK_WAIT: Duration = Duration::from_secs(5);

/// A stored message's sequence and complete frame.
type Read = (u64, Bytes);

/// A stream's epoch (its creation time, hex nanoseconds), first and last sequence.
type StreamState = (String, u64, u64);

/// A history stream, as last ensured with `policy`.
struct AppStream {
    policy: Policy,
    stream: stream::Stream,
}

pub struct JetStreamHistory {
    nats: Arc<NatsBus>,
    bus: Arc<dyn Bus>,
    js: Context,
    /// Where stored messages are acknowledged ([`acks`]).
    acks: acks::Acks,
    prefix: String,
    local: MemoryHistory,
    /// Streams this gateway has created or checked, by [`Place::cache_key`]. Guards the map only.
    /// Shared with pipelined publishes ([`History::start_publish`]), which forget a stream whose
    /// publish failed after they returned.
    streams: Arc<Mutex<HashMap<String, Arc<AppStream>>>>,
    /// Places whose stream is being ensured, so that concurrent first uses (every client
    /// resubscribing to a restarted gateway) make one JetStream request, not one each.
    ensuring: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Stream states ([`JetStreamHistory::state`]), shared by concurrent callers.
    states: Arc<fresh::Fresh<String, StreamState>>,
    /// Recovery reads by channel and first offset: the subscribers of one channel that
    /// resubscribe at once (they saw the same last message) share one read.
    recent: Arc<fresh::Fresh<(String, u64), Vec<Read>>>,
}

// Compile-time check that the JetStream history fits the seam.
const _: fn(JetStreamHistory) -> Arc<dyn History> = |h| Arc::new(h);

fn unavailable(e: impl std::fmt::Display) -> HistoryError {
    HistoryError::Unavailable(format!("JetStream: {e}"))
}

impl JetStreamHistory {
    /// History on the JetStream of `nats`, whose subjects start with `prefix`.
    pub fn new(nats: Arc<NatsBus>, prefix: String) -> Self {
        let bus: Arc<dyn Bus> = nats.clone();
        JetStreamHistory {
            js: async_nats::jetstream::new(nats.client().clone()),
            acks: acks::Acks::new(
                nats.client().clone(),
                nats.subscription_capacity(),
                ACK_TIMEOUT,
            ),
            local: MemoryHistory::new(Arc::clone(&bus)),
            nats,
            bus,
            prefix,
            streams: Arc::default(),
            ensuring: Mutex::default(),
            states: Arc::default(),
            recent: Arc::default(),
        }
    }

    /// The app and channel of a channel subject `{prefix}.{app}.{channel}` (the channel is `>`
    /// for a tap's `{prefix}.{app}.>`).
    fn split<'a>(&self, subject: &'a str) -> Result<(&'a str, &'a str), HistoryError> {
        subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|s| s.strip_prefix('.'))
            .and_then(|s| s.split_once('.'))
            .ok_or_else(|| HistoryError::Unavailable(format!("not a channel subject: {subject}")))
    }

    /// The stream a channel subject's history goes to under `policy`, and the channel.
    fn place<'a>(
        &self,
        subject: &'a str,
        policy: Policy,
    ) -> Result<(Place<'a>, &'a str), HistoryError> {
        let (app, channel) = self.split(subject)?;
        let namespace = policy
            .namespaced
            .then(|| channel.split_once('.').map(|(ns, _)| ns))
            .flatten();
        Ok((Place { app, namespace }, channel))
    }

    /// Live messages of `subject` (a channel's, or a tap's `{prefix}.{app}.>`) as NATS delivers
    /// them, once the subscription is confirmed on the server.
    async fn live(&self, subject: &str) -> Result<async_nats::Subscriber, BusError> {
        self.nats.check_connected()?;
        let subscriber = self
            .nats
            .client()
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| BusError::Unavailable(format!("NATS subscribe failed: {e}")))?;
        self.nats.confirm().await?;
        Ok(subscriber)
    }

    /// Hands `head` to JetStream on `target`; the returned answer comes once it is stored.
    /// JetStream republishes the message with its headers: the trace context reaches every
    /// gateway's live subscription.
    async fn send(&self, target: String, head: &Head) -> Result<acks::Answer, acks::AckError> {
        self.acks
            .publish(target, trace_headers(), head.0.clone())
            .await
    }

    /// The stream's epoch, first and last sequence, fresh from the server: from a request sent
    /// after this call, shared with the other callers of that moment ([`fresh`]).
    async fn state(&self, stream: &stream::Stream) -> Result<(String, u64, u64), HistoryError> {
        let name = stream.cached_info().config.name.clone();
        self.states
            .get(name, || {
                let stream = stream.clone();
                async move {
                    let info = stream.get_info().await.map_err(unavailable)?;
                    let epoch = format!("{:x}", info.created.unix_timestamp_nanos());
                    Ok((epoch, info.state.first_sequence, info.state.last_sequence))
                }
            })
            .await
    }
}

/// The stream sequence a history stream republished `message` with: its offset.
fn sequence(message: &async_nats::Message) -> Option<u64> {
    header_u64(message, SEQUENCE)
}

fn header_u64(message: &async_nats::Message, name: &str) -> Option<u64> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .and_then(|v| v.as_str().parse::<u64>().ok())
}

/// The sequence of the stream's previous message on `message`'s subject when a live
/// subscription that last received sequence `last` (`None`: nothing yet) may have missed it:
/// the stream stored a message on the subject after `last` that never arrived. That happens when
/// the connection stays up but the path to the stream broke (two regions cut apart), so no
/// reconnect says so. On a subscription's first message it is "maybe" whenever the channel had
/// messages before; the forwarder compares with its own position ([`super::previous_of`]).
fn maybe_missed(last: Option<u64>, message: &async_nats::Message) -> Option<u64> {
    let previous = header_u64(message, LAST_SEQUENCE)?;
    (previous > last.unwrap_or(0)).then_some(previous)
}

#[async_trait]
impl History for JetStreamHistory {
    async fn publish(
        &self,
        policy: Policy,
        subject: &str,
        head: &Head,
    ) -> Result<u64, HistoryError> {
        if !policy.enabled() {
            return self.local.publish(policy, subject, head).await;
        }
        let (place, channel) = self.place(subject, policy)?;
        let target = self.history_subject(place, channel);
        let mut retried = false;
        loop {
            self.ensure(place, policy).await?;
            let sent = async {
                let answer = self.send(target.clone(), head).await?;
                answer.await.unwrap_or(Err(acks::AckError::Stopped))
            };
            let timer = crate::metrics::METRICS.jetstream_publish.start_timer();
            let sent = sent.await;
            timer.observe_duration();
            match sent {
                Ok(sequence) => return Ok(sequence),
                // The stream was deleted behind our back: make it again, once.
                Err(e) if !retried => {
                    tracing::warn!(app = place.app, error = %e, "history publish failed; checking the stream");
                    self.forget(place);
                    retried = true;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Sends the message and returns; the acknowledgement is awaited by the [`Stored`]. A
    /// failed publish is not retried here (unlike [`History::publish`]): later publishes of the
    /// pipeline may already be stored, and a retry would store this one after them. It fails
    /// alone, and the stream is checked again before the next publish, in case it was deleted
    /// behind our back.
    async fn start_publish(
        &self,
        policy: Policy,
        subject: &str,
        head: &Head,
    ) -> Result<Stored, HistoryError> {
        if !policy.enabled() {
            return self.local.start_publish(policy, subject, head).await;
        }
        let (place, channel) = self.place(subject, policy)?;
        let target = self.history_subject(place, channel);
        self.ensure(place, policy).await?;
        let answer = match self.send(target, head).await {
            Ok(answer) => answer,
            Err(e) => {
                self.forget(place);
                return Err(unavailable(e));
            }
        };
        let timer = crate::metrics::METRICS.jetstream_publish.start_timer();
        let streams = Arc::clone(&self.streams);
        let key = place.cache_key().into_owned();
        Ok(Box::pin(async move {
            let ack = answer.await.unwrap_or(Err(acks::AckError::Stopped));
            timer.observe_duration();
            match ack {
                Ok(sequence) => Ok(sequence),
                Err(e) => {
                    tracing::warn!(stream = %key, error = %e, "pipelined history publish failed; checking the stream before the next");
                    streams.lock().expect("streams poisoned").remove(&key);
                    Err(unavailable(e))
                }
            }
        }))
    }

    async fn read(
        &self,
        policy: Policy,
        subject: &str,
        query: Query,
    ) -> Result<Page, HistoryError> {
        if !policy.enabled() {
            return self.local.read(policy, subject, query).await;
        }
        let (place, channel) = self.place(subject, policy)?;
        let filter = self.history_subject(place, channel);
        let entry = self.ensure(place, policy).await?;
        let (epoch, _, last) = self.state(&entry.stream).await?;
        let messages = if query.reverse {
            // Newest first: read the channel's whole history (at most `policy.size`).
            let before = query.since.unwrap_or(u64::MAX);
            let all = read::read_from(&entry.stream, &filter, 1, policy.size).await?;
            all.into_iter()
                .rev()
                .filter(|(seq, _)| *seq < before)
                .take(query.limit)
                .map(|(_, m)| m)
                .collect()
        } else {
            let start = query.since.map_or(1, |s| s.saturating_add(1));
            read::read_from(&entry.stream, &filter, start, query.limit)
                .await?
                .into_iter()
                .map(|(_, m)| m)
                .collect()
        };
        Ok(Page {
            epoch,
            offset: last,
            messages,
        })
    }

    async fn recover(
        &self,
        policy: Policy,
        subject: &str,
        since: Option<&Since>,
    ) -> Result<Recovery, HistoryError> {
        if !policy.enabled() {
            return self.local.recover(policy, subject, since).await;
        }
        let (place, channel) = self.place(subject, policy)?;
        let filter = self.history_subject(place, channel);
        let entry = self.ensure(place, policy).await?;
        let (epoch, first, last) = self.state(&entry.stream).await?;
        let mut recovery = Recovery {
            epoch,
            offset: last,
            messages: Vec::new(),
            recovered: None,
        };
        let Some(since) = since else {
            return Ok(recovery);
        };
        if since.epoch != recovery.epoch || since.offset > last {
            recovery.recovered = Some(false);
            return Ok(recovery);
        }
        let missed = self
            .recent
            .get((filter.clone(), since.offset + 1), || {
                read::recent(
                    entry.stream.clone(),
                    filter.clone(),
                    since.offset + 1,
                    policy.size,
                )
            })
            .await?;
        // Nothing after `since` aged out: the stream drops by age from its front only.
        let aged_ok = first <= since.offset + 1;
        // Nothing after `since` was pushed out by the per-channel bound: either the bound was
        // not reached, or the channel still holds a message from before `since`.
        let count_ok = missed.len() < policy.size
            || direct::read_direct(&entry.stream, &filter, 1, 1)
                .await?
                .first()
                .is_some_and(|(seq, _)| *seq <= since.offset);
        recovery.recovered = Some(aged_ok && count_ok);
        if let Some((seq, _)) = missed.last() {
            recovery.offset = recovery.offset.max(*seq);
        }
        recovery.messages = missed.into_iter().map(|(_, m)| m).collect();
        Ok(recovery)
    }

    /// One direct get of the channel's last message, answered by the stream's servers even while
    /// the meta group has no leader.
    async fn last_offset(
        &self,
        policy: Policy,
        subject: &str,
    ) -> Result<Option<u64>, HistoryError> {
        if !policy.enabled() {
            return Ok(None);
        }
        let (place, channel) = self.place(subject, policy)?;
        let filter = self.history_subject(place, channel);
        let entry = self.ensure(place, policy).await?;
        direct::last_direct(&entry.stream, &filter).await.map(Some)
    }

    /// Messages of apps without history arrive as the publishing gateway numbered them, each
    /// gateway numbering them on its own: they are numbered again here, in the order they
    /// arrive, from the channel's log in this gateway's memory history, so that this gateway's
    /// subscribers see one increasing sequence whichever gateways the publishes went through
    /// (the hub has one subscription per channel, so that is once per message per gateway).
    async fn subscribe(&self, subject: &str) -> Result<TracedSubscription, BusError> {
        // Before the bus subscription, as a pin; on error it is dropped, which releases the log.
        let delivery = Arc::new(self.local.delivery(subject));
        let messages = self.live(subject).await?;
        let mut last = None;
        let frames = messages.then(move |message| {
            let trace = trace_of(&message);
            match sequence(&message) {
                Some(seq) => {
                    let marker = maybe_missed(last, &message).map(super::previous_marker);
                    last = Some(seq);
                    let payload = Head(message.payload).with_offset(seq);
                    Either::Left(ready((marker, BusMessage { payload, trace })))
                }
                None => {
                    let delivery = Arc::clone(&delivery);
                    Either::Right(async move {
                        let payload = delivery.number(message.payload).await;
                        (None, BusMessage { payload, trace })
                    })
                }
            }
        });
        // The empty marker, when there is one, goes before the frame that revealed the gap.
        Ok(Box::pin(frames.flat_map(|(marker, frame)| {
            let marker = marker.map(|payload| BusMessage {
                payload,
                trace: None,
            });
            futures_util::stream::iter(marker.into_iter().chain(std::iter::once(frame)))
        })))
    }

    /// A durable pull consumer named `durable` on the app's recording stream, from the messages
    /// stored after it was first created; positions are the recording stream's sequences, one
    /// order over every channel of the app whichever history stream (app or namespace) numbered
    /// a message. Apps without history have no stream: their tap is live only.
    async fn tap(
        &self,
        policy: Policy,
        app_subject: &str,
        durable: &str,
    ) -> Result<TapStream, HistoryError> {
        let (app, _) = self.split(app_subject)?;
        if !policy.enabled() {
            // As published: a recorder numbers live-only taps itself.
            let messages = self.live(app_subject).await?;
            return tap::live(Box::pin(messages.map(|message| BusMessage {
                payload: match sequence(&message) {
                    Some(seq) => Head(message.payload).with_offset(seq),
                    None => message.payload,
                },
                trace: None,
            })));
        }
        self.ensure(
            Place {
                app,
                namespace: None,
            },
            policy,
        )
        .await?;
        let records = self.record_stream(app).await?;
        let consumer = records
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    deliver_policy: DeliverPolicy::New,
                    // Each message on its own: acknowledging a later one must not cover earlier
                    // ones a dead reader had taken but not stored, which JetStream delivers again
                    // after `ack_wait`.
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: TAP_ACK_WAIT,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        // Large pulls: the recorder stores a batch per transaction.
        let messages = consumer
            .stream()
            .max_messages_per_batch(TAP_BATCH)
            .messages()
            .await
            .map_err(unavailable)?;
        Ok(Box::pin(messages.map(|message| {
            let message = message.map_err(unavailable)?;
            let position = message.info().map_err(unavailable)?.stream_sequence;
            // Republished by a history stream: its sequence is the message's offset. Anything
            // else on the channels' subjects (a namespace that keeps no history, numbered by the
            // gateway) arrives complete.
            let frame = match sequence(&message) {
                Some(seq) => Head(message.payload.clone()).with_offset(seq),
                None => message.payload.clone(),
            };
            Ok(Tapped {
                position: Some(position),
                frame,
                ack: Some(message),
            })
        })))
    }

    async fn untap(&self, policy: Policy, app_subject: &str, durable: &str) {
        let Ok((app, _)) = self.split(app_subject) else {
            return;
        };
        if !policy.enabled() {
            return;
        }
        match self
            .js
            .get_stream(stream_names::record(&self.prefix, app))
            .await
        {
            Ok(records) => {
                if let Err(e) = records.delete_consumer(durable).await {
                    tracing::debug!(durable, error = %e, "could not delete a tap's consumer");
                }
            }
            Err(e) => tracing::debug!(durable, error = %e, "no recording stream to untap"),
        }
    }

    fn sweep(&self) -> usize {
        self.local.sweep()
    }

    fn channel_count(&self) -> usize {
        self.local.channel_count()
    }

    fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }
}
