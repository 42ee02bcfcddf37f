//! [`RecordingStore`] on SQLite, for `waas dev`. Writes run in IMMEDIATE transactions, so the
//! count and the events of a recording always agree.

use super::SqliteStore;
use crate::store::recordings::{
    channels_from_json, channels_json, recording_not_found, NewRecording, RecordedEvent, Recording,
    RecordingStatus, RecordingStore,
};
use crate::store::{stored_app_id, StoreError};
use async_trait::async_trait;
use rusqlite::{params, ErrorCode, OptionalExtension, Row, Transaction};
use waas_protocol::AppId;

const COLUMNS: &str = "id, app_id, name, channels, status, max_events, max_duration_ms, \
    event_count, started_at, stopped_at, stop_reason";

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

fn recording(row: &Row) -> rusqlite::Result<Result<Recording, StoreError>> {
    let app: String = row.get("app_id")?;
    let channels: String = row.get("channels")?;
    let status: String = row.get("status")?;
    let r = (
        row.get::<_, String>("id")?,
        row.get::<_, String>("name")?,
        row.get::<_, Option<i64>>("max_events")?,
        row.get::<_, Option<i64>>("max_duration_ms")?,
        row.get::<_, i64>("event_count")?,
        row.get::<_, i64>("started_at")?,
        row.get::<_, Option<i64>>("stopped_at")?,
        row.get::<_, Option<String>>("stop_reason")?,
    );
    Ok((|| {
        Ok(Recording {
            id: r.0,
            app_id: stored_app_id(&app)?,
            name: r.1,
            channels: channels_from_json(&channels)?,
            status: RecordingStatus::parse(&status)?,
            max_events: r.2,
            max_duration_ms: r.3,
            event_count: r.4,
            started_at: r.5,
            stopped_at: r.6,
            stop_reason: r.7,
        })
    })())
}

fn one(tx: &Transaction, app: &str, id: &str) -> Result<Recording, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM recordings WHERE app_id = ?1 AND id = ?2");
    tx.query_row(&sql, params![app, id], recording)
        .optional()
        .map_err(backend)?
        .ok_or_else(|| recording_not_found(id))?
}

fn many(
    tx: &Transaction,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Recording>, StoreError> {
    let mut stmt = tx.prepare(sql).map_err(backend)?;
    let rows = stmt
        .query_map(args, recording)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter().collect()
}

#[async_trait]
impl RecordingStore for SqliteStore {
    async fn create_recording(&self, new: NewRecording) -> Result<Recording, StoreError> {
        self.write(move |tx| {
            let app_exists: bool = tx
                .query_row(
                    "SELECT 1 FROM apps WHERE id = ?1",
                    [new.app_id.as_str()],
                    |_| Ok(true),
                )
                .optional()
                .map_err(backend)?
                .unwrap_or(false);
            if !app_exists {
                return Err(StoreError::app_not_found(&new.app_id));
            }
            tx.execute(
                "INSERT INTO recordings (id, app_id, name, channels, status, max_events, \
                     max_duration_ms, started_at) \
                 VALUES (?1, ?2, ?3, ?4, 'recording', ?5, ?6, ?7)",
                params![
                    new.id,
                    new.app_id.as_str(),
                    new.name,
                    channels_json(&new.channels),
                    new.max_events,
                    new.max_duration_ms,
                    new.started_at
                ],
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => {
                    StoreError::Conflict(format!("recording {}", new.id))
                }
                _ => backend(e),
            })?;
            one(tx, new.app_id.as_str(), &new.id)
        })
        .await
    }

    async fn get_recording(&self, app: &AppId, id: &str) -> Result<Recording, StoreError> {
        let (app, id) = (app.as_str().to_owned(), id.to_owned());
        self.read(move |tx| one(tx, &app, &id)).await
    }

    async fn list_recordings(&self, app: &AppId) -> Result<Vec<Recording>, StoreError> {
        let app = app.as_str().to_owned();
        self.read(move |tx| {
            let sql = format!(
                "SELECT {COLUMNS} FROM recordings WHERE app_id = ?1 \
                 ORDER BY started_at DESC, id DESC"
            );
            many(tx, &sql, &[&app])
        })
        .await
    }

    async fn active_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        self.read(move |tx| {
            let sql =
                format!("SELECT {COLUMNS} FROM recordings WHERE status = 'recording' ORDER BY id");
            many(tx, &sql, &[])
        })
        .await
    }

    async fn stop_recording(
        &self,
        app: &AppId,
        id: &str,
        at: i64,
        reason: &str,
    ) -> Result<Recording, StoreError> {
        let (app, id, reason) = (app.as_str().to_owned(), id.to_owned(), reason.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE recordings SET status = 'stopped', stopped_at = ?3, stop_reason = ?4 \
                 WHERE app_id = ?1 AND id = ?2 AND status = 'recording'",
                params![app, id, at, reason],
            )
            .map_err(backend)?;
            one(tx, &app, &id)
        })
        .await
    }

    async fn delete_recording(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let (app, id) = (app.as_str().to_owned(), id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM recordings WHERE app_id = ?1 AND id = ?2",
                    params![app, id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(recording_not_found(&id));
            }
            Ok(())
        })
        .await
    }

    async fn append_events(&self, id: &str, events: Vec<RecordedEvent>) -> Result<i64, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let mut added = 0i64;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO recording_events \
                             (recording_id, position, channel, ts, \"offset\", frame) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    )
                    .map_err(backend)?;
                for e in &events {
                    added += stmt
                        .execute(params![id, e.position, e.channel, e.ts, e.offset, e.frame])
                        .map_err(|e| match e.sqlite_error_code() {
                            Some(ErrorCode::ConstraintViolation) => recording_not_found(&id),
                            _ => backend(e),
                        })? as i64;
                }
            }
            tx.query_row(
                "UPDATE recordings SET event_count = event_count + ?2 WHERE id = ?1 \
                 RETURNING event_count",
                params![id, added],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| recording_not_found(&id))
        })
        .await
    }

    async fn list_events(
        &self,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let id = id.to_owned();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT position, channel, ts, \"offset\", frame FROM recording_events \
                     WHERE recording_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![id, after, limit as i64], |r| {
                    Ok(RecordedEvent {
                        position: r.get(0)?,
                        channel: r.get(1)?,
                        ts: r.get(2)?,
                        offset: r.get(3)?,
                        frame: r.get(4)?,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }
}
