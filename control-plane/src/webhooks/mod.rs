//! Webhooks, the control-plane's side: gateways' reports in, signed HTTP deliveries out.
//!
//! - **Ingest**: gateways send batches of reports as bus requests to the control-planes' queue
//!   group; a batch is answered only once it and the deliveries it causes are in the store (the
//!   durable outbox), so a report acknowledged is a webhook that will be delivered.
//! - **Presence transitions** are decided in the store, cluster-wide: a channel is occupied when
//!   its first node reports it, and vacated once no node has held it for `debounce_ms` (a node
//!   coming back within that window cancels it: no occupied/vacated flapping when subscribers
//!   move between gateways). Members the same way. A node silent for `node_ttl_ms` is forgotten
//!   as if all its channels and members had left.
//! - **Delivery** ([`worker`]): due rows are leased, POSTed with a timeout and settled:
//!   delivered on 2xx, else retried with exponential backoff and jitter, and dead after
//!   `max_attempts`. Only addresses the outbound policy allows are reached
//!   ([`waas_core::egress`]), and at most `response_log_bytes` of an answer are read. At least once: a control-plane killed mid-delivery leaves leased rows that
//!   another (or the restarted one) sends again when the lease ends.
//!
//! # Layout
//! - [`plan`]: which endpoints want an event, and the body each gets.
//! - [`pusher`]: Pusher's webhook format (one request for several events, its headers).
//! - [`worker`]: the delivery loop.

pub mod plan;
pub mod pusher;
pub mod worker;

use crate::store::webhooks::{Endpoint, PresenceRules, WebhookStore};
use crate::store::StoreError;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::directory::RESPONDERS;
use waas_core::egress::Policy;
use waas_core::webhooks::report::{report_subject, ReportAnswer, ReportBatch, WebhookInterest};
use waas_protocol::webhook::EventType;
use waas_protocol::{AppId, ChannelPattern, PatternSet};

/// Largest `response_log_bytes`: the log keeps a glimpse of answers, not their bodies.
pub const MAX_RESPONSE_LOG_BYTES: usize = 65536;

/// Every webhook setting, with its default beside it (`docs/configuration.md`, `[webhooks]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// How long a channel (member) must stay without subscribers (connections) anywhere before
    /// `channel_vacated` (`member_removed`) fires, ms. Default 2000.
    pub debounce_ms: u64,
    /// A gateway that has not reported for this long is forgotten, its channels and members
    /// leaving, ms. Keep it above the gateways' `presence_heartbeat_ms`. Default 15000.
    pub node_ttl_ms: u64,
    /// Attempts per delivery before it is dead. Default 10.
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each further one, ms. Default 1000.
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, ms. Default 3600000 (an hour).
    pub retry_max_ms: u64,
    /// How long an attempt may take, connect to last byte, ms. Default 10000.
    pub timeout_ms: u64,
    /// Deliveries in flight at once, all endpoints together. Default 64.
    pub concurrency: usize,
    /// Deliveries in flight at once to one endpoint, so a slow one cannot hold up the others.
    /// Default 4.
    pub per_endpoint_concurrency: usize,
    /// How often the outbox is checked for due deliveries when nothing wakes the worker, ms.
    /// Default 500.
    pub poll_ms: u64,
    /// Bytes of each answer's body kept in the delivery log, at most 65536; the rest of the body
    /// is not read (its connection is closed), so an endless answer costs nothing. 0 keeps
    /// none. Default 1024.
    pub response_log_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            debounce_ms: 2000,
            node_ttl_ms: 15_000,
            max_attempts: 10,
            retry_base_ms: 1000,
            retry_max_ms: 3_600_000,
            timeout_ms: 10_000,
            concurrency: 64,
            per_endpoint_concurrency: 4,
            poll_ms: 500,
            response_log_bytes: 1024,
        }
    }
}

