//! Cluster-wide presence behind occupancy and member webhooks, written once over the SQL layer
//! (`store/sql.rs`): gateways report which channels and members each node holds; a channel or
//! member is announced when the first node takes it, and its vacate fires once the last node
//! has let go and the debounce window has passed with no node back.
//!
//! Every transition first takes the `webhook_announced` row of its channel or member (inserting
//! it, or reading it `FOR UPDATE`), so on a database shared by several control-planes, reports
//! about one channel take turns: two nodes leaving together cannot both see the other still
//! there and leave the channel occupied for ever. SQLite runs one write transaction at a time,
//! which gives the same order without the lock.

use super::outbox::Planned;
use super::PresenceRules;
use crate::store::sql::{Param, Sql, SqlRow};
use crate::store::StoreError;
use crate::webhooks::plan;
use waas_core::webhooks::report::Report;
use waas_protocol::presence::Member;

/// Nodes forgotten per call of [`expire_nodes`], so that one sweep's transaction stays short;
/// the sweep comes back for the rest.
const EXPIRE_BATCH: i64 = 10;

/// Vacates fired per call of [`flush_vacated`]; the sweep comes back for the rest.
const FLUSH_BATCH: i64 = 500;

pub(crate) async fn ingest(
    db: &mut impl Sql,
    node: &str,
    reports: Vec<Report>,
    rules: PresenceRules,
) -> Result<usize, StoreError> {
    db.execute(
        "INSERT INTO webhook_nodes (node, seen_at) VALUES ($1, $2) \
         ON CONFLICT (node) DO UPDATE SET seen_at = greatest(webhook_nodes.seen_at, $2)",
        &[&node, &rules.now],
    )
    .await?;
    let mut planned = Planned::default();
    for report in reports {
        match report {
            Report::Presence {
                app,
                channel,
                member,
                present,
            } => {
                let held = Held {
                    node,
                    app: app.as_str(),
                    channel: channel.as_str(),
                    member,
                };
                held.apply(db, &mut planned, present, rules).await?;
            }
            publish @ Report::Publish { .. } => {
                for event in plan::publish_events(&publish) {
                    planned.add(db, &event).await?;
                }
            }
            Report::CacheMiss {
                app,
                channel,
                time_ms,
            } => {
                let event = plan::cache_miss_event(app.as_str(), channel.as_str(), time_ms as i64);
                planned.add(db, &event).await?;
            }
        }
    }
    planned.enqueue(db, rules.now).await
}

