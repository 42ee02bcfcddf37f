//! The bus seam: how gateways exchange messages. Two implementations: [`memory::MemoryBus`]
//! (one process, `waas dev`) and NATS (cluster mode).
//!
//! Guarantees every implementation gives, and no more: at-most-once delivery; messages from one
//! publisher on one subject arrive in the order published; a subscription receives only what is
//! published after `subscribe` returns. Subjects follow NATS syntax: `.`-separated tokens, `*`
//! matches one token and `>` the rest in subscriptions.
//!
//! Request/reply: a subject is used either for pub/sub or for requests, never both. `serve`
//! receives requests (each goes to one member of a queue group, or to every responder without
//! one); a responder answers by publishing to the request's `reply` subject.
//!
//! Trace context: when the process traces ([`crate::trace`]), `publish` and `request` carry the
//! span they are called in as a `traceparent` (a NATS header; beside the payload in memory), and
//! subscribers ([`Bus::subscribe_traced`]) and responders ([`BusRequest::trace`]) get it back.
//! When it does not, nothing is carried and nothing is read.

pub mod inline;
pub mod memory;
pub mod nats;
pub mod nats_auth;

use crate::trace::TraceParent;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    #[error("no responder for {0:?}")]
    NoResponders(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
}

/// Checks a subject the way NATS reads it, so both implementations refuse the same subjects:
/// non-empty `.`-separated tokens without whitespace; `*` and a final `>` only where wildcards
/// are allowed (subscriptions).
pub fn check_subject(subject: &str, allow_wildcards: bool) -> Result<(), BusError> {
    let count = subject.split('.').count();
    let bad = subject.is_empty()
        || subject.contains(char::is_whitespace)
        || subject.split('.').enumerate().any(|(i, t)| {
            t.is_empty()
                || (!allow_wildcards && (t == "*" || t == ">"))
                || (t == ">" && i + 1 != count)
        });
    if bad {
        Err(BusError::InvalidSubject(subject.to_owned()))
    } else {
        Ok(())
    }
}

/// A bus's connections, as [`Bus::reconnects`] reports them.
#[derive(Clone)]
pub struct Reconnects {
    count: Arc<dyn Fn() -> u64 + Send + Sync>,
    changed: tokio::sync::watch::Receiver<u64>,
}

impl Reconnects {
    /// `count` gives the connections made so far; `changed` changes soon after each one.
    pub fn new(
        count: Arc<dyn Fn() -> u64 + Send + Sync>,
        changed: tokio::sync::watch::Receiver<u64>,
    ) -> Self {
        Reconnects { count, changed }
    }

    /// Connections made so far, the first included. Counted before the client takes anything
    /// from a new connection: a subscriber that reads it after receiving a message sees the
    /// connection that message came over (or a later one). An atomic load: cheap enough to read
    /// for every message.
    pub fn count(&self) -> u64 {
        (self.count)()
    }

    /// Returns soon after a new connection is made (possibly after the messages it brings);
    /// never, once the bus is gone. For subscribers with no message to notice it by.
    pub async fn changed(&mut self) {
        if self.changed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A live subscription; dropping it unsubscribes.
pub type BusSubscription = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// A message with the trace context it was published in.
#[derive(Debug, Clone)]
pub struct BusMessage {
    pub payload: Bytes,
    /// The publisher's span; `None` when either side does not trace.
    pub trace: Option<TraceParent>,
}

/// A live subscription that keeps each message's trace context; dropping it unsubscribes.
pub type TracedSubscription = Pin<Box<dyn Stream<Item = BusMessage> + Send>>;

/// A request as a responder receives it.
#[derive(Debug, Clone)]
pub struct BusRequest {
    pub subject: String,
    pub payload: Bytes,
    /// Where to publish the answer; `None` when the sender expects none.
    pub reply: Option<String>,
    /// The requester's span; `None` when either side does not trace.
    pub trace: Option<TraceParent>,
}

/// Requests for a responder; dropping it stops serving.
pub type RequestStream = Pin<Box<dyn Stream<Item = BusRequest> + Send>>;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;
    /// Messages published to `subject` (wildcards allowed) from now on, with their trace context.
    async fn subscribe_traced(&self, subject: &str) -> Result<TracedSubscription, BusError>;
    /// Like [`Bus::subscribe_traced`], with each message first offered to `inline` in the
    /// publisher's call ([`inline`]); what it gives back comes out of the stream. Only a bus
    /// inside one process can do that: the default never offers anything, and every message
    /// comes out of the stream.
    async fn subscribe_inline(
        &self,
        subject: &str,
        inline: Arc<dyn inline::Inline>,
    ) -> Result<TracedSubscription, BusError> {
        let _ = inline;
        self.subscribe_traced(subject).await
    }
    /// Like [`Bus::subscribe_traced`], payloads only.
    async fn subscribe(&self, subject: &str) -> Result<BusSubscription, BusError> {
        use futures_util::StreamExt;
        let messages = self.subscribe_traced(subject).await?;
        Ok(Box::pin(messages.map(|m| m.payload)))
    }
    /// Sends a request and waits up to `timeout` for the first reply.
    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError>;
    /// Receives requests sent to `subject`, sharing them within `queue_group` when given.
    async fn serve(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<RequestStream, BusError>;
    /// Like [`Bus::serve`], with an orderly end: once `stop` fires (or its sender is dropped) no
    /// new request is routed to this responder, every request already on its way to it is still
    /// yielded, and then the stream ends. So a responder that leaves can answer (or refuse)
    /// each request it was given instead of letting its callers time out.
    ///
    /// The default ends right after `stop`, yielding only the requests already buffered;
    /// implementations that know better (NATS: drain) override it.
    async fn serve_until(
        &self,
        subject: &str,
        queue_group: Option<&str>,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<RequestStream, BusError> {
        use futures_util::{FutureExt, StreamExt};
        let inner = self.serve(subject, queue_group).await?;
        Ok(Box::pin(futures_util::stream::unfold(
            (inner, Some(stop)),
            |(mut inner, stop)| async move {
                if let Some(mut signal) = stop {
                    tokio::select! {
                        biased;
                        _ = &mut signal => {}
                        r = inner.next() => return r.map(|r| (r, (inner, Some(signal)))),
                    }
                }
                inner
                    .next()
                    .now_or_never()
                    .flatten()
                    .map(|r| (r, (inner, None)))
            },
        )))
    }
    /// Whether the bus can take publishes now (drives `/readyz`).
    fn is_ready(&self) -> bool;

    /// How a subscriber learns that the bus lost its connection and came back, to look for
    /// what was published while it was cut off (the hub resyncs its channels from history,
    /// `waas_gateway::resync`). `None` for a bus that cannot lose its connection (memory).
    fn reconnects(&self) -> Option<Reconnects> {
        None
    }

    /// How many subscriptions would receive a publish to `subject`, for a bus that knows every
    /// one of them (memory: they are all in this process); `None` when subscribers elsewhere may
    /// listen (NATS). Lets a publisher that hears its own messages skip encoding what only it
    /// would hear (presence announcements in `waas dev`).
    fn listeners(&self, subject: &str) -> Option<usize> {
        let _ = subject;
        None
    }
}
