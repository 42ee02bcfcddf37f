//! The bus over NATS (async-nats), for cluster mode: every gateway node holds one connection, and
//! subjects map one to one onto NATS subjects, so the server routes each channel only to the
//! nodes that subscribed to it.
//!
//! Outages: the client reconnects on its own, forever, and replays its subscriptions when it is
//! back. While it is disconnected, `is_ready` is false and publishes, requests and new
//! subscriptions fail at once with [`BusError::Unavailable`] instead of queueing in the client,
//! where they would either block the caller or be delivered late with no one told. A publish
//! accepted in the moment before the client notices the outage can still be lost: the bus is
//! at-most-once.

use super::nats_auth::{self, NatsAuth, NatsTls};
use super::{
    check_subject, Bus, BusError, BusMessage, BusRequest, RequestStream, TracedSubscription,
};
use crate::redact;
use crate::trace::{self, TraceParent};
use async_nats::connection::State;
use async_nats::{
    Client, ConnectErrorKind, ConnectOptions, Event, HeaderMap, Message, PublishErrorKind, Request,
    RequestErrorKind, SubscribeError, SubscribeErrorKind,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How a [`NatsBus`] connects. Every field has a default that suits a gateway node.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Connection name shown by the server (`/connz`), to tell nodes apart. Default
    /// `"waas-gateway"`.
    pub name: String,
    /// Messages the client buffers per subscription before it drops them and reports a slow
    /// consumer; the gateway passes `Limits::bus_channel_capacity`. Default 65536.
    pub subscription_capacity: usize,
    /// Bound on the first connection, so a node with a wrong URL fails at start-up instead of
    /// hanging. Default 5 s.
    pub connect_timeout: Duration,
    /// How often the client pings the server. Decides how soon a silently dead link (no RST,
    /// e.g. a partition) turns `/readyz` red: about two intervals. Default 10 s (async-nats's
    /// own default of 60 s would keep a cut-off node "ready" for two minutes).
    pub ping_interval: Duration,
    /// How long `subscribe` and `serve` wait for the server to confirm the new subscription.
    /// Default 5 s.
    pub confirm_timeout: Duration,
    /// Credentials, when the URLs carry none. Default none.
    pub auth: NatsAuth,
    /// TLS to NATS. Default: TLS only if the server asks for it, system roots.
    pub tls: NatsTls,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            name: "waas-gateway".into(),
            subscription_capacity: 65536,
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(5),
            auth: NatsAuth::None,
            tls: NatsTls::default(),
        }
    }
}

/// A [`Bus`] on a NATS connection. Cheap to share behind an `Arc`; all nodes of a deployment
/// point at the same NATS cluster.
pub struct NatsBus {
    client: Client,
    confirm_timeout: Duration,
    /// Messages the client buffers per subscription ([`NatsOptions::subscription_capacity`]).
    subscription_capacity: usize,
    /// Changes on each `Connected` event ([`Bus::reconnects`]).
    connected: tokio::sync::watch::Receiver<u64>,
}

// Compile-time check that the NATS bus fits the seam the gateway uses.
const _: fn(NatsBus) -> Arc<dyn Bus> = |bus| Arc::new(bus);

