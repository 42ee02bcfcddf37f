//! The **History seam**: how a channel's messages get their offsets, are kept for a while, and
//! are read back for recovery and the history API.
//!
//! Every publish goes through [`History::publish`], which assigns the offset, stores the message
//! when the app keeps history, and hands it to live subscribers; [`History::subscribe`] is
//! where the hub gets a channel's live messages from. Two implementations:
//! [`memory::MemoryHistory`] (one process, `waas dev`: history in memory, bounded per channel by
//! count and age) and [`jetstream::JetStreamHistory`] (cluster: a NATS JetStream stream per app).
//!
//! Guarantees every implementation gives:
//! - within one **epoch**, a channel's offsets are strictly increasing, and live subscribers
//!   receive its messages in offset order (they need not be contiguous: JetStream offsets are
//!   stream sequences shared by the app's channels);
//! - a message is stored before or as it is delivered live, so a reader that subscribed live
//!   first and then read history misses nothing in between;
//! - [`Recovery::recovered`] is `true` only when every message after the client's position is
//!   known to be in the answer; when in doubt, it is `false`.
//!
//! Every message frame ends with `"offset":N}` ([`Head`]): the offset is appended last, so an
//! implementation that learns it only after storing (JetStream) can complete the frame without
//! re-encoding it, and the hub can read it back from the end of any frame ([`offset_of`]).

pub mod jetstream;
pub mod memory;
pub mod policy;
mod stream_names;
pub mod tap;

use crate::bus::{Bus, BusError, TracedSubscription};
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use waas_protocol::history::Since;

pub use policy::Policy;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("history is unavailable: {0}")]
    Unavailable(String),
}

impl From<BusError> for HistoryError {
    fn from(e: BusError) -> Self {
        HistoryError::Unavailable(e.to_string())
    }
}

impl From<HistoryError> for BusError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Unavailable(m) => BusError::Unavailable(m),
        }
    }
}

#[derive(Serialize)]
struct HeadFields<'a> {
    op: &'static str,
    channel: &'a str,
    event: &'a str,
    data: &'a RawValue,
    ts: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
}

/// A `message` frame without its offset: the JSON object up to and including the comma before
/// `"offset"`. Encoded once per publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head(pub Bytes);

/// First byte of a [`previous_marker`]: never the first byte of a frame (JSON, `{`).
const MARKER: u8 = 0;

/// An item of a [`History::subscribe`] stream that is not a frame: the next frame's
/// predecessor on its channel has offset `previous`, which the subscription may have missed.
pub fn previous_marker(previous: u64) -> Bytes {
    let mut b = Vec::with_capacity(9);
    b.push(MARKER);
    b.extend_from_slice(&previous.to_be_bytes());
    Bytes::from(b)
}

/// The offset a [`previous_marker`] carries; `None` for a frame.
pub fn previous_of(item: &[u8]) -> Option<u64> {
    match item {
        [MARKER, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

impl Head {
    pub fn new(channel: &str, event: &str, data: &RawValue, ts: u64, replayed: bool) -> Head {
        let fields = HeadFields {
            op: "message",
            channel,
            event,
            data,
            ts,
            replayed,
        };
        let mut json = serde_json::to_vec(&fields).expect("message frames always serialise");
        // `{...}` -> `{...,`: the offset goes where the closing brace was.
        json.pop();
        json.push(b',');
        Head(Bytes::from(json))
    }

    /// The complete frame: `{...,"offset":N}`.
    pub fn with_offset(&self, offset: u64) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.0.len() + 32);
        buf.put_slice(&self.0);
        buf.put_slice(b"\"offset\":");
        buf.put_slice(offset.to_string().as_bytes());
        buf.put_u8(b'}');
        buf.freeze()
    }
}

/// Where the offset's digits start in a message frame built by [`Head::with_offset`], and the
/// offset.
fn offset_at(frame: &[u8]) -> Option<(usize, u64)> {
    let body = frame.strip_suffix(b"}")?;
    let start = body.iter().rposition(|b| !b.is_ascii_digit())? + 1;
    if !body[..start].ends_with(OFFSET_KEY) {
        return None;
    }
    let offset = std::str::from_utf8(&body[start..]).ok()?.parse().ok()?;
    Some((start, offset))
}

const OFFSET_KEY: &[u8] = b"\"offset\":";

/// The offset of a message frame built by [`Head::with_offset`], read from its end; works on
/// the JSON and on the WebSocket frame holding it (server frames are not masked).
pub fn offset_of(frame: &[u8]) -> Option<u64> {
    offset_at(frame).map(|(_, offset)| offset)
}

/// The publish timestamp (`ts`, ms) of a live message frame built by [`Head::new`], read
/// backwards from the end, so the cost does not grow with `data`; `None` for replayed messages
/// (they keep their original `ts`) and frames of another shape. For the delivery latency metric.
pub fn live_ts_of(frame: &[u8]) -> Option<u64> {
    let (start, _) = offset_at(frame)?;
    let body = frame[..start - OFFSET_KEY.len()].strip_suffix(b",")?;
    let digits = body.iter().rposition(|b| !b.is_ascii_digit())? + 1;
    if !body[..digits].ends_with(b"\"ts\":") {
        return None;
    }
    std::str::from_utf8(&body[digits..]).ok()?.parse().ok()
}

impl Head {
    /// The head of a complete message frame, sharing its bytes: for a gateway that numbers a
    /// message again as it delivers it (channels without history in a cluster).
    pub fn of(frame: &Bytes) -> Option<Head> {
        let (start, _) = offset_at(frame)?;
        Some(Head(frame.slice(..start - OFFSET_KEY.len())))
    }
}

/// What to read from a channel's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Query {
    /// Only messages after this offset; with `reverse`, only messages before it.
    pub since: Option<u64>,
    pub limit: usize,
    /// Newest first.
    pub reverse: bool,
}

