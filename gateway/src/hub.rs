//! This node's subscriptions: which local connections want which bus subject.
//!
//! The node subscribes to a subject on the bus once, when its first local connection subscribes,
//! and drops that subscription when the last one leaves, so a gateway only receives traffic its
//! clients asked for. One forwarding task per live subject turns each bus message into a
//! WebSocket frame once and queues the same bytes on every subscriber; in one process a small
//! channel's publisher does that itself when nothing waits for the forwarder
//! (`hub/direct.rs`). After the bus reconnects, each forwarder catches its channel up from
//! history before going on ([`crate::resync`]).

mod direct;
mod fanout;
mod forward;

use crate::outbound::Outbound;
use crate::resync::{self, Tracker};
use bytes::Bytes;
use direct::Direct;
use fanout::{Fanout, Joining, Sub, Subscribers};
use forward::{forward, Resync};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};
use tokio::task::JoinHandle;
use waas_core::bus::BusError;
use waas_core::history::{offset_of, History};

const SHARDS: usize = 64;

struct Entry {
    subscribers: Subscribers,
    /// Locked after `subscribers` (read by the forwarder, written by `join`), so a frame is
    /// either held for a joining connection or queued on it once it is live, never neither.
    joining: Joining,
    /// The forwarder's position, for a resync after the bus reconnects.
    tracker: Arc<Tracker>,
    forward: JoinHandle<()>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Ending the task drops its bus subscription, which unsubscribes on the bus.
        self.forward.abort();
    }
}

struct Shard {
    /// Serialises subscribe/unsubscribe of the shard's subjects across the `await` on the
    /// bus, so that two first subscribers cannot both create a bus subscription and an
    /// unsubscribe cannot race a subscribe into a subject with subscribers but no bus route.
    change: tokio::sync::Mutex<()>,
    /// Guards the map only; never held across an `await`.
    subjects: Mutex<HashMap<String, Entry>>,
}

pub struct Hub {
    history: Arc<dyn History>,
    shards: Box<[Shard]>,
    hasher: RandomState,
    resync: resync::Settings,
    /// The gateway's usage counters, each forwarder resolving its app's once.
    usage: Option<Arc<waas_core::usage::Usage>>,
    /// `limits.direct_write_max_subscribers` ([`Fanout::push_live`]); 0 until set.
    direct_max: usize,
}

impl Hub {
    pub fn new(history: Arc<dyn History>) -> Self {
        Self::with_resync(history, resync::Settings::default())
    }

