//! Queuing a channel's frames on its local subscribers: once encoded, the same bytes for all.

use crate::outbound::Outbound;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use waas_core::history::offset_of;
use waas_core::trace::TraceParent;

pub(super) type Subscribers = Arc<RwLock<Vec<Sub>>>;

/// A connection subscribing with recovery: live frames are held here, by connection id, while
/// it reads history, then [`super::Hub::join`] hands over the ones history did not cover.
pub(super) type Joining = Arc<Mutex<Vec<(u64, Vec<Bytes>)>>>;

/// A live subscriber, and the offset up to which it already has the channel's messages.
///
/// A subscriber that recovers reads history after its live subscription starts, so the read
/// may hold messages that were stored but had not reached this gateway's forwarder yet (a
/// busy gateway, after a restart, is milliseconds behind). They then arrive after the
/// subscriber joined, and without the floor would reach it twice.
pub(super) struct Sub {
    pub conn: Arc<Outbound>,
    /// Offsets up to this are skipped; 0 once a later one passed (a channel's offsets arrive
    /// in order), so a settled subscriber costs one relaxed load per frame.
    floor: AtomicU64,
}

impl Sub {
    pub fn new(conn: Arc<Outbound>, floor: u64) -> Sub {
        Sub {
            conn,
            floor: AtomicU64::new(floor),
        }
    }

    /// Whether the subscriber already has the frame at `offset` (frames without one, like
    /// presence events, it never has). Only the channel's forwarder calls this.
    fn has(&self, offset: Option<u64>) -> bool {
        let floor = self.floor.load(Ordering::Relaxed);
        if floor == 0 {
            return false;
        }
        match offset {
            Some(o) if o <= floor => true,
            Some(_) => {
                self.floor.store(0, Ordering::Relaxed);
                false
            }
            None => false,
        }
    }
}

/// Who a forwarder queues frames on.
pub(super) struct Fanout {
    pub subscribers: Subscribers,
    pub joining: Joining,
    /// The channel's app's metric handles.
    pub metrics: waas_core::metrics::AppMetrics,
    /// The channel's app's usage counters.
    pub usage: Option<Arc<waas_core::usage::AppCounters>>,
    /// Channels with at most this many subscribers here get their quiet frames written by the
    /// forwarder itself (`limits.direct_write_max_subscribers`).
    pub direct_max: usize,
}

/// One native frame as `conn` takes it, converted when it is a Pusher connection (`None`: the
/// frame has no Pusher form, or excludes this socket): for the few frames of a joining
/// connection, not the fan-out (which converts once for all).
pub(super) fn for_conn(conn: &Outbound, frame: Bytes) -> Option<Bytes> {
    match &conn.pusher {
        None => Some(frame),
        Some(socket_id) => crate::pusher::message::convert(&frame)
            .filter(|c| c.exclude.as_deref() != Some(&**socket_id))
            .map(|c| c.frame),
    }
}

impl Fanout {
    /// Writes a quiet frame as [`Fanout::push_live`] does when the channel has few enough
    /// subscribers here for that, with one read of them; returns whether it did (`frame` is
    /// made only then).
    pub fn push_quiet_if_small(&self, frame: impl FnOnce() -> Bytes) -> bool {
        let subs = self.subscribers.read().expect("subscribers poisoned");
        if self.direct_max == 0 || subs.len() > self.direct_max {
            return false;
        }
        self.deliver_to(&subs, &frame(), None, true);
        true
    }

    pub fn push(&self, frame: &Bytes) {
        self.deliver(frame, None, false)
    }

    /// Queues `frame` on every subscriber; `trace` (when tracing) becomes the parent of the
    /// socket writes that send it.
    pub fn push_traced(&self, frame: &Bytes, trace: Option<TraceParent>) {
        self.deliver(frame, trace, false)
    }

    /// A live frame, `quiet` when no other message of the channel waits behind it. A quiet
    /// frame of a small channel is written to each subscriber's socket right here when its
    /// queue is empty ([`Outbound::push_direct`]): one write, no wake-up of its task. A busy
    /// channel's frames are queued, for the tasks to send many per write; a large channel's
    /// too, so that its writes spread over the worker threads instead of all falling on this
    /// one.
    pub fn push_live(&self, frame: &Bytes, quiet: bool) {
        self.deliver(frame, None, quiet)
    }

    fn deliver(&self, frame: &Bytes, trace: Option<TraceParent>, quiet: bool) {
        let subs = self.subscribers.read().expect("subscribers poisoned");
        self.deliver_to(&subs, frame, trace, quiet)
    }

    /// [`Fanout::deliver`] to `subs`, the subscribers as the caller read them.
    fn deliver_to(&self, subs: &[Sub], frame: &Bytes, trace: Option<TraceParent>, quiet: bool) {
        let direct = quiet && subs.len() <= self.direct_max;
        // Subscribers whose queue was busy when their turn came (direct writes only): pushed
        // after the others, by when the holder is most likely done.
        let mut busy: Vec<(Arc<Outbound>, Bytes)> = Vec::new();
        let mut send = |conn: &Arc<Outbound>, frame: Bytes| match direct {
            true => {
                if let Err(frame) = conn.try_push_direct(frame) {
                    busy.push((Arc::clone(conn), frame));
                }
            }
            false => conn.push_traced(frame, trace),
        };
        // The Pusher form of the frame, made on the first Pusher subscriber and shared by all
        // (`None` inside: the frame has no Pusher form).
        let mut pusher: Option<Option<crate::pusher::message::Converted>> = None;
        let offset = offset_of(frame);
        let mut skipped = 0;
        for sub in subs.iter() {
            if sub.has(offset) {
                skipped += 1;
                continue;
            }
            let conn = &sub.conn;
            match &conn.pusher {
                None => send(conn, frame.clone()),
                Some(socket_id) => {
                    let converted =
                        pusher.get_or_insert_with(|| crate::pusher::message::convert(frame));
                    if let Some(c) = converted {
                        if c.exclude.as_deref() != Some(&**socket_id) {
                            send(conn, c.frame.clone());
                        }
                    }
                }
            }
        }
        for (conn, frame) in busy {
            conn.push_direct(frame);
        }
        let delivered = (subs.len() - skipped) as u64;
        waas_core::metrics::METRICS.delivered.inc_by(delivered);
        self.metrics.delivered.inc_by(delivered);
        if let Some(usage) = &self.usage {
            usage.delivered(delivered);
        }
        let mut held = self.joining.lock().expect("joining poisoned");
        for (_, frames) in held.iter_mut() {
            frames.push(frame.clone());
        }
    }
}
