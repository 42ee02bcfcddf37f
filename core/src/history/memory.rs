//! History in the memory of one process (`waas dev`, and apps without history in a cluster).
//!
//! Each channel has a log: its epoch (random, drawn when the log is created, so a restarted
//! process never reuses one), its last offset, and up to `policy.size` recent messages no older
//! than `policy.ttl`. Offsets are contiguous here (1, 2, 3, ...), which clients must not rely on.
//!
//! A log is freed as soon as nothing needs it: no live subscription of this process to its
//! channel ([`History::subscribe`] pins it until the subscription is dropped), nobody using it
//! at the moment, and no message still kept — at once for channels that keep no history, and
//! on a [`History::sweep`] after their last message expired for the others. The channel's next
//! use starts a new log with a new epoch, so a client recovering across that gets
//! `recovered: false`; and its offsets start above every offset a freed log of this process
//! reached, so that they keep increasing for anyone comparing them (in a cluster, the publish
//! acks of a channel without history, which are positions in this gateway's log).
//!
//! In a cluster the messages of a channel without history reach every gateway over the bus
//! numbered by the gateway that published them; each gateway numbers them again from its own
//! log as it delivers them ([`Delivery`]), so that its subscribers see one increasing sequence.

use super::{Head, History, HistoryError, Page, Policy, Query, Recovery};
use crate::bus::inline::Inline;
use crate::bus::{Bus, BusError, TracedSubscription};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use waas_protocol::history::Since;

const SHARDS: usize = 64;

#[derive(Debug)]
struct Log {
    epoch: String,
    last: u64,
    /// Highest offset dropped from `messages` (by count, age or a policy keeping none).
    evicted: u64,
    messages: VecDeque<(u64, Instant, Bytes)>,
    /// The policy of the last use: what a sweep trims by.
    policy: Policy,
}

impl Log {
    fn new(floor: u64) -> Self {
        Log {
            epoch: format!("{:016x}", rand::random::<u64>()),
            last: floor,
            evicted: floor,
            messages: VecDeque::new(),
            policy: Policy {
                size: 0,
                ttl: Duration::ZERO,
                namespaced: false,
            },
        }
    }

    fn trim(&mut self, policy: Policy, now: Instant) {
        self.policy = policy;
        let size = if policy.enabled() { policy.size } else { 0 };
        while self.messages.len() > size
            || self
                .messages
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) >= policy.ttl)
        {
            if let Some((offset, _, _)) = self.messages.pop_front() {
                self.evicted = offset;
            }
        }
        if size == 0 {
            self.evicted = self.last;
        }
    }
}

/// A channel's log: an async mutex, held across the bus publish so that offsets reach the bus
/// in the order they were given, even when REST and sockets publish to one channel at once.
type Shared = Arc<tokio::sync::Mutex<Log>>;

/// A channel's log and how many live subscriptions of this process keep it.
struct Slot {
    log: Shared,
    pins: usize,
}

/// Every channel's log, shared with the pins of live subscriptions.
struct Logs {
    shards: Box<[Mutex<HashMap<String, Slot>>]>,
    hasher: RandomState,
    /// The highest offset a freed log reached, where new logs start.
    floor: AtomicU64,
}

impl Logs {
    fn shard(&self, subject: &str) -> &Mutex<HashMap<String, Slot>> {
        &self.shards[self.hasher.hash_one(subject) as usize % SHARDS]
    }

    /// The channel's log, made if it has none; `pin` counts a live subscription.
    fn log(&self, subject: &str, pin: bool) -> Shared {
        let mut map = self.shard(subject).lock().expect("history poisoned");
        // Looked up before `entry`, which would copy the subject for every publish.
        let slot = match map.get_mut(subject) {
            Some(slot) => slot,
            None => map.entry(subject.to_owned()).or_insert_with(|| {
                let floor = self.floor.load(Ordering::Relaxed);
                Slot {
                    log: Arc::new(tokio::sync::Mutex::new(Log::new(floor))),
                    pins: 0,
                }
            }),
        };
        slot.pins += usize::from(pin);
        Arc::clone(&slot.log)
    }

