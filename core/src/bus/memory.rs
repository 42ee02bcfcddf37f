//! In-process bus for the single-node `waas dev` server and unit tests.

use super::inline::Inline;
use super::{
    check_subject, Bus, BusError, BusMessage, BusRequest, RequestStream, TracedSubscription,
};
use crate::trace::TraceParent;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Prefix of reply subjects, as in NATS.
const INBOX: &str = "_INBOX.";

struct Subscriber {
    id: u64,
    /// The trace context rides beside the payload: no header to encode in one process.
    tx: mpsc::Sender<BusMessage>,
    /// Offered each message in the publisher's call, before `tx` ([`Bus::subscribe_inline`]).
    inline: Option<Arc<dyn Inline>>,
}

#[derive(Default)]
struct Routes {
    /// Literal subjects, looked up directly: the common case of one subject per channel.
    exact: HashMap<String, Vec<Subscriber>>,
    /// Subscriptions with wildcards, matched one by one.
    wildcard: Vec<(Vec<String>, Subscriber)>,
    /// Responders (`serve`), few per node, matched one by one.
    responders: Vec<Responder>,
    /// Requests waiting for their reply, by reply subject.
    inboxes: HashMap<String, oneshot::Sender<Bytes>>,
}

struct Responder {
    id: u64,
    pattern: Vec<String>,
    group: Option<String>,
    tx: mpsc::Sender<BusRequest>,
}

/// A bus inside one process. Like NATS, a subscriber that falls `capacity` messages behind
/// loses the overflow (counted in [`MemoryBus::dropped`]) instead of slowing publishers down.
pub struct MemoryBus {
    routes: Arc<RwLock<Routes>>,
    next_id: AtomicU64,
    capacity: usize,
    dropped: Arc<AtomicU64>,
    /// Spreads requests over the members of a queue group.
    round_robin: AtomicUsize,
}

impl MemoryBus {
    pub fn new(capacity: usize) -> Self {
        MemoryBus {
            routes: Arc::default(),
            next_id: AtomicU64::new(1),
            capacity: capacity.max(1),
            dropped: Arc::default(),
            round_robin: AtomicUsize::new(0),
        }
    }

    fn subscribe_with(
        &self,
        subject: &str,
        inline: Option<Arc<dyn Inline>>,
    ) -> Result<TracedSubscription, BusError> {
        check_subject(subject, true)?;
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // An inline subscriber on a wildcard would be offered messages of many channels.
        let inline = inline.filter(|_| !is_wildcard(subject));
        let sub = Subscriber { id, tx, inline };
        {
            let mut routes = self.routes.write().expect("bus routes poisoned");
            if is_wildcard(subject) {
                let pattern = subject.split('.').map(str::to_owned).collect();
                routes.wildcard.push((pattern, sub));
            } else {
                routes
                    .exact
                    .entry(subject.to_owned())
                    .or_default()
                    .push(sub);
            }
        }
        Ok(Box::pin(MemorySubscription {
            rx,
            id,
            subject: subject.to_owned(),
            routes: Arc::clone(&self.routes),
        }))
    }

    /// Messages dropped because a subscriber was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn is_wildcard(subject: &str) -> bool {
    subject.split('.').any(|t| t == "*" || t == ">")
}

fn matches(pattern: &[String], subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for p in pattern {
        match p.as_str() {
            ">" => return tokens.next().is_some(),
            "*" => {
                if tokens.next().is_none() {
                    return false;
                }
            }
            lit => {
                if tokens.next() != Some(lit) {
                    return false;
                }
            }
        }
    }
    tokens.next().is_none()
}

fn deliver(sub: &Subscriber, payload: &Bytes, trace: Option<TraceParent>, dropped: &AtomicU64) {
    let message = BusMessage {
        payload: payload.clone(),
        trace,
    };
    queue(&sub.tx, message, None, dropped);
}

