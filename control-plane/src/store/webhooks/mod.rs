//! The **webhook store seam**: endpoints, the durable outbox and its delivery log, and the
//! cluster-wide presence state behind occupancy and member webhooks. Implemented by both stores
//! (`sqlite/webhooks.rs`, `postgres/webhooks.rs`) and run through one suite,
//! `control-plane/tests/webhook_store.rs`.
//!
//! Guarantees: [`WebhookStore::ingest`] is atomic — a gateway's batch is either wholly stored,
//! deliveries included, or not at all (and the gateway sends it again) — and idempotent: a
//! presence report applied twice changes nothing the second time, a publish report yields each
//! delivery once (delivery ids derive from the report's id). Presence transitions are decided
//! under a lock on the channel's (or member's) row, so control-planes sharing a database never
//! announce one transition twice. A claimed delivery is leased: no other claim returns it until
//! it is settled or the lease ends.

pub(crate) mod endpoints;
pub(crate) mod outbox;
pub(crate) mod presence;

use super::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use waas_core::redact;
use waas_core::webhooks::report::Report;
use waas_protocol::webhook::EventType;
use waas_protocol::AppId;

/// A URL an app's events are POSTed to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub app_id: AppId,
    pub url: String,
    /// Key of the HMAC-SHA256 signatures.
    pub secret: String,
    /// What the endpoint receives.
    pub events: Vec<EventType>,
    /// Channel patterns it is for; empty means every channel.
    pub channels: Vec<String>,
    pub enabled: bool,
    /// The body and headers its requests have.
    pub format: WebhookFormat,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewEndpoint {
    pub id: String,
    pub app_id: AppId,
    pub url: String,
    pub secret: String,
    pub events: Vec<EventType>,
    pub channels: Vec<String>,
    pub enabled: bool,
    pub format: WebhookFormat,
}

/// A partial update: `None` leaves a field alone.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub channels: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub format: Option<WebhookFormat>,
}

/// What an endpoint's requests look like.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// One event per request, `WaaS-*` headers (`docs/webhooks.md`).
    #[default]
    Waas,
    /// Pusher's webhooks: `{"time_ms", "events": [...]}`, several events per request when
    /// several are due, `X-Pusher-Key` and `X-Pusher-Signature` (`docs/pusher.md`).
    Pusher,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Waas => "waas",
            WebhookFormat::Pusher => "pusher",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "waas" => Ok(WebhookFormat::Waas),
            "pusher" => Ok(WebhookFormat::Pusher),
            other => Err(StoreError::Invalid(format!("webhook format {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed; no more are made (the admin API can retry it).
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "dead" => Ok(DeliveryStatus::Dead),
            other => Err(StoreError::Invalid(format!("delivery status {other:?}"))),
        }
    }
}

/// One event for one endpoint, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Also the `WaaS-Webhook-Id` header: the same on every attempt.
    pub id: String,
    /// Order of creation, for paging the log.
    pub seq: i64,
    pub endpoint_id: String,
    pub app_id: String,
    pub event_type: String,
    /// The JSON body sent, exactly.
    pub body: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// One try at delivering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: i32,
    pub at: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i32>,
    /// Why the attempt failed (status, timeout, connection refused...).
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The start of the receiver's answer body, when it answered: at most the worker's
    /// `response_log_bytes` (cut on a character boundary, invalid UTF-8 replaced).
    #[serde(default)]
    pub response_body: Option<String>,
}

/// A delivery leased to a worker, with what it needs to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_type: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The endpoint's format: Pusher-format deliveries of one endpoint go out together.
    pub format: WebhookFormat,
    pub app_id: String,
    /// The app's Pusher secret when the delivery was claimed (`None`: the app has none), which
    /// signs Pusher-format requests in place of the endpoint's `secret`.
    pub pusher_secret: Option<String>,
}

/// How an attempt ended, for [`WebhookStore::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again at this time (ms).
    Retry(i64),
    /// Give up: no attempts left.
    Dead,
}

/// Which deliveries [`WebhookStore::list_deliveries`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    /// Only deliveries with `seq` below this (the previous page's last `seq`).
    pub before: Option<i64>,
    pub limit: usize,
}

