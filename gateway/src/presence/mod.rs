//! Presence and occupancy across the cluster, without a database.
//!
//! Each gateway owns the truth about its own connections: how many subscribe to each channel,
//! and which members (token `sub`s) hold presence channels. It announces changes on one bus
//! subject, `{prefix}.$presence` (`$` cannot start an app id, so no channel subject collides),
//! as they happen (coalesced: one message carries every change made since the last one), and
//! every `presence_heartbeat_ms` it announces everything it has; a gateway no other can hear
//! (alone on an in-process bus, `waas dev`) announces nothing. Every gateway keeps a view of
//! the others' announcements, each node's entry for a channel expiring `presence_ttl_ms` after
//! it was last announced: a gateway that dies takes its members and subscribers with it within
//! that time, with `member_removed` frames for members no other node has.
//!
//! Queries (the `presence` op, the REST channel endpoints in [`crate::http::channels`]) answer
//! from this node's view: it is exact for this node's connections and eventually consistent for
//! the others' (one bus hop behind for changes, at worst one TTL behind for a node that died).
//!
//! [`state`] is the view itself, free of I/O.

pub mod state;

use crate::config::Limits;
use crate::hub::Hub;
use crate::wsframe;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use state::{Change, Entry, Key, LocalTransition, State};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_protocol::presence::Member;
use waas_protocol::{AppId, ChannelName, ServerFrame};

/// Bytes of entries an announcement collects before it is sent, so a heartbeat of a busy node
/// goes out in several messages, each well below NATS's default 1 MiB payload limit.
const ANNOUNCEMENT_BYTES: usize = 256 * 1024;

/// Largest one channel's entry may be: it cannot be split (a full entry replaces the member set
/// it describes), so the limits keep it below this (`max_presence_members`).
pub const MAX_ENTRY_BYTES: usize = 768 * 1024;

/// JSON around one member in an entry (`{"id":"","info":}` and separators), bytes.
pub const MEMBER_OVERHEAD_BYTES: usize = 64;

/// The subject every gateway announces its channels on.
pub fn subject(prefix: &str) -> String {
    waas_core::subjects::presence(prefix)
}

/// What one node says on [`subject`].
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    node: String,
    entries: Vec<Entry>,
}

/// Whether `payload` is an [`AnnouncementOut`] of `node` (a hex id), told from its first field
/// without reading the entries. Anything else, another node's or one encoded otherwise, is
/// `false` and gets read in full.
fn sent_by(payload: &[u8], node: &str) -> bool {
    payload
        .strip_prefix(br#"{"node":""#)
        .and_then(|rest| rest.strip_prefix(node.as_bytes()))
        .is_some_and(|rest| rest.first() == Some(&b'"'))
}

/// An [`Announcement`] as sent: entries encoded once, grouped by size.
#[derive(Serialize)]
struct AnnouncementOut<'a> {
    node: &'a str,
    entries: &'a [Box<RawValue>],
}