impl WebhookConfig {
    /// The first setting that would make webhooks unusable, with why.
    pub fn invalid(&self) -> Option<(&'static str, &'static str)> {
        let positive = [
            ("node_ttl_ms", self.node_ttl_ms),
            ("max_attempts", self.max_attempts as u64),
            ("retry_base_ms", self.retry_base_ms),
            ("timeout_ms", self.timeout_ms),
            ("concurrency", self.concurrency as u64),
            (
                "per_endpoint_concurrency",
                self.per_endpoint_concurrency as u64,
            ),
            ("poll_ms", self.poll_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Some((key, "must be greater than 0"));
        }
        if self.retry_max_ms < self.retry_base_ms {
            return Some(("retry_max_ms", "must be at least retry_base_ms"));
        }
        if self.response_log_bytes > MAX_RESPONSE_LOG_BYTES {
            return Some(("response_log_bytes", "must be at most 65536"));
        }
        None
    }

    fn rules(&self) -> PresenceRules {
        PresenceRules {
            now: now_ms(),
            debounce_ms: self.debounce_ms as i64,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What gateways should forward for an app with these endpoints.
pub fn interest(endpoints: &[Endpoint]) -> WebhookInterest {
    let patterns = |kind: EventType| -> PatternSet {
        let mut all = Vec::new();
        for e in endpoints
            .iter()
            .filter(|e| e.enabled && e.events.contains(&kind))
        {
            if e.channels.is_empty() {
                return PatternSet::all();
            }
            all.extend(
                e.channels
                    .iter()
                    .filter_map(|p| ChannelPattern::parse(p).ok()),
            );
        }
        PatternSet::new(all)
    };
    WebhookInterest {
        client_events: patterns(EventType::ClientEvent),
        messages: patterns(EventType::Message),
    }
}

/// The webhook side of a control-plane: ingest, sweeps and the delivery worker.
pub struct Webhooks {
    pub store: Arc<dyn WebhookStore>,
    pub config: WebhookConfig,
    /// Which addresses endpoints may be at (`outbound_allow_*` settings): checked by the admin
    /// API on literal IPs, and by the worker on every attempt.
    pub outbound: Policy,
    pub worker: Arc<worker::Worker>,
    started: Instant,
}

impl Webhooks {
    pub fn new(store: Arc<dyn WebhookStore>, config: WebhookConfig, outbound: Policy) -> Arc<Self> {
        Arc::new(Webhooks {
            worker: worker::Worker::new(Arc::clone(&store), config.clone(), outbound),
            store,
            config,
            outbound,
            started: Instant::now(),
        })
    }

    /// The interest of `app`'s endpoints, for the app directory.
    pub async fn interest(&self, app: &AppId) -> Result<WebhookInterest, StoreError> {
        Ok(interest(&self.store.list_endpoints(app).await?))
    }

    /// Answers gateways' report batches (several control-planes share them through a queue
    /// group), sweeps presence, and runs the delivery worker. Subscribed before it returns.
    pub async fn start(
        self: &Arc<Self>,
        bus: Arc<dyn Bus>,
        prefix: &str,
    ) -> Result<Vec<JoinHandle<()>>, BusError> {
        let mut requests = bus.serve(&report_subject(prefix), Some(RESPONDERS)).await?;
        let me = Arc::clone(self);
        let ingest = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let me = Arc::clone(&me);
                let bus = Arc::clone(&bus);
                // One batch per gateway is in flight at a time, so batches can be handled
                // concurrently without reordering any gateway's reports.
                tokio::spawn(async move {
                    let answer = me.ingest(&req.payload).await;
                    if let Some(reply) = req.reply {
                        let body = serde_json::to_vec(&answer).expect("answers serialise");
                        if let Err(e) = bus.publish(&reply, Bytes::from(body)).await {
                            tracing::warn!(error = %e, "cannot acknowledge webhook reports");
                        }
                    }
                });
            }
        });
        let me = Arc::clone(self);
        let sweep = tokio::spawn(async move { me.sweep().await });
        let worker = Arc::clone(&self.worker).start();
        Ok(vec![ingest, sweep, worker])
    }

    async fn ingest(&self, payload: &[u8]) -> ReportAnswer {
        let batch: ReportBatch = match serde_json::from_slice(payload) {
            Ok(b) => b,
            Err(e) => {
                // Retrying cannot fix it: acknowledge, so the gateway moves on.
                tracing::warn!(error = %e, "unreadable webhook report batch dropped");
                return ReportAnswer { error: None };
            }
        };
        match self
            .store
            .ingest(&batch.node, batch.reports, self.config.rules())
            .await
        {
            Ok(enqueued) => {
                if enqueued > 0 {
                    self.worker.wake();
                }
                ReportAnswer { error: None }
            }
            Err(e) => {
                tracing::warn!(node = %batch.node, error = %e, "cannot store webhook reports");
                ReportAnswer {
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// Fires vacated/removed events whose debounce is over, and forgets silent gateways. Nodes
    /// are judged only once this control-plane has been up for a whole TTL, so that after an
    /// outage of every control-plane, live gateways get the time to report again first.
    async fn sweep(&self) {
        let every = Duration::from_millis((self.config.debounce_ms / 4).clamp(10, 1000));
        let ttl = Duration::from_millis(self.config.node_ttl_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let rules = self.config.rules();
            let mut woke = false;
            if self.started.elapsed() >= ttl {
                match self
                    .store
                    .expire_nodes(rules.now - self.config.node_ttl_ms as i64, rules)
                    .await
                {
                    Ok(nodes) if !nodes.is_empty() => {
                        tracing::info!(?nodes, "gateways silent for the node TTL forgotten");
                        woke = true;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot expire silent gateways"),
                }
            }
            match self.store.flush_vacated(rules).await {
                Ok(n) => woke |= n > 0,
                Err(e) => tracing::warn!(error = %e, "cannot fire vacated events"),
            }
            if woke {
                self.worker.wake();
            }
        }
    }
}
