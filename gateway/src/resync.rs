//! Catching a channel up after the bus came back ([`waas_core::bus::Bus::reconnects`]).
//!
//! While a gateway is cut off from NATS, other gateways may get back first and accept
//! publishes; the messages they send before this gateway's subscriptions are in place again
//! never reach it live. So each forwarder of the [`crate::hub`] remembers the offset of the
//! last message it passed on ([`Tracker`], one atomic store per message), and checks the bus's
//! connection count ([`waas_core::bus::Reconnects`], one atomic load per message) before passing
//! one on: the first message that came over a new connection, or the wake-up of a quiet
//! channel, makes it read the channel's history from there and pass on what it missed, before
//! anything newer (the live messages wait in the bus subscription meanwhile). Where history
//! cannot say what was missed — the channel keeps no history, history no longer reaches back,
//! the epoch changed, or history cannot be read within `resync_timeout_ms` — subscribers get a
//! `gap` frame instead (`docs/history.md`, "After the bus comes back").
//!
//! The history is read over the same NATS connection, after the client has sent its
//! subscriptions again (async-nats counts a connection, then queues the subscriptions, and only
//! then takes new requests): whatever JetStream stored before the subscription was in place is
//! in what is read, whatever after arrives live, and offsets tell the overlap apart.

mod cuts;

pub use cuts::{CutWatch, Cuts};

use crate::wsframe;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use waas_core::history::{offset_of, History, Policy};
use waas_protocol::history::Since;
use waas_protocol::ServerFrame;

/// Longest pause between two attempts to read history after a reconnect (JetStream may need a
/// moment after NATS restarts).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a channel's forwarder knows about where its subscribers are.
#[derive(Default)]
pub struct Tracker {
    /// Offset of the last message passed on (or of the position the first subscriber joined at).
    last: AtomicU64,
    /// Learnt when a subscriber joins: what history to read, and how to name the channel.
    known: Mutex<Option<Known>>,
}

#[derive(Clone)]
struct Known {
    channel: String,
    policy: Policy,
    epoch: String,
}

impl Tracker {
    /// Offset of the last message passed on (or where the first subscriber joined).
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Relaxed)
    }

    /// Called for every message the forwarder passes on: a relaxed store, nearly free.
    pub fn delivered(&self, offset: u64) {
        self.last.store(offset, Ordering::Relaxed);
    }

    /// A subscriber joined `channel` at `offset` of `epoch`. `first`: it is the channel's only
    /// subscriber, so its position is the forwarder's.
    pub fn joined(&self, channel: &str, policy: Policy, epoch: &str, offset: u64, first: bool) {
        if first {
            self.last.fetch_max(offset, Ordering::Relaxed);
        }
        *self.known.lock().expect("tracker poisoned") = Some(Known {
            channel: channel.to_owned(),
            policy,
            epoch: epoch.to_owned(),
        });
    }
}

/// How resyncs run; from [`crate::Limits`].
#[derive(Clone)]
pub struct Settings {
    /// Resyncs running at once on this gateway, so that a reconnect with many live channels
    /// does not flood JetStream.
    pub permits: Arc<Semaphore>,
    /// How long one channel keeps trying to read its history before its subscribers get a gap.
    pub timeout: Duration,
    /// Cuts this gateway found, for every forwarder: see [`Cuts`].
    pub cuts: Cuts,
}

/// Whether history holds a message of `subject` past the tracker's position: one cheap read
/// (JetStream's direct get of the channel's last message), so that every live channel can ask
/// after a cut. `false` when history cannot say or nobody has joined.
pub async fn behind(
    history: &dyn History,
    subject: &str,
    tracker: &Tracker,
    settings: &Settings,
) -> bool {
    let Some(policy) = tracker
        .known
        .lock()
        .expect("tracker poisoned")
        .as_ref()
        .map(|k| k.policy)
    else {
        return false;
    };
    let _permit = settings.permits.acquire().await;
    match tokio::time::timeout(settings.timeout, history.last_offset(policy, subject)).await {
        Ok(Ok(Some(last))) => last > tracker.last(),
        Ok(Ok(None)) => false,
        Ok(Err(e)) => {
            tracing::debug!(subject, error = %e, "after a cut: cannot ask history for the last offset");
            false
        }
        Err(_) => false,
    }
}

