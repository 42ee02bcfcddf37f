//! [`WebhookStore`] on PostgreSQL, shared by every control-plane of a cluster.
//!
//! Presence transitions lock the `webhook_announced` row of their channel or member first
//! (inserting it, or `SELECT ... FOR UPDATE`), so two control-planes handling reports about the
//! same channel take turns and announce each transition once. Claims lease rows with an
//! `UPDATE` whose `WHERE` is re-checked on the locked row, so two workers never lease one
//! delivery; sweeps skip rows another control-plane holds (`SKIP LOCKED`).

use super::postgres::PostgresStore;
use super::webhooks::{
    channels_json, delivery_not_found, endpoint_not_found, events_json, Attempt, Claimed, Delivery,
    DeliveryFilter, DeliveryStatus, Endpoint, EndpointPatch, NewEndpoint, Outcome, PresenceRules,
    WebhookStore,
};
use super::{stored_app_id, StoreError};
use crate::webhooks::plan::{self, Filter, NewDelivery};
use async_trait::async_trait;
use std::collections::HashMap;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Transaction};
use waas_core::webhooks::report::Report;
use waas_protocol::presence::Member;
use waas_protocol::AppId;

const ENDPOINT_COLUMNS: &str = "id, app_id, url, secret, events::text AS events, \
    channels::text AS channels, enabled, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, seq, endpoint_id, app_id, event_type, body, status, \
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column)
        .map_err(|e| StoreError::Invalid(format!("column {column}: {e}")))
}

fn endpoint(row: &Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: get(row, "id")?,
        app_id: stored_app_id(&get::<String>(row, "app_id")?)?,
        url: get(row, "url")?,
        secret: get(row, "secret")?,
        events: super::webhooks::events_from_json(&get::<String>(row, "events")?)?,
        channels: super::webhooks::channels_from_json(&get::<String>(row, "channels")?)?,
        enabled: get(row, "enabled")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn delivery(row: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: get(row, "id")?,
        seq: get(row, "seq")?,
        endpoint_id: get(row, "endpoint_id")?,
        app_id: get(row, "app_id")?,
        event_type: get(row, "event_type")?,
        body: get(row, "body")?,
        status: DeliveryStatus::parse(&get::<String>(row, "status")?)?,
        attempts: get(row, "attempts")?,
        next_attempt_at: get(row, "next_attempt_at")?,
        last_status: get(row, "last_status")?,
        last_error: get(row, "last_error")?,
        created_at: get(row, "created_at")?,
        delivered_at: get(row, "delivered_at")?,
    })
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(e)
}

/// The enabled endpoints of each app met in one transaction, read once.
#[derive(Default)]
struct Endpoints(HashMap<String, Vec<Filter>>);

