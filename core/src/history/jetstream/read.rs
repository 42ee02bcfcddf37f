//! Reading a channel's stored messages through an ephemeral consumer: a few round trips for
//! any number of messages, but each consumer is made (and deleted) by a JetStream API call.
//! Short reads go by direct gets instead ([`direct`]); see [`recent`] for recoveries.

use super::direct;
use super::unavailable;
use crate::history::{Head, HistoryError};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

/// How long a history read waits for JetStream to make its consumer before reading message by
/// message instead: a consumer takes a round trip or two to the meta leader, and none at all
/// while the meta group elects one.
const CONSUMER_CREATE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a fetch from the reader consumer may wait for JetStream's answer. A fetch asks for
/// what is there now (`no_wait`), so the answer takes a round trip; without a bound, an answer
/// lost on the way (a route between regions going down) would hold the read, and every
/// recovering subscriber sharing it, forever.
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

/// How long a fetch waits for its next message (or the status that ends it) before the read
/// ends short and the rest is read by direct gets, each bounded by JetStream's request timeout.
/// The client's own bound is [`FETCH_EXPIRES`] plus 5 s; a fetch from a region that does not
/// hold the stream has been seen to get no answer at all, and 7 s of held live messages then
/// overflowed a recovering subscriber's queue. A healthy answer flows well within this, message
/// after message, however long the read.
const FETCH_STALL: Duration = FETCH_EXPIRES;

/// How long an ephemeral reader consumer survives if its deletion is lost.
const READER_TTL: Duration = Duration::from_secs(10);

/// Messages a recovery reads by direct gets before it reads the rest through a consumer. A
/// client back after a short outage missed a message or two per channel, if any: one direct
/// get each (plus one that finds nothing more) is a fraction of making, reading and deleting
/// a consumer, which also goes through the meta leader. When a thousand clients resubscribe at
/// once, that difference is the reconnect storm's catch-up time.
const DIRECT_FIRST: usize = 8;

/// What [`read_from`] reads, the first [`DIRECT_FIRST`] messages by direct gets and through a
/// consumer only when there are more. Owns its arguments: it runs as a shared read
/// ([`super::fresh`]).
pub(super) async fn recent(
    stream: stream::Stream,
    filter: String,
    start: u64,
    max: usize,
) -> Result<Vec<(u64, Bytes)>, HistoryError> {
    let direct = max.min(DIRECT_FIRST);
    let mut out = direct::read_direct(&stream, &filter, start, direct).await?;
    // Fewer than asked: the channel has nothing more (or `max` is reached).
    if out.len() < direct || out.len() == max {
        return Ok(out);
    }
    let from = out.last().map_or(start, |(seq, _)| seq + 1);
    out.extend(read_from(&stream, &filter, from, max - out.len()).await?);
    Ok(out)
}

/// Stored messages of `filter` from `start` on (oldest first), at most `max`, as complete
/// frames with their sequence. Through an ephemeral consumer, in a few round trips; when no
/// consumer can be made within [`CONSUMER_CREATE_TIMEOUT`] (JetStream's meta group has no
/// leader, as after two regions were cut apart) or the consumer hands over less than it
/// said it had, the rest by direct gets ([`direct`]): what is returned is everything there
/// is or an error, never a silent part.
pub(super) async fn read_from(
    stream: &stream::Stream,
    filter: &str,
    start: u64,
    max: usize,
) -> Result<Vec<(u64, Bytes)>, HistoryError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let deliver_policy = if start <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: start,
        }
    };
    let config = pull::Config {
        filter_subject: filter.to_owned(),
        deliver_policy,
        ack_policy: AckPolicy::None,
        inactive_threshold: READER_TTL,
        memory_storage: true,
        ..Default::default()
    };
    let consumer = match tokio::time::timeout(
        CONSUMER_CREATE_TIMEOUT,
        stream.create_consumer(config),
    )
    .await
    {
        Ok(Ok(consumer)) => consumer,
        Ok(Err(e)) => {
            tracing::debug!(filter, error = %e, "no consumer to read history; reading it directly");
            return direct::read_direct(stream, filter, start, max).await;
        }
        Err(_) => {
            tracing::debug!(
                filter,
                "no consumer to read history in time; reading it directly"
            );
            return direct::read_direct(stream, filter, start, max).await;
        }
    };
    let name = consumer.cached_info().name.clone();
    let wanted = consumer.cached_info().num_pending.min(max as u64) as usize;
    let mut pending = wanted;
    let mut out = Vec::with_capacity(pending);
    while pending > 0 {
        let mut batch = consumer
            .fetch()
            .max_messages(pending)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .map_err(unavailable)?;
        let before = out.len();
        while let Ok(Some(message)) = tokio::time::timeout(FETCH_STALL, batch.next()).await {
            let message = message.map_err(unavailable)?;
            let seq = message.info().map_err(unavailable)?.stream_sequence;
            out.push((seq, Head(message.payload.clone()).with_offset(seq)));
        }
        if out.len() == before {
            break;
        }
        pending = pending.saturating_sub(out.len() - before);
    }
    let stream_ = stream.clone();
    tokio::spawn(async move {
        let _ = stream_.delete_consumer(&name).await;
    });
    if out.len() < wanted {
        // The fetch ended early (a status, no answer within `FETCH_STALL`): the rest one by one.
        let from = out.last().map_or(start, |(seq, _)| seq + 1);
        tracing::debug!(
            filter,
            got = out.len(),
            wanted,
            "history read short; reading the rest directly"
        );
        out.extend(direct::read_direct(stream, filter, from, wanted - out.len()).await?);
    }
    Ok(out)
}
