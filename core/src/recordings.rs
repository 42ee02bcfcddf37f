//! Recording calls of apps' servers, as gateways forward them to the control-plane: the
//! [`RecordingCommand`] on [`subject`] and its [`RecordingReply`] (`docs/recordings.md`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use waas_protocol::recording::StartRecording;
use waas_protocol::rest::ErrorDetail;
use waas_protocol::AppId;

/// Subject on which control-planes answer [`RecordingCommand`]s (queue group
/// [`crate::directory::RESPONDERS`]).
pub fn subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "recordings")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RecordingCommand {
    Start { app: AppId, start: StartRecording },
    Stop { app: AppId, id: String },
    Get { app: AppId, id: String },
}

/// The control-plane's answer: the recording as JSON, or an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordingReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}
