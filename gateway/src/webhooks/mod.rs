//! The gateway's side of webhooks: it reports what happened on this node — a channel's first
//! and last subscriber here, a presence member's first and last connection here, publishes an
//! endpoint asked for — and the control-plane turns reports from every node into webhook
//! deliveries (cluster-wide transitions, debounce, signing, retries).
//!
//! Reports go out in order, in batches, as bus requests to the control-planes' queue group,
//! which answer once the batch is in the store. A batch that is not acknowledged (control-plane
//! down, timeout) is sent again, with backoff, until it is: while this gateway lives nothing
//! is lost, and a batch stored twice is harmless (presence reports are idempotent, publishes
//! carry ids). The queue is bounded (`webhook_report_queue`): beyond it new reports are dropped
//! and counted, a gateway that dies loses what it had not sent, and the control-plane forgets
//! a dead node's channels and members after its TTL (firing vacated/removed webhooks).
//!
//! The messages and subject of that exchange are `waas_core::webhooks::report`.

use crate::presence::state::{Key, LocalTransition};
use crate::presence::TransitionSink;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use waas_core::app::App;
use waas_core::bus::Bus;
use waas_core::time::now_ms;
use waas_core::webhooks::report::{self, Publisher, Report, ReportAnswer, ReportBatch};
use waas_protocol::{AppId, ChannelName};

/// Reports per request.
const BATCH: usize = 256;
/// How long a gateway waits for a control-plane to store a batch.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

pub struct Reporter {
    node: String,
    subject: String,
    queue: Mutex<VecDeque<Report>>,
    capacity: usize,
    wake: Notify,
    next: AtomicU64,
    dropped: AtomicU64,
}

impl Reporter {
    /// A reporter with a node id of its own, random per process: the control-plane forgets a
    /// node that stops reporting, and a restarted gateway is a new node.
    pub fn new(prefix: &str, capacity: usize) -> Self {
        Reporter {
            node: format!("{:016x}", rand::random::<u64>()),
            subject: report::report_subject(prefix),
            queue: Mutex::default(),
            capacity: capacity.max(1),
            wake: Notify::new(),
            next: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Reports dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn push(&self, report: Report) {
        {
            let mut queue = self.queue.lock().expect("reporter poisoned");
            if queue.len() >= self.capacity {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(
                        dropped = n,
                        "webhook report queue full (control-plane unreachable?): dropping reports"
                    );
                }
                return;
            }
            queue.push_back(report);
        }
        self.wake.notify_one();
    }

    /// A message was published; reported when one of the app's endpoints wants it.
    #[allow(clippy::too_many_arguments)]
    pub fn published(
        &self,
        app: &App,
        channel: &ChannelName,
        event: &str,
        data: &RawValue,
        offset: u64,
        client: Option<Publisher>,
    ) {
        if !app.config.webhooks.wants(channel, client.is_some()) {
            return;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.push(Report::Publish {
            id: format!("{}-{n}", self.node),
            app: app.id().clone(),
            channel: channel.clone(),
            event: event.to_owned(),
            data: data.to_owned(),
            offset,
            time_ms: now_ms(),
            client,
        });
    }

    /// A client connection published `event` (a Pusher `client-` event, or a native socket
    /// publish): the `client_event` webhook, when one of the app's endpoints wants it.
    /// `connection_id` is what webhooks show as the sender (`socket_id` in Pusher's format).
    #[allow(clippy::too_many_arguments)]
    pub fn client_event(
        &self,
        app: &App,
        channel: &ChannelName,
        event: &str,
        data: &RawValue,
        offset: u64,
        user_id: &str,
        connection_id: &str,
    ) {
        self.published(
            app,
            channel,
            event,
            data,
            offset,
            Some(Publisher {
                user_id: user_id.to_owned(),
                connection_id: connection_id.to_owned(),
            }),
        );
    }

    /// A client subscribed to a cache channel with nothing cached: the `cache_miss` webhook.
    pub fn cache_miss(&self, app: &App, channel: &ChannelName) {
        self.push(Report::CacheMiss {
            app: app.id().clone(),
            channel: channel.clone(),
            time_ms: now_ms(),
        });
    }

    /// Waits until every queued report is acknowledged, for at most `limit`: on shutdown, so the
    /// closes of the last connections reach the control-plane.
    pub async fn drain(&self, limit: Duration) {
        let end = tokio::time::Instant::now() + limit;
        while !self.queue.lock().expect("reporter poisoned").is_empty()
            && tokio::time::Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn send(&self, bus: &dyn Bus, reports: Vec<Report>) -> Result<(), String> {
        let body = serde_json::to_vec(&ReportBatch {
            node: self.node.clone(),
            reports,
        })
        .expect("reports serialise");
        let reply = bus
            .request(&self.subject, Bytes::from(body), REQUEST_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let answer: ReportAnswer =
            serde_json::from_slice(&reply).map_err(|e| format!("bad answer: {e}"))?;
        match answer.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends queued reports until the task is aborted; an empty batch every `heartbeat` when
    /// there is nothing to say, so the control-plane knows this node is alive.
    pub fn start(self: &Arc<Self>, bus: Arc<dyn Bus>, heartbeat: Duration) -> JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut retry = RETRY_MIN;
            let mut tick = tokio::time::interval(heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let batch: Vec<Report> = {
                    let queue = me.queue.lock().expect("reporter poisoned");
                    queue.iter().take(BATCH).cloned().collect()
                };
                if batch.is_empty() {
                    tokio::select! {
                        _ = me.wake.notified() => continue,
                        _ = tick.tick() => {}
                    }
                }
                let sent = batch.len();
                match me.send(bus.as_ref(), batch).await {
                    Ok(()) => {
                        retry = RETRY_MIN;
                        me.queue.lock().expect("reporter poisoned").drain(..sent);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, pending = sent, "webhook reports not acknowledged; retrying");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
            }
        })
    }
}

/// Presence transitions of this node become reports.
impl TransitionSink for Reporter {
    fn transition(&self, key: &Key, t: &LocalTransition) {
        let (Ok(app), Ok(channel)) = (AppId::parse(&key.app), ChannelName::parse(&key.channel))
        else {
            return;
        };
        // A member joins after the channel became occupied, and leaves before it is vacated.
        if let Some(true) = t.occupied {
            self.push(Report::Presence {
                app: app.clone(),
                channel: channel.clone(),
                member: None,
                present: true,
            });
        }
        if let Some((member, present)) = &t.member {
            self.push(Report::Presence {
                app: app.clone(),
                channel: channel.clone(),
                member: Some(member.clone()),
                present: *present,
            });
        }
        if let Some(false) = t.occupied {
            self.push(Report::Presence {
                app,
                channel,
                member: None,
                present: false,
            });
        }
    }
}
