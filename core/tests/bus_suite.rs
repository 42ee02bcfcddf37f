//! Conformance suite for the Bus seam: each case is written once against `Arc<dyn Bus>` and
//! run on every implementation, so the memory bus of `waas dev` and NATS in a cluster cannot
//! drift apart on what the trait promises.
//!
//! NATS cases use the machine's server (`WAAS_TEST_NATS_URL`, default 127.0.0.1:4222) with a
//! random subject prefix per test, so they run in parallel. Cases that stop NATS start a
//! private server of their own.

use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use waas_core::bus::memory::MemoryBus;
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::bus::{Bus, BusError, BusSubscription};
use waas_core::trace::TraceParent;
use waas_test_support::nats::{shared_url, unique_prefix, NatsServer};

/// Longest wait for a message that should arrive; far above loopback latency.
const RECEIVE: Duration = Duration::from_secs(5);

fn memory_bus() -> Arc<dyn Bus> {
    Arc::new(MemoryBus::new(4096))
}

async fn nats_bus_at(url: &str) -> NatsBus {
    let options = NatsOptions {
        name: "waas-bus-suite".into(),
        ..NatsOptions::default()
    };
    NatsBus::connect(url, options)
        .await
        .unwrap_or_else(|e| panic!("NATS at {url} (set WAAS_TEST_NATS_URL to change): {e}"))
}

async fn nats_bus() -> Arc<dyn Bus> {
    Arc::new(nats_bus_at(&shared_url()).await)
}

async fn next(sub: &mut BusSubscription) -> Bytes {
    tokio::time::timeout(RECEIVE, sub.next())
        .await
        .expect("no message within the deadline")
        .expect("subscription ended")
}

/// Polls `check` every 10 ms until it holds, panicking with `what` after `deadline`.
async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !check().await {
        assert!(Instant::now() < end, "not within {deadline:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs each case on every implementation: `memory::case` and `nats::case`.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::memory_bus(), &waas_test_support::nats::unique_prefix())
                        .await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::nats_bus().await, &waas_test_support::nats::unique_prefix())
                        .await;
                }
            )*
        }
    };
}

suite!(
    publish_subscribe,
    wildcards,
    per_publisher_order,
    drop_unsubscribes,
    request_reply,
    queue_group_shares_requests,
    no_responders,
    request_timeout,
    bad_subjects_are_refused,
    serve_until_answers_everything_then_ends,
    trace_context_travels,
);

async fn publish_subscribe(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.app.chan");
    let mut a = bus.subscribe(&subject).await.unwrap();
    let mut b = bus.subscribe(&subject).await.unwrap();
    let mut other = bus.subscribe(&format!("{p}.app.other")).await.unwrap();
    bus.publish(&subject, Bytes::from_static(b"hello"))
        .await
        .unwrap();
    bus.publish(&format!("{p}.app.other"), Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert_eq!(next(&mut a).await, "hello");
    assert_eq!(next(&mut b).await, "hello");
    // Only its own subject's message, nothing from `chan`.
    assert_eq!(next(&mut other).await, "other");
    assert!(bus.is_ready());
}

async fn wildcards(bus: Arc<dyn Bus>, p: &str) {
    let mut star = bus.subscribe(&format!("{p}.a.*")).await.unwrap();
    let mut rest = bus.subscribe(&format!("{p}.>")).await.unwrap();
    for s in ["a.x", "a.y.z", "b", "a.end"] {
        bus.publish(&format!("{p}.{s}"), Bytes::from(s))
            .await
            .unwrap();
    }
    // `*` is one token: `a.y.z` and `b` skip it, and order puts `a.end` right after `a.x`.
    assert_eq!(next(&mut star).await, "a.x");
    assert_eq!(next(&mut star).await, "a.end");
    for s in ["a.x", "a.y.z", "b", "a.end"] {
        assert_eq!(next(&mut rest).await, s);
    }
}

async fn per_publisher_order(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.ordered");
    let mut sub = bus.subscribe(&subject).await.unwrap();
    for i in 0..1000u32 {
        bus.publish(&subject, Bytes::from(i.to_string()))
            .await
            .unwrap();
    }
    for i in 0..1000u32 {
        assert_eq!(next(&mut sub).await, i.to_string());
    }
}

async fn drop_unsubscribes(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.gone");
    let mut sub = bus.subscribe(&subject).await.unwrap();
    bus.publish(&subject, Bytes::from_static(b"1"))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await, "1");
    drop(sub);
    // Once no route is left, nothing is delivered for the subject anywhere: a request finds no
    // one. NATS counts plain subscriptions as interest, so this shows the server forgot it.
    eventually(RECEIVE, "the route outlived its subscription", || async {
        bus.request(&subject, Bytes::new(), Duration::from_millis(200))
            .await
            == Err(BusError::NoResponders(subject.clone()))
    })
    .await;
    // The bus itself goes on working.
    let mut again = bus.subscribe(&subject).await.unwrap();
    bus.publish(&subject, Bytes::from_static(b"2"))
        .await
        .unwrap();
    assert_eq!(next(&mut again).await, "2");
}

