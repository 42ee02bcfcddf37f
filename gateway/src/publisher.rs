//! Publishing: give a message its channel offset, encode its `message` frame once, and hand it
//! to the bus. Shared by WebSocket `publish` and the REST API so both behave the same.

use crate::bus::{Bus, BusError};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use waas_protocol::frame::MessageRef;
use waas_protocol::names::channel_subject;
use waas_protocol::{AppId, ChannelName};

const SHARDS: usize = 64;

/// Last offset of each channel subject in one shard.
type Counters = Mutex<HashMap<String, Arc<tokio::sync::Mutex<u64>>>>;

/// Longest event name accepted, in bytes.
pub const MAX_EVENT_LEN: usize = 200;

/// Why an event name was refused.
pub fn check_event(event: &str) -> Result<(), String> {
    if event.is_empty() {
        Err("\"event\" must not be empty".into())
    } else if event.len() > MAX_EVENT_LEN {
        Err(format!("\"event\" is longer than {MAX_EVENT_LEN} bytes"))
    } else {
        Ok(())
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Publisher {
    bus: Arc<dyn Bus>,
    prefix: String,
    /// Last offset per channel subject. Each counter is an async mutex held across the bus
    /// publish, so offsets reach the bus in the order they were given: a subscriber sees them
    /// strictly increasing even when REST and sockets publish to one channel at once.
    counters: Box<[Counters]>,
    hasher: RandomState,
}

impl Publisher {
    pub fn new(bus: Arc<dyn Bus>, prefix: String) -> Self {
        Publisher {
            bus,
            prefix,
            counters: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    pub fn subject(&self, app: &AppId, channel: &ChannelName) -> String {
        channel_subject(&self.prefix, app, channel)
    }

    fn counter(&self, subject: &str) -> Arc<tokio::sync::Mutex<u64>> {
        let shard = &self.counters[self.hasher.hash_one(subject) as usize % SHARDS];
        let mut map = shard.lock().expect("counters poisoned");
        if let Some(c) = map.get(subject) {
            return Arc::clone(c);
        }
        let c = Arc::new(tokio::sync::Mutex::new(0));
        map.insert(subject.to_owned(), Arc::clone(&c));
        c
    }

    /// Publishes one message and returns its offset in the channel.
    pub async fn publish(
        &self,
        app: &AppId,
        channel: &ChannelName,
        event: &str,
        data: &RawValue,
    ) -> Result<u64, BusError> {
        let subject = self.subject(app, channel);
        let counter = self.counter(&subject);
        let mut last = counter.lock().await;
        let offset = *last + 1;
        let frame = MessageRef::new(channel.as_str(), event, data, offset, now_ms());
        let payload = serde_json::to_vec(&frame).expect("message frames always serialise");
        self.bus.publish(&subject, Bytes::from(payload)).await?;
        *last = offset;
        Ok(offset)
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }
}
