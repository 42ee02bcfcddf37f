//! Reading a channel's stored messages without a consumer: JetStream's *direct get*, answered
//! by the servers that hold the stream (the streams are made with `allow_direct`), not by the
//! meta leader.
//!
//! Making a consumer — how history is read in pages ([`JetStreamHistory::read_from`]) — is a
//! JetStream API call that only the meta leader answers. When two regions were cut apart, their
//! meta group lost its majority and elects a leader again after the link heals (5–14 s here),
//! while the stream itself is readable the moment the link is back: a gateway catching its
//! channels up then reads message by message here instead of reporting a gap
//! (docs/regions.md). One request per message (a round trip between regions each), so for long
//! reads this is the fallback; it is also the way to ask for a channel's newest offset alone,
//! and how a recovery reads the few messages a client typically missed ([`DIRECT_FIRST`]).
//!
//! History streams have one replica (no `num_replicas` in their config), so every direct get is
//! answered by the server that stores the stream and sees every message stored before it.

use super::{unavailable, JetStreamHistory};
use crate::history::{Head, HistoryError};
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use bytes::Bytes;

/// Messages a recovery reads by direct gets before it reads the rest through a consumer. A
/// client back after a short outage missed a message or two per channel, if any: one direct
/// get each (plus one that finds nothing more) is a fraction of making, reading and deleting
/// a consumer, which also goes through the meta leader. When a thousand clients resubscribe at
/// once, that difference is the reconnect storm's catch-up time.
const DIRECT_FIRST: usize = 8;

impl JetStreamHistory {
    /// What [`JetStreamHistory::read_from`] reads, the first [`DIRECT_FIRST`] messages by direct
    /// gets and a consumer only when there are more.
    pub(super) async fn read_recent(
        &self,
        stream: &stream::Stream,
        filter: &str,
        start: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, HistoryError> {
        let direct = max.min(DIRECT_FIRST);
        let mut out = self.read_direct(stream, filter, start, direct).await?;
        // Fewer than asked: the channel has nothing more (or `max` is reached).
        if out.len() < direct || out.len() == max {
            return Ok(out);
        }
        let from = out.last().map_or(start, |(seq, _)| seq + 1);
        let rest = self
            .read_from(stream, filter, from, max - out.len())
            .await?;
        out.extend(rest);
        Ok(out)
    }

    /// The offset of the newest message stored on `filter` (0: none).
    pub(super) async fn last_direct(
        &self,
        stream: &stream::Stream,
        filter: &str,
    ) -> Result<u64, HistoryError> {
        match stream.direct_get_last_for_subject(filter).await {
            Ok(message) => Ok(message.sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(0),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stored messages of `filter` from `start` on (oldest first), at most `max`, as complete
    /// frames with their sequence: what [`JetStreamHistory::read_from`] reads, one direct get
    /// per message.
    pub(super) async fn read_direct(
        &self,
        stream: &stream::Stream,
        filter: &str,
        start: u64,
        max: usize,
    ) -> Result<Vec<(u64, Bytes)>, HistoryError> {
        let mut out = Vec::new();
        let mut next = start.max(1);
        while out.len() < max {
            match stream.direct_get_next_for_subject(filter, Some(next)).await {
                Ok(message) => {
                    let seq = message.sequence;
                    out.push((seq, Head(message.payload).with_offset(seq)));
                    next = seq + 1;
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(out)
    }
}