/// Answers every request on `subject` with `name:payload` until the stream ends, counting
/// what it handled in `handled`.
async fn respond(
    bus: Arc<dyn Bus>,
    subject: String,
    group: Option<&'static str>,
    name: &'static str,
    handled: Arc<Mutex<HashMap<String, u32>>>,
) -> tokio::task::JoinHandle<()> {
    let mut requests = bus.serve(&subject, group).await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let payload = String::from_utf8_lossy(&req.payload).into_owned();
            *handled.lock().unwrap().entry(payload.clone()).or_default() += 1;
            let reply = req.reply.expect("a request carries a reply subject");
            bus.publish(&reply, Bytes::from(format!("{name}:{payload}")))
                .await
                .unwrap();
        }
    })
}

async fn request_reply(bus: Arc<dyn Bus>, p: &str) {
    let handled = Arc::default();
    let responder = respond(bus.clone(), format!("{p}.svc.*"), None, "echo", handled).await;
    let answer = bus
        .request(&format!("{p}.svc.ping"), Bytes::from_static(b"hi"), RECEIVE)
        .await
        .unwrap();
    assert_eq!(answer, "echo:hi");
    responder.abort();
}

async fn queue_group_shares_requests(bus: Arc<dyn Bus>, p: &str) {
    let handled: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let subject = format!("{p}.work");
    let mut members = Vec::new();
    for name in ["a", "b"] {
        let group = Some("workers");
        members.push(respond(bus.clone(), subject.clone(), group, name, handled.clone()).await);
    }
    let mut by_member: HashMap<String, u32> = HashMap::new();
    for i in 0..40 {
        let answer = bus
            .request(&subject, Bytes::from(i.to_string()), RECEIVE)
            .await
            .unwrap();
        let answer = String::from_utf8(answer.to_vec()).unwrap();
        let (member, payload) = answer.split_once(':').unwrap();
        assert_eq!(payload, i.to_string());
        *by_member.entry(member.to_owned()).or_default() += 1;
    }
    // Every member took a share (NATS picks at random: all 40 on one member has odds 2^-39).
    assert!(by_member.len() == 2, "{by_member:?}");
    // A second copy of a request would arrive right behind the first; give it a moment to show.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let handled = handled.lock().unwrap();
    assert_eq!(handled.len(), 40);
    assert!(handled.values().all(|&n| n == 1), "{handled:?}");
    for member in members {
        member.abort();
    }
}

