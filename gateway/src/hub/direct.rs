//! A channel's live messages passed on by whoever has them first: the publisher, in its call to
//! the bus, when the bus is in this process ([`waas_core::bus::inline`]); else the channel's
//! forwarder, from the bus subscription.
//!
//! Why: with many small channels, each publish woke its channel's forwarder, and a read that
//! brought several publishes made the runtime unpark the other worker thread to run the second
//! forwarder. Passing the message on in the publisher's call skips the wake-up and keeps the
//! other thread asleep. A large channel's messages still go through the forwarder (the
//! publisher would otherwise queue thousands of frames before its own answer).

use super::fanout::Fanout;
use crate::resync::Tracker;
use crate::wsframe;
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use waas_core::bus::inline::Inline;
use waas_core::bus::BusMessage;
use waas_core::history::{offset_of, previous_of};
use waas_core::trace::TraceParent;

pub(super) struct Direct {
    pub fanout: Fanout,
    pub tracker: Arc<Tracker>,
    /// Held while a message is passed on, by a publisher or by the forwarder: one at a time.
    turn: Mutex<()>,
    /// Messages given back to the bus that the forwarder has not handled yet, plus one while
    /// it catches up from history: publishers pass nothing on while any is, so nothing
    /// overtakes them.
    queued: AtomicUsize,
}

impl Direct {
    pub fn new(fanout: Fanout, tracker: Arc<Tracker>) -> Self {
        Direct {
            fanout,
            tracker,
            turn: Mutex::new(()),
            queued: AtomicUsize::new(0),
        }
    }

    /// The forwarder's turn, for a message that came out of the bus subscription.
    pub fn turn(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().expect("turn poisoned")
    }