impl Endpoints {
    async fn of(&mut self, tx: &Transaction<'_>, app: &str) -> Result<&[Filter], StoreError> {
        if !self.0.contains_key(app) {
            let rows = tx
                .query(
                    "SELECT id, events::text AS events, channels::text AS channels \
                     FROM webhook_endpoints WHERE app_id = $1 AND enabled ORDER BY id",
                    &[&app],
                )
                .await
                .map_err(backend)?;
            let filters = rows
                .iter()
                .map(|r| {
                    Filter::from_row(
                        get(r, "id")?,
                        &get::<String>(r, "events")?,
                        &get::<String>(r, "channels")?,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.0.insert(app.to_owned(), filters);
        }
        Ok(&self.0[app])
    }
}

/// Writes deliveries to the outbox in one statement (a batch of publishes can make hundreds);
/// one already there (same id: a batch stored again) is left alone.
async fn enqueue(
    tx: &Transaction<'_>,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<usize, StoreError> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&NewDelivery) -> &str| -> Vec<&str> { deliveries.iter().map(f).collect() };
    let n = tx
        .execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_type, body, status, \
                 next_attempt_at, created_at, updated_at) \
             SELECT id, endpoint_id, app_id, event_type, body, 'pending', $6, $6, $6 \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                 AS d (id, endpoint_id, app_id, event_type, body) \
             ON CONFLICT (id) DO NOTHING",
            &[
                &column(|d| &d.id),
                &column(|d| &d.endpoint_id),
                &column(|d| &d.app_id),
                &column(|d| d.event_type.as_str()),
                &column(|d| &d.body),
                &now,
            ],
        )
        .await
        .map_err(backend)?;
    Ok(n as usize)
}

async fn emit(
    tx: &Transaction<'_>,
    endpoints: &mut Endpoints,
    event: &plan::Event,
    now: i64,
) -> Result<usize, StoreError> {
    let filters = endpoints.of(tx, &event.app).await?;
    let deliveries = plan::plan(filters, event);
    enqueue(tx, &deliveries, now).await
}

/// A node now holds (`present`) or no longer holds a channel or member.
#[allow(clippy::too_many_arguments)]
async fn apply_presence(
    tx: &Transaction<'_>,
    endpoints: &mut Endpoints,
    node: &str,
    app: &str,
    channel: &str,
    member: Option<Member>,
    present: bool,
    rules: PresenceRules,
) -> Result<usize, StoreError> {
    let key = member.as_ref().map_or("", |m| m.id.as_str()).to_owned();
    let mut enqueued = 0;
    if present {
        let info = member
            .as_ref()
            .and_then(|m| m.info.as_ref())
            .map(|i| i.to_string());
        let inserted = tx
            .query_opt(
                "INSERT INTO webhook_announced (app_id, channel, member, info) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING RETURNING 1",
                &[&app, &channel, &key, &info],
            )
            .await
            .map_err(backend)?
            .is_some();
        if inserted {
            let event = plan::presence_event(app, channel, member, true, rules.now);
            enqueued += emit(tx, endpoints, &event, rules.now).await?;
        } else {
            // Back within the debounce window: the pending vacate is called off.
            tx.execute(
                "UPDATE webhook_announced SET vacate_at = NULL \
                 WHERE app_id = $1 AND channel = $2 AND member = $3 AND vacate_at IS NOT NULL",
                &[&app, &channel, &key],
            )
            .await
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT INTO webhook_presence (app_id, channel, member, node) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&app, &channel, &key, &node],
        )
        .await
        .map_err(backend)?;
    } else {
        let announced = tx
            .query_opt(
                "SELECT 1 FROM webhook_announced WHERE app_id = $1 AND channel = $2 AND member = $3 \
                 FOR UPDATE",
                &[&app, &channel, &key],
            )
            .await
            .map_err(backend)?
            .is_some();
        tx.execute(
            "DELETE FROM webhook_presence WHERE app_id = $1 AND channel = $2 AND member = $3 \
             AND node = $4",
            &[&app, &channel, &key, &node],
        )
        .await
        .map_err(backend)?;
        if announced {
            let left: i64 = tx
                .query_one(
                    "SELECT count(*) FROM webhook_presence \
                     WHERE app_id = $1 AND channel = $2 AND member = $3",
                    &[&app, &channel, &key],
                )
                .await
                .map_err(backend)?
                .get(0);
            if left == 0 {
                tx.execute(
                    "UPDATE webhook_announced SET vacate_at = $4 \
                     WHERE app_id = $1 AND channel = $2 AND member = $3 AND vacate_at IS NULL",
                    &[&app, &channel, &key, &(rules.now + rules.debounce_ms)],
                )
                .await
                .map_err(backend)?;
            }
        }
    }
    Ok(enqueued)
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_endpoint(&self, new: NewEndpoint, now: i64) -> Result<Endpoint, StoreError> {
        let sql = format!(
            "INSERT INTO webhook_endpoints (id, app_id, url, secret, events, channels, enabled, \
                 created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $8) \
             RETURNING {ENDPOINT_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_one(
                &sql,
                &[
                    &new.id,
                    &new.app_id.as_str(),
                    &new.url,
                    &new.secret,
                    &events_json(&new.events),
                    &channels_json(&new.channels),
                    &new.enabled,
                    &now,
                ],
            )
            .await
            .map_err(|e| match e.code() {
                Some(&SqlState::UNIQUE_VIOLATION) => {
                    StoreError::Conflict(format!("webhook endpoint {}", new.id))
                }
                Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::app_not_found(&new.app_id),
                _ => backend(e),
            })?;
        endpoint(&row)
    }