    /// Frees `subject`'s log if nothing needs it any more; `unpin` first drops a subscription's
    /// pin.
    fn release(&self, subject: &str, unpin: bool) {
        let mut map = self.shard(subject).lock().expect("history poisoned");
        let Some(slot) = map.get_mut(subject) else {
            return;
        };
        if unpin {
            slot.pins = slot.pins.saturating_sub(1);
        }
        if self.idle(slot, Instant::now()) {
            map.remove(subject);
        }
    }

    /// Whether a log can go: no pin, nobody using it now, nothing kept. Called under its
    /// shard's lock, which every new user of the log takes first (so the count of `Arc`s cannot
    /// grow meanwhile).
    fn idle(&self, slot: &Slot, now: Instant) -> bool {
        if slot.pins > 0 || Arc::strong_count(&slot.log) > 1 {
            return false;
        }
        let Ok(mut log) = slot.log.try_lock() else {
            return false;
        };
        let policy = log.policy;
        log.trim(policy, now);
        if !log.messages.is_empty() {
            return false;
        }
        self.floor.fetch_max(log.last, Ordering::Relaxed);
        true
    }

    fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut kept = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock().expect("history poisoned");
            map.retain(|_, slot| !self.idle(slot, now));
            kept += map.len();
        }
        kept
    }
}

/// Holds a live subscription's pin on its channel's log; dropping it releases the log.
struct Pin {
    logs: Arc<Logs>,
    subject: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.logs.release(&self.subject, true);
    }
}

/// Numbers the messages of one channel without history as this process delivers them, from the
/// channel's log: for a cluster, where every gateway receives such messages from the bus with
/// the publishing gateway's offset, which means nothing next to another gateway's. Holds the
/// log pinned (its epoch and offsets stay what subscribers were told) for as long as it lives.
pub struct Delivery {
    // Dropped before `_pin`, whose release frees the log only when nobody else holds it.
    log: Shared,
    _pin: Pin,
}

impl Delivery {
    /// `frame` with the channel's next offset here instead of the one it came with. Frames
    /// that are not messages pass unchanged.
    pub async fn number(&self, frame: Bytes) -> Bytes {
        let Some(head) = Head::of(&frame) else {
            return frame;
        };
        let mut log = self.log.lock().await;
        log.last += 1;
        // Nothing is kept: a client behind this offset has missed something.
        log.evicted = log.last;
        head.with_offset(log.last)
    }
}

pub struct MemoryHistory {
    bus: Arc<dyn Bus>,
    logs: Arc<Logs>,
}

// Compile-time check that the memory history fits the seam.
const _: fn(MemoryHistory) -> Arc<dyn History> = |h| Arc::new(h);

impl MemoryHistory {
    /// A live subscription that keeps the channel's log (its offsets) while it lasts.
    async fn pinned(
        &self,
        subject: &str,
        inline: Option<Arc<dyn Inline>>,
    ) -> Result<TracedSubscription, BusError> {
        let pin = self.pin(subject);
        // On error the pin is dropped here, which releases the log.
        let stream = match inline {
            Some(inline) => self.bus.subscribe_inline(subject, inline).await?,
            None => self.bus.subscribe_traced(subject).await?,
        };
        Ok(Box::pin(stream.map(move |message| {
            let _ = &pin;
            message
        })))
    }

    pub fn new(bus: Arc<dyn Bus>) -> Self {
        MemoryHistory {
            bus,
            logs: Arc::new(Logs {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                hasher: RandomState::new(),
                floor: AtomicU64::new(0),
            }),
        }
    }

    fn log(&self, subject: &str) -> Shared {
        self.logs.log(subject, false)
    }

