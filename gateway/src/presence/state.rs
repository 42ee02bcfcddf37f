//! The cluster-wide view of channels as one gateway holds it: its own subscribers and presence
//! members (authoritative), and what every other node last announced about its own (each entry
//! expiring unless the node refreshes it).
//!
//! A member is present in a channel while any node has it; a member with several connections,
//! on one node or several, counts once. Every change of that cluster-wide membership is reported
//! to a callback *while the channel's lock is held*, so the frames a caller queues for a channel
//! go out in the order the changes happened.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;
use waas_protocol::presence::Member;

const SHARDS: usize = 32;

/// An app and one of its channels, as validated strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub app: String,
    pub channel: String,
}

/// A change of a channel's cluster-wide membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added(Member),
    Removed(Member),
}

/// What one node says about one channel: its subscriber count and member changes. `full`
/// entries (heartbeats) list every member the node has; the others list what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub key: Key,
    pub subscribers: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<Member>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<String>,
}

/// How this node's own view of a channel changed, for the announcer and for webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalTransition {
    /// `Some(true)`: the first local subscriber arrived; `Some(false)`: the last one left.
    pub occupied: Option<bool>,
    /// A member's first local connection joined (`true`) or its last one left (`false`).
    pub member: Option<(Member, bool)>,
}

#[derive(Default)]
struct LocalMember {
    info: Option<Value>,
    connections: usize,
}

struct Remote {
    subscribers: u64,
    members: HashMap<String, Option<Value>>,
    expires: Instant,
}

#[derive(Default)]
struct Channel {
    subscribers: u64,
    members: HashMap<String, LocalMember>,
    remote: HashMap<String, Remote>,
}

impl Channel {
    fn info(&self, id: &str) -> Option<Option<Value>> {
        if let Some(m) = self.members.get(id) {
            return Some(m.info.clone());
        }
        self.remote
            .values()
            .find_map(|r| r.members.get(id).cloned())
    }

    fn has_member(&self, id: &str) -> bool {
        self.members.contains_key(id) || self.remote.values().any(|r| r.members.contains_key(id))
    }

    fn members(&self) -> Vec<Member> {
        let mut all: BTreeMap<&str, &Option<Value>> = BTreeMap::new();
        for (id, m) in &self.members {
            all.insert(id, &m.info);
        }
        for r in self.remote.values() {
            for (id, info) in &r.members {
                all.entry(id).or_insert(info);
            }
        }
        all.into_iter()
            .map(|(id, info)| Member {
                id: id.to_owned(),
                info: info.clone(),
            })
            .collect()
    }

    fn user_count(&self) -> u64 {
        let mut n = self.members.len() as u64;
        let mut seen: Vec<&str> = Vec::new();
        for r in self.remote.values() {
            for id in r.members.keys() {
                if !self.members.contains_key(id) && !seen.contains(&id.as_str()) {
                    seen.push(id);
                    n += 1;
                }
            }
        }
        n
    }

    fn subscribers(&self) -> u64 {
        self.subscribers + self.remote.values().map(|r| r.subscribers).sum::<u64>()
    }

    fn is_empty(&self) -> bool {
        self.subscribers == 0 && self.members.is_empty() && self.remote.is_empty()
    }
}

/// Counts of one channel across the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub subscribers: u64,
    /// Distinct members (presence channels; 0 elsewhere).
    pub users: u64,
}

pub struct State {
    shards: Box<[Mutex<HashMap<Key, Channel>>]>,
    hasher: RandomState,
}

