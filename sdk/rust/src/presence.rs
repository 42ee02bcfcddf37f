//! Presence: who else is on a presence channel (a channel whose first segment is `presence`,
//! see `docs/protocol.md#presence`).
//!
//! Subscribe to the channel as to any other; [`crate::Client::members`] asks the server for its
//! members, and [`crate::Client::presence_events`] streams what the server says about members of
//! the presence channels this client is subscribed to: the full list right after each
//! subscribe (and again after every reconnect), then each member that joins or leaves. A member
//! is a user (token `sub`) counted once however many connections it has.
//!
//! The list and the events are eventually consistent across gateways: keep a map by member id,
//! replace it on [`PresenceEvent::Members`], and apply added/removed idempotently.

use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::broadcast;
pub use waas_protocol::presence::{is_presence_name, Member};

/// How many presence events a slow [`PresenceEvents`] listener may lag before it skips some.
pub const PRESENCE_BUFFER: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceEvent {
    /// Every member of `channel` (after a subscribe or a [`crate::Client::members`] query).
    Members {
        channel: String,
        members: Vec<Member>,
    },
    MemberAdded {
        channel: String,
        member: Member,
    },
    /// A member's last connection left `channel`.
    MemberRemoved {
        channel: String,
        member: Member,
    },
}

/// A stream of [`PresenceEvent`]s; see [`crate::Client::presence_events`].
pub struct PresenceEvents {
    inner: BoxStream<'static, PresenceEvent>,
}

impl PresenceEvents {
    pub(crate) fn new(rx: broadcast::Receiver<PresenceEvent>) -> Self {
        let inner = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "presence events listener lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed();
        PresenceEvents { inner }
    }
}

impl Stream for PresenceEvents {
    type Item = PresenceEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for PresenceEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceEvents").finish_non_exhaustive()
    }
}