    /// The forwarder handled a message that came out of the subscription (under its
    /// [`Direct::turn`], so a publisher that finds the count at zero comes after it). Messages
    /// of a bus that never offers any were never counted: the count stays at zero.
    pub fn handled(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Until [`Direct::release`], publishers give every message back; returns once none is
    /// passing one on.
    pub fn hold(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        drop(self.turn());
    }

    pub fn release(&self) {
        self.handled();
    }

    /// Passes on one untraced live message; `quiet`: no other message of the channel waits
    /// behind it ([`Fanout::push_live`]).
    pub fn pass(&self, payload: &Bytes, quiet: bool) {
        self.delivered(payload);
        self.fanout.push_live(&wsframe::text(payload), quiet);
        self.observe(payload);
    }

    /// Passes on one traced live message (only when this process traces): a span under the
    /// publisher's, and the socket writes under this one.
    pub fn pass_traced(&self, payload: &Bytes, parent: TraceParent, subject: &str) {
        self.delivered(payload);
        let span = waas_core::span!("hub.deliver", subject = subject);
        parent.adopt(&span);
        let _entered = span.enter();
        self.fanout
            .push_traced(&wsframe::text(payload), TraceParent::of(&span));
        self.observe(payload);
    }

    fn delivered(&self, payload: &Bytes) {
        if let Some(offset) = offset_of(payload) {
            self.tracker.delivered(offset);
        }
    }

    /// Publish to fan-out, by the publishing gateway's clock (ms): once per message on this
    /// gateway, not per subscriber.
    fn observe(&self, payload: &Bytes) {
        if let Some(ts) = waas_core::history::live_ts_of(payload) {
            let ms = waas_core::time::now_ms().saturating_sub(ts);
            self.fanout
                .metrics
                .delivery_latency
                .observe(ms as f64 / 1000.0);
        }
    }
}

impl Inline for Direct {
    /// Takes the message when nothing of the channel waits for the forwarder and the channel
    /// is small here. Traced messages and messages with a predecessor marker go to the
    /// forwarder, which knows what to do with them.
    fn offer(&self, message: BusMessage) -> Result<(), BusMessage> {
        let plain = message.trace.is_none() && previous_of(&message.payload).is_none();
        if plain && self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(_turn) = self.turn.try_lock() {
                // Nothing waits behind it: the publisher's call is the only one here.
                let payload = &message.payload;
                if self.queued.load(Ordering::Acquire) == 0
                    && self.fanout.push_quiet_if_small(|| wsframe::text(payload))
                {
                    self.delivered(payload);
                    self.observe(payload);
                    return Ok(());
                }
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        Err(message)
    }

    fn lost(&self) {
        self.handled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::fanout::Sub;
    use crate::outbound::Outbound;
    use std::collections::VecDeque;
    use std::sync::RwLock;

    fn direct(conn: &Arc<Outbound>) -> Direct {
        let fanout = Fanout {
            subscribers: Arc::new(RwLock::new(vec![Sub::new(Arc::clone(conn), 0)])),
            joining: Arc::default(),
            metrics: waas_core::metrics::METRICS.app("direct-test"),
            usage: None,
            direct_max: 4,
        };
        Direct::new(fanout, Arc::default())
    }

    fn message(offset: u64) -> BusMessage {
        let data = serde_json::value::RawValue::from_string("0".into()).unwrap();
        BusMessage {
            payload: waas_core::history::Head::new("x", "e", &data, 1, false).with_offset(offset),
            trace: None,
        }
    }

    fn queued(conn: &Outbound) -> Vec<Option<u64>> {
        let mut q = VecDeque::new();
        conn.take(&mut q);
        conn.written();
        q.iter().map(|f| offset_of(f)).collect()
    }

    /// Once a message was given back, later ones are too until the forwarder handled it: a
    /// publisher never overtakes a message waiting in the subscription.
    #[test]
    fn nothing_overtakes_a_given_back_message() {
        let conn = Arc::new(Outbound::new(1, 100, 1 << 20, 0));
        let d = direct(&conn);
        d.offer(message(1)).expect("taken");
        assert_eq!(queued(&conn), [Some(1)]);
        assert_eq!(d.tracker.last(), 1);

        d.hold();
        let two = d.offer(message(2)).expect_err("held: given back");
        d.release();
        let three = d.offer(message(3)).expect_err("2 still waits");
        assert!(queued(&conn).is_empty());

        // The forwarder passes on what came out of the subscription, in order.
        for m in [two, three] {
            let _turn = d.turn();
            d.pass(&m.payload, true);
            d.handled();
        }
        d.offer(message(4)).expect("nothing waits: taken");
        assert_eq!(queued(&conn), [Some(2), Some(3), Some(4)]);
    }

    #[test]
    fn a_lost_message_does_not_stop_later_ones_being_taken() {
        let conn = Arc::new(Outbound::new(1, 100, 1 << 20, 0));
        let d = direct(&conn);
        let _turn = d.turn();
        d.offer(message(1))
            .expect_err("the forwarder's turn: given back");
        drop(_turn);
        d.lost();
        d.offer(message(2)).expect("taken");
        assert_eq!(queued(&conn), [Some(2)]);
    }

    /// A large channel's frames go through the forwarder, which queues them for the
    /// subscribers' own tasks; so do traced ones, whose spans the forwarder makes.
    #[test]
    fn large_channels_and_traced_messages_are_given_back() {
        let conn = Arc::new(Outbound::new(1, 100, 1 << 20, 0));
        let d = direct(&conn);
        for id in 2..=4 {
            let other = Arc::new(Outbound::new(id, 100, 1 << 20, 0));
            d.fanout
                .subscribers
                .write()
                .unwrap()
                .push(Sub::new(other, 0));
        }
        d.offer(message(1)).expect("4 subscribers: taken");
        let other = Arc::new(Outbound::new(5, 100, 1 << 20, 0));
        d.fanout
            .subscribers
            .write()
            .unwrap()
            .push(Sub::new(other, 0));
        let back = d.offer(message(2)).expect_err("5 subscribers: given back");
        d.handled();
        d.fanout.subscribers.write().unwrap().pop();
        let mut traced = message(3);
        traced.trace = Some(
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap(),
        );
        d.offer(traced).expect_err("traced: given back");
        assert_eq!(back.payload, message(2).payload);
        assert_eq!(queued(&conn), [Some(1)]);
    }
}
