//! JetStream history under a reconnect storm: many subscribers of a just-started gateway
//! recovering at once, on the machine's NATS (`WAAS_TEST_NATS_URL`, default 127.0.0.1:4222)
//! under a prefix of their own.
//!
//! What is checked: each recovery gets exactly what it missed, in order, and `recovered`;
//! a message stored before a recovery started is always in it; and the work is shared — the
//! JetStream API requests the gateway sends are counted on the wire (a second connection
//! subscribed to `$JS.API.>`), so the test fails if every caller asks for the stream's info
//! or makes a consumer of its own. And a read whose consumer's answer is lost on the way (a
//! proxy that stops passing the server's bytes) ends with an error instead of holding every
//! recovery of the channel forever.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::history::jetstream::JetStreamHistory;
use waas_core::history::{offset_of, Head, History, Policy};
use waas_protocol::history::Since;
use waas_test_support::nats::{shared_url, unique_prefix};

const KEEP: Policy = Policy {
    size: 1000,
    ttl: Duration::from_secs(600),
    namespaced: false,
};

/// JetStream API requests about one stream seen on the wire, by kind (`STREAM.INFO`,
/// `CONSUMER.CREATE`, ...): other tests share the server, and name other streams.
#[derive(Clone, Default)]
struct ApiCalls {
    seen: Arc<Mutex<HashMap<String, usize>>>,
    client: Option<async_nats::Client>,
}

/// Where [`ApiCalls::settle`] sends its marker: a request kind no JetStream has.
const MARKER: &str = "WAAS.MARKER";

impl ApiCalls {
    async fn watch(client: &async_nats::Client, stream: &str) -> ApiCalls {
        let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let mut subs = Vec::new();
        for subject in [
            format!("$JS.API.*.*.{stream}"),
            format!("$JS.API.*.*.{stream}.>"),
            format!("$JS.API.{MARKER}"),
        ] {
            subs.push(client.subscribe(subject).await.expect("subscribe"));
        }
        client.flush().await.expect("flush");
        let all = futures_util::stream::select_all(subs);
        let counts = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut all = all;
            while let Some(m) = all.next().await {
                let parts: Vec<&str> = m.subject.split('.').collect();
                let kind = parts.get(2..4).map(|p| p.join(".")).unwrap_or_default();
                *counts.lock().unwrap().entry(kind).or_default() += 1;
            }
        });
        ApiCalls {
            seen,
            client: Some(client.clone()),
        }
    }

    fn count(&self, kind: &str) -> usize {
        self.seen.lock().unwrap().get(kind).copied().unwrap_or(0)
    }

    /// Waits until every request the server had received when this was called is counted: a
    /// marker sent now reaches the watcher after them.
    async fn settle(&self) {
        let before = self.count(MARKER);
        let client = self.client.as_ref().expect("watching");
        client
            .publish(format!("$JS.API.{MARKER}"), Bytes::new())
            .await
            .unwrap();
        client.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.count(MARKER) == before {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the marker came back");
    }
}

struct Setup {
    history: Arc<JetStreamHistory>,
    watcher: async_nats::Client,
    prefix: String,
}

impl Setup {
    async fn new() -> Setup {
        let prefix = unique_prefix();
        let bus = NatsBus::connect(&shared_url(), NatsOptions::default())
            .await
            .expect("NATS (set WAAS_TEST_NATS_URL to change)");
        let history = Arc::new(JetStreamHistory::new(Arc::new(bus), prefix.clone()));
        let watcher = async_nats::connect(shared_url()).await.expect("NATS");
        Setup {
            history,
            watcher,
            prefix,
        }
    }

    fn subject(&self, channel: &str) -> String {
        format!("{}.app.{channel}", self.prefix)
    }

    async fn publish(&self, channel: &str, n: u64) -> u64 {
        let data = RawValue::from_string(n.to_string()).unwrap();
        let head = Head::new(channel, "n", &data, 0, false);
        self.history
            .publish(KEEP, &self.subject(channel), &head)
            .await
            .expect("publish")
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        waas_test_support::jetstream::delete_streams(&shared_url(), &self.prefix);
    }
}

