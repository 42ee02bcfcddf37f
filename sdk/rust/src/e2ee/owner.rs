//! The owner of an encrypted channel (`docs/e2ee.md#roles-owner-and-members`): follows the
//! members of a presence channel and keeps the room key in step with them — the current version
//! shared with every member on start and with each member that joins, a new version (wrapped
//! for those who remain) whenever one leaves.

use super::{E2ee, E2eeError};
use crate::presence::PresenceEvent;
use futures_util::{FutureExt, StreamExt};
use std::collections::BTreeSet;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// What the owner did, for applications (and tests) that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerEvent {
    /// Version `v` was shared with `members` (on start, or when they joined).
    Shared { v: u32, members: Vec<String> },
    /// A member left: version `v` was made and shared with the remaining `members`.
    Rotated {
        v: u32,
        removed: String,
        members: Vec<String>,
    },
    /// Sharing or rotating failed; the owner goes on with the next presence event.
    Failed { error: String },
}

/// A running owner; dropping it stops it.
#[derive(Debug)]
pub struct Owner {
    task: JoinHandle<()>,
    events: broadcast::Sender<OwnerEvent>,
}

impl Owner {
    /// Owner events from now on.
    pub fn events(&self) -> broadcast::Receiver<OwnerEvent> {
        self.events.subscribe()
    }
}

/// What a batch of presence events changed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Change {
    added: Vec<String>,
    removed: Vec<String>,
}

