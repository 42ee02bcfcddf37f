//! Reading a channel's stored messages without a consumer: JetStream's *direct get*, answered
//! by the servers that hold the stream (the streams are made with `allow_direct`), not by the
//! meta leader.
//!
//! Making a consumer — how history is read in pages ([`super::read::read_from`]) — is a
//! JetStream API call that only the meta leader answers. When two regions were cut apart, their
//! meta group lost its majority and elects a leader again after the link heals (5–14 s here),
//! while the stream itself is readable the moment the link is back: a gateway catching its
//! channels up then reads message by message here instead of reporting a gap
//! (docs/regions.md). One request per message (a round trip between regions each), so for long
//! reads this is the fallback; it is also the way to ask for a channel's newest offset alone,
//! and how a recovery reads the few messages a client typically missed ([`super::read::recent`]).
//!
//! History streams have one replica (no `num_replicas` in their config), so every direct get is
//! answered by the server that stores the stream and sees every message stored before it.

use super::unavailable;
use crate::history::{Head, HistoryError};
use async_nats::jetstream::stream::{self, DirectGetErrorKind};
use bytes::Bytes;

/// The offset of the newest message stored on `filter` (0: none).
pub(super) async fn last_direct(
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
/// frames with their sequence: what [`super::read::read_from`] reads, one direct get
/// per message.
pub(super) async fn read_direct(
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
