//! The traffic of one fault: a steady REST publisher alternating between the gateways, which
//! keeps the number of every acknowledged publish, and a subscriber per gateway (Rust SDK),
//! which keeps every number it is handed and every `Unrecovered` it is told of.

use anyhow::{anyhow, Result};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use waas_sdk::{Client, ConnectionEvent, ServerClient};

/// The payload of the last publishes of a fault, one through each gateway: once a subscriber
/// has both, it has everything it will get. (With history a channel's messages arrive in offset
/// order; without, in the order of each gateway's publishes, hence one through each.)
pub const SENTINEL: &str = "end";

/// A publisher sending `n = 1, 2, 3, ...` (the message's data, which is how subscribers and
/// webhooks are matched with publishes: offsets are numbered per gateway for apps without
/// history) to one channel at `rate` per second, publish `n`
/// through gateway `n % 2`. Publishes run concurrently (at most 256 in flight) so a gateway
/// that hangs does not slow the pace; each is given up after 5 s.
pub struct Publisher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    acked: Arc<Mutex<Vec<u64>>>,
    attempts: Arc<Mutex<u64>>,
}

impl Publisher {
    pub fn start(rest: [ServerClient; 2], channel: String, rate: u32) -> Publisher {
        let (stop, mut stopped) = watch::channel(false);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let (a, t) = (Arc::clone(&acked), Arc::clone(&attempts));
        let task = tokio::spawn(async move {
            let rest = Arc::new(rest);
            let in_flight = Arc::new(Semaphore::new(256));
            // Pacing, not synchronisation: the load the issue describes.
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let mut tasks = Vec::new();
            while !*stopped.borrow_and_update() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                n += 1;
                *t.lock().expect("attempts") += 1;
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    break;
                };
                let (rest, channel, a) = (Arc::clone(&rest), channel.clone(), Arc::clone(&a));
                tasks.push(tokio::spawn(async move {
                    let gw = &rest[(n % 2) as usize];
                    let call = gw.publish(&channel, "n", &n);
                    if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), call).await {
                        if r.offsets.contains_key(&channel) {
                            a.lock().expect("acked").push(n);
                        }
                    }
                    drop(permit);
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
        });
        Publisher {
            stop,
            task,
            acked,
            attempts,
        }
    }

    /// Stops publishing, waits for the publishes in flight; returns the number of attempts and
    /// the `n` of each acknowledged one.
    pub async fn finish(self) -> (u64, Vec<u64>) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let attempts = *self.attempts.lock().expect("attempts");
        let acked = std::mem::take(&mut *self.acked.lock().expect("acked"));
        (attempts, acked)
    }
}

/// Publishes the sentinel through each gateway, retrying until each acknowledges it.
pub async fn publish_sentinels(rest: &[ServerClient; 2], channel: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for gw in rest {
        while gw.publish(channel, "n", SENTINEL).await.is_err() {
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!("the sentinel was not acknowledged within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// What a subscriber was handed on one channel.
#[derive(Default)]
pub struct Seen {
    /// The `n` of each message, in order of arrival.
    pub numbers: Vec<u64>,
    pub unrecovered: bool,
    /// Both sentinels arrived.
    pub got_sentinel: bool,
    /// Messages the SDK dropped because the subscription's buffer was full.
    pub dropped: u64,
    /// Times the client lost its connection meanwhile.
    pub disconnects: u64,
}

/// A Rust SDK client on one gateway, reconnecting to it by itself when it goes away.
pub struct Subscriber {
    client: Client,
    /// Channels reported `Unrecovered` since the client started.
    unrecovered: Arc<Mutex<HashMap<String, u32>>>,
    disconnects: Arc<AtomicU64>,
    events: JoinHandle<()>,
}

impl Subscriber {
    pub async fn connect(url: String, app: &str, api_key: &str) -> Result<Subscriber> {
        let client = Client::builder()
            .url(url)
            .app(app)
            .token(api_key)
            .connect()
            .await?;
        let unrecovered: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let told = Arc::clone(&unrecovered);
        let disconnects = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&disconnects);
        let mut events = client.events();
        let events = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    ConnectionEvent::Unrecovered { channel } => {
                        *told
                            .lock()
                            .expect("unrecovered")
                            .entry(channel)
                            .or_default() += 1;
                    }
                    ConnectionEvent::Disconnected { .. } => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        Ok(Subscriber {
            client,
            unrecovered,
            disconnects,
            events,
        })
    }

    /// Subscribes to `channel` (the `ack` received) and records what arrives until the
    /// sentinel. [`Follow::collect`] gives the result.
    pub async fn follow(&self, channel: &str) -> Result<Follow> {
        let mut sub = self.client.subscribe(channel).await?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut sentinels = 0;
            while let Some(m) = sub.next().await {
                let mut seen = record.lock().expect("seen");
                seen.dropped = sub.dropped();
                match m.data::<u64>() {
                    Ok(n) => seen.numbers.push(n),
                    Err(_) => {
                        sentinels += 1;
                        if sentinels == 2 {
                            seen.got_sentinel = true;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Follow {
            channel: channel.to_owned(),
            unrecovered: Arc::clone(&self.unrecovered),
            disconnects: Arc::clone(&self.disconnects),
            disconnects_before: self.disconnects.load(Ordering::Relaxed),
            seen,
            task,
        })
    }
}

/// One subscriber's recording of one channel.
pub struct Follow {
    channel: String,
    unrecovered: Arc<Mutex<HashMap<String, u32>>>,
    disconnects: Arc<AtomicU64>,
    disconnects_before: u64,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Follow {
    /// Waits at most `limit` for the sentinels, then unsubscribes; what arrived, and whether
    /// the subscriber was told of a gap on the channel.
    pub async fn collect(mut self, limit: Duration) -> Seen {
        let _ = tokio::time::timeout(limit, &mut self.task).await;
        self.task.abort();
        let mut seen = std::mem::take(&mut *self.seen.lock().expect("seen"));
        seen.unrecovered = self
            .unrecovered
            .lock()
            .expect("unrecovered")
            .contains_key(&self.channel);
        seen.disconnects = self.disconnects.load(Ordering::Relaxed) - self.disconnects_before;
        seen
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.events.abort();
    }
}
