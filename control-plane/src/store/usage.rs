//! The **usage store seam**: per-app usage added up from every gateway's reports
//! (`waas_core::usage`), kept per minute and per hour (`docs/dashboard.md#usage`), written once
//! over the SQL layer (`store/sql.rs`) and run through `control-plane/tests/store_suite.rs` on
//! both backends.
//!
//! Guarantees: recording a batch is atomic; counts add up across reports and nodes; a bucket's
//! `connections` is the most seen at once, the sum over nodes of each one's latest count (the
//! reporting node's peak in place of its count); reports for an app that does not exist are
//! ignored, and an app's usage goes with it.

use super::sql::{Sql, SqlRow};
use super::StoreError;
use async_trait::async_trait;
use waas_core::usage::AppUsage;
use waas_protocol::AppId;

/// A minute bucket's length, s.
pub const MINUTE: i64 = 60;
/// An hour bucket's length, s.
pub const HOUR: i64 = 3600;

/// One report to record.
#[derive(Debug, Clone)]
pub struct UsageBatch {
    /// The reporting process.
    pub node: String,
    /// When it arrived, s since the Unix epoch: the buckets it is added to.
    pub at: i64,
    /// Other nodes' counts reported before this are no longer believed (the node is gone).
    pub stale_before: i64,
    pub apps: Vec<AppUsage>,
}

/// One bucket of an app's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UsagePoint {
    /// Start of the bucket, s since the Unix epoch.
    pub start: i64,
    /// Most connections open at once, cluster-wide.
    pub connections: i64,
    /// Messages published (once per channel).
    pub published: i64,
    /// Message frames queued for subscribers.
    pub delivered: i64,
    /// Webhook requests sent (each attempt), and those that failed.
    pub webhooks: i64,
    pub webhook_errors: i64,
    /// Requests over the socket, and those answered with an error.
    pub requests: i64,
    pub request_errors: i64,
}

