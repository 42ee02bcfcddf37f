//! Recordings and their events, written once over the SQL layer (`store/sql.rs`). Each append
//! is one transaction: the events (an event delivered again is stored once, by its position)
//! and the count move together.

use super::{
    channels_from_json, channels_json, recording_not_found, NewRecording, RecordedEvent, Recording,
    RecordingStatus,
};
use crate::store::sql::{on_constraint, Batch, Constraint, Sql, SqlRow};
use crate::store::{stored_app_id, StoreError};
use waas_protocol::AppId;

const COLUMNS: &str = "id, app_id, name, channels, status, max_events, max_duration_ms, \
    event_count, started_at, stopped_at, stop_reason";

fn recording(row: &impl SqlRow) -> Result<Recording, StoreError> {
    Ok(Recording {
        id: row.get(0)?,
        app_id: stored_app_id(&row.get::<String>(1)?)?,
        name: row.get(2)?,
        channels: channels_from_json(&row.get::<String>(3)?)?,
        status: RecordingStatus::parse(&row.get::<String>(4)?)?,
        max_events: row.get(5)?,
        max_duration_ms: row.get(6)?,
        event_count: row.get(7)?,
        started_at: row.get(8)?,
        stopped_at: row.get(9)?,
        stop_reason: row.get(10)?,
    })
}

pub(crate) async fn create(db: &mut impl Sql, new: NewRecording) -> Result<Recording, StoreError> {
    // Asked first so the answer does not depend on which constraint a backend checks first.
    crate::store::apps::require(db, &new.app_id).await?;
    let sql = format!(
        "INSERT INTO recordings (id, app_id, name, channels, status, max_events, \
             max_duration_ms, started_at) \
         VALUES ($1, $2, $3, $4, 'recording', $5, $6, $7) RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &new.id,
                &new.app_id.as_str(),
                &new.name,
                &channels_json(&new.channels),
                &new.max_events,
                &new.max_duration_ms,
                &new.started_at,
            ],
        )
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                Some(match c {
                    Constraint::Unique => StoreError::Conflict(format!("recording {}", new.id)),
                    // The app deleted since the check above.
                    Constraint::ForeignKey => StoreError::app_not_found(&new.app_id),
                })
            })
        })?;
    recording(&row.ok_or_else(|| recording_not_found(&new.id))?)
}

pub(crate) async fn get(db: &mut impl Sql, app: &AppId, id: &str) -> Result<Recording, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE app_id = $1 AND id = $2");
    let row = db.query_opt(&sql, &[&app.as_str(), &id]).await?;
    recording(&row.ok_or_else(|| recording_not_found(id))?)
}

/// Newest first.
pub(crate) async fn list(db: &mut impl Sql, app: &AppId) -> Result<Vec<Recording>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM recordings WHERE app_id = $1 ORDER BY started_at DESC, id DESC"
    );
    db.query(&sql, &[&app.as_str()])
        .await?
        .iter()
        .map(recording)
        .collect()
}

pub(crate) async fn active(db: &mut impl Sql) -> Result<Vec<Recording>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE status = 'recording' ORDER BY id");
    db.query(&sql, &[]).await?.iter().map(recording).collect()
}

/// A stopped recording keeps its first stop: time and reason.
pub(crate) async fn stop(
    db: &mut impl Sql,
    app: &AppId,
    id: &str,
    at: i64,
    reason: &str,
) -> Result<Recording, StoreError> {
    db.execute(
        "UPDATE recordings SET status = 'stopped', stopped_at = $3, stop_reason = $4 \
         WHERE app_id = $1 AND id = $2 AND status = 'recording'",
        &[&app.as_str(), &id, &at, &reason],
    )
    .await?;
    get(db, app, id).await
}

/// Its events go with it: ON DELETE CASCADE.
pub(crate) async fn delete(db: &mut impl Sql, app: &AppId, id: &str) -> Result<(), StoreError> {
    let n = db
        .execute(
            "DELETE FROM recordings WHERE app_id = $1 AND id = $2",
            &[&app.as_str(), &id],
        )
        .await?;
    if n == 0 {
        return Err(recording_not_found(id));
    }
    Ok(())
}

/// Returns the recording's event count after the append.
pub(crate) async fn append(
    db: &mut impl Sql,
    id: &str,
    events: Vec<RecordedEvent>,
) -> Result<i64, StoreError> {
    let added = if events.is_empty() {
        0
    } else {
        let int = |f: fn(&RecordedEvent) -> i64| Batch::Int(events.iter().map(f).collect());
        let text = |f: fn(&RecordedEvent) -> &str| Batch::Text(events.iter().map(f).collect());
        db.insert_batch(
            "INSERT INTO recording_events (recording_id, position, channel, ts, \"offset\", frame)",
            &[
                Batch::Text(vec![id; events.len()]),
                int(|e| e.position),
                text(|e| &e.channel),
                int(|e| e.ts),
                int(|e| e.offset),
                text(|e| &e.frame),
            ],
            "ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                (c == Constraint::ForeignKey).then(|| recording_not_found(id))
            })
        })? as i64
    };
    let row = db
        .query_opt(
            "UPDATE recordings SET event_count = event_count + $2 WHERE id = $1 \
             RETURNING event_count",
            &[&id, &added],
        )
        .await?
        .ok_or_else(|| recording_not_found(id))?;
    row.get(0)
}

/// Events after `after`, by position.
pub(crate) async fn events(
    db: &mut impl Sql,
    id: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    db.query(
        "SELECT position, channel, ts, \"offset\", frame FROM recording_events \
         WHERE recording_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        &[&id, &after, &(limit as i64)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RecordedEvent {
            position: r.get(0)?,
            channel: r.get(1)?,
            ts: r.get(2)?,
            offset: r.get(3)?,
            frame: r.get(4)?,
        })
    })
    .collect()
}