impl Default for Settings {
    fn default() -> Self {
        let limits = crate::Limits::default();
        Settings::new(&limits)
    }
}

impl Settings {
    pub fn new(limits: &crate::Limits) -> Self {
        Settings {
            permits: Arc::new(Semaphore::new(limits.resync_concurrency.max(1))),
            timeout: Duration::from_millis(limits.resync_timeout_ms),
            cuts: Cuts::default(),
        }
    }
}

/// What a resync found: frames to pass on, in order, and the offset up to which live messages
/// are known to be among them (0: none to skip).
#[derive(Debug, Default)]
pub struct Catchup {
    pub frames: Vec<Bytes>,
    pub skip_upto: u64,
}

fn gap(channel: &str, epoch: &str, offset: u64) -> Bytes {
    waas_core::metrics::METRICS.resync_gaps.inc();
    wsframe::json(&ServerFrame::Gap {
        channel: channel.to_owned(),
        epoch: epoch.to_owned(),
        offset,
    })
}

/// Reads what `subject`'s subscribers missed since the tracker's position.
pub async fn catch_up(
    history: &dyn History,
    subject: &str,
    tracker: &Tracker,
    settings: &Settings,
) -> Catchup {
    let Some(known) = tracker.known.lock().expect("tracker poisoned").clone() else {
        // Nobody has joined yet: the joining subscriber's own recovery covers it.
        return Catchup::default();
    };
    let last = tracker.last.load(Ordering::Relaxed);
    if !known.policy.enabled() {
        // Nothing kept, nothing to compare with: anything may have been missed.
        return Catchup {
            frames: vec![gap(&known.channel, &known.epoch, last)],
            skip_upto: 0,
        };
    }
    let _permit = settings.permits.acquire().await;
    let since = Since {
        offset: last,
        epoch: known.epoch.clone(),
    };
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let mut backoff = Duration::from_millis(20);
    let recovery = loop {
        let attempt = history.recover(known.policy, subject, Some(&since));
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(r)) => break Some(r),
            Ok(Err(e)) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::debug!(subject, error = %e, "resync: history not readable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Ok(Err(e)) => {
                tracing::warn!(subject, error = %e, "resync: history unreadable; telling subscribers of a gap");
                break None;
            }
            Err(_) => break None,
        }
    };
    waas_core::metrics::METRICS.resyncs.inc();
    let Some(recovery) = recovery else {
        return Catchup {
            frames: vec![gap(&known.channel, &known.epoch, last)],
            skip_upto: 0,
        };
    };
    let same_epoch = recovery.epoch == known.epoch;
    let top = recovery
        .messages
        .last()
        .and_then(|m| offset_of(m))
        .unwrap_or(0)
        .max(last);
    let mut frames = Vec::with_capacity(recovery.messages.len() + 1);
    if recovery.recovered != Some(true) {
        let from = if same_epoch { last } else { 0 };
        frames.push(gap(&known.channel, &recovery.epoch, from));
        if !same_epoch {
            tracker.joined(&known.channel, known.policy, &recovery.epoch, 0, false);
            tracker.last.store(0, Ordering::Relaxed);
        }
    }
    if same_epoch {
        frames.extend(recovery.messages.iter().map(|m| wsframe::text(m)));
        waas_core::metrics::METRICS
            .resynced_messages
            .inc_by(recovery.messages.len() as u64);
    }
    Catchup {
        frames,
        skip_upto: if same_epoch { top } else { 0 },
    }
}