#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Adds a report to the minute and hour buckets of `batch.at`.
    async fn record_usage(&self, batch: UsageBatch) -> Result<(), StoreError>;
    /// `app`'s buckets of `step` ([`MINUTE`] or [`HOUR`]) starting in `[from, to)`, in order;
    /// buckets with nothing recorded are left out.
    async fn usage(
        &self,
        app: &AppId,
        step: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<UsagePoint>, StoreError>;
    /// Connections open now: each node's latest count for `app` reported at or after `since`,
    /// summed.
    async fn usage_connections(&self, app: &AppId, since: i64) -> Result<i64, StoreError>;
    /// Deletes minute buckets starting before `minutes_before`, hour buckets before
    /// `hours_before` and node counts reported before `nodes_before`; returns the rows deleted.
    async fn prune_usage(
        &self,
        minutes_before: i64,
        hours_before: i64,
        nodes_before: i64,
    ) -> Result<u64, StoreError>;
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) async fn record<S: Sql>(db: &mut S, batch: UsageBatch) -> Result<(), StoreError> {
    for u in &batch.apps {
        let app = u.app.as_str();
        let stored = db
            .execute(
                "INSERT INTO usage_nodes (node, app_id, connections, seen_at) \
                 SELECT $1::text, $2::text, $3::bigint, $4::bigint \
                 WHERE EXISTS (SELECT 1 FROM apps WHERE id = $2::text) \
                 ON CONFLICT (app_id, node) DO UPDATE \
                 SET connections = excluded.connections, seen_at = excluded.seen_at",
                &[&batch.node, &app, &u.connections, &batch.at],
            )
            .await?;
        if stored == 0 {
            // No such app (deleted since the gateway counted): nothing to keep.
            continue;
        }
        let others: i64 = db
            .query_opt(
                "SELECT coalesce(sum(connections), 0)::bigint FROM usage_nodes \
                 WHERE app_id = $1 AND node <> $2 AND seen_at >= $3",
                &[&app, &batch.node, &batch.stale_before],
            )
            .await?
            .map(|row| row.get(0))
            .transpose()?
            .unwrap_or(0);
        let peak = others.saturating_add(u.peak.max(u.connections));
        for step in [MINUTE, HOUR] {
            let start = batch.at - batch.at.rem_euclid(step);
            db.execute(
                "INSERT INTO usage_buckets (app_id, step, start, connections, published, \
                 delivered, webhooks, webhook_errors, requests, request_errors) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (app_id, step, start) DO UPDATE SET \
                 connections = greatest(usage_buckets.connections, excluded.connections), \
                 published = usage_buckets.published + excluded.published, \
                 delivered = usage_buckets.delivered + excluded.delivered, \
                 webhooks = usage_buckets.webhooks + excluded.webhooks, \
                 webhook_errors = usage_buckets.webhook_errors + excluded.webhook_errors, \
                 requests = usage_buckets.requests + excluded.requests, \
                 request_errors = usage_buckets.request_errors + excluded.request_errors",
                &[
                    &app,
                    &step,
                    &start,
                    &peak,
                    &int(u.published),
                    &int(u.delivered),
                    &int(u.webhooks),
                    &int(u.webhook_errors),
                    &int(u.requests),
                    &int(u.request_errors),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn points<S: Sql>(
    db: &mut S,
    app: &AppId,
    step: i64,
    from: i64,
    to: i64,
) -> Result<Vec<UsagePoint>, StoreError> {
    let rows = db
        .query(
            "SELECT start, connections, published, delivered, webhooks, webhook_errors, \
             requests, request_errors FROM usage_buckets \
             WHERE app_id = $1 AND step = $2 AND start >= $3 AND start < $4 ORDER BY start",
            &[&app.as_str(), &step, &from, &to],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(UsagePoint {
                start: r.get(0)?,
                connections: r.get(1)?,
                published: r.get(2)?,
                delivered: r.get(3)?,
                webhooks: r.get(4)?,
                webhook_errors: r.get(5)?,
                requests: r.get(6)?,
                request_errors: r.get(7)?,
            })
        })
        .collect()
}

pub(crate) async fn connections<S: Sql>(
    db: &mut S,
    app: &AppId,
    since: i64,
) -> Result<i64, StoreError> {
    Ok(db
        .query_opt(
            "SELECT coalesce(sum(connections), 0)::bigint FROM usage_nodes \
             WHERE app_id = $1 AND seen_at >= $2",
            &[&app.as_str(), &since],
        )
        .await?
        .map(|row| row.get(0))
        .transpose()?
        .unwrap_or(0))
}

pub(crate) async fn prune<S: Sql>(
    db: &mut S,
    minutes_before: i64,
    hours_before: i64,
    nodes_before: i64,
) -> Result<u64, StoreError> {
    let mut n = db
        .execute(
            "DELETE FROM usage_buckets WHERE step = $1 AND start < $2",
            &[&MINUTE, &minutes_before],
        )
        .await?;
    n += db
        .execute(
            "DELETE FROM usage_buckets WHERE step = $1 AND start < $2",
            &[&HOUR, &hours_before],
        )
        .await?;
    n += db
        .execute(
            "DELETE FROM usage_nodes WHERE seen_at < $1",
            &[&nodes_before],
        )
        .await?;
    Ok(n)
}

/// The [`UsageStore`] of a backend, over its transaction runner (see `store::impl_store`).
macro_rules! impl_usage_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use waas_protocol::AppId;
            use $crate::store::usage::{self as rules, UsageBatch, UsagePoint, UsageStore};
            use $crate::store::StoreError;

            #[async_trait::async_trait]
            impl UsageStore for $store {
                async fn record_usage(&self, batch: UsageBatch) -> Result<(), StoreError> {
                    $tx!(self, write, |db| rules::record(db, batch))
                }

                async fn usage(
                    &self,
                    app: &AppId,
                    step: i64,
                    from: i64,
                    to: i64,
                ) -> Result<Vec<UsagePoint>, StoreError> {
                    let app = app.clone();
                    $tx!(self, read, |db| rules::points(db, &app, step, from, to))
                }

                async fn usage_connections(
                    &self,
                    app: &AppId,
                    since: i64,
                ) -> Result<i64, StoreError> {
                    let app = app.clone();
                    $tx!(self, read, |db| rules::connections(db, &app, since))
                }

                async fn prune_usage(
                    &self,
                    minutes_before: i64,
                    hours_before: i64,
                    nodes_before: i64,
                ) -> Result<u64, StoreError> {
                    $tx!(self, write, |db| rules::prune(
                        db,
                        minutes_before,
                        hours_before,
                        nodes_before
                    ))
                }
            }
        };
    };
}
pub(crate) use impl_usage_store;