/// Queues `message` on a subscriber's stream; `inline`: the subscriber gave it back.
fn queue(
    tx: &mpsc::Sender<BusMessage>,
    message: BusMessage,
    inline: Option<&dyn Inline>,
    dropped: &AtomicU64,
) {
    if tx.try_send(message).is_err() {
        dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(inline) = inline {
            inline.lost();
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject, false)?;
        let _timer = crate::metrics::METRICS.bus_publish.start_timer();
        if subject.starts_with(INBOX) {
            let mut routes = self.routes.write().expect("bus routes poisoned");
            if let Some(waiter) = routes.inboxes.remove(subject) {
                let _ = waiter.send(payload);
            }
            return Ok(());
        }
        let trace = TraceParent::current();
        // Inline subscribers are offered the message after the routes are released: what they
        // do with it (socket writes) must not hold up subscribing and unsubscribing.
        let mut inline = Vec::new();
        {
            let routes = self.routes.read().expect("bus routes poisoned");
            if let Some(subs) = routes.exact.get(subject) {
                for sub in subs {
                    match &sub.inline {
                        Some(i) => inline.push((Arc::clone(i), sub.tx.clone())),
                        None => deliver(sub, &payload, trace, &self.dropped),
                    }
                }
            }
            for (pattern, sub) in &routes.wildcard {
                if matches(pattern, subject) {
                    deliver(sub, &payload, trace, &self.dropped);
                }
            }
        }
        for (sink, tx) in inline {
            let message = BusMessage {
                payload: payload.clone(),
                trace,
            };
            if let Err(message) = sink.offer(message) {
                queue(&tx, message, Some(sink.as_ref()), &self.dropped);
            }
        }
        Ok(())
    }

    async fn subscribe_traced(&self, subject: &str) -> Result<TracedSubscription, BusError> {
        self.subscribe_with(subject, None)
    }

    async fn subscribe_inline(
        &self,
        subject: &str,
        inline: Arc<dyn Inline>,
    ) -> Result<TracedSubscription, BusError> {
        self.subscribe_with(subject, Some(inline))
    }

    async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        check_subject(subject, false)?;
        let reply = format!("{INBOX}{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.routes.write().expect("bus routes poisoned");
            let matching: Vec<&Responder> = routes
                .responders
                .iter()
                .filter(|r| matches(&r.pattern, subject))
                .collect();
            if matching.is_empty() {
                return Err(BusError::NoResponders(subject.to_owned()));
            }
            let request = BusRequest {
                subject: subject.to_owned(),
                payload,
                reply: Some(reply.clone()),
                trace: TraceParent::current(),
            };
            let mut groups_served: Vec<&str> = Vec::new();
            let turn = self.round_robin.fetch_add(1, Ordering::Relaxed);
            for r in &matching {
                match &r.group {
                    None => {
                        let _ = r.tx.try_send(request.clone());
                    }
                    Some(g) if !groups_served.contains(&g.as_str()) => {
                        groups_served.push(g);
                        let members: Vec<&&Responder> = matching
                            .iter()
                            .filter(|m| m.group.as_deref() == Some(g))
                            .collect();
                        let _ = members[turn % members.len()].tx.try_send(request.clone());
                    }
                    Some(_) => {}
                }
            }
            routes.inboxes.insert(reply.clone(), tx);
        }
        let result = tokio::time::timeout(timeout, rx).await;
        self.routes
            .write()
            .expect("bus routes poisoned")
            .inboxes
            .remove(&reply);
        match result {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) | Err(_) => Err(BusError::Timeout(timeout)),
        }
    }

    async fn serve(
        &self,
        subject: &str,
        queue_group: Option<&str>,
    ) -> Result<RequestStream, BusError> {
        check_subject(subject, true)?;
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.routes
            .write()
            .expect("bus routes poisoned")
            .responders
            .push(Responder {
                id,
                pattern: subject.split('.').map(str::to_owned).collect(),
                group: queue_group.map(str::to_owned),
                tx,
            });
        Ok(Box::pin(MemoryResponder {
            rx,
            id,
            routes: Arc::clone(&self.routes),
        }))
    }

    /// On `stop` the responder leaves the routes at once (no request reaches it after that),
    /// and the stream yields what it had been given before ending.
    async fn serve_until(
        &self,
        subject: &str,
        queue_group: Option<&str>,
        stop: oneshot::Receiver<()>,
    ) -> Result<RequestStream, BusError> {
        check_subject(subject, true)?;
        let (tx, rx) = mpsc::channel(self.capacity);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.routes
            .write()
            .expect("bus routes poisoned")
            .responders
            .push(Responder {
                id,
                pattern: subject.split('.').map(str::to_owned).collect(),
                group: queue_group.map(str::to_owned),
                tx,
            });
        let requests = MemoryResponder {
            rx,
            id,
            routes: Arc::clone(&self.routes),
        };
        Ok(Box::pin(futures_util::stream::unfold(
            (requests, Some(stop)),
            |(mut requests, stop)| async move {
                let Some(mut signal) = stop else {
                    return requests.rx.recv().await.map(|r| (r, (requests, None)));
                };
                tokio::select! {
                    biased;
                    _ = &mut signal => {
                        // Its sender gone with it, the channel ends once emptied.
                        requests.leave();
                        requests.rx.recv().await.map(|r| (r, (requests, None)))
                    }
                    r = requests.rx.recv() => r.map(|r| (r, (requests, Some(signal)))),
                }
            },
        )))
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn listeners(&self, subject: &str) -> Option<usize> {
        let routes = self.routes.read().expect("bus routes poisoned");
        let exact = routes.exact.get(subject).map_or(0, Vec::len);
        let wildcard = routes
            .wildcard
            .iter()
            .filter(|(pattern, _)| matches(pattern, subject))
            .count();
        Some(exact + wildcard)
    }
}

