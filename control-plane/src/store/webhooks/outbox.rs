//! The outbox of webhook deliveries, written once over the SQL layer (`store/sql.rs`): what is
//! planned and enqueued, how workers lease and settle deliveries, and the delivery log.

use std::collections::HashMap;

use super::{
    delivery_not_found, Attempt, Claimed, Delivery, DeliveryFilter, DeliveryStatus, Outcome,
    WebhookFormat,
};
use crate::store::sql::{Batch, Sql, SqlRow};
use crate::store::StoreError;
use crate::webhooks::plan::{self, Filter, NewDelivery};
use waas_protocol::AppId;

const DELIVERY_COLUMNS: &str = "id, seq, endpoint_id, app_id, event_type, body, status, \
    attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

fn delivery(row: &impl SqlRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.get(0)?,
        seq: row.get(1)?,
        endpoint_id: row.get(2)?,
        app_id: row.get(3)?,
        event_type: row.get(4)?,
        body: row.get(5)?,
        status: DeliveryStatus::parse(&row.get::<String>(6)?)?,
        attempts: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_status: row.get(9)?,
        last_error: row.get(10)?,
        created_at: row.get(11)?,
        delivered_at: row.get(12)?,
    })
}

/// The deliveries one transaction causes, in the order their events happened, written together
/// at the end; and the enabled endpoints of each app met, read once.
#[derive(Default)]
pub(crate) struct Planned {
    endpoints: HashMap<String, Vec<Filter>>,
    deliveries: Vec<NewDelivery>,
}