/// Applies presence events of `presence` to `members`. A full list (the first, or a fresh one
/// after a reconnect) counts as everyone in it joining and everyone missing from it leaving:
/// members who left while the owner was disconnected were never announced.
fn apply(members: &mut BTreeSet<String>, events: Vec<PresenceEvent>, presence: &str) -> Change {
    let mut change = Change::default();
    let join = |change: &mut Change, id: String| {
        change.removed.retain(|r| *r != id);
        change.added.push(id);
    };
    for event in events {
        match event {
            PresenceEvent::Members {
                channel,
                members: list,
            } if channel == presence => {
                let now: BTreeSet<String> = list.into_iter().map(|m| m.id).collect();
                for gone in members.difference(&now) {
                    change.added.retain(|a| a != gone);
                    change.removed.push(gone.clone());
                }
                for new in now.difference(members) {
                    join(&mut change, new.clone());
                }
                *members = now;
            }
            // Announcements may repeat what is known already: only real changes count.
            PresenceEvent::MemberAdded { channel, member }
                if channel == presence && !members.contains(&member.id) =>
            {
                members.insert(member.id.clone());
                join(&mut change, member.id);
            }
            PresenceEvent::MemberRemoved { channel, member }
                if channel == presence && members.contains(&member.id) =>
            {
                members.remove(&member.id);
                change.added.retain(|a| *a != member.id);
                change.removed.push(member.id);
            }
            _ => {}
        }
    }
    change
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl E2ee {
    /// Owns `channel`, whose members are those of the presence channel `presence` (often the
    /// same channel). Takes the room keys it already has from the directory, makes version 1
    /// when there is none, subscribes to `presence` and shares or rotates from then on. Needs an
    /// API key or `caps.share` for `channel` (else `not_shared`) and the right to subscribe to
    /// `presence`.
    pub async fn own(&self, channel: &str, presence: &str) -> Result<Owner, E2eeError> {
        let mut presence_events = self.client.presence_events();
        self.fetch(channel).await?;
        if self.keyring.current(channel).is_none() {
            self.rotate(channel, &[]).await?;
        }
        let subscription = self.client.subscribe(presence).await?;
        let (events, _) = broadcast::channel(64);
        let tx = events.clone();
        let me = self.clone();
        let (channel, presence) = (channel.to_owned(), presence.to_owned());
        let task = tokio::spawn(async move {
            // Read and dropped: the owner only needs the presence channel's members, but an
            // unread subscription would fill its buffer and warn about every message.
            let mut subscription = subscription;
            let mut members: BTreeSet<String> = BTreeSet::new();
            loop {
                let first = tokio::select! {
                    event = presence_events.next() => match event {
                        Some(event) => event,
                        None => break,
                    },
                    message = subscription.next() => match message {
                        Some(_) => continue,
                        None => break,
                    },
                };
                // Changes that arrived together (a gateway's members leaving at once) make one
                // rotation, not one each.
                let mut batch = vec![first];
                while let Some(Some(event)) = presence_events.next().now_or_never() {
                    batch.push(event);
                }
                let change = apply(&mut members, batch, &presence);
                let all: Vec<String> = members.iter().cloned().collect();
                let outcome = if !change.removed.is_empty() {
                    me.rotate(&channel, &all).await.map(|key| {
                        change
                            .removed
                            .into_iter()
                            .map(|removed| OwnerEvent::Rotated {
                                v: key.v,
                                removed,
                                members: all.clone(),
                            })
                            .collect()
                    })
                } else if !change.added.is_empty() {
                    me.share_current(&channel, change.added)
                        .await
                        .map(|e| vec![e])
                } else {
                    continue;
                };
                let events = outcome.unwrap_or_else(|e| {
                    tracing::warn!(%channel, error = %e, "room key sharing failed");
                    vec![OwnerEvent::Failed {
                        error: e.to_string(),
                    }]
                });
                for event in events {
                    let _ = tx.send(event);
                }
            }
        });
        Ok(Owner { task, events })
    }

    async fn share_current(
        &self,
        channel: &str,
        members: Vec<String>,
    ) -> Result<OwnerEvent, E2eeError> {
        let current = self
            .keyring
            .current(channel)
            .ok_or_else(|| E2eeError::UnknownKey {
                channel: channel.to_owned(),
                kid: String::new(),
                v: 0,
            })?;
        self.share(channel, &current, &members).await?;
        Ok(OwnerEvent::Shared {
            v: current.v,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::Member;

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            info: None,
        }
    }

    #[test]
    fn batches_of_presence_events_become_one_change() {
        let p = "presence.r";
        let mut members = BTreeSet::new();
        let list = |ids: &[&str]| PresenceEvent::Members {
            channel: p.into(),
            members: ids.iter().map(|id| member(id)).collect(),
        };
        let added = |id: &str| PresenceEvent::MemberAdded {
            channel: p.into(),
            member: member(id),
        };
        let removed = |id: &str| PresenceEvent::MemberRemoved {
            channel: p.into(),
            member: member(id),
        };
        let c = apply(&mut members, vec![list(&["a", "b"])], p);
        assert_eq!((c.added, c.removed), (vec!["a".into(), "b".into()], vec![]));
        // Another channel's events and repeated announcements change nothing.
        let other = PresenceEvent::MemberAdded {
            channel: "presence.other".into(),
            member: member("z"),
        };
        assert_eq!(
            apply(&mut members, vec![other, added("a")], p),
            Change::default()
        );
        // Two leave at once: one change, both removed; one joins and leaves: nothing to share.
        let c = apply(
            &mut members,
            vec![removed("a"), removed("b"), added("c"), removed("c")],
            p,
        );
        assert_eq!(
            (c.added, c.removed),
            (vec![], vec!["a".into(), "b".into(), "c".into()])
        );
        // A fresh list after a reconnect: b is back and d is new; then b is missing from one.
        let c = apply(&mut members, vec![list(&["b", "d"])], p);
        assert_eq!((c.added, c.removed), (vec!["b".into(), "d".into()], vec![]));
        let c = apply(&mut members, vec![list(&["d"])], p);
        assert_eq!((c.added, c.removed), (vec![], vec!["b".into()]));
        assert_eq!(members.into_iter().collect::<Vec<_>>(), ["d"]);
    }
}