impl Default for State {
    fn default() -> Self {
        State {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl State {
    fn shard(&self, key: &Key) -> &Mutex<HashMap<Key, Channel>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// A local connection subscribed; `member` is set on presence channels for user tokens.
    pub fn join_local(
        &self,
        key: &Key,
        member: Option<Member>,
        on_change: &mut dyn FnMut(&Key, Change),
    ) -> LocalTransition {
        let mut map = self.shard(key).lock().expect("presence poisoned");
        let ch = map.entry(key.clone()).or_default();
        let mut t = LocalTransition::default();
        ch.subscribers += 1;
        if ch.subscribers == 1 {
            t.occupied = Some(true);
        }
        if let Some(member) = member {
            let was_present = ch.has_member(&member.id);
            let local = ch.members.entry(member.id.clone()).or_default();
            local.connections += 1;
            if local.connections == 1 {
                local.info = member.info.clone();
                t.member = Some((member.clone(), true));
                if !was_present {
                    on_change(key, Change::Added(member));
                }
            }
        }
        t
    }

    /// A local connection left (unsubscribed or closed).
    pub fn leave_local(
        &self,
        key: &Key,
        member_id: Option<&str>,
        on_change: &mut dyn FnMut(&Key, Change),
    ) -> LocalTransition {
        let mut map = self.shard(key).lock().expect("presence poisoned");
        let mut t = LocalTransition::default();
        let Some(ch) = map.get_mut(key) else {
            return t;
        };
        ch.subscribers = ch.subscribers.saturating_sub(1);
        if ch.subscribers == 0 {
            t.occupied = Some(false);
        }
        if let Some(id) = member_id {
            if let MapEntry::Occupied(mut local) = ch.members.entry(id.to_owned()) {
                local.get_mut().connections -= 1;
                if local.get().connections == 0 {
                    let (id, local) = local.remove_entry();
                    let member = Member {
                        id,
                        info: local.info,
                    };
                    t.member = Some((member.clone(), false));
                    if !ch.has_member(&member.id) {
                        on_change(key, Change::Removed(member));
                    }
                }
            }
        }
        if ch.is_empty() {
            map.remove(key);
        }
        t
    }

    /// This node's entry for `key`, as an incremental announcement of the members in `changed`.
    pub fn local_entry(&self, key: &Key, changed: &[String]) -> Entry {
        let map = self.shard(key).lock().expect("presence poisoned");
        let ch = map.get(key);
        let mut entry = Entry {
            key: key.clone(),
            subscribers: ch.map_or(0, |c| c.subscribers),
            full: false,
            joined: Vec::new(),
            left: Vec::new(),
        };
        for id in changed {
            match ch.and_then(|c| c.members.get(id)) {
                Some(m) => entry.joined.push(Member {
                    id: id.clone(),
                    info: m.info.clone(),
                }),
                None => entry.left.push(id.clone()),
            }
        }
        entry
    }

    /// Every channel this node has, with all its members: the heartbeat.
    pub fn local_snapshot(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.lock().expect("presence poisoned");
            for (key, ch) in map.iter() {
                if ch.subscribers == 0 && ch.members.is_empty() {
                    continue;
                }
                out.push(Entry {
                    key: key.clone(),
                    subscribers: ch.subscribers,
                    full: true,
                    joined: ch
                        .members
                        .iter()
                        .map(|(id, m)| Member {
                            id: id.clone(),
                            info: m.info.clone(),
                        })
                        .collect(),
                    left: Vec::new(),
                });
            }
        }
        out
    }

    /// Applies what `node` announced about one channel; its entry lives until `expires` unless
    /// announced again.
    pub fn apply_remote(
        &self,
        node: &str,
        entry: Entry,
        expires: Instant,
        on_change: &mut dyn FnMut(&Key, Change),
    ) {
        let key = entry.key;
        let mut map = self.shard(&key).lock().expect("presence poisoned");
        let ch = map.entry(key.clone()).or_default();
        let mut removed = Vec::new();
        let mut added = Vec::new();
        {
            let remote = ch.remote.entry(node.to_owned()).or_insert_with(|| Remote {
                subscribers: 0,
                members: HashMap::new(),
                expires,
            });
            remote.subscribers = entry.subscribers;
            remote.expires = expires;
            if entry.full {
                let keep: HashMap<String, Option<Value>> =
                    entry.joined.into_iter().map(|m| (m.id, m.info)).collect();
                let gone: Vec<String> = remote
                    .members
                    .keys()
                    .filter(|id| !keep.contains_key(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    if let Some(info) = remote.members.remove(&id) {
                        removed.push(Member { id, info });
                    }
                }
                for (id, info) in keep {
                    if !remote.members.contains_key(&id) {
                        added.push(Member { id, info });
                    }
                }
            } else {
                for id in entry.left {
                    if let Some(info) = remote.members.remove(&id) {
                        removed.push(Member { id, info });
                    }
                }
                for m in entry.joined {
                    if !remote.members.contains_key(&m.id) {
                        added.push(m);
                    }
                }
            }
        }
        for m in removed {
            if !ch.has_member(&m.id) {
                on_change(&key, Change::Removed(m));
            }
        }
        for m in added {
            let was_present = ch.has_member(&m.id);
            if let Some(remote) = ch.remote.get_mut(node) {
                remote.members.insert(m.id.clone(), m.info.clone());
            }
            if !was_present {
                on_change(&key, Change::Added(m));
            }
        }
        if let MapEntry::Occupied(r) = ch.remote.entry(node.to_owned()) {
            if r.get().subscribers == 0 && r.get().members.is_empty() {
                r.remove();
            }
        }
        if ch.is_empty() {
            map.remove(&key);
        }
    }

    /// Drops every entry of another node not refreshed by `now`; returns how many.
    pub fn expire(&self, now: Instant, on_change: &mut dyn FnMut(&Key, Change)) -> usize {
        let mut expired = 0;
        for shard in self.shards.iter() {
            let mut map = shard.lock().expect("presence poisoned");
            map.retain(|key, ch| {
                let stale: Vec<String> = ch
                    .remote
                    .iter()
                    .filter(|(_, r)| r.expires <= now)
                    .map(|(node, _)| node.clone())
                    .collect();
                for node in stale {
                    expired += 1;
                    if let Some(r) = ch.remote.remove(&node) {
                        for (id, info) in r.members {
                            if !ch.has_member(&id) {
                                on_change(key, Change::Removed(Member { id, info }));
                            }
                        }
                    }
                }
                !ch.is_empty()
            });
        }
        expired
    }

    pub fn members(&self, key: &Key) -> Vec<Member> {
        let map = self.shard(key).lock().expect("presence poisoned");
        map.get(key).map(Channel::members).unwrap_or_default()
    }

    /// Whether `id` is a member of `key` anywhere, and its info.
    /// Whether `id` is a member of `key` anywhere, or the channel has fewer than `max`.
    pub fn has_room(&self, key: &Key, id: &str, max: usize) -> bool {
        let map = self.shard(key).lock().expect("presence poisoned");
        map.get(key).is_none_or(|c| {
            c.members.contains_key(id)
                || c.remote.values().any(|r| r.members.contains_key(id))
                || c.user_count() < max as u64
        })
    }

    pub fn member(&self, key: &Key, id: &str) -> Option<Option<Value>> {
        let map = self.shard(key).lock().expect("presence poisoned");
        map.get(key).and_then(|c| c.info(id))
    }

    pub fn counts(&self, key: &Key) -> Counts {
        let map = self.shard(key).lock().expect("presence poisoned");
        map.get(key).map_or(
            Counts {
                subscribers: 0,
                users: 0,
            },
            |c| Counts {
                subscribers: c.subscribers(),
                users: c.user_count(),
            },
        )
    }

    /// Channels of `app` with at least one subscriber anywhere, whose name starts with
    /// `prefix`, ordered by name.
    pub fn channels(&self, app: &str, prefix: &str) -> Vec<(String, Counts)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.lock().expect("presence poisoned");
            for (key, ch) in map.iter() {
                if key.app == app && key.channel.starts_with(prefix) {
                    let subscribers = ch.subscribers();
                    if subscribers > 0 {
                        out.push((
                            key.channel.clone(),
                            Counts {
                                subscribers,
                                users: ch.user_count(),
                            },
                        ));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key() -> Key {
        Key {
            app: "a".into(),
            channel: "presence.r".into(),
        }
    }

    fn m(id: &str) -> Member {
        Member {
            id: id.into(),
            info: None,
        }
    }

    #[test]
    fn a_member_counts_once_across_connections_and_nodes() {
        let s = State::default();
        let changes = std::cell::RefCell::new(Vec::new());
        let mut f = |_: &Key, c: Change| changes.borrow_mut().push(c);
        let t = s.join_local(&key(), Some(m("alice")), &mut f);
        assert_eq!(t.occupied, Some(true));
        assert_eq!(t.member, Some((m("alice"), true)));
        let t = s.join_local(&key(), Some(m("alice")), &mut f);
        assert_eq!(t, LocalTransition::default());
        let later = Instant::now() + Duration::from_secs(60);
        s.apply_remote(
            "n2",
            Entry {
                key: key(),
                subscribers: 1,
                full: false,
                joined: vec![m("alice"), m("bob")],
                left: vec![],
            },
            later,
            &mut f,
        );
        assert_eq!(s.counts(&key()).subscribers, 3);
        assert_eq!(s.counts(&key()).users, 2);
        s.leave_local(&key(), Some("alice"), &mut f);
        let t = s.leave_local(&key(), Some("alice"), &mut f);
        assert_eq!(t.occupied, Some(false));
        // Alice is still on n2: no removal yet.
        assert_eq!(
            *changes.borrow(),
            vec![Change::Added(m("alice")), Change::Added(m("bob"))]
        );
        let n = s.expire(later, &mut f);
        assert_eq!(n, 1);
        assert!(changes.borrow()[2..].contains(&Change::Removed(m("alice"))));
        assert!(changes.borrow()[2..].contains(&Change::Removed(m("bob"))));
        assert_eq!(changes.borrow().len(), 4);
        assert_eq!(s.counts(&key()).subscribers, 0);
        assert!(s.channels("a", "").is_empty());
    }

    #[test]
    fn a_full_entry_replaces_the_nodes_members() {
        let s = State::default();
        let changes = std::cell::RefCell::new(Vec::new());
        let mut f = |_: &Key, c: Change| changes.borrow_mut().push(c);
        let later = Instant::now() + Duration::from_secs(60);
        let entry = |joined: Vec<Member>| Entry {
            key: key(),
            subscribers: joined.len() as u64,
            full: true,
            joined,
            left: vec![],
        };
        s.apply_remote("n2", entry(vec![m("a"), m("b")]), later, &mut f);
        s.apply_remote("n2", entry(vec![m("b"), m("c")]), later, &mut f);
        assert_eq!(
            s.members(&key())
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert!(changes.borrow().contains(&Change::Removed(m("a"))));
        assert!(changes.borrow().contains(&Change::Added(m("c"))));
        s.apply_remote("n2", entry(vec![]), later, &mut f);
        assert!(s.channels("a", "").is_empty());
    }
}