/// Removes its responder on drop.
struct MemoryResponder {
    rx: mpsc::Receiver<BusRequest>,
    id: u64,
    routes: Arc<RwLock<Routes>>,
}

impl futures_util::Stream for MemoryResponder {
    type Item = BusRequest;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<BusRequest>> {
        self.rx.poll_recv(cx)
    }
}

impl MemoryResponder {
    /// Takes the responder out of the routes; requests already queued stay readable.
    fn leave(&self) {
        let mut routes = self.routes.write().expect("bus routes poisoned");
        routes.responders.retain(|r| r.id != self.id);
    }
}

impl Drop for MemoryResponder {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Removes its route on drop, as an UNSUB would.
struct MemorySubscription {
    rx: mpsc::Receiver<BusMessage>,
    id: u64,
    subject: String,
    routes: Arc<RwLock<Routes>>,
}

impl futures_util::Stream for MemorySubscription {
    type Item = BusMessage;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<BusMessage>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        let mut routes = self.routes.write().expect("bus routes poisoned");
        if let Some(subs) = routes.exact.get_mut(&self.subject) {
            subs.retain(|s| s.id != self.id);
            if subs.is_empty() {
                routes.exact.remove(&self.subject);
            }
        }
        routes.wildcard.retain(|(_, s)| s.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn exact_and_wildcard_routes() {
        let bus = MemoryBus::new(16);
        let mut exact = bus.subscribe("waas.a.x").await.unwrap();
        let mut star = bus.subscribe("waas.a.*").await.unwrap();
        let mut rest = bus.subscribe("waas.>").await.unwrap();
        bus.publish("waas.a.x", Bytes::from_static(b"1"))
            .await
            .unwrap();
        bus.publish("waas.a.y.z", Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(exact.next().await.unwrap(), "1");
        assert_eq!(star.next().await.unwrap(), "1");
        assert_eq!(rest.next().await.unwrap(), "1");
        assert_eq!(rest.next().await.unwrap(), "2");
        drop(exact);
        assert!(bus.routes.read().unwrap().exact.is_empty());
    }

    #[tokio::test]
    async fn listeners_count_every_subscription_a_publish_would_reach() {
        let bus = MemoryBus::new(16);
        assert_eq!(bus.listeners("waas.a.x"), Some(0));
        let exact = bus.subscribe("waas.a.x").await.unwrap();
        assert_eq!(bus.listeners("waas.a.x"), Some(1));
        let _star = bus.subscribe("waas.a.*").await.unwrap();
        let _rest = bus.subscribe("waas.>").await.unwrap();
        let _other = bus.subscribe("waas.b.*").await.unwrap();
        assert_eq!(bus.listeners("waas.a.x"), Some(3));
        assert_eq!(bus.listeners("waas.a.y.z"), Some(1));
        drop(exact);
        assert_eq!(bus.listeners("waas.a.x"), Some(2));
    }

    /// Takes odd payloads, gives even ones back; counts what it was told was lost.
    #[derive(Default)]
    struct Odd {
        taken: std::sync::Mutex<Vec<Bytes>>,
        lost: AtomicU64,
    }

    impl Odd {
        async fn subscribe(bus: &MemoryBus, subject: &str) -> (Arc<Odd>, TracedSubscription) {
            let odd = Arc::new(Odd::default());
            let stream = bus
                .subscribe_inline(subject, Arc::clone(&odd) as _)
                .await
                .unwrap();
            (odd, stream)
        }
    }

    impl Inline for Odd {
        fn offer(&self, message: BusMessage) -> Result<(), BusMessage> {
            match message.payload.last() {
                Some(b) if b % 2 == 1 => {
                    self.taken.lock().unwrap().push(message.payload);
                    Ok(())
                }
                _ => Err(message),
            }
        }

        fn lost(&self) {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn an_inline_subscriber_takes_what_it_can_in_the_publishers_call() {
        let bus = MemoryBus::new(16);
        let (odd, mut stream) = Odd::subscribe(&bus, "s.x").await;
        let mut plain = bus.subscribe("s.x").await.unwrap();
        for p in ["1", "2", "3", "4"] {
            bus.publish("s.x", Bytes::from(p)).await.unwrap();
        }
        // Taken before `publish` returned: no task ran in between.
        assert_eq!(*odd.taken.lock().unwrap(), ["1", "3"]);
        assert_eq!(stream.next().await.unwrap().payload, "2");
        assert_eq!(stream.next().await.unwrap().payload, "4");
        for p in ["1", "2", "3", "4"] {
            assert_eq!(plain.next().await.unwrap(), p, "others get everything");
        }
        assert_eq!(odd.lost.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_given_back_message_that_overflows_is_reported_lost() {
        let bus = MemoryBus::new(1);
        let (odd, mut stream) = Odd::subscribe(&bus, "s").await;
        for p in ["2", "4", "6"] {
            bus.publish("s", Bytes::from(p)).await.unwrap();
        }
        assert_eq!(odd.lost.load(Ordering::Relaxed), 2);
        assert_eq!(bus.dropped(), 2);
        assert_eq!(stream.next().await.unwrap().payload, "2");
    }

    #[tokio::test]
    async fn a_wildcard_subscription_is_never_offered_messages() {
        let bus = MemoryBus::new(16);
        let (odd, mut stream) = Odd::subscribe(&bus, "s.*").await;
        bus.publish("s.x", Bytes::from("1")).await.unwrap();
        assert!(odd.taken.lock().unwrap().is_empty());
        assert_eq!(stream.next().await.unwrap().payload, "1");
    }

    #[tokio::test]
    async fn overflow_drops_instead_of_blocking() {
        let bus = MemoryBus::new(2);
        let _sub = bus.subscribe("s").await.unwrap();
        for _ in 0..5 {
            bus.publish("s", Bytes::from_static(b"x")).await.unwrap();
        }
        assert_eq!(bus.dropped(), 3);
    }

    #[tokio::test]
    async fn request_reply_with_queue_groups() {
        let bus = Arc::new(MemoryBus::new(16));
        assert_eq!(
            bus.request("svc.echo", Bytes::new(), Duration::from_secs(1))
                .await,
            Err(BusError::NoResponders("svc.echo".into()))
        );
        let mut served = Vec::new();
        for name in ["a", "b"] {
            let mut reqs = bus.serve("svc.*", Some("workers")).await.unwrap();
            let bus = Arc::clone(&bus);
            served.push(tokio::spawn(async move {
                let mut n = 0;
                while let Some(req) = reqs.next().await {
                    n += 1;
                    let reply = req.reply.unwrap();
                    bus.publish(
                        &reply,
                        Bytes::from(format!("{name}:{}", String::from_utf8_lossy(&req.payload))),
                    )
                    .await
                    .unwrap();
                    if n == 2 {
                        return n;
                    }
                }
                n
            }));
        }
        let mut answers = Vec::new();
        for i in 0..4 {
            let r = bus
                .request(
                    "svc.echo",
                    Bytes::from(i.to_string()),
                    Duration::from_secs(1),
                )
                .await
                .unwrap();
            answers.push(String::from_utf8(r.to_vec()).unwrap());
        }
        // Each request answered once, shared between the two members.
        assert_eq!(
            answers.iter().filter(|a| a.starts_with("a:")).count(),
            2,
            "{answers:?}"
        );
        assert_eq!(
            answers.iter().filter(|a| a.starts_with("b:")).count(),
            2,
            "{answers:?}"
        );
        for s in served {
            assert_eq!(s.await.unwrap(), 2);
        }
    }

    #[tokio::test]
    async fn request_times_out_without_reply() {
        let bus = MemoryBus::new(4);
        let _silent = bus.serve("svc.x", None).await.unwrap();
        let e = bus
            .request("svc.x", Bytes::new(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e, BusError::Timeout(Duration::from_millis(50)));
        assert!(bus.routes.read().unwrap().inboxes.is_empty());
    }

    #[tokio::test]
    async fn bad_subjects_are_refused() {
        let bus = MemoryBus::new(2);
        assert!(bus.publish("a.*", Bytes::new()).await.is_err());
        assert!(bus.publish("a..b", Bytes::new()).await.is_err());
        assert!(bus.subscribe("a.>.b").await.is_err());
    }
}