/// A page of history: complete message frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub epoch: String,
    /// The channel's latest offset when the page was read.
    pub offset: u64,
    pub messages: Vec<Bytes>,
}

/// What a subscriber gets back when it (re)subscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub epoch: String,
    /// The channel's latest offset when history was read; live messages up to it are covered.
    pub offset: u64,
    /// Messages after the client's position, oldest first (empty without `since`).
    pub messages: Vec<Bytes>,
    /// With `since`: whether `messages` holds everything the client missed.
    pub recovered: Option<bool>,
}

/// A publish handed to storage, not yet known to be stored: resolves with the message's offset
/// once it is ([`History::start_publish`]).
pub type Stored = futures_util::future::BoxFuture<'static, Result<u64, HistoryError>>;

#[async_trait]
pub trait History: Send + Sync + 'static {
    /// Gives the message its offset, stores it under `policy`, and delivers it live. Messages
    /// of one channel are delivered in the order of their offsets.
    async fn publish(
        &self,
        policy: Policy,
        subject: &str,
        head: &Head,
    ) -> Result<u64, HistoryError>;

    /// The first half of [`History::publish`], for pipelining: hands the message to storage
    /// and returns without waiting for it to be stored; the returned [`Stored`] resolves with
    /// its offset once it is, or with the error that kept it from being stored. Publishes
    /// started one after another (each `start_publish` awaited before the next is called) are
    /// stored in that order, whether or not their [`Stored`]s are awaited in between, so a
    /// caller may keep many in flight and still acknowledge each only after storage. An
    /// implementation where storing is immediate (memory) stores before returning; the default
    /// is exactly that.
    async fn start_publish(
        &self,
        policy: Policy,
        subject: &str,
        head: &Head,
    ) -> Result<Stored, HistoryError> {
        let offset = self.publish(policy, subject, head).await?;
        Ok(Box::pin(futures_util::future::ready(Ok(offset))))
    }

    /// Reads up to `query.limit` stored messages.
    async fn read(&self, policy: Policy, subject: &str, query: Query)
        -> Result<Page, HistoryError>;

    /// The channel's position, and with `since` the messages published after it. Call after
    /// the live subscription exists, so that nothing falls between the two.
    async fn recover(
        &self,
        policy: Policy,
        subject: &str,
        since: Option<&Since>,
    ) -> Result<Recovery, HistoryError>;

    /// The offset of the newest message stored on the channel (0: none), where this history is
    /// shared with other gateways and can tell in one cheap request (JetStream); `None` where
    /// not. A gateway asks it for each of its live channels when it finds that part of the bus
    /// was cut off from it, to catch up the channels that got nothing new since
    /// (`docs/regions.md`).
    async fn last_offset(
        &self,
        policy: Policy,
        subject: &str,
    ) -> Result<Option<u64>, HistoryError> {
        let _ = (policy, subject);
        Ok(None)
    }

    /// Live messages of `subject` as complete frames, in offset order, with the trace context
    /// they were published in. An implementation that can tell (JetStream) puts a
    /// [`previous_marker`] before a frame whose predecessor on the channel may not have reached
    /// this subscription; the reader compares it with its own position and catches up from
    /// history when it is behind ([`previous_of`]).
    async fn subscribe(&self, subject: &str) -> Result<TracedSubscription, BusError>;

    /// Like [`History::subscribe`], with each frame first offered to `inline` in the
    /// publisher's call where the bus can ([`crate::bus::inline`]); the default never offers.
    async fn subscribe_inline(
        &self,
        subject: &str,
        inline: std::sync::Arc<dyn crate::bus::inline::Inline>,
    ) -> Result<TracedSubscription, BusError> {
        let _ = inline;
        self.subscribe(subject).await
    }

    /// Every message of one app (`app_subject` is `{prefix}.{app}.>`), for a recorder. An
    /// implementation that can (JetStream) keeps the position under `durable` across restarts
    /// of the reader, with positions from the stream; the default is live messages only, without
    /// positions. See [`tap`].
    async fn tap(
        &self,
        policy: Policy,
        app_subject: &str,
        durable: &str,
    ) -> Result<tap::TapStream, HistoryError> {
        let _ = (policy, durable);
        tap::live(self.subscribe(app_subject).await?)
    }

    /// Forgets the position kept under `durable` (the recording ended).
    async fn untap(&self, policy: Policy, app_subject: &str, durable: &str) {
        let _ = (policy, app_subject, durable);
    }

    /// Frees the state of channels that no longer need any in this process (no live
    /// subscription here, every kept message expired); returns how many channels it still keeps
    /// state for. Called every `history_sweep_ms` by the gateway.
    fn sweep(&self) -> usize {
        0
    }

    /// Channels this history keeps state for in this process (offsets, epochs, messages).
    fn channel_count(&self) -> usize {
        0
    }

    /// The bus under this history, for everything that is not a channel message.
    fn bus(&self) -> &Arc<dyn Bus>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_offset_roundtrip() {
        let data = RawValue::from_string("{\"n\": 1}".into()).unwrap();
        let head = Head::new("a.b", "e", &data, 99, false);
        let frame = head.with_offset(1234);
        assert_eq!(
            &frame[..],
            br#"{"op":"message","channel":"a.b","event":"e","data":{"n": 1},"ts":99,"offset":1234}"#
        );
        assert_eq!(offset_of(&frame), Some(1234));
        let parsed = waas_protocol::ServerFrame::parse(std::str::from_utf8(&frame).unwrap());
        assert!(matches!(
            parsed,
            Ok(waas_protocol::ServerFrame::Message { offset: 1234, .. })
        ));
        let replayed = Head::new("a", "e", &data, 1, true).with_offset(2);
        assert!(replayed.ends_with(br#""ts":1,"replayed":true,"offset":2}"#));
        let head_again = Head::of(&frame).unwrap();
        assert_eq!(head_again, head, "the head is the frame without its offset");
        assert_eq!(offset_of(&head_again.with_offset(7)), Some(7));
        assert_eq!(Head::of(&Bytes::from_static(b"{\"x\":1}")), None);
        assert_eq!(offset_of(b"{\"x\":1}"), None);
        assert_eq!(offset_of(b"{\"offset\":}"), None);
    }

    #[test]
    fn previous_markers_are_told_from_frames() {
        assert_eq!(previous_of(&previous_marker(41)), Some(41));
        assert_eq!(previous_of(b"{\"op\":\"message\"}"), None);
        assert_eq!(previous_of(b""), None);
    }

    #[test]
    fn live_ts_is_read_from_the_end() {
        // `data` holding a "ts" of its own does not fool it.
        let data = RawValue::from_string(r#"{"ts":5}"#.into()).unwrap();
        let live = Head::new("a", "e", &data, 1234567, false).with_offset(9);
        assert_eq!(live_ts_of(&live), Some(1234567));
        let replayed = Head::new("a", "e", &data, 1234567, true).with_offset(9);
        assert_eq!(live_ts_of(&replayed), None);
        assert_eq!(live_ts_of(b"{\"x\":1}"), None);
        assert_eq!(live_ts_of(br#"{"x":1,"offset":3}"#), None);
    }
}