    /// A hub whose forwarders resync as `resync` says after the bus reconnects.
    pub fn with_resync(history: Arc<dyn History>, resync: resync::Settings) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                change: tokio::sync::Mutex::new(()),
                subjects: Mutex::default(),
            })
            .collect();
        Hub {
            history,
            shards,
            hasher: RandomState::new(),
            resync,
            usage: None,
            direct_max: 0,
        }
    }

    /// Lets forwarders of channels with at most `max` local subscribers write quiet frames to
    /// the sockets themselves ([`Fanout::push_live`]).
    pub fn with_direct_writes(mut self, max: usize) -> Self {
        self.direct_max = max;
        self
    }

    /// Counts deliveries on `usage`.
    pub fn with_usage(mut self, usage: Arc<waas_core::usage::Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    fn shard(&self, subject: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(subject) as usize % SHARDS]
    }

    /// Adds `conn` to `subject`. Returns once the bus route exists, so anything published
    /// after this returns reaches `conn`.
    pub async fn subscribe(
        &self,
        owner: Owner<'_>,
        subject: &str,
        conn: Arc<Outbound>,
    ) -> Result<(), BusError> {
        let shard = self.shard(subject);
        let _change = shard.change.lock().await;
        if let Some(entry) = shard.subjects.lock().expect("hub poisoned").get(subject) {
            entry
                .subscribers
                .write()
                .expect("subscribers poisoned")
                .push(Sub::new(conn, 0));
            return Ok(());
        }
        let entry = self
            .entry(owner, subject, vec![Sub::new(conn, 0)], Joining::default())
            .await?;
        shard
            .subjects
            .lock()
            .expect("hub poisoned")
            .insert(subject.to_owned(), entry);
        Ok(())
    }

    /// Starts a subscription whose live frames are held until [`Hub::join`]: subscribe, read
    /// history, then join, and nothing published meanwhile is lost or sent twice. Undo with
    /// [`Hub::unsubscribe`] if history cannot be read.
    pub async fn subscribe_held(
        &self,
        owner: Owner<'_>,
        subject: &str,
        conn_id: u64,
    ) -> Result<(), BusError> {
        let shard = self.shard(subject);
        let _change = shard.change.lock().await;
        if let Some(entry) = shard.subjects.lock().expect("hub poisoned").get(subject) {
            entry
                .joining
                .lock()
                .expect("joining poisoned")
                .push((conn_id, Vec::new()));
            return Ok(());
        }
        let joining: Joining = Arc::new(Mutex::new(vec![(conn_id, Vec::new())]));
        let entry = self.entry(owner, subject, Vec::new(), joining).await?;
        shard
            .subjects
            .lock()
            .expect("hub poisoned")
            .insert(subject.to_owned(), entry);
        Ok(())
    }

    /// Subscribes on the bus and starts the subject's forwarder, with the app's metric handles
    /// resolved once for all its messages.
    async fn entry(
        &self,
        owner: Owner<'_>,
        subject: &str,
        subscribers: Vec<Sub>,
        joining: Joining,
    ) -> Result<Entry, BusError> {
        // Counted from before the bus subscription, so no reconnect after it goes unseen.
        let reconnects = self.history.bus().reconnects();
        let seen = reconnects.as_ref().map_or(0, |r| r.count());
        let app = owner.app;
        let subscribers: Subscribers = Arc::new(RwLock::new(subscribers));
        let tracker = Arc::new(Tracker::default());
        let fanout = Fanout {
            subscribers: Arc::clone(&subscribers),
            joining: Arc::clone(&joining),
            metrics: waas_core::metrics::METRICS.app(app),
            usage: self.usage.as_ref().and_then(|u| u.app_str(app)),
            direct_max: self.direct_max,
        };
        let direct = Arc::new(Direct::new(fanout, Arc::clone(&tracker)));
        let stream = self
            .history
            .subscribe_inline(subject, Arc::clone(&direct) as _)
            .await?;
        let forward = tokio::spawn(forward(
            stream,
            direct,
            Resync {
                history: Arc::clone(&self.history),
                subject: subject.to_owned(),
                tracker: Arc::clone(&tracker),
                cuts: self.resync.cuts.watch(owner.tenant),
                settings: self.resync.clone(),
                reconnects,
                seen,
            },
        ));
        Ok(Entry {
            subscribers,
            joining,
            tracker,
            forward,
        })
    }

    /// Makes a held subscription live. In one step, so that no live frame comes between: queues
    /// `history` on `conn`, then the held frames with an offset above `covered` (history or the
    /// client already has the others), then `ack(last offset queued, or covered)` when it gives
    /// a frame. `at` says where the channel's history is, for a resync after the bus
    /// reconnects. Held frames are native; a Pusher connection gets each converted
    /// ([`crate::pusher::message`]), `history` and the ack as given. All of it is one piece in
    /// the connection's queue ([`Outbound::push_all`]).
    pub fn join(
        &self,
        subject: &str,
        conn: Arc<Outbound>,
        history: Vec<Bytes>,
        covered: u64,
        at: Joined<'_>,
        ack: impl FnOnce(u64) -> Option<Bytes>,
    ) {
        let shard = self.shard(subject);
        let subjects = shard.subjects.lock().expect("hub poisoned");
        let Some(entry) = subjects.get(subject) else {
            return;
        };
        let mut subs = entry.subscribers.write().expect("subscribers poisoned");
        let held = {
            let mut joining = entry.joining.lock().expect("joining poisoned");
            match joining.iter().position(|(id, _)| *id == conn.id) {
                Some(i) => joining.swap_remove(i).1,
                None => return,
            }
        };
        let mut top = covered;
        // One piece ([`Outbound::push_all`]): a recovery is as long as the client was away.
        let mut backlog = history;
        for frame in held {
            match offset_of(&frame) {
                Some(offset) if offset > top => {
                    top = offset;
                    backlog.extend(fanout::for_conn(&conn, frame));
                }
                Some(_) => {}
                // Not a message frame (cannot happen today): pass it on.
                None => backlog.extend(fanout::for_conn(&conn, frame)),
            }
        }
        backlog.extend(ack(top));
        conn.push_all(backlog);
        entry
            .tracker
            .joined(at.channel, at.policy, at.epoch, top, subs.is_empty());
        // Frames up to `top` that are still on their way to the forwarder are in what was
        // just queued: the subscriber skips them.
        subs.push(Sub::new(conn, top));
    }

    pub async fn unsubscribe(&self, subject: &str, conn_id: u64) {
        let shard = self.shard(subject);
        let _change = shard.change.lock().await;
        let mut subjects = shard.subjects.lock().expect("hub poisoned");
        let now_empty = match subjects.get(subject) {
            Some(entry) => {
                let mut subs = entry.subscribers.write().expect("subscribers poisoned");
                if let Some(i) = subs.iter().position(|s| s.conn.id == conn_id) {
                    subs.swap_remove(i);
                }
                let mut joining = entry.joining.lock().expect("joining poisoned");
                joining.retain(|(id, _)| *id != conn_id);
                subs.is_empty() && joining.is_empty()
            }
            None => false,
        };
        if now_empty {
            subjects.remove(subject);
        }
    }

    /// Queues `native` on every local native subscriber of `subject`, and `pusher` (when
    /// given) on every Pusher one, without going through the bus: for frames this node computes
    /// itself for its own clients (presence member events).
    pub fn deliver_local(&self, subject: &str, native: &Bytes, pusher: Option<&Bytes>) {
        let shard = self.shard(subject);
        let subjects = shard.subjects.lock().expect("hub poisoned");
        if let Some(entry) = subjects.get(subject) {
            for Sub { conn, .. } in entry
                .subscribers
                .read()
                .expect("subscribers poisoned")
                .iter()
            {
                match (&conn.pusher, pusher) {
                    (None, _) => conn.push(native.clone()),
                    (Some(_), Some(frame)) => conn.push(frame.clone()),
                    (Some(_), None) => {}
                }
            }
        }
    }

    /// Subjects with at least one local subscriber.
    pub fn subject_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.subjects.lock().expect("hub poisoned").len())
            .sum()
    }
}