/// `serve_until`: requests on their way when the responder stops are still handed to it, none
/// is lost, and afterwards the subject has no responder.
async fn serve_until_answers_everything_then_ends(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.leaving");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let mut requests = bus
        .serve_until(&subject, Some("workers"), stopped)
        .await
        .unwrap();
    let callers: Vec<_> = (0..20)
        .map(|i| {
            let (bus, subject) = (bus.clone(), subject.clone());
            tokio::spawn(async move {
                bus.request(&subject, Bytes::from(i.to_string()), RECEIVE)
                    .await
            })
        })
        .collect();
    let mut answered = 0;
    let mut stop = Some(stop);
    while let Some(req) = tokio::time::timeout(RECEIVE, requests.next())
        .await
        .expect("the stream ends after the stop")
    {
        answered += 1;
        // Stop while callers are still sending: the rest must still come through.
        if answered == 5 {
            stop.take().unwrap().send(()).unwrap();
        }
        bus.publish(&req.reply.unwrap(), req.payload).await.unwrap();
    }
    assert!(stop.is_none(), "the stream ended before the stop");
    let mut ok = 0;
    for c in callers {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(BusError::NoResponders(_)) => {}
            Err(e) => panic!("a request was lost: {e}"),
        }
    }
    assert_eq!(ok, answered, "every request handed over was answered");
    assert_eq!(
        bus.request(&subject, Bytes::new(), RECEIVE).await,
        Err(BusError::NoResponders(subject))
    );
}

async fn no_responders(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.nobody");
    assert_eq!(
        bus.request(&subject, Bytes::new(), RECEIVE).await,
        Err(BusError::NoResponders(subject))
    );
}

async fn request_timeout(bus: Arc<dyn Bus>, p: &str) {
    let subject = format!("{p}.silent");
    let _silent = bus.serve(&subject, None).await.unwrap();
    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    assert_eq!(
        bus.request(&subject, Bytes::new(), timeout).await,
        Err(BusError::Timeout(timeout))
    );
    assert!(started.elapsed() >= timeout);
}

async fn bad_subjects_are_refused(bus: Arc<dyn Bus>, p: &str) {
    for bad in [
        format!("{p}.*"),
        format!("{p}.>"),
        format!("{p}..b"),
        format!("{p}.a b"),
        String::new(),
    ] {
        assert_eq!(
            bus.publish(&bad, Bytes::new()).await,
            Err(BusError::InvalidSubject(bad.clone()))
        );
    }
    assert!(matches!(
        bus.subscribe(&format!("{p}.>.b")).await,
        Err(BusError::InvalidSubject(_))
    ));
    assert!(matches!(
        bus.serve(&format!("{p}.a."), None).await,
        Err(BusError::InvalidSubject(_))
    ));
}

/// Two gateway nodes: a message published on one right after `subscribe` returned on the
/// other must arrive, i.e. the subscription is live on the server, not just sent to it.
#[tokio::test]
async fn nats_subscribe_is_live_across_nodes_when_it_returns() {
    let url = shared_url();
    let (a, b) = (nats_bus_at(&url).await, nats_bus_at(&url).await);
    let p = unique_prefix();
    for i in 0..50 {
        let subject = format!("{p}.chan{i}");
        let mut sub = a.subscribe(&subject).await.unwrap();
        b.publish(&subject, Bytes::from(i.to_string()))
            .await
            .unwrap();
        assert_eq!(next(&mut sub).await, i.to_string());
    }
}

/// Node B's requests tell whether the server still routes the subject to node A: they time
/// out while A subscribes (someone listens, no one answers) and find no responders once A
/// dropped its subscription. So a node that lost its last local subscriber stops receiving.
#[tokio::test]
async fn nats_node_stops_receiving_after_drop() {
    let url = shared_url();
    let (a, b) = (nats_bus_at(&url).await, nats_bus_at(&url).await);
    let subject = format!("{}.chan", unique_prefix());
    let sub = a.subscribe(&subject).await.unwrap();
    let short = Duration::from_millis(200);
    assert_eq!(
        b.request(&subject, Bytes::new(), short).await,
        Err(BusError::Timeout(short))
    );
    drop(sub);
    eventually(RECEIVE, "node A still subscribed on the server", || async {
        b.request(&subject, Bytes::new(), short).await
            == Err(BusError::NoResponders(subject.clone()))
    })
    .await;
}