/// Forgets nodes that have not reported since `silent_since`, as if every channel and member
/// they held had left.
pub(crate) async fn expire_nodes(
    db: &mut impl Sql,
    silent_since: i64,
    rules: PresenceRules,
) -> Result<Vec<String>, StoreError> {
    let nodes = db
        .query(
            "SELECT node FROM webhook_nodes WHERE seen_at < $1 ORDER BY node \
             LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&silent_since, &EXPIRE_BATCH],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<Vec<String>, _>>()?;
    let mut planned = Planned::default();
    for node in &nodes {
        let held = db
            .query(
                // Members first, so a member leaves before its channel is vacated.
                "SELECT app_id, channel, member FROM webhook_presence \
                 WHERE node = $1 ORDER BY member DESC",
                &[node],
            )
            .await?;
        for row in held {
            let (app, channel): (String, String) = (row.get(0)?, row.get(1)?);
            let member: String = row.get(2)?;
            let held = Held {
                node,
                app: &app,
                channel: &channel,
                member: (!member.is_empty()).then_some(Member {
                    id: member,
                    info: None,
                }),
            };
            held.apply(db, &mut planned, false, rules).await?;
        }
        db.execute("DELETE FROM webhook_nodes WHERE node = $1", &[node])
            .await?;
    }
    planned.enqueue(db, rules.now).await?;
    Ok(nodes)
}

/// Fires `channel_vacated` and `member_removed` whose debounce window has passed with no node
/// back, dated when the last node left.
pub(crate) async fn flush_vacated(
    db: &mut impl Sql,
    rules: PresenceRules,
) -> Result<usize, StoreError> {
    let due = db
        .query(
            "SELECT app_id, channel, member, info, vacate_at FROM webhook_announced \
             WHERE vacate_at <= $1 ORDER BY vacate_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&rules.now, &FLUSH_BATCH],
        )
        .await?;
    let mut planned = Planned::default();
    for row in due {
        let (app, channel, member): (String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        let (info, vacate_at): (Option<String>, i64) = (row.get(3)?, row.get(4)?);
        let key: &[&dyn Param] = &[&app, &channel, &member];
        if holders(db, key).await? > 0 {
            db.execute(
                "UPDATE webhook_announced SET vacate_at = NULL \
                 WHERE app_id = $1 AND channel = $2 AND member = $3",
                key,
            )
            .await?;
            continue;
        }
        db.execute(
            "DELETE FROM webhook_announced WHERE app_id = $1 AND channel = $2 AND member = $3",
            key,
        )
        .await?;
        let member = (!member.is_empty()).then(|| Member {
            id: member.clone(),
            info: info.and_then(|i| serde_json::from_str(&i).ok()),
        });
        let left_at = vacate_at - rules.debounce_ms;
        let event = plan::presence_event(&app, &channel, member, false, left_at);
        planned.add(db, &event).await?;
    }
    planned.enqueue(db, rules.now).await
}

/// How many nodes hold the channel or member `at` (app, channel, member).
async fn holders(db: &mut impl Sql, at: &[&dyn Param]) -> Result<i64, StoreError> {
    db.query(
        "SELECT count(*) FROM webhook_presence \
         WHERE app_id = $1 AND channel = $2 AND member = $3",
        at,
    )
    .await?
    .first()
    .map_or(Ok(0), |r| r.get(0))
}

/// A channel (no member) or member that one node holds.
struct Held<'a> {
    node: &'a str,
    app: &'a str,
    channel: &'a str,
    member: Option<Member>,
}

impl Held<'_> {
    /// The node now holds it (`present`) or no longer does.
    async fn apply(
        self,
        db: &mut impl Sql,
        planned: &mut Planned,
        present: bool,
        rules: PresenceRules,
    ) -> Result<(), StoreError> {
        let Held {
            node,
            app,
            channel,
            member,
        } = self;
        let key = member.as_ref().map_or("", |m| m.id.as_str()).to_owned();
        let at: &[&dyn Param] = &[&app, &channel, &key];
        if present {
            let info = member
                .as_ref()
                .and_then(|m| m.info.as_ref())
                .map(|i| i.to_string());
            let inserted = db
                .query_opt(
                    "INSERT INTO webhook_announced (app_id, channel, member, info) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                    &[&app, &channel, &key, &info],
                )
                .await?
                .is_some();
            if inserted {
                let event = plan::presence_event(app, channel, member, true, rules.now);
                planned.add(db, &event).await?;
            } else {
                // Back within the debounce window: the pending vacate is called off.
                db.execute(
                    "UPDATE webhook_announced SET vacate_at = NULL \
                     WHERE app_id = $1 AND channel = $2 AND member = $3 \
                       AND vacate_at IS NOT NULL",
                    at,
                )
                .await?;
            }
            db.execute(
                "INSERT INTO webhook_presence (app_id, channel, member, node) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&app, &channel, &key, &node],
            )
            .await?;
            return Ok(());
        }
        let announced = db
            .query_opt(
                "SELECT 1 FROM webhook_announced \
                 WHERE app_id = $1 AND channel = $2 AND member = $3 FOR UPDATE",
                at,
            )
            .await?
            .is_some();
        db.execute(
            "DELETE FROM webhook_presence \
             WHERE app_id = $1 AND channel = $2 AND member = $3 AND node = $4",
            &[&app, &channel, &key, &node],
        )
        .await?;
        // Never announced (or already vacated): there is nothing to vacate.
        if !announced {
            return Ok(());
        }
        if holders(db, at).await? == 0 {
            db.execute(
                "UPDATE webhook_announced SET vacate_at = $4 \
                 WHERE app_id = $1 AND channel = $2 AND member = $3 AND vacate_at IS NULL",
                &[&app, &channel, &key, &(rules.now + rules.debounce_ms)],
            )
            .await?;
        }
        Ok(())
    }
}
