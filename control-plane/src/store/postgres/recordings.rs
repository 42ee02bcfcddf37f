//! [`RecordingStore`] on PostgreSQL, for cluster mode. Each append is one transaction: the
//! events (duplicates skipped by the primary key) and the count move together.

use super::PostgresStore;
use crate::store::recordings::{
    channels_from_json, channels_json, recording_not_found, NewRecording, RecordedEvent, Recording,
    RecordingStatus, RecordingStore,
};
use crate::store::{stored_app_id, StoreError};
use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use waas_protocol::AppId;

const COLUMNS: &str = "id, app_id, name, channels, status, max_events, max_duration_ms, \
    event_count, started_at, stopped_at, stop_reason";

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(e)
}

fn recording(row: &Row) -> Result<Recording, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Invalid(format!("recording row: {e}"));
    let app: String = row.try_get("app_id").map_err(get)?;
    let channels: String = row.try_get("channels").map_err(get)?;
    let status: String = row.try_get("status").map_err(get)?;
    Ok(Recording {
        id: row.try_get("id").map_err(get)?,
        app_id: stored_app_id(&app)?,
        name: row.try_get("name").map_err(get)?,
        channels: channels_from_json(&channels)?,
        status: RecordingStatus::parse(&status)?,
        max_events: row.try_get("max_events").map_err(get)?,
        max_duration_ms: row.try_get("max_duration_ms").map_err(get)?,
        event_count: row.try_get("event_count").map_err(get)?,
        started_at: row.try_get("started_at").map_err(get)?,
        stopped_at: row.try_get("stopped_at").map_err(get)?,
        stop_reason: row.try_get("stop_reason").map_err(get)?,
    })
}

#[async_trait]
impl RecordingStore for PostgresStore {
    async fn create_recording(&self, new: NewRecording) -> Result<Recording, StoreError> {
        let sql = format!(
            "INSERT INTO recordings (id, app_id, name, channels, status, max_events, \
                 max_duration_ms, started_at) \
             VALUES ($1, $2, $3, $4, 'recording', $5, $6, $7) RETURNING {COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_one(
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
            .map_err(|e| match e.code() {
                Some(&SqlState::UNIQUE_VIOLATION) => {
                    StoreError::Conflict(format!("recording {}", new.id))
                }
                Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::app_not_found(&new.app_id),
                _ => backend(e),
            })?;
        recording(&row)
    }

    async fn get_recording(&self, app: &AppId, id: &str) -> Result<Recording, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM recordings WHERE app_id = $1 AND id = $2");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&app.as_str(), &id])
            .await
            .map_err(backend)?
            .ok_or_else(|| recording_not_found(id))?;
        recording(&row)
    }

    async fn list_recordings(&self, app: &AppId) -> Result<Vec<Recording>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM recordings WHERE app_id = $1 ORDER BY started_at DESC, id DESC"
        );
        let rows = self
            .client()
            .await?
            .query(&sql, &[&app.as_str()])
            .await
            .map_err(backend)?;
        rows.iter().map(recording).collect()
    }

    async fn active_recordings(&self) -> Result<Vec<Recording>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM recordings WHERE status = 'recording' ORDER BY id");
        let rows = self
            .client()
            .await?
            .query(&sql, &[])
            .await
            .map_err(backend)?;
        rows.iter().map(recording).collect()
    }

    async fn stop_recording(
        &self,
        app: &AppId,
        id: &str,
        at: i64,
        reason: &str,
    ) -> Result<Recording, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE recordings SET status = 'stopped', stopped_at = $3, stop_reason = $4 \
                 WHERE app_id = $1 AND id = $2 AND status = 'recording'",
                &[&app.as_str(), &id, &at, &reason],
            )
            .await
            .map_err(backend)?;
        drop(client);
        self.get_recording(app, id).await
    }

    async fn delete_recording(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM recordings WHERE app_id = $1 AND id = $2",
                &[&app.as_str(), &id],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(recording_not_found(id));
        }
        Ok(())
    }

    async fn append_events(&self, id: &str, events: Vec<RecordedEvent>) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // One statement for the whole batch: a round trip per event would cap the recorder at a
        // few thousand events per second.
        let positions: Vec<i64> = events.iter().map(|e| e.position).collect();
        let channels: Vec<&str> = events.iter().map(|e| e.channel.as_str()).collect();
        let ts: Vec<i64> = events.iter().map(|e| e.ts).collect();
        let offsets: Vec<i64> = events.iter().map(|e| e.offset).collect();
        let frames: Vec<&str> = events.iter().map(|e| e.frame.as_str()).collect();
        let added = tx
            .execute(
                "INSERT INTO recording_events \
                     (recording_id, position, channel, ts, \"offset\", frame) \
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::bigint[], \
                     $6::text[]) \
                 ON CONFLICT DO NOTHING",
                &[&id, &positions, &channels, &ts, &offsets, &frames],
            )
            .await
            .map_err(|err| match err.code() {
                Some(&SqlState::FOREIGN_KEY_VIOLATION) => recording_not_found(id),
                _ => backend(err),
            })? as i64;
        let count: i64 = tx
            .query_opt(
                "UPDATE recordings SET event_count = event_count + $2 WHERE id = $1 \
                 RETURNING event_count",
                &[&id, &added],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| recording_not_found(id))?
            .try_get(0)
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(count)
    }

    async fn list_events(
        &self,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT position, channel, ts, \"offset\", frame FROM recording_events \
                 WHERE recording_id = $1 AND position > $2 ORDER BY position LIMIT $3",
                &[&id, &after, &(limit as i64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(RecordedEvent {
                    position: r.try_get(0).map_err(backend)?,
                    channel: r.try_get(1).map_err(backend)?,
                    ts: r.try_get(2).map_err(backend)?,
                    offset: r.try_get(3).map_err(backend)?,
                    frame: r.try_get(4).map_err(backend)?,
                })
            })
            .collect()
    }
}