impl NatsBus {
    /// Connects to `urls` (one NATS URL or several separated by commas, e.g.
    /// `nats://a:4222,nats://b:4222`), with the credentials of `options.auth` or, instead, those
    /// the URLs carry (`nats://user:pass@host`, `nats://token@host`; see
    /// [`nats_auth`](super::nats_auth)). Errors and logs show the URLs without credentials.
    ///
    /// The first connection is not retried: a node that cannot reach NATS at start-up, or whose
    /// credentials NATS refuses, exits with this error rather than reporting "not ready"
    /// forever. After that the client reconnects without limit, with backoff capped at 4 s.
    pub async fn connect(urls: &str, options: NatsOptions) -> Result<NatsBus, BusError> {
        let shown = redact::url(urls);
        let (addrs, from_urls) = nats_auth::parse_urls(urls)?;
        let name = options.name.clone();
        let (connected_tx, connected) = tokio::sync::watch::channel(0);
        let connected_events = ConnectedEvents(Arc::new(connected_tx));
        let connect = ConnectOptions::new()
            .name(&options.name)
            .max_reconnects(None)
            .connection_timeout(options.connect_timeout)
            .ping_interval(options.ping_interval)
            .subscription_capacity(options.subscription_capacity.max(1))
            .event_callback(move |event| {
                connected_events.note(&event);
                log_event(name.clone(), event)
            });
        let client = nats_auth::apply(connect, from_urls, &options.auth, &options.tls)
            .await?
            .connect(addrs)
            .await
            .map_err(|e| {
                BusError::Unavailable(match e.kind() {
                    ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                        format!("NATS at {shown} refused the credentials ({e})")
                    }
                    _ => format!("cannot connect to NATS at {shown}: {e}"),
                })
            })?;
        tracing::info!(urls = %shown, name = options.name, "connected to NATS");
        Ok(NatsBus {
            client,
            confirm_timeout: options.confirm_timeout,
            subscription_capacity: options.subscription_capacity.max(1),
            connected,
        })
    }

    /// The NATS connection, for JetStream (`crate::history::jetstream`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Messages the client buffers per subscription before it drops them.
    pub fn subscription_capacity(&self) -> usize {
        self.subscription_capacity
    }

    pub(crate) fn check_connected(&self) -> Result<(), BusError> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            State::Disconnected | State::Pending => {
                Err(BusError::Unavailable("NATS disconnected".into()))
            }
        }
    }

    /// Waits until the server has processed everything this connection sent so far, the new
    /// SUB included. `Client::flush` is not enough: it only empties the socket buffer, and a
    /// client that publishes through another node right after our subscribe returns could
    /// still beat the SUB to the server. A request to a subject no one listens on comes back
    /// as "no responders" only after the server has read it, and it reads a connection in
    /// order: one round trip, like a PING, which async-nats does not expose.
    pub(crate) async fn confirm(&self) -> Result<(), BusError> {
        let probe = self.client.new_inbox();
        let request = Request::new().timeout(Some(self.confirm_timeout));
        match self.client.send_request(probe, request).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
            Err(e) if e.kind() == RequestErrorKind::TimedOut => {
                Err(BusError::Unavailable(format!(
                    "NATS did not confirm the subscription within {:?}",
                    self.confirm_timeout
                )))
            }
            Err(e) => Err(BusError::Unavailable(format!(
                "NATS did not confirm the subscription: {e}"
            ))),
        }
    }
}

/// Wakes [`Reconnects`](super::Reconnects) watchers on each `Connected` event; the count itself
/// is the client's own (`Statistics::connects`), which is exact where the event is late.
#[derive(Clone)]
struct ConnectedEvents(Arc<tokio::sync::watch::Sender<u64>>);

impl ConnectedEvents {
    fn note(&self, event: &Event) {
        if matches!(event, Event::Connected) {
            self.0.send_modify(|n| *n += 1);
        }
    }
}

async fn log_event(name: String, event: Event) {
    match event {
        Event::Connected => tracing::info!(name, "NATS connection (re)established"),
        Event::Disconnected => {
            tracing::warn!(
                name,
                "NATS connection lost; reconnecting, not ready meanwhile"
            )
        }
        Event::SlowConsumer(sid) => tracing::warn!(
            name,
            sid,
            "NATS dropped messages for a subscription that fell behind (slow consumer)"
        ),
        Event::LameDuckMode => {
            tracing::warn!(name, "NATS server is shutting down (lame duck mode)")
        }
        Event::ServerError(e) => tracing::warn!(name, error = %e, "NATS server error"),
        Event::ClientError(e) => tracing::warn!(name, error = %e, "NATS client error"),
        Event::Closed => tracing::info!(name, "NATS connection closed"),
        Event::Draining => tracing::debug!(name, "NATS connection draining"),
    }
}

fn subscribe_error(subject: &str, queue_group: Option<&str>, e: SubscribeError) -> BusError {
    match e.kind() {
        SubscribeErrorKind::InvalidSubject => BusError::InvalidSubject(subject.to_owned()),
        SubscribeErrorKind::InvalidQueueName => {
            BusError::InvalidSubject(queue_group.unwrap_or_default().to_owned())
        }
        SubscribeErrorKind::Other => BusError::Unavailable(format!("NATS subscribe failed: {e}")),
    }
}

/// The `traceparent` header of the span this code runs in; `None` (and no header map) when the
/// process does not trace.
pub(crate) fn trace_headers() -> Option<HeaderMap> {
    let parent = TraceParent::current()?;
    let mut headers = HeaderMap::new();
    headers.insert(trace::HEADER, parent.header());
    Some(headers)
}

/// The trace context a message came with; not even looked for when the process does not trace.
pub(crate) fn trace_of(message: &Message) -> Option<TraceParent> {
    if !trace::enabled() {
        return None;
    }
    let value = message.headers.as_ref()?.get(trace::HEADER)?;
    TraceParent::parse(value.as_str())
}

