//! The owner of an encrypted channel (`docs/e2ee.md#roles-owner-and-members`): follows the
//! members of a presence channel and keeps the room key in step with them — the current version
//! shared with every member on start and with each member that joins, a new version (wrapped
//! for those who remain) whenever one leaves.

use super::{E2ee, E2eeError};
use crate::presence::PresenceEvent;
use futures_util::StreamExt;
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
                let event = tokio::select! {
                    event = presence_events.next() => match event {
                        Some(event) => event,
                        None => break,
                    },
                    message = subscription.next() => match message {
                        Some(_) => continue,
                        None => break,
                    },
                };
                let outcome = match event {
                    PresenceEvent::Members {
                        channel: c,
                        members: list,
                    } if c == presence => {
                        // The first list, or a fresh one after a reconnect: members that left
                        // meanwhile were never announced, so they are found here.
                        let now: BTreeSet<String> = list.into_iter().map(|m| m.id).collect();
                        let removed: Vec<String> = members.difference(&now).cloned().collect();
                        members = now;
                        let all: Vec<String> = members.iter().cloned().collect();
                        if removed.is_empty() {
                            me.share_current(&channel, all).await.map(|e| vec![e])
                        } else {
                            me.rotate(&channel, &all).await.map(|key| {
                                removed
                                    .into_iter()
                                    .map(|removed| OwnerEvent::Rotated {
                                        v: key.v,
                                        removed,
                                        members: all.clone(),
                                    })
                                    .collect()
                            })
                        }
                    }
                    PresenceEvent::MemberAdded { channel: c, member } if c == presence => {
                        members.insert(member.id.clone());
                        me.share_current(&channel, vec![member.id])
                            .await
                            .map(|e| vec![e])
                    }
                    PresenceEvent::MemberRemoved { channel: c, member } if c == presence => {
                        if !members.remove(&member.id) {
                            continue;
                        }
                        let remaining: Vec<String> = members.iter().cloned().collect();
                        me.rotate(&channel, &remaining).await.map(|key| {
                            vec![OwnerEvent::Rotated {
                                v: key.v,
                                removed: member.id,
                                members: remaining,
                            }]
                        })
                    }
                    _ => continue,
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