/// Whose channel a subscription is on: its app (metrics, usage) and the app's tenant (cuts).
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    pub app: &'a str,
    pub tenant: &'a str,
}

impl<'a> From<&'a waas_core::app::App> for Owner<'a> {
    fn from(app: &'a waas_core::app::App) -> Self {
        Owner {
            app: app.id().as_str(),
            tenant: app.tenant(),
        }
    }
}

/// Where a joining subscriber's channel keeps its history.
pub struct Joined<'a> {
    pub channel: &'a str,
    pub policy: waas_core::history::Policy,
    pub epoch: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::VecDeque;
    use waas_core::bus::memory::MemoryBus;
    use waas_core::bus::Bus;

    /// The owner of the tests' channels: an app that is its own tenant.
    const T: Owner<'static> = Owner {
        app: "t",
        tenant: "t",
    };

    #[tokio::test]
    async fn one_bus_route_per_subject_and_cleanup() {
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Hub::new(Arc::new(waas_core::history::memory::MemoryHistory::new(
            bus.clone(),
        )));
        let a = Arc::new(Outbound::new(1, 10, 1 << 20, 0));
        let b = Arc::new(Outbound::new(2, 10, 1 << 20, 0));
        hub.subscribe(T, "s.x", a.clone()).await.unwrap();
        hub.subscribe(T, "s.x", b.clone()).await.unwrap();
        assert_eq!(hub.subject_count(), 1);
        bus.publish("s.x", Bytes::from_static(b"{}")).await.unwrap();
        a.ready().await;
        let mut got = VecDeque::new();
        a.take(&mut got);
        assert_eq!(&got[0][..], b"\x81\x02{}");
        hub.unsubscribe("s.x", 1).await;
        assert_eq!(hub.subject_count(), 1);
        hub.unsubscribe("s.x", 2).await;
        assert_eq!(hub.subject_count(), 0);
    }

    /// A message reaches every Pusher subscriber as one shared buffer, encoded once, and its
    /// sender's connection not at all; native subscribers get the native frame.
    #[tokio::test]
    async fn pusher_subscribers_share_one_encoding() {
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Hub::new(Arc::new(waas_core::history::memory::MemoryHistory::new(
            bus.clone(),
        )));
        let native = Arc::new(Outbound::new(1, 10, 1 << 20, 0));
        let p1 = Arc::new(Outbound::pusher(2, 10, 1 << 20, 0, "9.2".into()));
        let p2 = Arc::new(Outbound::pusher(3, 10, 1 << 20, 0, "9.3".into()));
        let sender = Arc::new(Outbound::pusher(4, 10, 1 << 20, 0, "9.4".into()));
        for c in [&native, &p1, &p2, &sender] {
            hub.subscribe(T, "s.z", Arc::clone(c)).await.unwrap();
        }
        let data = serde_json::value::RawValue::from_string("{\"a\":1}".into()).unwrap();
        let from = crate::pusher::message::Sender {
            socket_id: Some("9.4".into()),
            user_id: None,
        };
        let frame = crate::pusher::message::head("z", "client-e", &data, 1, &from).with_offset(1);
        bus.publish("s.z", frame).await.unwrap();
        let mut got = Vec::new();
        for c in [&native, &p1, &p2] {
            c.ready().await;
            let mut q = VecDeque::new();
            c.take(&mut q);
            got.push(q.pop_front().unwrap());
        }
        assert_eq!(offset_of(&got[0]), Some(1), "native frame");
        assert_eq!(got[1], got[2]);
        assert_eq!(got[1].as_ptr(), got[2].as_ptr(), "one buffer for both");
        assert!(got[1].ends_with(br#""data":"{\"a\":1}"}"#), "{:?}", got[1]);
        let mut q = VecDeque::new();
        sender.take(&mut q);
        assert!(q.is_empty(), "the sender gets nothing");
    }

    fn message(offset: u64) -> Bytes {
        let data = serde_json::value::RawValue::from_string("0".into()).unwrap();
        waas_core::history::Head::new("x", "e", &data, 1, false).with_offset(offset)
    }

    fn offsets(frames: &VecDeque<Bytes>) -> Vec<Option<u64>> {
        frames.iter().map(|f| offset_of(f)).collect()
    }

    /// What a join queues as one piece ([`Outbound::push_all`]): its frames back to back.
    fn piece(frames: &[Bytes]) -> Bytes {
        frames.concat().into()
    }

    /// Live frames that arrive while a connection reads history are held, then handed over after
    /// it without the ones history covered, before the ack, and the connection is live after.
    #[tokio::test]
    async fn join_hands_over_held_frames_once_and_in_order() {
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Hub::new(Arc::new(waas_core::history::memory::MemoryHistory::new(
            bus.clone(),
        )));
        let conn = Arc::new(Outbound::new(7, 100, 1 << 20, 0));
        hub.subscribe_held(T, "s.y", 7).await.unwrap();
        assert_eq!(hub.subject_count(), 1, "held subscriptions keep the route");
        for offset in [4, 5, 6] {
            bus.publish("s.y", message(offset)).await.unwrap();
        }
        // Wait until the forwarder has held them (it runs on its own task).
        for _ in 0..100 {
            let held = {
                let shard = hub.shard("s.y");
                let subjects = shard.subjects.lock().unwrap();
                let joining = subjects["s.y"].joining.lock().unwrap();
                joining[0].1.len()
            };
            if held == 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let history = vec![
            crate::wsframe::text(&message(3)),
            crate::wsframe::text(&message(5)),
        ];
        let at = Joined {
            channel: "y",
            policy: crate::Limits::default().history_policy(),
            epoch: "e",
        };
        hub.join("s.y", conn.clone(), history, 5, at, |top| {
            Some(crate::wsframe::text(format!("ack {top}").as_bytes()))
        });
        bus.publish("s.y", message(7)).await.unwrap();
        conn.ready().await;
        // `take` swaps its argument with the queue: take into an empty one each time.
        let mut all = VecDeque::new();
        for _ in 0..100 {
            let mut batch = VecDeque::new();
            conn.take(&mut batch);
            all.extend(batch);
            if all.len() >= 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let text = |m: Bytes| crate::wsframe::text(&m);
        let joined = piece(&[
            text(message(3)),
            text(message(5)),
            text(message(6)),
            crate::wsframe::text(b"ack 6"),
        ]);
        assert_eq!(all[0], joined, "history, held above 5, the ack: one piece");
        assert_eq!(offsets(&all)[1..], [Some(7)], "then live");
        hub.unsubscribe("s.y", 7).await;
        assert_eq!(hub.subject_count(), 0);
    }

    /// A frame history already gave the joining connection can still be on its way to the
    /// forwarder (a busy gateway): it arrives after the join and is not queued again.
    #[tokio::test]
    async fn frames_history_gave_that_arrive_after_the_join_are_skipped() {
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Hub::new(Arc::new(waas_core::history::memory::MemoryHistory::new(
            bus.clone(),
        )));
        let conn = Arc::new(Outbound::new(8, 100, 1 << 20, 0));
        hub.subscribe_held(T, "s.z", 8).await.unwrap();
        let history = vec![
            crate::wsframe::text(&message(4)),
            crate::wsframe::text(&message(5)),
        ];
        let at = Joined {
            channel: "z",
            policy: crate::Limits::default().history_policy(),
            epoch: "e",
        };
        hub.join("s.z", conn.clone(), history, 5, at, |_| None);
        // 4 and 5 reach the forwarder only now, then 6.
        for offset in [4, 5, 6] {
            bus.publish("s.z", message(offset)).await.unwrap();
        }
        let all = take_until(&conn, 6).await;
        let text = |m: Bytes| crate::wsframe::text(&m);
        assert_eq!(
            all,
            [
                piece(&[text(message(4)), text(message(5))]),
                text(message(6))
            ],
            "each once"
        );
        // Past the floor, later frames flow as usual.
        bus.publish("s.z", message(7)).await.unwrap();
        assert_eq!(offsets(&take_until(&conn, 7).await), [Some(7)]);
    }

    /// With direct writes on, a small channel's frame is passed on inside the publisher's call
    /// to the bus in this process (no task ran in between); a channel above the limit gets it
    /// from its forwarder.
    #[tokio::test]
    async fn small_channels_get_frames_in_the_publishers_call() {
        let bus = Arc::new(MemoryBus::new(16));
        let history = Arc::new(waas_core::history::memory::MemoryHistory::new(bus.clone()));
        let hub = Hub::new(history).with_direct_writes(2);
        let small = Arc::new(Outbound::new(1, 100, 1 << 20, 0));
        hub.subscribe(T, "s.small", Arc::clone(&small))
            .await
            .unwrap();
        let large: Vec<_> = (2..5)
            .map(|id| Arc::new(Outbound::new(id, 100, 1 << 20, 0)))
            .collect();
        for c in &large {
            hub.subscribe(T, "s.large", Arc::clone(c)).await.unwrap();
        }
        bus.publish("s.small", message(1)).await.unwrap();
        bus.publish("s.large", message(1)).await.unwrap();
        let mut q = VecDeque::new();
        small.take(&mut q);
        assert_eq!(offsets(&q), [Some(1)], "queued before publish returned");
        let mut q = VecDeque::new();
        large[0].take(&mut q);
        assert!(q.is_empty(), "3 subscribers: the forwarder's");
        for c in &large {
            assert_eq!(offsets(&take_until(c, 1).await), [Some(1)]);
        }
    }

    /// What is queued on `conn` until a frame with `offset` is (the forwarder runs on its own
    /// task).
    async fn take_until(conn: &Outbound, offset: u64) -> VecDeque<Bytes> {
        let mut all = VecDeque::new();
        for _ in 0..10_000 {
            let mut batch = VecDeque::new();
            conn.take(&mut batch);
            all.extend(batch);
            if offsets(&all).contains(&Some(offset)) {
                return all;
            }
            tokio::task::yield_now().await;
        }
        panic!("offset {offset} never queued; got {:?}", offsets(&all));
    }
}
