//! Recordings of channel traffic, and their replay (`docs/recordings.md`).
//!
//! The control-plane is the one writer: for each active recording a [`recorder`] task taps the
//! app's messages through the gateway's History seam and stores those on the recorded channels,
//! each the `message` frame subscribers got, byte for byte. In a cluster the tap is a durable
//! JetStream consumer, acknowledged only once events are stored, so a control-plane that restarts
//! resumes where it stopped and loses nothing (what it stored twice is skipped by position). A
//! [`replay`] publishes a recording's events again, into their channels or another one.
//!
//! # Layout
//! - [`recorder`]: the task behind one active recording.
//! - [`replay`]: replays: pacing, pause, resume and stop.
//! - [`routes`]: the admin API (`/v1/admin/apps/{id}/recordings...`).
//! - [`bus`]: answers the recording calls gateways forward from apps' servers (REST, SDK).

pub mod bus;
pub mod recorder;
pub mod replay;
pub mod routes;

use crate::store::recordings::{NewRecording, RecordedEvent, Recording, RecordingStore};
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use waas_core::history::{History, Policy};
use waas_core::publisher::Publisher;
use waas_protocol::{AppId, ChannelPattern, ErrorCode};

/// Longest recording name, bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Most channel patterns one recording takes.
pub const MAX_PATTERNS: usize = 100;

/// Why a recording request failed, with the code the admin API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordingError {
    pub code: ErrorCode,
    pub message: String,
}

impl RecordingError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RecordingError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<StoreError> for RecordingError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid(_) => ErrorCode::Internal,
            StoreError::Backend(_) => ErrorCode::Unavailable,
        };
        RecordingError::new(code, e.to_string())
    }
}

pub use waas_protocol::recording::StartRecording;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The recordings of every app, and the tasks recording and replaying them.
pub struct Recordings {
    pub(crate) store: Arc<dyn RecordingStore>,
    apps: Arc<dyn Store>,
    pub(crate) history: Arc<dyn History>,
    /// Replays publish through it, like a gateway.
    pub(crate) publisher: Publisher,
    prefix: String,
    defaults: Policy,
    recorders: Mutex<HashMap<String, JoinHandle<()>>>,
    pub(crate) replays: replay::Replays,
    operator_token_hash: String,
}

impl Recordings {
    /// `defaults` is the history policy of apps without their own (the server's limits).
    pub fn new(
        store: Arc<dyn RecordingStore>,
        apps: Arc<dyn Store>,
        history: Arc<dyn History>,
        prefix: String,
        defaults: Policy,
        operator_token: &str,
    ) -> Arc<Self> {
        Arc::new(Recordings {
            publisher: Publisher::new(Arc::clone(&history), prefix.clone(), defaults),
            store,
            apps,
            history,
            prefix,
            defaults,
            recorders: Mutex::default(),
            replays: replay::Replays::default(),
            operator_token_hash: waas_core::app::hash_api_key(operator_token),
        })
    }

    pub(crate) fn is_operator(&self, token: &str) -> bool {
        waas_core::app::hash_api_key(token) == self.operator_token_hash
    }

    /// `{prefix}.{app}.>`: every channel of the app.
    pub(crate) fn app_subject(&self, app: &AppId) -> String {
        format!("{}.{app}.>", self.prefix)
    }

    /// The history the app keeps: its limits, else the server's.
    pub(crate) async fn policy(&self, app: &AppId) -> Result<Policy, StoreError> {
        let record = self.apps.get_app(app).await?;
        Ok(Policy::resolve(self.defaults, &record.limits, None))
    }

    /// `NotFound` unless the app exists.
    pub(crate) async fn check_app(&self, app: &AppId) -> Result<(), StoreError> {
        self.apps.get_app(app).await.map(|_| ())
    }

    /// The app as gateways see it, for publishing replays.
    pub(crate) async fn app(&self, app: &AppId) -> Result<waas_core::app::App, RecordingError> {
        let record = self.apps.get_app(app).await?;
        waas_core::app::App::new(record.gateway_config(), None)
            .map_err(|e| RecordingError::new(ErrorCode::Internal, e.to_string()))
    }

