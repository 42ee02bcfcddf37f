//! The **recording store seam**: recordings of an app's channel traffic and their events.
//! Implemented by both stores (`sqlite/recordings.rs`, `postgres/recordings.rs`) and run through
//! one suite, `control-plane/tests/recording_store.rs`.
//!
//! Guarantees: [`RecordingStore::append_events`] is atomic and idempotent — an event whose
//! position the recording already holds is skipped — so a recorder that delivers a batch again
//! after a restart stores each event once; `event_count` is always the number of stored events.
//! Events come back ordered by position.

pub(crate) mod rules;

use super::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use waas_protocol::AppId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    Recording,
    Stopped,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "recording" => Ok(RecordingStatus::Recording),
            "stopped" => Ok(RecordingStatus::Stopped),
            other => Err(StoreError::Invalid(format!("recording status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recording {
    pub id: String,
    #[schema(value_type = String)]
    pub app_id: AppId,
    pub name: String,
    /// Channel patterns recorded (`*` and `>` wildcards).
    pub channels: Vec<String>,
    pub status: RecordingStatus,
    /// Stops by itself after this many events.
    pub max_events: Option<i64>,
    /// Stops by itself this long after it started, ms.
    pub max_duration_ms: Option<i64>,
    pub event_count: i64,
    /// Milliseconds since the epoch.
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// `"stopped"` (asked for), `"max_events"`, `"max_duration"`.
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub id: String,
    pub app_id: AppId,
    pub name: String,
    pub channels: Vec<String>,
    pub max_events: Option<i64>,
    pub max_duration_ms: Option<i64>,
    pub started_at: i64,
}

/// One recorded message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Order within the recording.
    pub position: i64,
    pub channel: String,
    /// The message's original `ts`, ms since the epoch.
    pub ts: i64,
    /// The message's offset in its channel.
    pub offset: i64,
    /// The `message` frame subscribers received, as they received it.
    pub frame: String,
}

#[async_trait]
pub trait RecordingStore: Send + Sync + 'static {
    /// `NotFound` when the app does not exist, `Conflict` when the id is taken.
    async fn create_recording(&self, new: NewRecording) -> Result<Recording, StoreError>;
    /// `NotFound` unless the recording exists and belongs to `app`.
    async fn get_recording(&self, app: &AppId, id: &str) -> Result<Recording, StoreError>;
    /// The app's recordings, newest first.
    async fn list_recordings(&self, app: &AppId) -> Result<Vec<Recording>, StoreError>;
    /// Every recording still recording, of every app: what a restarted control-plane resumes.
    async fn active_recordings(&self) -> Result<Vec<Recording>, StoreError>;
    /// Marks it stopped (once: stopping a stopped recording changes nothing).
    async fn stop_recording(
        &self,
        app: &AppId,
        id: &str,
        at: i64,
        reason: &str,
    ) -> Result<Recording, StoreError>;
    /// Deletes the recording and its events.
    async fn delete_recording(&self, app: &AppId, id: &str) -> Result<(), StoreError>;
    /// Stores `events` (skipping positions already held) and returns the new `event_count`.
    async fn append_events(&self, id: &str, events: Vec<RecordedEvent>) -> Result<i64, StoreError>;
    /// Up to `limit` events with a position above `after`, by position.
    async fn list_events(
        &self,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;
}

pub(crate) fn recording_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("recording {id}"))
}

pub(crate) fn channels_json(channels: &[String]) -> String {
    serde_json::to_string(channels).expect("strings serialise")
}

pub(crate) fn channels_from_json(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("recording channels: {e}")))
}

/// The [`RecordingStore`] of a backend, written once over its transaction runner (see
/// `store::webhooks::impl_webhook_store`).
macro_rules! impl_recording_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use waas_protocol::AppId;
            use $crate::store::recordings::{
                rules, NewRecording, RecordedEvent, Recording, RecordingStore,
            };
            use $crate::store::StoreError;

            #[async_trait::async_trait]
            impl RecordingStore for $store {
                async fn create_recording(
                    &self,
                    new: NewRecording,
                ) -> Result<Recording, StoreError> {
                    $tx!(self, write, |db| rules::create(db, new))
                }

                async fn get_recording(
                    &self,
                    app: &AppId,
                    id: &str,
                ) -> Result<Recording, StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, read, |db| rules::get(db, &app, &id))
                }

                async fn list_recordings(&self, app: &AppId) -> Result<Vec<Recording>, StoreError> {
                    let app = app.clone();
                    $tx!(self, read, |db| rules::list(db, &app))
                }

                async fn active_recordings(&self) -> Result<Vec<Recording>, StoreError> {
                    $tx!(self, read, |db| rules::active(db))
                }

                async fn stop_recording(
                    &self,
                    app: &AppId,
                    id: &str,
                    at: i64,
                    reason: &str,
                ) -> Result<Recording, StoreError> {
                    let (app, id, reason) = (app.clone(), id.to_owned(), reason.to_owned());
                    $tx!(self, write, |db| rules::stop(db, &app, &id, at, &reason))
                }

                async fn delete_recording(&self, app: &AppId, id: &str) -> Result<(), StoreError> {
                    let (app, id) = (app.clone(), id.to_owned());
                    $tx!(self, write, |db| rules::delete(db, &app, &id))
                }

                async fn append_events(
                    &self,
                    id: &str,
                    events: Vec<RecordedEvent>,
                ) -> Result<i64, StoreError> {
                    let id = id.to_owned();
                    $tx!(self, write, |db| rules::append(db, &id, events))
                }

                async fn list_events(
                    &self,
                    id: &str,
                    after: i64,
                    limit: usize,
                ) -> Result<Vec<RecordedEvent>, StoreError> {
                    let id = id.to_owned();
                    $tx!(self, read, |db| rules::events(db, &id, after, limit))
                }
            }
        };
    };
}
pub(crate) use impl_recording_store;
