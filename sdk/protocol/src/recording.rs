//! Recordings as the REST API and the SDK see them (`docs/recordings.md`): what starting one
//! takes, and what describes one.

use serde::{Deserialize, Serialize};

/// `POST /v1/apps/{app}/recordings` (and the admin API's equivalent).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRecording {
    /// 1–200 bytes, for people.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// Channel patterns to record (`chat.*`, `orders.>`), 1 to 100.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub channels: Vec<String>,
    /// Stop by itself after this many events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_events: Option<i64>,
    /// Stop by itself after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_duration_secs: Option<i64>,
}

/// A recording.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub channels: Vec<String>,
    /// `recording` or `stopped`.
    pub status: String,
    pub max_events: Option<i64>,
    pub max_duration_ms: Option<i64>,
    /// Events stored so far.
    pub event_count: i64,
    /// Milliseconds since the Unix epoch.
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// `stopped`, `max_events` or `max_duration`.
    pub stop_reason: Option<String>,
}
