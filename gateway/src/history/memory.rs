//! History in the memory of one process (`waas dev`, and apps without history in a cluster).
//!
//! Each channel has a log: its epoch (random, drawn when the log is created, so a restarted
//! process never reuses one), its last offset, and up to `policy.size` recent messages no older
//! than `policy.ttl`. Offsets are contiguous here (1, 2, 3, ...), which clients must not rely on.
//! Logs live as long as the process: like the offset counters they replace, one per channel
//! ever published to.

use super::{Head, History, HistoryError, Page, Policy, Query, Recovery};
use crate::bus::{Bus, BusError, BusSubscription};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use waas_protocol::history::Since;

const SHARDS: usize = 64;

#[derive(Debug)]
struct Log {
    epoch: String,
    last: u64,
    /// Highest offset dropped from `messages` (by count, age or a policy keeping none).
    evicted: u64,
    messages: VecDeque<(u64, Instant, Bytes)>,
}

impl Log {
    fn new() -> Self {
        Log {
            epoch: format!("{:016x}", rand::random::<u64>()),
            last: 0,
            evicted: 0,
            messages: VecDeque::new(),
        }
    }

    fn trim(&mut self, policy: Policy, now: Instant) {
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

pub struct MemoryHistory {
    bus: Arc<dyn Bus>,
    shards: Box<[Mutex<HashMap<String, Shared>>]>,
    hasher: RandomState,
}

// Compile-time check that the memory history fits the seam.
const _: fn(MemoryHistory) -> Arc<dyn History> = |h| Arc::new(h);

impl MemoryHistory {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        MemoryHistory {
            bus,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn log(&self, subject: &str) -> Shared {
        let shard = &self.shards[self.hasher.hash_one(subject) as usize % SHARDS];
        let mut map = shard.lock().expect("history poisoned");
        if let Some(log) = map.get(subject) {
            return Arc::clone(log);
        }
        let log = Arc::new(tokio::sync::Mutex::new(Log::new()));
        map.insert(subject.to_owned(), Arc::clone(&log));
        log
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
        let log = self.log(subject);
        let mut log = log.lock().await;
        let offset = log.last + 1;
        let frame = head.with_offset(offset);
        self.bus.publish(subject, frame.clone()).await?;
        log.last = offset;
        log.messages.push_back((offset, Instant::now(), frame));
        log.trim(policy, Instant::now());
        Ok(offset)
    }

    async fn read(
        &self,
        policy: Policy,
        subject: &str,
        query: Query,
    ) -> Result<Page, HistoryError> {
        let log = self.log(subject);
        let mut log = log.lock().await;
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
        Ok(Page {
            epoch: log.epoch.clone(),
            offset: log.last,
            messages,
        })
    }

    async fn recover(
        &self,
        policy: Policy,
        subject: &str,
        since: Option<&Since>,
    ) -> Result<Recovery, HistoryError> {
        let log = self.log(subject);
        let mut log = log.lock().await;
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
        Ok(recovery)
    }

    async fn subscribe(&self, subject: &str) -> Result<BusSubscription, BusError> {
        self.bus.subscribe(subject).await
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

    #[tokio::test]
    async fn without_history_only_an_up_to_date_client_recovers() {
        let off = Policy {
            size: 0,
            ttl: Duration::from_secs(60),
            namespaced: false,
        };
        let h = MemoryHistory::new(Arc::new(MemoryBus::new(16)));
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
}