/// Timing rules of [`WebhookStore::ingest`] and the sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceRules {
    /// Now, ms since the epoch.
    pub now: i64,
    /// How long a channel (or member) must stay without any node before `channel_vacated`
    /// (`member_removed`) fires, ms.
    pub debounce_ms: i64,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// `NotFound` when the app does not exist, `Conflict` when the id is taken.
    async fn create_endpoint(&self, new: NewEndpoint, now: i64) -> Result<Endpoint, StoreError>;
    /// Ordered by id.
    async fn list_endpoints(&self, app: &AppId) -> Result<Vec<Endpoint>, StoreError>;
    async fn get_endpoint(&self, app: &AppId, id: &str) -> Result<Endpoint, StoreError>;
    async fn update_endpoint(
        &self,
        app: &AppId,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint, StoreError>;
    /// Deletes the endpoint with its deliveries.
    async fn delete_endpoint(&self, app: &AppId, id: &str) -> Result<(), StoreError>;

    /// Stores what gateway `node` reported and the deliveries it causes, and marks the node
    /// alive. Returns how many deliveries were enqueued.
    async fn ingest(
        &self,
        node: &str,
        reports: Vec<Report>,
        rules: PresenceRules,
    ) -> Result<usize, StoreError>;
    /// Forgets nodes that have not reported since `silent_since` (ms), as if every channel and
    /// member they held had left. Returns the nodes forgotten: at most a few per call, so one
    /// sweep stays short; the next sweep takes the rest.
    async fn expire_nodes(
        &self,
        silent_since: i64,
        rules: PresenceRules,
    ) -> Result<Vec<String>, StoreError>;
    /// Fires `channel_vacated` and `member_removed` whose debounce window has passed with no node
    /// back. Returns how many deliveries were enqueued.
    async fn flush_vacated(&self, rules: PresenceRules) -> Result<usize, StoreError>;

    /// Leases up to `limit` due deliveries, at most `per_endpoint` of any endpoint and none of
    /// `busy` endpoints, for `lease_ms`; oldest due first.
    async fn claim(
        &self,
        now: i64,
        limit: usize,
        per_endpoint: usize,
        lease_ms: i64,
        busy: &[String],
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Gives leased deliveries back without an attempt.
    async fn release(&self, ids: &[String]) -> Result<(), StoreError>;
    /// Logs an attempt and moves the delivery on: delivered, due again, or dead.
    async fn settle(&self, id: &str, attempt: Attempt, outcome: Outcome) -> Result<(), StoreError>;

    /// The delivery log of an app, newest first.
    async fn list_deliveries(
        &self,
        app: &AppId,
        filter: DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// One delivery with its attempts, oldest first.
    async fn get_delivery(
        &self,
        app: &AppId,
        id: &str,
    ) -> Result<(Delivery, Vec<Attempt>), StoreError>;
    /// Makes a delivery due now again (a dead one gets more attempts).
    async fn retry_delivery(&self, app: &AppId, id: &str, now: i64)
        -> Result<Delivery, StoreError>;
}

pub(crate) fn endpoint_not_found(app: &AppId, id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook endpoint {id} of app {app}"))
}

pub(crate) fn delivery_not_found(app: &AppId, id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook delivery {id} of app {app}"))
}

pub(crate) fn events_json(events: &[EventType]) -> String {
    serde_json::to_string(events).expect("event types serialise")
}

pub(crate) fn events_from_json(s: &str) -> Result<Vec<EventType>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored event types: {e}")))
}

pub(crate) fn channels_json(channels: &[String]) -> String {
    serde_json::to_string(channels).expect("strings serialise")
}

pub(crate) fn channels_from_json(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored channels: {e}")))
}

/// Leaves out the signing secret and the URL's userinfo.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &redact::url(&self.url))
            .field("events", &self.events)
            .field("channels", &self.channels)
            .field("enabled", &self.enabled)
            .field("format", &self.format)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEndpoint")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &redact::url(&self.url))
            .field("events", &self.events)
            .field("channels", &self.channels)
            .field("enabled", &self.enabled)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for EndpointPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointPatch")
            .field("url", &self.url.as_deref().map(redact::url))
            .field("secret", &redact::option(&self.secret))
            .field("events", &self.events)
            .field("channels", &self.channels)
            .field("enabled", &self.enabled)
            .field("format", &self.format)
            .finish()
    }
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &redact::url(&self.url))
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The [`WebhookStore`] of a backend, written once: each method runs its rule (`endpoints`,
/// `presence`, `outbox`) in one transaction of the backend, opened by `$tx!(store, read|write,
/// |db| rule)`. Arguments are copied first because SQLite runs the rule on another thread.
macro_rules! impl_webhook_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use waas_core::webhooks::report::Report;
            use waas_protocol::AppId;
            use $crate::store::webhooks::{
                endpoints, outbox, presence, Attempt, Claimed, Delivery, DeliveryFilter, Endpoint,
                EndpointPatch, NewEndpoint, Outcome, PresenceRules, WebhookStore,
            };
            use $crate::store::StoreError;

            #[async_trait::async_trait]
            impl WebhookStore for $store {
                async fn create_endpoint(
                    &self,
                    new: NewEndpoint,
                    now: i64,
                ) -> Result<Endpoint, StoreError> {
                    $tx!(self, write, |db| endpoints::create(db, new, now))
                }

                async fn list_endpoints(&self, app: &AppId) -> Result<Vec<Endpoint>, StoreError> {
                    let app = app.clone();
                    $tx!(self, read, |db| endpoints::list(db, &app))
                }

                async fn get_endpoint(
                    &self,
                    app: &AppId,
                    id: &str,
                ) -> Result<Endpoint, StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, read, |db| endpoints::get(db, &app, &id))
                }

                async fn update_endpoint(
                    &self,
                    app: &AppId,
                    id: &str,
                    patch: EndpointPatch,
                    now: i64,
                ) -> Result<Endpoint, StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, write, |db| endpoints::update(
                        db, &app, &id, patch, now
                    ))
                }

                async fn delete_endpoint(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, write, |db| endpoints::delete(db, &app, &id))
                }

                async fn ingest(
                    &self,
                    node: &str,
                    reports: Vec<Report>,
                    rules: PresenceRules,
                ) -> Result<usize, StoreError> {
                    let node = node.to_owned();
                    $tx!(self, write, |db| presence::ingest(
                        db, &node, reports, rules
                    ))
                }

                async fn expire_nodes(
                    &self,
                    silent_since: i64,
                    rules: PresenceRules,
                ) -> Result<Vec<String>, StoreError> {
                    $tx!(self, write, |db| presence::expire_nodes(
                        db,
                        silent_since,
                        rules
                    ))
                }

                async fn flush_vacated(&self, rules: PresenceRules) -> Result<usize, StoreError> {
                    $tx!(self, write, |db| presence::flush_vacated(db, rules))
                }

                async fn claim(
                    &self,
                    now: i64,
                    limit: usize,
                    per_endpoint: usize,
                    lease_ms: i64,
                    busy: &[String],
                ) -> Result<Vec<Claimed>, StoreError> {
                    let busy = busy.to_vec();
                    $tx!(self, write, |db| outbox::claim(
                        db,
                        now,
                        limit,
                        per_endpoint,
                        lease_ms,
                        &busy
                    ))
                }

                async fn release(&self, ids: &[String]) -> Result<(), StoreError> {
                    let ids = ids.to_vec();
                    $tx!(self, write, |db| outbox::release(db, &ids))
                }

                async fn settle(
                    &self,
                    id: &str,
                    attempt: Attempt,
                    outcome: Outcome,
                ) -> Result<(), StoreError> {
                    let id = id.to_owned();
                    $tx!(self, write, |db| outbox::settle(db, &id, attempt, outcome))
                }

                async fn list_deliveries(
                    &self,
                    app: &AppId,
                    filter: DeliveryFilter,
                ) -> Result<Vec<Delivery>, StoreError> {
                    let app = app.clone();
                    $tx!(self, read, |db| outbox::list_deliveries(db, &app, filter))
                }

                async fn get_delivery(
                    &self,
                    app: &AppId,
                    id: &str,
                ) -> Result<(Delivery, Vec<Attempt>), StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, read, |db| outbox::get_delivery(db, &app, &id))
                }

                async fn retry_delivery(
                    &self,
                    app: &AppId,
                    id: &str,
                    now: i64,
                ) -> Result<Delivery, StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, write, |db| outbox::retry_delivery(db, &app, &id, now))
                }
            }
        };
    };
}
pub(crate) use impl_webhook_store;
