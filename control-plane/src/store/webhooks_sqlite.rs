//! [`WebhookStore`] on SQLite, for `waas dev` and single-node installs. One connection and
//! IMMEDIATE transactions serialise every write, so presence transitions and claims need no
//! row locks: one control-plane, one worker, one writer at a time.

use super::sqlite::SqliteStore;
use super::webhooks::{
    channels_from_json, channels_json, delivery_not_found, endpoint_not_found, events_from_json,
    events_json, Attempt, Claimed, Delivery, DeliveryFilter, DeliveryStatus, Endpoint,
    EndpointPatch, NewEndpoint, Outcome, PresenceRules, WebhookStore,
};
use super::{stored_app_id, StoreError};
use crate::webhooks::plan::{self, Filter, NewDelivery};
use async_trait::async_trait;
use rusqlite::{params, params_from_iter, ErrorCode, OptionalExtension, Row, Transaction};
use std::collections::HashMap;
use waas_core::webhooks::report::Report;
use waas_protocol::presence::Member;
use waas_protocol::AppId;

const ENDPOINT_COLUMNS: &str =
    "id, app_id, url, secret, events, channels, enabled, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, seq, endpoint_id, app_id, event_type, body, status, \
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

fn endpoint(row: &Row) -> rusqlite::Result<Result<Endpoint, StoreError>> {
    let app: String = row.get("app_id")?;
    let events: String = row.get("events")?;
    let channels: String = row.get("channels")?;
    let id: String = row.get("id")?;
    let url: String = row.get("url")?;
    let secret: String = row.get("secret")?;
    let enabled: bool = row.get("enabled")?;
    let created_at: i64 = row.get("created_at")?;
    let updated_at: i64 = row.get("updated_at")?;
    Ok((|| {
        Ok(Endpoint {
            id,
            app_id: stored_app_id(&app)?,
            url,
            secret,
            events: events_from_json(&events)?,
            channels: channels_from_json(&channels)?,
            enabled,
            created_at,
            updated_at,
        })
    })())
}

fn delivery(row: &Row) -> rusqlite::Result<Result<Delivery, StoreError>> {
    let status: String = row.get("status")?;
    let d = Delivery {
        id: row.get("id")?,
        seq: row.get("seq")?,
        endpoint_id: row.get("endpoint_id")?,
        app_id: row.get("app_id")?,
        event_type: row.get("event_type")?,
        body: row.get("body")?,
        status: DeliveryStatus::Pending,
        attempts: row.get("attempts")?,
        next_attempt_at: row.get("next_attempt_at")?,
        last_status: row.get("last_status")?,
        last_error: row.get("last_error")?,
        created_at: row.get("created_at")?,
        delivered_at: row.get("delivered_at")?,
    };
    Ok(DeliveryStatus::parse(&status).map(|status| Delivery { status, ..d }))
}

fn one_endpoint(tx: &Transaction, app: &AppId, id: &str) -> Result<Endpoint, StoreError> {
    let sql =
        format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = ?1 AND id = ?2");
    tx.query_row(&sql, params![app.as_str(), id], endpoint)
        .optional()
        .map_err(backend)?
        .ok_or_else(|| endpoint_not_found(app, id))?
}

fn one_delivery(tx: &Transaction, app: &AppId, id: &str) -> Result<Delivery, StoreError> {
    let sql =
        format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE app_id = ?1 AND id = ?2");
    tx.query_row(&sql, params![app.as_str(), id], delivery)
        .optional()
        .map_err(backend)?
        .ok_or_else(|| delivery_not_found(app, id))?
}

/// The enabled endpoints of each app met in one transaction, read once.
#[derive(Default)]
struct Endpoints(HashMap<String, Vec<Filter>>);

impl Endpoints {
    fn of(&mut self, tx: &Transaction, app: &str) -> Result<&[Filter], StoreError> {
        if !self.0.contains_key(app) {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, events, channels FROM webhook_endpoints \
                     WHERE app_id = ?1 AND enabled ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([app], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            let filters = rows
                .into_iter()
                .map(|(id, events, channels)| Filter::from_row(id, &events, &channels))
                .collect::<Result<Vec<_>, _>>()?;
            self.0.insert(app.to_owned(), filters);
        }
        Ok(&self.0[app])
    }
}

fn enqueue(tx: &Transaction, deliveries: &[NewDelivery], now: i64) -> Result<usize, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_type, body, status, \
                 next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?6) ON CONFLICT (id) DO NOTHING",
        )
        .map_err(backend)?;
    let mut n = 0;
    for d in deliveries {
        n += stmt
            .execute(params![
                d.id,
                d.endpoint_id,
                d.app_id,
                d.event_type.as_str(),
                d.body,
                now
            ])
            .map_err(backend)?;
    }
    Ok(n)
}