    async fn list_endpoints(&self, app: &AppId) -> Result<Vec<Endpoint>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = $1 ORDER BY id"
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&app.as_str()])
            .await
            .map_err(backend)?;
        rows.iter().map(endpoint).collect()
    }

    async fn get_endpoint(&self, app: &AppId, id: &str) -> Result<Endpoint, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND id = $2"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&app.as_str(), &id])
            .await
            .map_err(backend)?;
        endpoint(&row.ok_or_else(|| endpoint_not_found(app, id))?)
    }

    async fn update_endpoint(
        &self,
        app: &AppId,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint, StoreError> {
        let sql = format!(
            "UPDATE webhook_endpoints SET \
                 url = coalesce($3, url), secret = coalesce($4, secret), \
                 events = coalesce($5::text::jsonb, events), \
                 channels = coalesce($6::text::jsonb, channels), \
                 enabled = coalesce($7, enabled), updated_at = $8 \
             WHERE app_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
        );
        let events = patch.events.as_deref().map(events_json);
        let channels = patch.channels.as_deref().map(channels_json);
        let row = self
            .client()
            .await?
            .query_opt(
                &sql,
                &[
                    &app.as_str(),
                    &id,
                    &patch.url,
                    &patch.secret,
                    &events,
                    &channels,
                    &patch.enabled,
                    &now,
                ],
            )
            .await
            .map_err(backend)?;
        endpoint(&row.ok_or_else(|| endpoint_not_found(app, id))?)
    }

    async fn delete_endpoint(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM webhook_endpoints WHERE app_id = $1 AND id = $2",
                &[&app.as_str(), &id],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(endpoint_not_found(app, id));
        }
        Ok(())
    }

    async fn ingest(
        &self,
        node: &str,
        reports: Vec<Report>,
        rules: PresenceRules,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO webhook_nodes (node, seen_at) VALUES ($1, $2) \
             ON CONFLICT (node) DO UPDATE SET seen_at = greatest(webhook_nodes.seen_at, $2)",
            &[&node, &rules.now],
        )
        .await
        .map_err(backend)?;
        let mut endpoints = Endpoints::default();
        let mut enqueued = 0;
        let mut published = Vec::new();
        for report in reports {
            match report {
                Report::Presence {
                    app,
                    channel,
                    member,
                    present,
                } => {
                    enqueued += apply_presence(
                        &tx,
                        &mut endpoints,
                        node,
                        app.as_str(),
                        channel.as_str(),
                        member,
                        present,
                        rules,
                    )
                    .await?;
                }
                publish @ Report::Publish { .. } => {
                    for event in plan::publish_events(&publish) {
                        let filters = endpoints.of(&tx, &event.app).await?;
                        published.extend(plan::plan(filters, &event));
                    }
                }
            }
        }
        enqueued += enqueue(&tx, &published, rules.now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(enqueued)
    }

    async fn expire_nodes(
        &self,
        silent_since: i64,
        rules: PresenceRules,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let nodes: Vec<String> = tx
            .query(
                "SELECT node FROM webhook_nodes WHERE seen_at < $1 ORDER BY node \
                 LIMIT 10 FOR UPDATE SKIP LOCKED",
                &[&silent_since],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| get(r, "node"))
            .collect::<Result<_, _>>()?;
        let mut endpoints = Endpoints::default();
        for node in &nodes {
            let held = tx
                .query(
                    // Members first, so a member leaves before its channel is vacated.
                    "SELECT app_id, channel, member FROM webhook_presence \
                     WHERE node = $1 ORDER BY member DESC",
                    &[node],
                )
                .await
                .map_err(backend)?;
            for row in held {
                let app: String = get(&row, "app_id")?;
                let channel: String = get(&row, "channel")?;
                let member: String = get(&row, "member")?;
                let member = (!member.is_empty()).then_some(Member {
                    id: member,
                    info: None,
                });
                apply_presence(
                    &tx,
                    &mut endpoints,
                    node,
                    &app,
                    &channel,
                    member,
                    false,
                    rules,
                )
                .await?;
            }
            tx.execute("DELETE FROM webhook_nodes WHERE node = $1", &[node])
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(nodes)
    }

    async fn flush_vacated(&self, rules: PresenceRules) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let due = tx
            .query(
                "SELECT app_id, channel, member, info, vacate_at FROM webhook_announced \
                 WHERE vacate_at <= $1 ORDER BY vacate_at LIMIT 500 FOR UPDATE SKIP LOCKED",
                &[&rules.now],
            )
            .await
            .map_err(backend)?;
        let mut endpoints = Endpoints::default();
        let mut enqueued = 0;
        for row in due {
            let app: String = get(&row, "app_id")?;
            let channel: String = get(&row, "channel")?;
            let member: String = get(&row, "member")?;
            let info: Option<String> = get(&row, "info")?;
            let vacate_at: i64 = get(&row, "vacate_at")?;
            let held: i64 = tx
                .query_one(
                    "SELECT count(*) FROM webhook_presence \
                     WHERE app_id = $1 AND channel = $2 AND member = $3",
                    &[&app, &channel, &member],
                )
                .await
                .map_err(backend)?
                .get(0);
            if held > 0 {
                tx.execute(
                    "UPDATE webhook_announced SET vacate_at = NULL \
                     WHERE app_id = $1 AND channel = $2 AND member = $3",
                    &[&app, &channel, &member],
                )
                .await
                .map_err(backend)?;
                continue;
            }
            tx.execute(
                "DELETE FROM webhook_announced WHERE app_id = $1 AND channel = $2 AND member = $3",
                &[&app, &channel, &member],
            )
            .await
            .map_err(backend)?;
            let member = (!member.is_empty()).then(|| Member {
                id: member,
                info: info.and_then(|i| serde_json::from_str(&i).ok()),
            });
            let left_at = vacate_at - rules.debounce_ms;
            let event = plan::presence_event(&app, &channel, member, false, left_at);
            enqueued += emit(&tx, &mut endpoints, &event, rules.now).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(enqueued)
    }

    async fn claim(
        &self,
        now: i64,
        limit: usize,
        per_endpoint: usize,
        lease_ms: i64,
        busy: &[String],
    ) -> Result<Vec<Claimed>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "UPDATE webhook_deliveries d SET lease_until = $1 + $4 \
                 FROM webhook_endpoints e \
                 WHERE e.id = d.endpoint_id AND d.status = 'pending' \
                   AND (d.lease_until IS NULL OR d.lease_until <= $1) \
                   AND d.id IN ( \
                     SELECT id FROM ( \
                       SELECT x.id, x.next_attempt_at, x.seq, row_number() OVER \
                           (PARTITION BY x.endpoint_id ORDER BY x.next_attempt_at, x.seq) AS rn \
                       FROM webhook_deliveries x JOIN webhook_endpoints xe ON xe.id = x.endpoint_id \
                       WHERE x.status = 'pending' AND x.next_attempt_at <= $1 AND xe.enabled \
                         AND (x.lease_until IS NULL OR x.lease_until <= $1) \
                         AND NOT (x.endpoint_id = ANY($5)) \
                     ) t WHERE rn <= $3 ORDER BY next_attempt_at, seq LIMIT $2) \
                 RETURNING d.id, d.endpoint_id, e.url, e.secret, d.event_type, d.body, d.attempts",
                &[&now, &(limit as i64), &(per_endpoint as i64), &lease_ms, &busy],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(Claimed {
                    id: get(r, "id")?,
                    endpoint_id: get(r, "endpoint_id")?,
                    url: get(r, "url")?,
                    secret: get(r, "secret")?,
                    event_type: get(r, "event_type")?,
                    body: get(r, "body")?,
                    attempts: get(r, "attempts")?,
                })
            })
            .collect()
    }

    async fn release(&self, ids: &[String]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE webhook_deliveries SET lease_until = NULL WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn settle(&self, id: &str, attempt: Attempt, outcome: Outcome) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms, \
                 response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &id,
                &attempt.attempt,
                &attempt.at,
                &attempt.status_code,
                &attempt.error,
                &attempt.duration_ms,
                &attempt.response_body,
            ],
        )
        .await
        .map_err(backend)?;
        let (status, next, delivered_at) = match outcome {
            Outcome::Delivered => ("delivered", attempt.at, Some(attempt.at)),
            Outcome::Retry(at) => ("pending", at, None),
            Outcome::Dead => ("dead", attempt.at, None),
        };
        tx.execute(
            "UPDATE webhook_deliveries SET status = $2, attempts = greatest(attempts, $3), \
                 next_attempt_at = $4, lease_until = NULL, last_status = $5, last_error = $6, \
                 updated_at = $7, delivered_at = $8 \
             WHERE id = $1",
            &[
                &id,
                &status,
                &attempt.attempt,
                &next,
                &attempt.status_code,
                &attempt.error,
                &attempt.at,
                &delivered_at,
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn list_deliveries(
        &self,
        app: &AppId,
        filter: DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE app_id = $1 AND ($2::text IS NULL OR endpoint_id = $2) \
               AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR seq < $4) \
             ORDER BY seq DESC LIMIT $5"
        );
        let status = filter.status.map(DeliveryStatus::as_str);
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[
                    &app.as_str(),
                    &filter.endpoint_id,
                    &status,
                    &filter.before,
                    &(filter.limit as i64),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(delivery).collect()
    }

    async fn get_delivery(
        &self,
        app: &AppId,
        id: &str,
    ) -> Result<(Delivery, Vec<Attempt>), StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE app_id = $1 AND id = $2"
        );
        let row = client
            .query_opt(&sql, &[&app.as_str(), &id])
            .await
            .map_err(backend)?
            .ok_or_else(|| delivery_not_found(app, id))?;
        let attempts = client
            .query(
                "SELECT attempt, at, status_code, error, duration_ms, response_body \
                 FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
                &[&id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                Ok(Attempt {
                    attempt: get(r, "attempt")?,
                    at: get(r, "at")?,
                    status_code: get(r, "status_code")?,
                    error: get(r, "error")?,
                    duration_ms: get(r, "duration_ms")?,
                    response_body: get(r, "response_body")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((delivery(&row)?, attempts))
    }

    async fn retry_delivery(
        &self,
        app: &AppId,
        id: &str,
        now: i64,
    ) -> Result<Delivery, StoreError> {
        let sql = format!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
                 lease_until = NULL, updated_at = $3 \
             WHERE app_id = $1 AND id = $2 AND status <> 'delivered' RETURNING {DELIVERY_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&app.as_str(), &id, &now])
            .await
            .map_err(backend)?;
        match row {
            Some(row) => delivery(&row),
            None => {
                // Either no such delivery, or one already delivered: answer with it as it is.
                Ok(self.get_delivery(app, id).await?.0)
            }
        }
    }
}