/// Consecutive runs of items of `sizes` bytes, each run at most `budget` bytes (with a separator
/// per item) unless a single item is larger on its own.
fn batches(sizes: &[usize], budget: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < sizes.len() && (end == start || bytes + sizes[end] < budget) {
            bytes += sizes[end] + 1;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

/// Told about this node's own transitions (first subscriber, last subscriber, a member's first
/// and last connection): the source of webhook events.
pub trait TransitionSink: Send + Sync + 'static {
    fn transition(&self, key: &Key, t: &LocalTransition);
}

pub struct Presence {
    /// This node's id in announcements: random per process, so a restarted gateway is a new
    /// node and the old one's entries simply expire.
    pub node: String,
    /// Where announcements travel, on `subject`.
    bus: Arc<dyn Bus>,
    prefix: String,
    /// [`subject`] of `prefix`.
    subject: String,
    state: State,
    /// Channels changed since the last announcement, with the members that changed.
    dirty: Mutex<HashMap<Key, Vec<String>>>,
    wake: Notify,
    heartbeat: Duration,
    ttl: Duration,
    /// Where this node's transitions are reported (the webhook reporter).
    sink: Arc<dyn TransitionSink>,
}

impl Presence {
    pub fn new(
        bus: Arc<dyn Bus>,
        prefix: &str,
        limits: &Limits,
        sink: Arc<dyn TransitionSink>,
    ) -> Self {
        Presence {
            node: format!("{:016x}", rand::random::<u64>()),
            bus,
            prefix: prefix.to_owned(),
            subject: subject(prefix),
            state: State::default(),
            dirty: Mutex::default(),
            wake: Notify::new(),
            heartbeat: Duration::from_millis(limits.presence_heartbeat_ms),
            ttl: Duration::from_millis(limits.presence_ttl_ms),
            sink,
        }
    }

    pub fn key(app: &AppId, channel: &ChannelName) -> Key {
        Key {
            app: app.as_str().to_owned(),
            channel: channel.as_str().to_owned(),
        }
    }

    fn channel_subject(&self, key: &Key) -> String {
        format!("{}.{}.{}", self.prefix, key.app, key.channel)
    }

    /// Queues member frames on this node's subscribers of the channel.
    fn deliver(&self, hub: &Hub, key: &Key, change: Change) {
        let pusher = crate::pusher::presence::member_frame(&key.channel, &change);
        let frame = match change {
            Change::Added(member) => ServerFrame::MemberAdded {
                channel: key.channel.clone(),
                member,
            },
            Change::Removed(member) => ServerFrame::MemberRemoved {
                channel: key.channel.clone(),
                member,
            },
        };
        hub.deliver_local(
            &self.channel_subject(key),
            &wsframe::json(&frame),
            pusher.as_ref(),
        );
    }

    /// Whether no other node can hear this one's announcements: on a bus inside one process
    /// (`waas dev`) where this node's own subscription is the only one. Then nothing is
    /// collected or encoded for them; a node that subscribes later hears the next heartbeat.
    fn alone(&self) -> bool {
        matches!(self.bus.listeners(&self.subject), Some(0 | 1))
    }

    fn changed(&self, key: &Key, t: &LocalTransition) {
        if !self.alone() {
            let mut dirty = self.dirty.lock().expect("presence poisoned");
            let members = dirty.entry(key.clone()).or_default();
            if let Some((m, _)) = &t.member {
                if !members.contains(&m.id) {
                    members.push(m.id.clone());
                }
            }
            drop(dirty);
            self.wake.notify_one();
        }
        if t.occupied.is_some() || t.member.is_some() {
            self.sink.transition(key, t);
        }
    }

    /// A local connection subscribed to `channel`; `member` is given on presence channels for
    /// connections with a user token. Call before the connection is added to the hub, so it does
    /// not receive its own `member_added`.
    pub fn joined(&self, hub: &Hub, key: &Key, member: Option<Member>) {
        let t = self
            .state
            .join_local(key, member, &mut |k, c| self.deliver(hub, k, c));
        self.changed(key, &t);
    }

    /// A local connection left `channel` (unsubscribed, failed to subscribe, or closed).
    pub fn left(&self, hub: &Hub, key: &Key, member_id: Option<&str>) {
        let t = self
            .state
            .leave_local(key, member_id, &mut |k, c| self.deliver(hub, k, c));
        self.changed(key, &t);
    }

    pub fn members(&self, key: &Key) -> Vec<Member> {
        self.state.members(key)
    }

    /// Whether `id` may join `key` under a cap of `max` members: it is one already, or the
    /// channel has fewer. Counts the members this gateway knows cluster-wide, so joins racing on
    /// different gateways may overshoot by a few until the next announcements.
    pub fn has_room(&self, key: &Key, id: &str, max: usize) -> bool {
        self.state.has_room(key, id, max)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    fn apply(&self, hub: &Hub, payload: &[u8]) {
        // Every node hears its own heartbeats, which hold an entry per occupied channel: those
        // are recognised before anything is parsed.
        if sent_by(payload, &self.node) {
            return;
        }
        let announcement: Announcement = match serde_json::from_slice(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable presence announcement");
                return;
            }
        };
        if announcement.node == self.node {
            return;
        }
        let expires = Instant::now() + self.ttl;
        for entry in announcement.entries {
            if AppId::parse(&entry.key.app).is_err()
                || ChannelName::parse(&entry.key.channel).is_err()
            {
                continue;
            }
            self.state
                .apply_remote(&announcement.node, entry, expires, &mut |k, c| {
                    self.deliver(hub, k, c)
                });
        }
    }

    async fn announce(&self, entries: Vec<Entry>) {
        let encoded: Vec<Box<RawValue>> = entries
            .iter()
            .map(|e| serde_json::value::to_raw_value(e).expect("entries serialise"))
            .collect();
        let sizes: Vec<usize> = encoded.iter().map(|e| e.get().len()).collect();
        for range in batches(&sizes, ANNOUNCEMENT_BYTES) {
            let body = serde_json::to_vec(&AnnouncementOut {
                node: &self.node,
                entries: &encoded[range],
            })
            .expect("announcements serialise");
            if let Err(e) = self.bus.publish(&self.subject, Bytes::from(body)).await {
                // The next heartbeat repairs what others missed.
                tracing::debug!(error = %e, "cannot announce presence");
            }
        }
    }

    async fn flush(&self) {
        let dirty = std::mem::take(&mut *self.dirty.lock().expect("presence poisoned"));
        if dirty.is_empty() {
            return;
        }
        let entries = dirty
            .into_iter()
            .map(|(key, members)| self.state.local_entry(&key, &members))
            .collect();
        self.announce(entries).await;
    }

    /// Announces what changed since the last announcement now: on shutdown, so other gateways
    /// see the closed connections' members leave at once rather than after the TTL.
    pub async fn farewell(&self) {
        self.flush().await;
    }
}

/// Listens to the other nodes' announcements and makes this node's: changes as they come,
/// everything every heartbeat, and expiry of nodes gone silent; member frames go to this
/// node's subscribers through `hub`. Subscribed before it returns.
pub async fn start(presence: Arc<Presence>, hub: Arc<Hub>) -> Result<JoinHandle<()>, BusError> {
    let mut announcements = presence.bus.subscribe(&presence.subject).await?;
    Ok(tokio::spawn(async move {
        let p = &presence;
        let mut heartbeat = tokio::time::interval(p.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sweep_every = (p.ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                payload = announcements.next() => match payload {
                    Some(payload) => p.apply(&hub, &payload),
                    None => {
                        tracing::error!("presence subscription ended");
                        return;
                    }
                },
                _ = p.wake.notified() => p.flush().await,
                _ = heartbeat.tick() => {
                    p.flush().await;
                    if !p.alone() {
                        p.announce(p.state.local_snapshot()).await;
                    }
                }
                _ = sweep.tick() => {
                    p.state.expire(Instant::now(), &mut |k, c| p.deliver(&hub, k, c));
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_own_announcements_are_told_from_their_first_field() {
        let entry = Entry {
            key: Key {
                app: "a".into(),
                channel: "c".into(),
            },
            subscribers: 1,
            full: true,
            joined: Vec::new(),
            left: Vec::new(),
        };
        let sent = serde_json::to_vec(&AnnouncementOut {
            node: "00ff",
            entries: &[serde_json::value::to_raw_value(&entry).unwrap()],
        })
        .unwrap();
        assert!(sent_by(&sent, "00ff"));
        // Another node, even one whose id starts or ends alike.
        assert!(!sent_by(&sent, "00f"));
        assert!(!sent_by(&sent, "00ffa"));
        assert!(!sent_by(&sent, "100ff"));
        // Not encoded as this node encodes: read in full, where the sender is checked again.
        assert!(!sent_by(br#"{"entries":[],"node":"00ff"}"#, "00ff"));
        assert!(!sent_by(br#"{ "node":"00ff","entries":[]}"#, "00ff"));
        let parsed: Announcement = serde_json::from_slice(&sent).unwrap();
        assert_eq!(
            (parsed.node.as_str(), parsed.entries),
            ("00ff", vec![entry])
        );
    }

    struct NoSink;

    impl TransitionSink for NoSink {
        fn transition(&self, _: &Key, _: &LocalTransition) {}
    }

    #[tokio::test]
    async fn a_node_alone_on_an_in_process_bus_collects_nothing_to_announce() {
        use waas_core::bus::memory::MemoryBus;
        let bus = Arc::new(MemoryBus::new(16));
        let hub = Arc::new(Hub::new(Arc::new(
            waas_core::history::memory::MemoryHistory::new(bus.clone()),
        )));
        let p = Arc::new(Presence::new(
            bus.clone(),
            "waas",
            &Limits::default(),
            Arc::new(NoSink),
        ));
        let _task = start(Arc::clone(&p), Arc::clone(&hub)).await.unwrap();
        let key = |channel: &str| Key {
            app: "a".into(),
            channel: channel.into(),
        };
        p.joined(&hub, &key("quiet"), None);
        assert!(p.dirty.lock().unwrap().is_empty());
        assert_eq!(p.state.local_snapshot().len(), 1, "its own view is kept");

        // Another node on the same bus: changes are announced again.
        let mut other = bus.subscribe(&subject("waas")).await.unwrap();
        p.joined(&hub, &key("heard"), None);
        let heard: Announcement = serde_json::from_slice(&other.next().await.unwrap()).unwrap();
        assert_eq!(heard.node, p.node);
        let channels: Vec<&str> = heard
            .entries
            .iter()
            .map(|e| e.key.channel.as_str())
            .collect();
        assert_eq!(channels, ["heard"]);
    }

    #[test]
    fn announcements_are_cut_by_size_and_never_split_an_entry() {
        assert_eq!(batches(&[], 100), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[10, 10, 10], 100), vec![0..3]);
        assert_eq!(batches(&[40, 40, 40, 40], 100), [0..2, 2..4]);
        // An entry over the budget goes alone.
        assert_eq!(batches(&[10, 500, 10], 100), [0..1, 1..2, 2..3]);
        for sizes in [vec![99; 7], vec![1; 1000], vec![30, 70, 1, 99, 100]] {
            let runs = batches(&sizes, 100);
            assert_eq!(runs.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
            for r in runs {
                let bytes: usize = sizes[r.clone()].iter().map(|s| s + 1).sum();
                assert!(r.len() == 1 || bytes <= 100, "{r:?}: {bytes}");
            }
        }
    }
}