fn request_of(message: Message) -> BusRequest {
    BusRequest {
        trace: trace_of(&message),
        subject: message.subject.to_string(),
        payload: message.payload,
        reply: message.reply.map(|r| r.to_string()),
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        self.check_connected()?;
        let _timer = crate::metrics::METRICS.bus_publish.start_timer();
        let sent = match trace_headers() {
            None => self.client.publish(subject.to_owned(), payload).await,
            Some(headers) => {
                self.client
                    .publish_with_headers(subject.to_owned(), headers, payload)
                    .await
            }
        };
        sent.map_err(|e| match e.kind() {
            PublishErrorKind::InvalidSubject => BusError::InvalidSubject(subject.to_owned()),
            PublishErrorKind::MaxPayloadExceeded => {
                BusError::Unavailable(format!("NATS refused the message: {e}"))
            }
            PublishErrorKind::Send => BusError::Unavailable(format!("NATS publish failed: {e}")),
        })
    }

    async fn subscribe_traced(&self, subject: &str) -> Result<TracedSubscription, BusError> {
        check_subject(subject, true)?;
        self.check_connected()?;
        let subscriber = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| subscribe_error(subject, None, e))?;
        // On error the subscriber is dropped here, which unsubscribes: nothing is left behind.
        self.confirm().await?;
        Ok(Box::pin(subscriber.map(|message| BusMessage {
            trace: trace_of(&message),
            payload: message.payload,
        })))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        check_subject(subject, false)?;
        self.check_connected()?;
        let mut request = Request::new().payload(payload).timeout(Some(timeout));
        if let Some(headers) = trace_headers() {
            request = request.headers(headers);
        }
        match self.client.send_request(subject.to_owned(), request).await {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders(subject.to_owned()),
                RequestErrorKind::TimedOut => BusError::Timeout(timeout),
                RequestErrorKind::InvalidSubject => BusError::InvalidSubject(subject.to_owned()),
                RequestErrorKind::MaxPayloadExceeded | RequestErrorKind::Other => {
                    BusError::Unavailable(format!("NATS request failed: {e}"))
                }
            }),
        }
    }

    async fn serve(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<RequestStream, BusError> {
        check_subject(subject, true)?;
        self.check_connected()?;
        let subscriber = match queue_group {
            Some(group) => {
                self.client
                    .queue_subscribe(subject.to_owned(), group.to_owned())
                    .await
            }
            None => self.client.subscribe(subject.to_owned()).await,
        }
        .map_err(|e| subscribe_error(subject, queue_group, e))?;
        self.confirm().await?;
        Ok(Box::pin(subscriber.map(request_of)))
    }

    /// Drains the subscription on `stop`: NATS stops routing to it and delivers what it had
    /// already sent before the stream ends (UNSUB, then a PING whose PONG closes the stream).
    async fn serve_until(
        &self,
        subject: &str,
        queue_group: Option<&str>,
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<RequestStream, BusError> {
        check_subject(subject, true)?;
        self.check_connected()?;
        let subscriber = match queue_group {
            Some(group) => {
                self.client
                    .queue_subscribe(subject.to_owned(), group.to_owned())
                    .await
            }
            None => self.client.subscribe(subject.to_owned()).await,
        }
        .map_err(|e| subscribe_error(subject, queue_group, e))?;
        self.confirm().await?;
        let requests =
            futures_util::stream::unfold((subscriber, Some(stop)), |(mut sub, stop)| async move {
                if let Some(mut signal) = stop {
                    tokio::select! {
                        biased;
                        _ = &mut signal => {
                            if let Err(e) = sub.drain().await {
                                tracing::warn!(error = %e, "draining a responder failed");
                                return None;
                            }
                        }
                        m = sub.next() => return m.map(|m| (m, (sub, Some(signal)))),
                    }
                }
                sub.next().await.map(|m| (m, (sub, None)))
            });
        Ok(Box::pin(requests.map(request_of)))
    }

    fn is_ready(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn reconnects(&self) -> Option<super::Reconnects> {
        let stats = self.client.statistics();
        let count = move || stats.connects.load(std::sync::atomic::Ordering::Acquire);
        Some(super::Reconnects::new(
            Arc::new(count),
            self.connected.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_memory_bus_rules() {
        assert!(check_subject("waas.app.chan", false).is_ok());
        assert!(check_subject("waas.*.chan", true).is_ok());
        assert!(check_subject("waas.>", true).is_ok());
        for bad in ["", "a..b", "a.b.", "a b", "a.*"] {
            assert_eq!(
                check_subject(bad, false),
                Err(BusError::InvalidSubject(bad.into())),
                "{bad:?}"
            );
        }
        assert!(check_subject("a.>.b", true).is_err());
    }

    #[tokio::test]
    async fn unreachable_server_fails_fast_with_a_clear_error() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let err = match NatsBus::connect("nats://127.0.0.1:1", NatsOptions::default()).await {
            Err(e) => e,
            Ok(_) => panic!("connected to nothing"),
        };
        let BusError::Unavailable(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(matches!(
            NatsBus::connect(" , ", NatsOptions::default()).await,
            Err(BusError::Unavailable(_))
        ));
    }
}
