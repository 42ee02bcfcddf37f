//! A live subscription: a [`Stream`] of the channel's messages.
//!
//! Each subscription has its own bounded buffer (`subscription_capacity`, default 1024). The
//! connection task never waits for an application to read: when the buffer is full, newer
//! messages for this subscription are dropped and counted in [`Subscription::dropped`], and the
//! gap shows in the offsets. Blocking instead would stall every other subscription and the
//! heartbeat behind one slow reader, and eventually get the whole connection closed by the server
//! as a slow consumer.
//!
//! The stream ends when the client is closed, stops for good, or the server refuses the
//! subscription when restoring it after a reconnect (see [`crate::ConnectionEvent`]).

use crate::client::Client;
use crate::error::Result;
use crate::message::Message;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Dropping it unsubscribes (without waiting); [`Subscription::unsubscribe`] waits for the
/// server's ack.
pub struct Subscription {
    channel: String,
    id: u64,
    rx: mpsc::Receiver<Message>,
    dropped: Arc<AtomicU64>,
    client: Client,
    active: bool,
}

impl Subscription {
    pub(crate) fn new(
        channel: String,
        id: u64,
        rx: mpsc::Receiver<Message>,
        dropped: Arc<AtomicU64>,
        client: Client,
    ) -> Self {
        Subscription {
            channel,
            id,
            rx,
            dropped,
            client,
            active: true,
        }
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Messages dropped so far because this subscription's buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Unsubscribes and waits until the server has confirmed (when this was the last local
    /// subscription to the channel; otherwise there is nothing to ask the server).
    pub async fn unsubscribe(mut self) -> Result<()> {
        self.active = false;
        self.client
            .unsubscribe(std::mem::take(&mut self.channel), self.id)
            .await
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.active {
            self.client
                .unsubscribe_now(std::mem::take(&mut self.channel), self.id);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("dropped", &self.dropped())
            .finish()
    }
}
