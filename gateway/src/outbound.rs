//! A connection's outbound queue, shared between the fan-out (producers) and the connection's
//! own task (the one consumer).
//!
//! Why not a channel: the consumer wants *everything* queued at once so it can write many frames
//! with one syscall, and an idle connection should cost no buffer at all. A mutex-guarded deque
//! that the consumer swaps out gives both, and the byte count makes the slow-consumer limit
//! about memory, not just message count.
//!
//! Why the fan-out may also write to the socket itself ([`Outbound::push_direct`]): at a few
//! messages per second per connection, nothing ever waits in the queue to be batched, and waking
//! the connection's task (often on another worker thread, which must be unparked) costs about
//! as much as the write. A forwarder that finds the queue empty and the task not writing sends
//! the frame at once instead; ordering holds because both sides decide under the queue's lock.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpStream;
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
    /// The connection's task holds frames it took and has not finished writing (or is closing):
    /// nobody else may write to the socket until it says it is done ([`Outbound::written`]).
    writing: bool,
    /// The first frame is the rest of one [`Outbound::push_direct`] wrote in part: it must be
    /// sent whatever happens, or the next frame (a close frame included) would land inside it.
    partial: bool,
    /// The socket, from [`Outbound::attach`] to [`Outbound::detach`]: what
    /// [`Outbound::push_direct`] writes to.
    socket: Option<Arc<TcpStream>>,
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

    /// Lets [`Outbound::push_direct`] write to `socket`, the connection's.
    pub fn attach(&self, socket: Arc<TcpStream>) {
        self.queue.lock().expect("queue poisoned").socket = Some(socket);
    }

    /// The connection ended: whoever still holds this queue (a late reply, say) must not keep
    /// its socket open.
    pub fn detach(&self) {
        self.queue.lock().expect("queue poisoned").socket = None;
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

    /// Queues `frames` as one piece, in order: they count once against the frame limit and
    /// with all their bytes against the byte limit. For what a subscribe sends at once (the
    /// messages a recovery read, those published meanwhile, the `ack`): counted frame by frame,
    /// a client that missed more messages than the frame limit was closed by its own recovery,
    /// and the next reconnect had still more to recover. The bytes are what the limit is for.
    pub fn push_all(&self, frames: Vec<Bytes>) {
        match frames.len() {
            0 => {}
            // Alone (a subscribe's plain ack): as it is, without a copy.
            1 => self.push(frames.into_iter().next().expect("one frame")),
            _ => self.push(frames.concat().into()),
        }
    }

    /// Like [`Outbound::push`], for a frame delivered within trace `trace` (`None`: untraced).
    pub fn push_traced(&self, frame: Bytes, trace: Option<TraceParent>) {
        let q = self.queue.lock().expect("queue poisoned");
        if q.closed {
            return;
        }
        self.enqueue(q, frame, trace);
    }

    /// Like [`Outbound::push`], but when nothing of this connection waits to be written and its
    /// task is not writing, writes `frame` to the socket from the calling task; what the socket
    /// does not take at once is queued as usual. For the fan-out, at rates where frames would
    /// not meet in the queue anyway.
    pub fn push_direct(&self, frame: Bytes) {
        self.write_or_queue(self.queue.lock().expect("queue poisoned"), frame)
    }

    /// [`Outbound::push_direct`] unless someone holds the queue right now (another forwarder
    /// writing to this socket, or the connection's task): then the frame comes back, for the
    /// caller to push after its other subscribers instead of putting its thread to sleep on
    /// the lock, which is held across a write.
    pub fn try_push_direct(&self, frame: Bytes) -> Result<(), Bytes> {
        match self.queue.try_lock() {
            Ok(q) => {
                self.write_or_queue(q, frame);
                Ok(())
            }
            Err(std::sync::TryLockError::WouldBlock) => Err(frame),
            Err(std::sync::TryLockError::Poisoned(_)) => panic!("queue poisoned"),
        }
    }

    fn write_or_queue(&self, mut q: MutexGuard<'_, Queue>, frame: Bytes) {
        if q.closed {
            return;
        }
        let mut frame = frame;
        if q.frames.is_empty() && !q.writing {
            // Not writable, or an error: queued, and the task's own write meets the error.
            let written = q.socket.as_ref().and_then(|s| s.try_write(&frame).ok());
            if let Some(n) = written {
                if n == frame.len() {
                    return;
                }
                frame = frame.slice(n..);
                q.partial = true;
            }
        }
        self.enqueue(q, frame, None);
    }

    fn enqueue(&self, mut q: MutexGuard<'_, Queue>, frame: Bytes, trace: Option<TraceParent>) {
        if q.frames.len() >= self.max_frames || q.bytes + frame.len() > self.max_bytes {
            q.closed = true;
            // A frame partly written already stays, to be finished before the close frame.
            let keep = usize::from(q.partial);
            q.frames.truncate(keep);
            q.bytes = q.frames.iter().map(Bytes::len).sum();
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
    /// trace context of the latest traced one among them. Until [`Outbound::written`], only the
    /// caller writes to the socket.
    pub fn take(&self, into: &mut VecDeque<Bytes>) -> Option<TraceParent> {
        let mut q = self.queue.lock().expect("queue poisoned");
        std::mem::swap(&mut q.frames, into);
        q.bytes = 0;
        q.writing = true;
        q.partial = false;
        q.trace.take()
    }

    /// What still goes out before the close frame, appended to `batch` (what the connection's
    /// task took and has not written, the first frame possibly cut short). A slow consumer gets
    /// only the frame it is in the middle of, if any: the unfinished one in `batch`, else the
    /// rest of one [`Outbound::push_direct`] wrote in part; anyone else everything queued.
    pub fn take_before_close(&self, batch: &mut VecDeque<Bytes>, slow_consumer: bool) {
        if slow_consumer {
            batch.truncate(1);
            if batch.is_empty() {
                self.take(batch);
            }
        } else {
            let mut queued = VecDeque::new();
            self.take(&mut queued);
            batch.extend(queued);
        }
    }

    /// Everything [`Outbound::take`] gave has been written: [`Outbound::push_direct`] may write
    /// again.
    pub fn written(&self) {
        self.queue.lock().expect("queue poisoned").writing = false;
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
    fn pieces_count_once_against_frames_and_whole_against_bytes() {
        let frames = |n: usize| {
            (0..n)
                .map(|_| Bytes::from_static(b"ab"))
                .collect::<Vec<_>>()
        };
        let out = Outbound::new(1, 2, 100, 0);
        out.push_all(frames(10));
        out.push(Bytes::from_static(b"c"));
        assert_eq!(
            out.close_requested(),
            None,
            "two frames: the piece and one more"
        );
        let mut taken = VecDeque::new();
        out.take(&mut taken);
        assert_eq!(
            taken,
            [Bytes::from(b"ab".repeat(10)), Bytes::from_static(b"c")]
        );
        out.written();

        let out = Outbound::new(1, 2, 100, 0);
        out.push_all(frames(51));
        assert_eq!(
            out.close_requested(),
            Some(CloseCode::SLOW_CONSUMER),
            "102 bytes"
        );
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

    /// A connected pair over loopback: the server side, attached to `out`, and the client's.
    async fn attached(out: &Outbound) -> tokio::net::TcpStream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let server = accepted.unwrap().0;
        // Registered writable before the first direct write, as a connection is by its handshake.
        server.writable().await.unwrap();
        out.attach(Arc::new(server));
        client.unwrap()
    }

    async fn read_exactly(client: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0; n];
        client.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_direct_frame_goes_straight_to_the_socket_when_nothing_waits() {
        let out = Outbound::new(1, 100, 1 << 20, 0);
        let mut client = attached(&out).await;
        out.push_direct(Bytes::from_static(b"one"));
        out.push_direct(Bytes::from_static(b"two"));
        assert_eq!(read_exactly(&mut client, 6).await, b"onetwo");
        let mut taken = VecDeque::new();
        out.take(&mut taken);
        assert!(taken.is_empty(), "nothing was queued: {taken:?}");
        out.written();
        // Once the connection has ended, its socket is not written to (nor kept open).
        out.detach();
        out.push_direct(Bytes::from_static(b"late"));
        out.take(&mut taken);
        assert_eq!(taken, [&b"late"[..]]);
    }

    #[tokio::test]
    async fn a_direct_frame_waits_behind_the_task_and_the_queue() {
        let out = Outbound::new(1, 100, 1 << 20, 0);
        let mut client = attached(&out).await;
        out.push(Bytes::from_static(b"queued"));
        // Something waits in the queue: the next frame goes behind it.
        out.push_direct(Bytes::from_static(b"behind"));
        let mut taken = VecDeque::new();
        out.take(&mut taken);
        assert_eq!(taken, [&b"queued"[..], &b"behind"[..]]);
        // The task took frames and has not written them: still queued, not written.
        out.push_direct(Bytes::from_static(b"later"));
        let mut more = VecDeque::new();
        out.take(&mut more);
        assert_eq!(more, [&b"later"[..]]);
        out.written();
        out.push_direct(Bytes::from_static(b"now"));
        assert_eq!(read_exactly(&mut client, 3).await, b"now");
    }

    #[tokio::test]
    async fn a_frame_written_in_part_is_finished_even_by_a_slow_consumer() {
        // The client reads nothing: a frame larger than both socket buffers is written in part.
        let big = Bytes::from(vec![7u8; 16 << 20]);
        let out = Outbound::new(1, 3, 32 << 20, 0);
        let _client = attached(&out).await;
        out.push_direct(big.clone());
        let mut rest = VecDeque::new();
        out.take(&mut rest);
        assert_eq!(rest.len(), 1);
        let sent = big.len() - rest[0].len();
        assert!(
            sent > 0 && sent < big.len(),
            "{sent} of {} written",
            big.len()
        );
        assert_eq!(rest[0], big.slice(sent..));

        // Again, then overflow the queue: the closed queue keeps only the rest of that frame.
        let out = Outbound::new(2, 3, 32 << 20, 0);
        let _client = attached(&out).await;
        out.push_direct(big.clone());
        for _ in 0..3 {
            out.push(Bytes::from_static(b"x"));
        }
        assert_eq!(out.close_requested(), Some(CloseCode::SLOW_CONSUMER));
        let mut kept = VecDeque::new();
        out.take(&mut kept);
        assert_eq!(kept.len(), 1, "only the partial frame is kept");
        assert!(kept[0].len() < big.len() && big.ends_with(&kept[0]));
    }

    #[tokio::test]
    async fn a_busy_queue_hands_the_frame_back_instead_of_waiting() {
        let out = Outbound::new(1, 100, 1 << 20, 0);
        let mut client = attached(&out).await;
        {
            // Held as by another forwarder in the middle of its write.
            let _held = out.queue.lock().unwrap();
            let back = out.try_push_direct(Bytes::from_static(b"busy"));
            assert_eq!(back, Err(Bytes::from_static(b"busy")));
        }
        out.try_push_direct(Bytes::from_static(b"free")).unwrap();
        assert_eq!(read_exactly(&mut client, 4).await, b"free");
        let mut taken = VecDeque::new();
        out.take(&mut taken);
        assert!(
            taken.is_empty(),
            "the refused frame was not queued: {taken:?}"
        );
    }
}