    /// Keeps `subject`'s log (its epoch and offsets) until the returned guard is dropped: for a
    /// live subscription that does not go through [`History::subscribe`] of this history.
    pub fn pin(&self, subject: &str) -> impl Drop + Send + Sync + 'static {
        drop(self.logs.log(subject, true));
        self.unpin_later(subject)
    }

    fn unpin_later(&self, subject: &str) -> Pin {
        Pin {
            logs: Arc::clone(&self.logs),
            subject: subject.to_owned(),
        }
    }

    /// Numbers `subject`'s messages as they are delivered here (see [`Delivery`]), keeping its
    /// log meanwhile. One per live subscription of the channel in this process: each numbers
    /// every message it passes on.
    pub fn delivery(&self, subject: &str) -> Delivery {
        Delivery {
            log: self.logs.log(subject, true),
            _pin: self.unpin_later(subject),
        }
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn publish(
        &self,
        policy: Policy,
        subject: &str,
        head: &Head,
    ) -> Result<u64, HistoryError> {
        let shared = self.log(subject);
        let result = async {
            let mut log = shared.lock().await;
            let offset = log.last + 1;
            let frame = head.with_offset(offset);
            self.bus.publish(subject, frame.clone()).await?;
            log.last = offset;
            log.messages.push_back((offset, Instant::now(), frame));
            log.trim(policy, Instant::now());
            Ok(offset)
        }
        .await;
        drop(shared);
        self.logs.release(subject, false);
        result
    }

    async fn read(
        &self,
        policy: Policy,
        subject: &str,
        query: Query,
    ) -> Result<Page, HistoryError> {
        let shared = self.log(subject);
        let page = {
            let mut log = shared.lock().await;
            log.trim(policy, Instant::now());
            let messages = if query.reverse {
                let before = query.since.unwrap_or(u64::MAX);
                log.messages
                    .iter()
                    .rev()
                    .filter(|(o, _, _)| *o < before)
                    .take(query.limit)
                    .map(|(_, _, m)| m.clone())
                    .collect()
            } else {
                let after = query.since.unwrap_or(0);
                log.messages
                    .iter()
                    .filter(|(o, _, _)| *o > after)
                    .take(query.limit)
                    .map(|(_, _, m)| m.clone())
                    .collect()
            };
            Page {
                epoch: log.epoch.clone(),
                offset: log.last,
                messages,
            }
        };
        drop(shared);
        self.logs.release(subject, false);
        Ok(page)
    }

    async fn recover(
        &self,
        policy: Policy,
        subject: &str,
        since: Option<&Since>,
    ) -> Result<Recovery, HistoryError> {
        let shared = self.log(subject);
        let recovery = {
            let mut log = shared.lock().await;
            log.trim(policy, Instant::now());
            let mut recovery = Recovery {
                epoch: log.epoch.clone(),
                offset: log.last,
                messages: Vec::new(),
                recovered: None,
            };
            if let Some(since) = since {
                let same = since.epoch == log.epoch && since.offset <= log.last;
                if same {
                    recovery.messages = log
                        .messages
                        .iter()
                        .filter(|(o, _, _)| *o > since.offset)
                        .map(|(_, _, m)| m.clone())
                        .collect();
                }
                recovery.recovered = Some(same && since.offset >= log.evicted);
            }
            recovery
        };
        drop(shared);
        self.logs.release(subject, false);
        Ok(recovery)
    }

    /// Pins the channel's log for as long as the subscription lives, so that its epoch and
    /// offsets stay what the subscriber was told.
    async fn subscribe(&self, subject: &str) -> Result<TracedSubscription, BusError> {
        self.pinned(subject, None).await
    }

    /// Frames published here reach the bus under the channel's log lock, in offset order: an
    /// inline subscriber is offered them in that order.
    async fn subscribe_inline(
        &self,
        subject: &str,
        inline: Arc<dyn Inline>,
    ) -> Result<TracedSubscription, BusError> {
        self.pinned(subject, Some(inline)).await
    }

    fn sweep(&self) -> usize {
        self.logs.sweep()
    }

    fn channel_count(&self) -> usize {
        self.logs
            .shards
            .iter()
            .map(|s| s.lock().expect("history poisoned").len())
            .sum()
    }

    fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use serde_json::value::RawValue;
    use std::time::Duration;

    fn head(n: u64) -> Head {
        let data = RawValue::from_string(n.to_string()).unwrap();
        Head::new("c", "e", &data, n, false)
    }

    fn offsets(messages: &[Bytes]) -> Vec<u64> {
        messages
            .iter()
            .map(|m| super::super::offset_of(m).unwrap())
            .collect()
    }

    const KEEP: Policy = Policy {
        size: 3,
        ttl: Duration::from_secs(60),
        namespaced: false,
    };

    #[tokio::test]
    async fn offsets_read_and_bounds() {
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        for n in 1..=5 {
            assert_eq!(h.publish(KEEP, "s.c", &head(n)).await.unwrap(), n);
        }
        let all = Query {
            since: None,
            limit: 10,
            reverse: false,
        };
        let page = h.read(KEEP, "s.c", all).await.unwrap();
        assert_eq!((page.offset, offsets(&page.messages)), (5, vec![3, 4, 5]));
        let page = h
            .read(
                KEEP,
                "s.c",
                Query {
                    since: Some(5),
                    limit: 2,
                    reverse: true,
                },
            )
            .await
            .unwrap();
        assert_eq!(offsets(&page.messages), vec![4, 3]);
        let other = h.read(KEEP, "s.d", all).await.unwrap();
        assert_ne!(other.epoch, page.epoch, "each channel has its own epoch");
        assert_eq!(other.offset, 0);
    }

    #[tokio::test]
    async fn recovery_knows_when_it_is_complete() {
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        for n in 1..=5 {
            h.publish(KEEP, "s.c", &head(n)).await.unwrap();
        }
        let epoch = h.recover(KEEP, "s.c", None).await.unwrap().epoch;
        let since = |offset| Since {
            offset,
            epoch: epoch.clone(),
        };
        let r = h.recover(KEEP, "s.c", Some(&since(2))).await.unwrap();
        assert_eq!(
            (r.recovered, offsets(&r.messages)),
            (Some(true), vec![3, 4, 5])
        );
        // Offset 2 was evicted: a client at 1 missed it.
        let r = h.recover(KEEP, "s.c", Some(&since(1))).await.unwrap();
        assert_eq!(r.recovered, Some(false));
        let r = h.recover(KEEP, "s.c", Some(&since(5))).await.unwrap();
        assert_eq!((r.recovered, r.messages.len()), (Some(true), 0));
        let wrong = Since {
            offset: 2,
            epoch: "other".into(),
        };
        let r = h.recover(KEEP, "s.c", Some(&wrong)).await.unwrap();
        assert_eq!(
            (r.recovered, r.messages.len(), r.offset),
            (Some(false), 0, 5)
        );
        // From the future of this epoch: not ours.
        let r = h.recover(KEEP, "s.c", Some(&since(9))).await.unwrap();
        assert_eq!(r.recovered, Some(false));
    }

    /// (While someone else on the server keeps the channel: without one, the channel is
    /// forgotten and comes back with another epoch.)
    #[tokio::test]
    async fn without_history_only_an_up_to_date_client_recovers() {
        let off = Policy {
            size: 0,
            ttl: Duration::from_secs(60),
            namespaced: false,
        };
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        let _other_subscriber = h.subscribe("s.c").await.unwrap();
        h.publish(off, "s.c", &head(1)).await.unwrap();
        let epoch = h.recover(off, "s.c", None).await.unwrap().epoch;
        let r = h
            .recover(
                off,
                "s.c",
                Some(&Since {
                    offset: 1,
                    epoch: epoch.clone(),
                }),
            )
            .await
            .unwrap();
        assert_eq!(r.recovered, Some(true));
        h.publish(off, "s.c", &head(2)).await.unwrap();
        let r = h
            .recover(off, "s.c", Some(&Since { offset: 1, epoch }))
            .await
            .unwrap();
        assert_eq!((r.recovered, r.messages.len()), (Some(false), 0));
    }

    #[tokio::test]
    async fn messages_expire_by_age() {
        let short = Policy {
            size: 10,
            ttl: Duration::from_millis(1),
            namespaced: false,
        };
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        h.publish(short, "s.c", &head(1)).await.unwrap();
        // Waiting is the point: the message must age past its ttl.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let page = h
            .read(
                short,
                "s.c",
                Query {
                    since: None,
                    limit: 10,
                    reverse: false,
                },
            )
            .await;
        assert!(page.unwrap().messages.is_empty());
    }

    /// The state of a channel goes once nothing needs it: at once without history, on a sweep
    /// once its messages expired, and never while a live subscription pins it.
    #[tokio::test]
    async fn logs_are_freed_when_nothing_needs_them() {
        let bus = Arc::new(MemoryBus::new(16));
        let h = MemoryHistory::new(bus.clone());
        let none = Policy { size: 0, ..KEEP };
        for i in 0..100 {
            h.publish(none, &format!("s.n{i}"), &head(1)).await.unwrap();
            h.recover(none, &format!("s.r{i}"), None).await.unwrap();
        }
        assert_eq!(h.channel_count(), 0, "nothing kept, nothing remembered");

        let short = Policy {
            size: 10,
            ttl: Duration::from_millis(20),
            namespaced: false,
        };
        for i in 0..100 {
            h.publish(short, &format!("s.k{i}"), &head(1))
                .await
                .unwrap();
        }
        let live = h.subscribe("s.k0").await.unwrap();
        assert_eq!(h.channel_count(), 100);
        // Bounded: the messages must age past their ttl, which a sweep then sees.
        for _ in 0..500 {
            if h.sweep() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(h.channel_count(), 1, "the subscribed channel stays");
        let epoch = h.recover(short, "s.k0", None).await.unwrap().epoch;
        assert_eq!(h.sweep(), 1);
        drop(live);
        assert_eq!(h.channel_count(), 0, "unpinned and expired: freed");
        let again = h.recover(short, "s.k0", None).await.unwrap();
        assert_ne!(again.epoch, epoch, "a freed channel starts a new epoch");
        assert_eq!(h.channel_count(), 0);
    }

    /// A message delivered here gets the channel's next offset in this log, after any this
    /// process gave a publish, whatever offset it arrived with (another gateway's numbering).
    #[tokio::test]
    async fn deliveries_are_numbered_by_this_log() {
        let none = Policy { size: 0, ..KEEP };
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        let delivery = h.delivery("s.c");
        assert_eq!(h.publish(none, "s.c", &head(1)).await.unwrap(), 1);
        let frame = delivery.number(head(2).with_offset(40)).await;
        assert_eq!(super::super::offset_of(&frame), Some(2));
        assert_eq!(Head::of(&frame), Some(head(2)), "only the offset changed");
        assert_eq!(h.publish(none, "s.c", &head(3)).await.unwrap(), 3);
        let r = h.recover(none, "s.c", None).await.unwrap();
        assert_eq!(r.offset, 3, "a subscriber joins after what was delivered");
        let behind = Since {
            offset: 1,
            epoch: r.epoch,
        };
        let r = h.recover(none, "s.c", Some(&behind)).await.unwrap();
        assert_eq!(r.recovered, Some(false), "2 was delivered and not kept");
        let gap = Bytes::from_static(b"{\"op\":\"gap\"}");
        assert_eq!(
            delivery.number(gap.clone()).await,
            gap,
            "not a message: as is"
        );
        drop(delivery);
        assert_eq!(
            h.channel_count(),
            0,
            "the delivery kept the log until it ended"
        );
    }

    /// Offsets keep increasing across frees: publish acks of one gateway compare them.
    #[tokio::test]
    async fn offsets_keep_increasing_across_frees() {
        let none = Policy { size: 0, ..KEEP };
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
        assert_eq!(h.publish(none, "s.c", &head(1)).await.unwrap(), 1);
        assert_eq!(h.publish(none, "s.c", &head(2)).await.unwrap(), 2);
        assert_eq!(h.channel_count(), 0);
        assert_eq!(h.publish(none, "s.d", &head(1)).await.unwrap(), 3);
        assert_eq!(h.publish(KEEP, "s.e", &head(1)).await.unwrap(), 4);
    }
}
