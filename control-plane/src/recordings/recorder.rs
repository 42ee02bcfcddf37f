//! The task behind one active recording: tap the app's messages, keep those on the recorded
//! channels, store them in batches, and only then acknowledge them to the tap. A batch the store
//! refuses is retried, never dropped; a tap that fails is opened again. Stops by itself at the
//! recording's limits.

use super::Recordings;
use crate::store::recordings::{RecordedEvent, Recording};
use futures_util::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use waas_core::history::tap::{TapStream, Tapped};
use waas_protocol::{ChannelName, ChannelPattern, PatternSet};

/// Most events stored in one transaction.
const BATCH: usize = 1000;
/// Wait before retrying a failed store write or tap.
const RETRY: Duration = Duration::from_millis(500);

/// The parts of a `message` frame a recording indexes.
#[derive(serde::Deserialize)]
struct Meta {
    channel: String,
    ts: i64,
    offset: i64,
}

pub(crate) async fn run(recordings: Arc<Recordings>, recording: Recording, tap: Option<TapStream>) {
    let patterns = PatternSet::new(
        recording
            .channels
            .iter()
            .filter_map(|c| ChannelPattern::parse(c).ok())
            .collect(),
    );
    let deadline = recording.max_duration_ms.map(|ms| {
        let end = recording.started_at.saturating_add(ms);
        let left = end.saturating_sub(super::now_ms()).max(0) as u64;
        tokio::time::Instant::now() + Duration::from_millis(left)
    });
    let mut count = recording.event_count;
    // Positions of live-only taps continue after what is stored.
    let mut next_live = count;
    let mut tap = tap;
    loop {
        let mut stream = match tap.take() {
            Some(stream) => stream,
            None => match open(&recordings, &recording).await {
                Some(stream) => stream,
                None => continue,
            },
        };
        loop {
            let first = match deadline {
                Some(deadline) => tokio::select! {
                    item = stream.next() => item,
                    _ = tokio::time::sleep_until(deadline) => {
                        return recordings.finished(&recording, "max_duration").await;
                    }
                },
                None => stream.next().await,
            };
            let Some(first) = first else { break };
            let mut items = vec![first];
            while items.len() < BATCH {
                match stream.next().now_or_never() {
                    Some(Some(item)) => items.push(item),
                    _ => break,
                }
            }
            let mut events = Vec::with_capacity(items.len());
            let mut taken: Vec<Tapped> = Vec::with_capacity(items.len());
            let mut failed = false;
            for item in items {
                let tapped = match item {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(id = recording.id, error = %e, "recording tap failed");
                        failed = true;
                        break;
                    }
                };
                let position = match tapped.position {
                    Some(p) => p as i64,
                    None => {
                        next_live += 1;
                        next_live
                    }
                };
                if let Some(event) = event(&patterns, position, &tapped.frame) {
                    events.push(event);
                }
                taken.push(tapped);
            }
            if let Some(max) = recording.max_events {
                events.truncate(max.saturating_sub(count).max(0) as usize);
            }
            if !events.is_empty() {
                match store(&recordings, &recording.id, events).await {
                    Some(n) => count = n,
                    // Deleted meanwhile: nothing left to record into.
                    None => return,
                }
            }
            for tapped in taken {
                if let Err(e) = tapped.ack().await {
                    // Delivered again later and skipped by position: no harm.
                    tracing::debug!(id = recording.id, error = %e, "could not acknowledge a recorded event");
                }
            }
            if recording.max_events.is_some_and(|max| count >= max) {
                return recordings.finished(&recording, "max_events").await;
            }
            if failed {
                break;
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Opens the recording's tap again (after a restart or a failure); `None` after a failed try.
async fn open(recordings: &Recordings, recording: &Recording) -> Option<TapStream> {
    let opened = async {
        let policy = recordings
            .policy(&recording.app_id)
            .await
            .map_err(|e| e.to_string())?;
        recordings
            .history
            .tap(
                policy,
                &recordings.app_subject(&recording.app_id),
                &recording.id,
            )
            .await
            .map_err(|e| e.to_string())
    };
    match opened.await {
        Ok(stream) => Some(stream),
        Err(e) => {
            tracing::warn!(id = recording.id, error = %e, "cannot open the recording's tap; retrying");
            tokio::time::sleep(RETRY).await;
            None
        }
    }
}

/// The event to store for `frame`, if it is on a recorded channel.
fn event(patterns: &PatternSet, position: i64, frame: &[u8]) -> Option<RecordedEvent> {
    let meta: Meta = serde_json::from_slice(frame).ok()?;
    let channel = ChannelName::parse(&meta.channel).ok()?;
    if !patterns.allows(&channel) {
        return None;
    }
    Some(RecordedEvent {
        position,
        channel: meta.channel,
        ts: meta.ts,
        offset: meta.offset,
        frame: String::from_utf8(frame.to_vec()).ok()?,
    })
}

/// Stores a batch, retrying until the store takes it; returns the recording's event count, or
/// `None` when the recording no longer exists.
async fn store(recordings: &Recordings, id: &str, events: Vec<RecordedEvent>) -> Option<i64> {
    loop {
        match recordings.store.append_events(id, events.clone()).await {
            Ok(count) => {
                crate::metrics::CP_METRICS
                    .recorded_events
                    .inc_by(events.len() as u64);
                return Some(count);
            }
            Err(crate::store::StoreError::NotFound(_)) => return None,
            Err(e) => {
                tracing::warn!(id, error = %e, "cannot store recorded events; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