impl Planned {
    pub(crate) async fn add(
        &mut self,
        db: &mut impl Sql,
        event: &plan::Event,
    ) -> Result<(), StoreError> {
        if !self.endpoints.contains_key(&event.app) {
            let filters = db
                .query(
                    "SELECT id, events::text, channels::text, format FROM webhook_endpoints \
                     WHERE app_id = $1 AND enabled ORDER BY id",
                    &[&event.app],
                )
                .await?
                .iter()
                .map(|r| {
                    Filter::from_row(
                        r.get(0)?,
                        &r.get::<String>(1)?,
                        &r.get::<String>(2)?,
                        &r.get::<String>(3)?,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.endpoints.insert(event.app.clone(), filters);
        }
        self.deliveries
            .extend(plan::plan(&self.endpoints[&event.app], event));
        Ok(())
    }

    /// Writes the deliveries; one already there (same id: a batch reported again) is left
    /// alone. Returns how many were enqueued.
    pub(crate) async fn enqueue(self, db: &mut impl Sql, now: i64) -> Result<usize, StoreError> {
        let d = &self.deliveries;
        if d.is_empty() {
            return Ok(0);
        }
        let text = |f: fn(&NewDelivery) -> &str| Batch::Text(d.iter().map(f).collect());
        let n = db
            .insert_batch(
                "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_type, body, \
                     status, next_attempt_at, created_at, updated_at)",
                &[
                    text(|d| &d.id),
                    text(|d| &d.endpoint_id),
                    text(|d| &d.app_id),
                    text(|d| d.event_type.as_str()),
                    text(|d| &d.body),
                    text(|_| "pending"),
                    Batch::Int(vec![now; d.len()]),
                    Batch::Int(vec![now; d.len()]),
                    Batch::Int(vec![now; d.len()]),
                ],
                "ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        Ok(n as usize)
    }
}

/// Leases up to `limit` due deliveries, at most `per_endpoint` of any endpoint and none of
/// `busy` endpoints, oldest due first. The lease and status are checked again on the row the
/// `UPDATE` locks, so two workers of a shared database never lease one delivery.
pub(crate) async fn claim<S: Sql>(
    db: &mut S,
    now: i64,
    limit: usize,
    per_endpoint: usize,
    lease_ms: i64,
    busy: &[String],
) -> Result<Vec<Claimed>, StoreError> {
    let busy = serde_json::to_string(busy).expect("strings serialise");
    let sql = format!(
        "UPDATE webhook_deliveries AS d SET lease_until = $1 + $4 \
         WHERE d.status = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= $1) \
           AND d.id IN ( \
             SELECT id FROM ( \
               SELECT x.id, x.next_attempt_at, x.seq, row_number() OVER \
                   (PARTITION BY x.endpoint_id ORDER BY x.next_attempt_at, x.seq) AS rn \
               FROM webhook_deliveries x JOIN webhook_endpoints xe ON xe.id = x.endpoint_id \
               WHERE x.status = 'pending' AND x.next_attempt_at <= $1 AND xe.enabled \
                 AND (x.lease_until IS NULL OR x.lease_until <= $1) \
                 AND x.endpoint_id NOT IN (SELECT value FROM {busy_ids}) \
             ) t WHERE rn <= $3 ORDER BY next_attempt_at, seq LIMIT $2) \
         RETURNING id, endpoint_id, event_type, body, attempts, next_attempt_at, seq, app_id",
        busy_ids = S::json_strings(5),
    );
    let mut leased = db
        .query(
            &sql,
            &[
                &now,
                &(limit as i64),
                &(per_endpoint as i64),
                &lease_ms,
                &busy,
            ],
        )
        .await?
        .iter()
        .map(|r| {
            let order: (i64, i64) = (r.get(5)?, r.get(6)?);
            let claimed = Claimed {
                id: r.get(0)?,
                endpoint_id: r.get(1)?,
                url: String::new(),
                secret: String::new(),
                event_type: r.get(2)?,
                body: r.get(3)?,
                attempts: r.get(4)?,
                format: WebhookFormat::Waas,
                app_id: r.get(7)?,
                pusher_secret: None,
            };
            Ok((order, claimed))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // RETURNING promises no order.
    leased.sort_by_key(|(order, _)| *order);
    type Target = (String, String, WebhookFormat, Option<String>);
    let mut targets: HashMap<String, Target> = HashMap::new();
    let mut claimed = Vec::with_capacity(leased.len());
    for (_, mut c) in leased {
        if !targets.contains_key(&c.endpoint_id) {
            // The app's Pusher secret as it is now, read at each claim: Pusher-format requests
            // are signed with it, so a rotation applies to every attempt after it.
            let Some(row) = db
                .query_opt(
                    "SELECT e.url, e.secret, e.format, a.pusher_secret \
                     FROM webhook_endpoints e JOIN apps a ON a.id = e.app_id WHERE e.id = $1",
                    &[&c.endpoint_id],
                )
                .await?
            else {
                // Deleted since, and its deliveries with it.
                continue;
            };
            let format = WebhookFormat::parse(&row.get::<String>(2)?)?;
            targets.insert(
                c.endpoint_id.clone(),
                (row.get(0)?, row.get(1)?, format, row.get(3)?),
            );
        }
        (c.url, c.secret, c.format, c.pusher_secret) = targets[&c.endpoint_id].clone();
        claimed.push(c);
    }
    Ok(claimed)
}

pub(crate) async fn release<S: Sql>(db: &mut S, ids: &[String]) -> Result<(), StoreError> {
    let ids = serde_json::to_string(ids).expect("strings serialise");
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = NULL \
         WHERE id IN (SELECT value FROM {})",
        S::json_strings(1)
    );
    db.execute(&sql, &[&ids]).await?;
    Ok(())
}

/// Logs the attempt (once: a settle repeated after a lost answer adds nothing) and moves the
/// delivery on.
pub(crate) async fn settle(
    db: &mut impl Sql,
    id: &str,
    attempt: Attempt,
    outcome: Outcome,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, \
             duration_ms, response_body) \
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
    .await?;
    let (status, next, delivered_at) = match outcome {
        Outcome::Delivered => (DeliveryStatus::Delivered, attempt.at, Some(attempt.at)),
        Outcome::Retry(at) => (DeliveryStatus::Pending, at, None),
        Outcome::Dead => (DeliveryStatus::Dead, attempt.at, None),
    };
    db.execute(
        "UPDATE webhook_deliveries SET status = $2, attempts = greatest(attempts, $3), \
             next_attempt_at = $4, lease_until = NULL, last_status = $5, last_error = $6, \
             updated_at = $7, delivered_at = $8 \
         WHERE id = $1",
        &[
            &id,
            &status.as_str(),
            &attempt.attempt,
            &next,
            &attempt.status_code,
            &attempt.error,
            &attempt.at,
            &delivered_at,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list_deliveries(
    db: &mut impl Sql,
    app: &AppId,
    filter: DeliveryFilter,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE app_id = $1 AND ($2::text IS NULL OR endpoint_id = $2) \
           AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR seq < $4) \
         ORDER BY seq DESC LIMIT $5"
    );
    db.query(
        &sql,
        &[
            &app.as_str(),
            &filter.endpoint_id,
            &filter.status.map(DeliveryStatus::as_str),
            &filter.before,
            &(filter.limit as i64),
        ],
    )
    .await?
    .iter()
    .map(delivery)
    .collect()
}

async fn one_delivery(db: &mut impl Sql, app: &AppId, id: &str) -> Result<Delivery, StoreError> {
    let sql =
        format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE app_id = $1 AND id = $2");
    let row = db.query_opt(&sql, &[&app.as_str(), &id]).await?;
    delivery(&row.ok_or_else(|| delivery_not_found(app, id))?)
}

pub(crate) async fn get_delivery(
    db: &mut impl Sql,
    app: &AppId,
    id: &str,
) -> Result<(Delivery, Vec<Attempt>), StoreError> {
    let d = one_delivery(db, app, id).await?;
    let attempts = db
        .query(
            "SELECT attempt, at, status_code, error, duration_ms, response_body \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Attempt {
                attempt: r.get(0)?,
                at: r.get(1)?,
                status_code: r.get(2)?,
                error: r.get(3)?,
                duration_ms: r.get(4)?,
                response_body: r.get(5)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((d, attempts))
}

/// A delivered one is answered as it is.
pub(crate) async fn retry_delivery(
    db: &mut impl Sql,
    app: &AppId,
    id: &str,
    now: i64,
) -> Result<Delivery, StoreError> {
    db.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             lease_until = NULL, updated_at = $3 \
         WHERE app_id = $1 AND id = $2 AND status <> 'delivered'",
        &[&app.as_str(), &id, &now],
    )
    .await?;
    one_delivery(db, app, id).await
}