    /// Starts recording; the recording is live when this returns.
    pub async fn start(
        self: &Arc<Self>,
        app: &AppId,
        req: StartRecording,
    ) -> Result<Recording, RecordingError> {
        if req.name.is_empty() || req.name.len() > MAX_NAME_LEN {
            return Err(RecordingError::bad_request(format!(
                "\"name\" must be 1 to {MAX_NAME_LEN} bytes"
            )));
        }
        if req.channels.is_empty() || req.channels.len() > MAX_PATTERNS {
            return Err(RecordingError::bad_request(format!(
                "\"channels\" must hold 1 to {MAX_PATTERNS} channel patterns"
            )));
        }
        for c in &req.channels {
            ChannelPattern::parse(c).map_err(|e| {
                RecordingError::new(
                    ErrorCode::InvalidChannel,
                    format!("invalid channel pattern {c:?}: {e}"),
                )
            })?;
        }
        if req.max_events.is_some_and(|n| n <= 0) {
            return Err(RecordingError::bad_request(
                "\"max_events\" must be at least 1",
            ));
        }
        if req.max_duration_secs.is_some_and(|n| n <= 0) {
            return Err(RecordingError::bad_request(
                "\"max_duration_secs\" must be at least 1",
            ));
        }
        let policy = self.policy(app).await?;
        let recording = self
            .store
            .create_recording(NewRecording {
                id: format!("rec_{:016x}", rand::random::<u64>()),
                app_id: app.clone(),
                name: req.name,
                channels: req.channels,
                max_events: req.max_events,
                max_duration_ms: req.max_duration_secs.map(|s| s.saturating_mul(1000)),
                started_at: now_ms(),
            })
            .await?;
        // The tap exists before this returns, so every message published after it is recorded.
        let tap = match self
            .history
            .tap(policy, &self.app_subject(app), &recording.id)
            .await
        {
            Ok(tap) => tap,
            Err(e) => {
                let _ = self.store.delete_recording(app, &recording.id).await;
                return Err(RecordingError::new(ErrorCode::Unavailable, e.to_string()));
            }
        };
        self.spawn(recording.clone(), Some(tap));
        Ok(recording)
    }

    fn spawn(
        self: &Arc<Self>,
        recording: Recording,
        tap: Option<waas_core::history::tap::TapStream>,
    ) {
        let id = recording.id.clone();
        let task = tokio::spawn(recorder::run(Arc::clone(self), recording, tap));
        if let Some(old) = self
            .recorders
            .lock()
            .expect("recorders poisoned")
            .insert(id, task)
        {
            old.abort();
        }
    }

    /// Resumes every recording that was recording when the control-plane stopped.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, StoreError> {
        let active = self.store.active_recordings().await?;
        let n = active.len();
        for recording in active {
            tracing::info!(id = recording.id, app = %recording.app_id, "resuming a recording");
            self.spawn(recording, None);
        }
        Ok(n)
    }

    /// Stops a recording (its events stay); stopping a stopped one changes nothing.
    pub async fn stop(
        &self,
        app: &AppId,
        id: &str,
        reason: &str,
    ) -> Result<Recording, RecordingError> {
        let recording = self.store.get_recording(app, id).await?;
        if let Some(task) = self
            .recorders
            .lock()
            .expect("recorders poisoned")
            .remove(id)
        {
            task.abort();
        }
        let stopped = self.store.stop_recording(app, id, now_ms(), reason).await?;
        if recording.status == crate::store::recordings::RecordingStatus::Recording {
            let policy = self.policy(app).await.unwrap_or(self.defaults);
            self.history.untap(policy, &self.app_subject(app), id).await;
        }
        Ok(stopped)
    }

    /// Deletes a recording and its events, stopping it first.
    pub async fn delete(&self, app: &AppId, id: &str) -> Result<(), RecordingError> {
        self.stop(app, id, "deleted").await?;
        self.replays.stop_all_of(id);
        self.store.delete_recording(app, id).await?;
        Ok(())
    }

    /// Called by a recorder that reached a limit.
    pub(crate) async fn finished(&self, recording: &Recording, reason: &str) {
        if let Err(e) = self
            .store
            .stop_recording(&recording.app_id, &recording.id, now_ms(), reason)
            .await
        {
            tracing::warn!(id = recording.id, error = %e, "could not mark a recording stopped");
        }
        let policy = self
            .policy(&recording.app_id)
            .await
            .unwrap_or(self.defaults);
        self.history
            .untap(policy, &self.app_subject(&recording.app_id), &recording.id)
            .await;
        self.recorders
            .lock()
            .expect("recorders poisoned")
            .remove(&recording.id);
    }

    pub async fn events(
        &self,
        app: &AppId,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, RecordingError> {
        self.store.get_recording(app, id).await?;
        Ok(self.store.list_events(id, after, limit).await?)
    }
}

impl Drop for Recordings {
    fn drop(&mut self) {
        for (_, task) in self.recorders.lock().expect("recorders poisoned").drain() {
            task.abort();
        }
    }
}
