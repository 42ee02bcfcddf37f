//! This node's subscriptions: which local connections want which bus subject.
//!
//! The node subscribes to a subject on the bus once, when its first local connection subscribes,
//! and drops that subscription when the last one leaves, so a gateway only receives traffic its
//! clients asked for. One forwarding task per live subject turns each bus message into a
//! WebSocket frame once and queues the same bytes on every subscriber.

use crate::bus::{Bus, BusError};
use crate::outbound::Outbound;
use crate::wsframe;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, RwLock};
use tokio::task::JoinHandle;

const SHARDS: usize = 64;

type Subscribers = Arc<RwLock<Vec<Arc<Outbound>>>>;

struct Entry {
    subscribers: Subscribers,
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
    bus: Arc<dyn Bus>,
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Hub {
    pub fn new(bus: Arc<dyn Bus>) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                change: tokio::sync::Mutex::new(()),
                subjects: Mutex::default(),
            })
            .collect();
        Hub {
            bus,
            shards,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, subject: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(subject) as usize % SHARDS]
    }

    /// Adds `conn` to `subject`. Returns once the bus route exists, so anything published
    /// after this returns reaches `conn`.
    pub async fn subscribe(&self, subject: &str, conn: Arc<Outbound>) -> Result<(), BusError> {
        let shard = self.shard(subject);
        let _change = shard.change.lock().await;
        if let Some(entry) = shard.subjects.lock().expect("hub poisoned").get(subject) {
            entry
                .subscribers
                .write()
                .expect("subscribers poisoned")
                .push(conn);
            return Ok(());
        }
        let stream = self.bus.subscribe(subject).await?;
        let subscribers: Subscribers = Arc::new(RwLock::new(vec![conn]));
        let forward = tokio::spawn(forward(stream, Arc::clone(&subscribers)));
        shard.subjects.lock().expect("hub poisoned").insert(
            subject.to_owned(),
            Entry {
                subscribers,
                forward,
            },
        );
        Ok(())
    }

    pub async fn unsubscribe(&self, subject: &str, conn_id: u64) {
        let shard = self.shard(subject);
        let _change = shard.change.lock().await;
        let mut subjects = shard.subjects.lock().expect("hub poisoned");
        let now_empty = match subjects.get(subject) {
            Some(entry) => {
                let mut subs = entry.subscribers.write().expect("subscribers poisoned");
                if let Some(i) = subs.iter().position(|c| c.id == conn_id) {
                    subs.swap_remove(i);
                }
                subs.is_empty()
            }
            None => false,
        };
        if now_empty {
            subjects.remove(subject);
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

async fn forward(mut stream: crate::bus::BusSubscription, subscribers: Subscribers) {
    while let Some(payload) = stream.next().await {
        let frame = wsframe::text(&payload);
        let subs = subscribers.read().expect("subscribers poisoned");
        for conn in subs.iter() {
            conn.push(frame.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use bytes::Bytes;
    use std::collections::VecDeque;

    #[tokio::test]
    async fn one_bus_route_per_subject_and_cleanup() {
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Hub::new(bus.clone());
        let a = Arc::new(Outbound::new(1, 10, 1 << 20, 0));
        let b = Arc::new(Outbound::new(2, 10, 1 << 20, 0));
        hub.subscribe("s.x", a.clone()).await.unwrap();
        hub.subscribe("s.x", b.clone()).await.unwrap();
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
}