/// NATS goes away and comes back: the bus reports it, refuses publishes meanwhile, and then
/// works again through the same client, old subscriptions included.
#[tokio::test]
async fn nats_outage_is_reported_and_recovered() {
    let mut server = NatsServer::start();
    let bus = nats_bus_at(&server.url()).await;
    let subject = format!("{}.chan", unique_prefix());
    let mut sub = bus.subscribe(&subject).await.unwrap();
    bus.publish(&subject, Bytes::from_static(b"before"))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await, "before");
    assert!(bus.is_ready());

    server.stop();
    eventually(RECEIVE, "bus still ready with NATS down", || async {
        !bus.is_ready()
    })
    .await;
    let unavailable = BusError::Unavailable("NATS disconnected".into());
    assert_eq!(
        bus.publish(&subject, Bytes::from_static(b"lost")).await,
        Err(unavailable.clone())
    );
    assert_eq!(
        bus.request(&subject, Bytes::new(), RECEIVE).await,
        Err(unavailable)
    );
    assert!(matches!(
        bus.subscribe(&format!("{subject}.new")).await,
        Err(BusError::Unavailable(_))
    ));

    server.restart();
    // The client's reconnect backoff is capped at 4 s.
    eventually(
        Duration::from_secs(15),
        "bus not ready after NATS came back",
        || async { bus.is_ready() },
    )
    .await;
    bus.publish(&subject, Bytes::from_static(b"after"))
        .await
        .unwrap();
    // The subscription made before the outage resumes: the client resubscribed on reconnect,
    // and nothing refused during the outage shows up late.
    assert_eq!(next(&mut sub).await, "after");
    let mut fresh = bus.subscribe(&format!("{subject}.new")).await.unwrap();
    bus.publish(&format!("{subject}.new"), Bytes::from_static(b"new"))
        .await
        .unwrap();
    assert_eq!(next(&mut fresh).await, "new");
}

/// With tracing on (an OpenTelemetry layer as this thread's subscriber, `trace::enable`), a
/// publish and a request made in a span carry it to the subscriber and the responder; made
/// outside any span, they carry nothing.
async fn trace_context_travels(bus: Arc<dyn Bus>, p: &str) {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument;
    use tracing_subscriber::prelude::*;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("suite"))),
    );
    waas_core::trace::enable();
    let span = tracing::info_span!("publisher");
    let expected = TraceParent::of(&span).expect("an exported span");

    let subject = format!("{p}.app.traced");
    let mut sub = bus.subscribe_traced(&subject).await.unwrap();
    bus.publish(&subject, Bytes::from_static(b"in a span"))
        .instrument(span.clone())
        .await
        .unwrap();
    bus.publish(&subject, Bytes::from_static(b"outside"))
        .await
        .unwrap();
    for (payload, trace) in [("in a span", Some(expected)), ("outside", None)] {
        let message = tokio::time::timeout(RECEIVE, sub.next())
            .await
            .expect("no message within the deadline")
            .expect("subscription ended");
        assert_eq!(message.payload, payload);
        assert_eq!(message.trace, trace, "{payload}");
    }

    let service = format!("{p}.svc.traced");
    let mut requests = bus.serve(&service, None).await.unwrap();
    let asking = {
        let (bus, service) = (Arc::clone(&bus), service.clone());
        tokio::spawn(
            async move { bus.request(&service, Bytes::new(), RECEIVE).await }.instrument(span),
        )
    };
    let request = tokio::time::timeout(RECEIVE, requests.next())
        .await
        .expect("no request within the deadline")
        .expect("requests ended");
    assert_eq!(request.trace, Some(expected));
    bus.publish(&request.reply.unwrap(), Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(asking.await.unwrap().unwrap(), "ok");
}
