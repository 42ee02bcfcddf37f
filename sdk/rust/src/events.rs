//! Connection lifecycle notifications.
//!
//! Reconnects are invisible to subscriptions by design, so applications (and tests) that need to
//! know about them — to show "offline", to wait for a reconnect instead of sleeping — listen here.
//! Events are broadcast: each [`Events`] stream sees every event sent after it was created; a
//! listener that falls more than [`EVENT_BUFFER`] events behind skips the oldest.

use crate::error::Error;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events a slow [`Events`] listener may lag before it skips some.
pub const EVENT_BUFFER: usize = 64;

#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A connection is ready and every subscription is live again (after a reconnect, this is
    /// sent once the resubscriptions were acknowledged, so a publish after it is delivered).
    Connected {
        connection_id: String,
        /// The gateway URL this connection went to.
        url: String,
    },
    /// The connection was lost. `code` is the WebSocket close code when the server sent one.
    Disconnected { code: Option<u16>, reason: String },
    /// A reconnect attempt (1-based) starts after waiting `delay`.
    Reconnecting { attempt: u32, delay: Duration },
    /// After a reconnect the server refused a subscription that used to be live (the fresh token
    /// no longer grants it, ...). Its streams end.
    ResubscribeFailed { channel: String, error: Arc<Error> },
    /// After a reconnect, the messages `channel` missed while disconnected could not all be
    /// recovered (the server's history no longer holds them, or the channel's epoch changed):
    /// its streams go on, with a gap. Fetch what matters from your own backend. Messages that
    /// were recovered are delivered in order before new ones, and none twice. Also sent when
    /// the server reports a `gap`: its own link to the bus was down and history could not
    /// cover what `channel` missed meanwhile (`docs/protocol.md#gap`).
    Unrecovered { channel: String },
    /// The client is finished: `None` after `close()` or when every handle was dropped, otherwise
    /// why it stopped (a close code that forbids reconnecting, reconnects given up).
    Closed { error: Option<Arc<Error>> },
}

/// A stream of [`ConnectionEvent`]s; see [`crate::Client::events`].
pub struct Events {
    inner: BoxStream<'static, ConnectionEvent>,
}

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<ConnectionEvent>) -> Self {
        let inner = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(skipped = n, "connection events listener lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed();
        Events { inner }
    }
}

impl Stream for Events {
    type Item = ConnectionEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

/// What the client is doing now; see [`crate::Client::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Connected with every subscription live (from the same moment as
    /// [`ConnectionEvent::Connected`]); `sub` is who the server authenticated.
    Connected {
        connection_id: String,
        sub: String,
        /// The gateway URL of this connection.
        url: String,
    },
    /// Lost the connection and getting it back, until resubscribed.
    Reconnecting,
    Closed,
}