fn numbers(messages: &[Bytes]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m).expect("a JSON frame");
            v["data"].as_u64().expect("a number")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_storm_shares_requests_and_reads_short_gaps_without_consumers() {
    let setup = Setup::new().await;
    // 50 channels; each subscriber last saw message 3 of its channel and missed 4..=6.
    let channels: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let mut seen_at = HashMap::new();
    for ch in &channels {
        for n in 1..=6 {
            let offset = setup.publish(ch, n).await;
            if n == 3 {
                seen_at.insert(ch.clone(), offset);
            }
        }
    }
    let epoch = setup
        .history
        .recover(KEEP, &setup.subject("c0"), None)
        .await
        .unwrap()
        .epoch;

    // A gateway that just started: nothing known about the stream yet.
    let fresh = Arc::new(JetStreamHistory::new(
        Arc::new(
            NatsBus::connect(&shared_url(), NatsOptions::default())
                .await
                .unwrap(),
        ),
        setup.prefix.clone(),
    ));
    let calls = ApiCalls::watch(&setup.watcher, &format!("{}_history_app", setup.prefix)).await;
    // 10 subscribers per channel, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for ch in &channels {
        for _ in 0..10 {
            let (h, subject) = (Arc::clone(&fresh), setup.subject(ch));
            let since = Since {
                offset: seen_at[ch],
                epoch: epoch.clone(),
            };
            tasks.spawn(async move { h.recover(KEEP, &subject, Some(&since)).await });
        }
    }
    let mut recoveries = 0;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap().expect("recover");
        assert_eq!(r.recovered, Some(true));
        assert_eq!(r.epoch, epoch);
        assert_eq!(numbers(&r.messages), [4, 5, 6]);
        let last = offset_of(r.messages.last().unwrap()).unwrap();
        assert!(r.offset >= last, "the position covers what was sent");
        recoveries += 1;
    }
    assert_eq!(recoveries, 500);
    calls.settle().await;
    let infos = calls.count("STREAM.INFO");
    assert!(
        infos <= 100,
        "500 recoveries asked for the stream's info {infos} times: not shared"
    );
    // Unshared, each recovery would take 4 direct gets (3 messages, then "no more").
    let gets = calls.count("DIRECT.GET");
    assert!(
        gets <= 1000,
        "500 recoveries of 50 channels made {gets} direct gets: the subscribers of a channel do not share their read"
    );
    assert_eq!(
        calls.count("CONSUMER.CREATE"),
        0,
        "short gaps are read without consumers"
    );
    assert_eq!(
        calls.count("STREAM.CREATE"),
        0,
        "the stream exists: nothing to create"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_gap_is_read_whole_through_a_consumer() {
    let setup = Setup::new().await;
    let seen = setup.publish("long", 0).await;
    for n in 1..=40 {
        setup.publish("long", n).await;
    }
    let r = setup
        .history
        .recover(KEEP, &setup.subject("long"), None)
        .await
        .unwrap();
    let since = Since {
        offset: seen,
        epoch: r.epoch,
    };
    let r = setup
        .history
        .recover(KEEP, &setup.subject("long"), Some(&since))
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(true));
    assert_eq!(numbers(&r.messages), (1..=40).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stored_before_a_recovery_starts_is_in_it() {
    let setup = Setup::new().await;
    let first = setup.publish("race", 0).await;
    let epoch = setup
        .history
        .recover(KEEP, &setup.subject("race"), None)
        .await
        .unwrap()
        .epoch;
    // Recoveries run back to back from many tasks while publishes go on, so each one starts
    // while another's state request is in flight: each must still see the message stored
    // just before it started.
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8u64 {
        let (h, subject, epoch) = (
            Arc::clone(&setup.history),
            setup.subject("race"),
            epoch.clone(),
        );
        tasks.spawn(async move {
            for i in 0..25u64 {
                let n = 1 + t * 100 + i;
                let data = RawValue::from_string(n.to_string()).unwrap();
                let head = Head::new("race", "n", &data, 0, false);
                let stored = h.publish(KEEP, &subject, &head).await.unwrap();
                let since = Since {
                    offset: first,
                    epoch: epoch.clone(),
                };
                let r = h.recover(KEEP, &subject, Some(&since)).await.unwrap();
                assert!(
                    r.offset >= stored,
                    "recovery position {} is before a message stored ahead of it ({stored})",
                    r.offset
                );
                assert!(
                    numbers(&r.messages).contains(&n),
                    "message {n}, stored before the recovery, is missing"
                );
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// A TCP proxy to NATS that loses the server's answers from the moment the client sends
/// something containing `trigger` (a consumer's pull request, `MSG.NEXT`; a message to a
/// history subject, `.~h.`): nothing more from the server reaches the client, while the
/// connection stays up — what a route between regions going down mid-read does.
async fn losing_answers(upstream: String, trigger: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    let upstream = upstream.trim_start_matches("nats://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let seen = Arc::clone(&lost);
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                    if buf[..n].windows(trigger.len()).any(|w| w == trigger) {
                        seen.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                    if lost.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_fetch_answer_is_lost_ends_instead_of_waiting_forever() {
    let setup = Setup::new().await;
    let proxy = losing_answers(shared_url(), b"MSG.NEXT").await;
    let bus = NatsBus::connect(&format!("nats://{proxy}"), NatsOptions::default())
        .await
        .expect("NATS through the proxy");
    let history = JetStreamHistory::new(Arc::new(bus), setup.prefix.clone());
    // More missed messages than direct gets read first: the rest goes through a consumer.
    let seen = setup.publish("lost", 0).await;
    for n in 1..=40 {
        setup.publish("lost", n).await;
    }
    let epoch = setup
        .history
        .recover(KEEP, &setup.subject("lost"), None)
        .await
        .unwrap()
        .epoch;
    let since = Since {
        offset: seen,
        epoch,
    };
    // The fetch's answer never comes, nor do those of the direct gets after it: the read must
    // end with an error (the subscriber is told history is unavailable) rather than hang, and
    // with it every recovery of the channel sharing the read.
    let read = tokio::time::timeout(
        Duration::from_secs(60),
        history.recover(KEEP, &setup.subject("lost"), Some(&since)),
    )
    .await
    .expect("the read ended");
    assert!(read.is_err(), "nothing could be read, yet: {read:?}");
}

/// A message whose acknowledgement never comes fails once the wait is given up, instead of
/// holding its publisher (and the room it takes among the messages awaiting an answer)
/// forever; the acknowledgements of the gateway's other messages are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_acknowledgement_is_lost_fails_after_the_wait() {
    let setup = Setup::new().await;
    // The stream exists (made by another connection), so the lost answer is the ack's.
    let stored = setup.publish("acked", 1).await;
    let proxy = losing_answers(shared_url(), b".~h.").await;
    let bus = NatsBus::connect(&format!("nats://{proxy}"), NatsOptions::default())
        .await
        .expect("NATS through the proxy");
    let history = JetStreamHistory::new(Arc::new(bus), setup.prefix.clone());
    let data = RawValue::from_string("2".into()).unwrap();
    let head = Head::new("acked", "n", &data, 0, false);
    // Made known to this history while answers still pass: a read of the stream's state.
    history
        .recover(KEEP, &setup.subject("acked"), None)
        .await
        .expect("the stream's state, before anything is lost");
    let started = std::time::Instant::now();
    let pending = history
        .start_publish(KEEP, &setup.subject("acked"), &head)
        .await
        .expect("sent");
    let answer = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("the wait ended");
    let error = answer.expect_err("no acknowledgement came").to_string();
    assert!(error.contains("no acknowledgement"), "{error}");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "given up after the wait, not before: {:?}",
        started.elapsed()
    );
    // The message itself was stored: only its answer was lost.
    assert!(setup.publish("acked", 3).await > stored + 1);
}