fn emit(
    tx: &Transaction,
    endpoints: &mut Endpoints,
    event: &plan::Event,
    now: i64,
) -> Result<usize, StoreError> {
    let filters = endpoints.of(tx, &event.app)?;
    let deliveries = plan::plan(filters, event);
    enqueue(tx, &deliveries, now)
}

/// A node now holds (`present`) or no longer holds a channel or member.
#[allow(clippy::too_many_arguments)]
fn apply_presence(
    tx: &Transaction,
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
            .execute(
                "INSERT INTO webhook_announced (app_id, channel, member, info) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![app, channel, key, info],
            )
            .map_err(backend)?
            == 1;
        if inserted {
            let event = plan::presence_event(app, channel, member, true, rules.now);
            enqueued += emit(tx, endpoints, &event, rules.now)?;
        } else {
            tx.execute(
                "UPDATE webhook_announced SET vacate_at = NULL \
                 WHERE app_id = ?1 AND channel = ?2 AND member = ?3 AND vacate_at IS NOT NULL",
                params![app, channel, key],
            )
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT INTO webhook_presence (app_id, channel, member, node) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
            params![app, channel, key, node],
        )
        .map_err(backend)?;
    } else {
        tx.execute(
            "DELETE FROM webhook_presence \
             WHERE app_id = ?1 AND channel = ?2 AND member = ?3 AND node = ?4",
            params![app, channel, key, node],
        )
        .map_err(backend)?;
        let left: i64 = tx
            .query_row(
                "SELECT count(*) FROM webhook_presence \
                 WHERE app_id = ?1 AND channel = ?2 AND member = ?3",
                params![app, channel, key],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if left == 0 {
            tx.execute(
                "UPDATE webhook_announced SET vacate_at = ?4 \
                 WHERE app_id = ?1 AND channel = ?2 AND member = ?3 AND vacate_at IS NULL",
                params![app, channel, key, rules.now + rules.debounce_ms],
            )
            .map_err(backend)?;
        }
    }
    Ok(enqueued)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(&self, new: NewEndpoint, now: i64) -> Result<Endpoint, StoreError> {
        self.write(move |tx| {
            let app_exists = tx
                .query_row("SELECT 1 FROM apps WHERE id = ?1", [new.app_id.as_str()], |_| Ok(()))
                .optional()
                .map_err(backend)?
                .is_some();
            if !app_exists {
                return Err(StoreError::app_not_found(&new.app_id));
            }
            tx.execute(
                "INSERT INTO webhook_endpoints (id, app_id, url, secret, events, channels, enabled, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    new.id,
                    new.app_id.as_str(),
                    new.url,
                    new.secret,
                    events_json(&new.events),
                    channels_json(&new.channels),
                    new.enabled,
                    now
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => {
                    StoreError::Conflict(format!("webhook endpoint {}", new.id))
                }
                _ => backend(e),
            })?;
            one_endpoint(tx, &new.app_id, &new.id)
        })
        .await
    }

    async fn list_endpoints(&self, app: &AppId) -> Result<Vec<Endpoint>, StoreError> {
        let app = app.clone();
        self.read(move |tx| {
            let sql = format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE app_id = ?1 ORDER BY id"
            );
            let mut stmt = tx.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map([app.as_str()], endpoint)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn get_endpoint(&self, app: &AppId, id: &str) -> Result<Endpoint, StoreError> {
        let (app, id) = (app.clone(), id.to_owned());
        self.read(move |tx| one_endpoint(tx, &app, &id)).await
    }

    async fn update_endpoint(
        &self,
        app: &AppId,
        id: &str,
        patch: EndpointPatch,
        now: i64,
    ) -> Result<Endpoint, StoreError> {
        let (app, id) = (app.clone(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE webhook_endpoints SET url = coalesce(?3, url), \
                         secret = coalesce(?4, secret), events = coalesce(?5, events), \
                         channels = coalesce(?6, channels), enabled = coalesce(?7, enabled), \
                         updated_at = ?8 \
                     WHERE app_id = ?1 AND id = ?2",
                    params![
                        app.as_str(),
                        id,
                        patch.url,
                        patch.secret,
                        patch.events.as_deref().map(events_json),
                        patch.channels.as_deref().map(channels_json),
                        patch.enabled,
                        now
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(endpoint_not_found(&app, &id));
            }
            one_endpoint(tx, &app, &id)
        })
        .await
    }

    async fn delete_endpoint(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let (app, id) = (app.clone(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM webhook_endpoints WHERE app_id = ?1 AND id = ?2",
                    params![app.as_str(), id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(endpoint_not_found(&app, &id));
            }
            Ok(())
        })
        .await
    }

    async fn ingest(
        &self,
        node: &str,
        reports: Vec<Report>,
        rules: PresenceRules,
    ) -> Result<usize, StoreError> {
        let node = node.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO webhook_nodes (node, seen_at) VALUES (?1, ?2) \
                 ON CONFLICT (node) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)",
                params![node, rules.now],
            )
            .map_err(backend)?;
            let mut endpoints = Endpoints::default();
            let mut enqueued = 0;
            for report in reports {
                match report {
                    Report::Presence {
                        app,
                        channel,
                        member,
                        present,
                    } => {
                        enqueued += apply_presence(
                            tx,
                            &mut endpoints,
                            &node,
                            app.as_str(),
                            channel.as_str(),
                            member,
                            present,
                            rules,
                        )?;
                    }
                    publish @ Report::Publish { .. } => {
                        for event in plan::publish_events(&publish) {
                            enqueued += emit(tx, &mut endpoints, &event, rules.now)?;
                        }
                    }
                }
            }
            Ok(enqueued)
        })
        .await
    }

    async fn expire_nodes(
        &self,
        silent_since: i64,
        rules: PresenceRules,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |tx| {
            let nodes = {
                let mut stmt = tx
                    .prepare("SELECT node FROM webhook_nodes WHERE seen_at < ?1 ORDER BY node")
                    .map_err(backend)?;
                let nodes = stmt
                    .query_map([silent_since], |r| r.get::<_, String>(0))
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                nodes
            };
            let mut endpoints = Endpoints::default();
            for node in &nodes {
                let held = {
                    let mut stmt = tx
                        .prepare(
                            // Members first, so a member leaves before its channel is vacated.
                            "SELECT app_id, channel, member FROM webhook_presence \
                             WHERE node = ?1 ORDER BY member DESC",
                        )
                        .map_err(backend)?;
                    let held = stmt
                        .query_map([node], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                            ))
                        })
                        .map_err(backend)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(backend)?;
                    held
                };
                for (app, channel, member) in held {
                    let member = (!member.is_empty()).then_some(Member {
                        id: member,
                        info: None,
                    });
                    apply_presence(
                        tx,
                        &mut endpoints,
                        node,
                        &app,
                        &channel,
                        member,
                        false,
                        rules,
                    )?;
                }
                tx.execute("DELETE FROM webhook_nodes WHERE node = ?1", [node])
                    .map_err(backend)?;
            }
            Ok(nodes)
        })
        .await
    }

    async fn flush_vacated(&self, rules: PresenceRules) -> Result<usize, StoreError> {
        self.write(move |tx| {
            let due = {
                let mut stmt = tx
                    .prepare(
                        "SELECT app_id, channel, member, info, vacate_at FROM webhook_announced \
                         WHERE vacate_at <= ?1 ORDER BY vacate_at LIMIT 500",
                    )
                    .map_err(backend)?;
                let due = stmt
                    .query_map([rules.now], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                due
            };
            let mut endpoints = Endpoints::default();
            let mut enqueued = 0;
            for (app, channel, member, info, vacate_at) in due {
                let held: i64 = tx
                    .query_row(
                        "SELECT count(*) FROM webhook_presence \
                         WHERE app_id = ?1 AND channel = ?2 AND member = ?3",
                        params![app, channel, member],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if held > 0 {
                    tx.execute(
                        "UPDATE webhook_announced SET vacate_at = NULL \
                         WHERE app_id = ?1 AND channel = ?2 AND member = ?3",
                        params![app, channel, member],
                    )
                    .map_err(backend)?;
                    continue;
                }
                tx.execute(
                    "DELETE FROM webhook_announced \
                     WHERE app_id = ?1 AND channel = ?2 AND member = ?3",
                    params![app, channel, member],
                )
                .map_err(backend)?;
                let member = (!member.is_empty()).then(|| Member {
                    id: member,
                    info: info.and_then(|i| serde_json::from_str(&i).ok()),
                });
                let left_at = vacate_at - rules.debounce_ms;
                let event = plan::presence_event(&app, &channel, member, false, left_at);
                enqueued += emit(tx, &mut endpoints, &event, rules.now)?;
            }
            Ok(enqueued)
        })
        .await
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
        self.write(move |tx| {
            let not_busy = if busy.is_empty() {
                String::new()
            } else {
                let marks: Vec<String> = (0..busy.len()).map(|i| format!("?{}", i + 4)).collect();
                format!("AND d.endpoint_id NOT IN ({})", marks.join(", "))
            };
            let sql = format!(
                "SELECT id, endpoint_id, url, secret, event_type, body, attempts FROM ( \
                   SELECT d.id, d.endpoint_id, e.url, e.secret, d.event_type, d.body, d.attempts, \
                       d.next_attempt_at, d.seq, row_number() OVER \
                       (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.seq) AS rn \
                   FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                   WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND e.enabled \
                     AND (d.lease_until IS NULL OR d.lease_until <= ?1) {not_busy} \
                 ) WHERE rn <= ?3 ORDER BY next_attempt_at, seq LIMIT ?2"
            );
            let mut values: Vec<rusqlite::types::Value> = vec![
                now.into(),
                (limit as i64).into(),
                (per_endpoint as i64).into(),
            ];
            values.extend(busy.into_iter().map(rusqlite::types::Value::from));
            let claimed = {
                let mut stmt = tx.prepare(&sql).map_err(backend)?;
                let claimed = stmt
                    .query_map(params_from_iter(values), |r| {
                        Ok(Claimed {
                            id: r.get(0)?,
                            endpoint_id: r.get(1)?,
                            url: r.get(2)?,
                            secret: r.get(3)?,
                            event_type: r.get(4)?,
                            body: r.get(5)?,
                            attempts: r.get(6)?,
                        })
                    })
                    .map_err(backend)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(backend)?;
                claimed
            };
            let mut lease = tx
                .prepare_cached("UPDATE webhook_deliveries SET lease_until = ?2 WHERE id = ?1")
                .map_err(backend)?;
            for c in &claimed {
                lease
                    .execute(params![c.id, now + lease_ms])
                    .map_err(backend)?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn release(&self, ids: &[String]) -> Result<(), StoreError> {
        let ids = ids.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached("UPDATE webhook_deliveries SET lease_until = NULL WHERE id = ?1")
                .map_err(backend)?;
            for id in ids {
                stmt.execute([id]).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn settle(&self, id: &str, attempt: Attempt, outcome: Outcome) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, \
                     duration_ms, response_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT DO NOTHING",
                params![
                    id,
                    attempt.attempt,
                    attempt.at,
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms,
                    attempt.response_body
                ],
            )
            .map_err(backend)?;
            let (status, next, delivered_at) = match outcome {
                Outcome::Delivered => ("delivered", attempt.at, Some(attempt.at)),
                Outcome::Retry(at) => ("pending", at, None),
                Outcome::Dead => ("dead", attempt.at, None),
            };
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?2, attempts = max(attempts, ?3), \
                     next_attempt_at = ?4, lease_until = NULL, last_status = ?5, last_error = ?6, \
                     updated_at = ?7, delivered_at = ?8 \
                 WHERE id = ?1",
                params![
                    id,
                    status,
                    attempt.attempt,
                    next,
                    attempt.status_code,
                    attempt.error,
                    attempt.at,
                    delivered_at
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        app: &AppId,
        filter: DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let app = app.clone();
        self.read(move |tx| {
            let sql = format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                 WHERE app_id = ?1 AND (?2 IS NULL OR endpoint_id = ?2) \
                   AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR seq < ?4) \
                 ORDER BY seq DESC LIMIT ?5"
            );
            let mut stmt = tx.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        app.as_str(),
                        filter.endpoint_id,
                        filter.status.map(DeliveryStatus::as_str),
                        filter.before,
                        filter.limit as i64
                    ],
                    delivery,
                )
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn get_delivery(
        &self,
        app: &AppId,
        id: &str,
    ) -> Result<(Delivery, Vec<Attempt>), StoreError> {
        let (app, id) = (app.clone(), id.to_owned());
        self.read(move |tx| {
            let d = one_delivery(tx, &app, &id)?;
            let mut stmt = tx
                .prepare(
                    "SELECT attempt, at, status_code, error, duration_ms, response_body \
                     FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY attempt",
                )
                .map_err(backend)?;
            let attempts = stmt
                .query_map([&id], |r| {
                    Ok(Attempt {
                        attempt: r.get(0)?,
                        at: r.get(1)?,
                        status_code: r.get(2)?,
                        error: r.get(3)?,
                        duration_ms: r.get(4)?,
                        response_body: r.get(5)?,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok((d, attempts))
        })
        .await
    }

    async fn retry_delivery(
        &self,
        app: &AppId,
        id: &str,
        now: i64,
    ) -> Result<Delivery, StoreError> {
        let (app, id) = (app.clone(), id.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?3, \
                     lease_until = NULL, updated_at = ?3 \
                 WHERE app_id = ?1 AND id = ?2 AND status <> 'delivered'",
                params![app.as_str(), id, now],
            )
            .map_err(backend)?;
            one_delivery(tx, &app, &id)
        })
        .await
    }
}
