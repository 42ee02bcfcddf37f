//! A connection's outbound queue, shared between the fan-out (producers) and the connection's
//! own task (the one consumer).
//!
//! Why not a channel: the consumer wants *everything* queued at once so it can write many frames
//! with one syscall, and an idle connection should cost no buffer at all. A mutex-guarded deque
//! that the consumer swaps out gives both, and the byte count makes the slow-consumer limit
//! about memory, not just message count.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;
use waas_core::trace::TraceParent;
use waas_protocol::CloseCode;

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// Set once the connection is closing; later pushes are dropped.
    closed: bool,
    /// The trace context of the latest traced frame queued since the last `take`: the socket
    /// write that sends it is a span under it (one span per write, which may send many frames).
    trace: Option<TraceParent>,
}

/// The part of a connection other tasks may touch.
pub struct Outbound {
    pub id: u64,
    queue: Mutex<Queue>,
    /// Wakes the connection task when the queue goes from empty to non-empty.
    ready: Notify,
    /// Wakes the connection task to close, even in the middle of a blocked write.
    kill: Notify,
    close_code: AtomicU16,
    max_frames: usize,
    max_bytes: usize,
    /// Milliseconds since the gateway's clock origin when the client last sent anything.
    pub last_seen_ms: AtomicU64,
    /// `Some(socket id)` for a connection of the Pusher front (`crate::pusher`): the fan-out
    /// queues Pusher frames on it instead of native ones.
    pub pusher: Option<Box<str>>,
}

impl Outbound {
    pub fn new(id: u64, max_frames: usize, max_bytes: usize, now_ms: u64) -> Self {
        Outbound {
            id,
            queue: Mutex::default(),
            ready: Notify::new(),
            kill: Notify::new(),
            close_code: AtomicU16::new(0),
            max_frames,
            max_bytes,
            last_seen_ms: AtomicU64::new(now_ms),
            pusher: None,
        }
    }

    /// The queue of a Pusher-front connection with socket id `socket_id`.
    pub fn pusher(
        id: u64,
        max_frames: usize,
        max_bytes: usize,
        now_ms: u64,
        socket_id: String,
    ) -> Self {
        Outbound {
            pusher: Some(socket_id.into_boxed_str()),
            ..Self::new(id, max_frames, max_bytes, now_ms)
        }
    }

    /// Queues a frame. A connection whose queue overflows is closed as a slow consumer: it
    /// could not keep up, and growing its queue further would let one client eat the node.
    #[inline]
    pub fn push(&self, frame: Bytes) {
        self.push_traced(frame, None)
    }

    /// Like [`Outbound::push`], for a frame delivered within trace `trace` (`None`: untraced).
    pub fn push_traced(&self, frame: Bytes, trace: Option<TraceParent>) {
        let mut q = self.queue.lock().expect("queue poisoned");
        if q.closed {
            return;
        }
        if q.frames.len() >= self.max_frames || q.bytes + frame.len() > self.max_bytes {
            q.closed = true;
            q.frames = VecDeque::new();
            q.bytes = 0;
            drop(q);
            self.close(CloseCode::SLOW_CONSUMER);
            waas_core::metrics::METRICS.slow_consumers.inc();
            return;
        }
        let was_empty = q.frames.is_empty();
        q.bytes += frame.len();
        q.frames.push_back(frame);
        if trace.is_some() {
            q.trace = trace;
        }
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// Moves every queued frame into `into` (which the caller keeps and reuses); returns the
    /// trace context of the latest traced one among them.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Option<TraceParent> {
        let mut q = self.queue.lock().expect("queue poisoned");
        std::mem::swap(&mut q.frames, into);
        q.bytes = 0;
        q.trace.take()
    }

    /// Asks the connection to close with `code`; the first request wins.
    pub fn close(&self, code: CloseCode) {
        if self
            .close_code
            .compare_exchange(0, code.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.kill.notify_one();
        }
    }

    pub fn close_requested(&self) -> Option<CloseCode> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            c => Some(CloseCode(c)),
        }
    }

    pub async fn ready(&self) {
        self.ready.notified().await
    }

    pub async fn killed(&self) {
        self.kill.notified().await
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_marks_slow_consumer_and_drops_queue() {
        let out = Outbound::new(1, 2, 1000, 0);
        out.push(Bytes::from_static(b"a"));
        out.push(Bytes::from_static(b"b"));
        assert_eq!(out.close_requested(), None);
        out.push(Bytes::from_static(b"c"));
        assert_eq!(out.close_requested(), Some(CloseCode::SLOW_CONSUMER));
        let mut taken = VecDeque::new();
        out.take(&mut taken);
        assert!(taken.is_empty());
    }

    #[test]
    fn byte_limit_counts() {
        let out = Outbound::new(1, 100, 4, 0);
        out.push(Bytes::from_static(b"abc"));
        out.push(Bytes::from_static(b"de"));
        assert_eq!(out.close_requested(), Some(CloseCode::SLOW_CONSUMER));
    }

    #[test]
    fn first_close_wins() {
        let out = Outbound::new(1, 1, 1, 0);
        out.close(CloseCode::GOING_AWAY);
        out.close(CloseCode::SLOW_CONSUMER);
        assert_eq!(out.close_requested(), Some(CloseCode::GOING_AWAY));
    }
}
