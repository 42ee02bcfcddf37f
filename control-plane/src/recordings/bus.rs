//! Answers gateways' [`RecordingCommand`]s: the REST API an app's servers use for recordings
//! (`/v1/apps/{app}/recordings`) is served by gateways, which forward each call here.

use super::Recordings;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::directory::RESPONDERS;
use waas_core::recordings::{subject, RecordingCommand, RecordingReply};
use waas_protocol::rest::ErrorDetail;
use waas_protocol::ErrorCode;

impl Recordings {
    /// Serves recording calls from gateways until the returned task is aborted. Subscribed
    /// before this returns.
    pub async fn serve(
        self: &Arc<Self>,
        bus: Arc<dyn Bus>,
        prefix: &str,
    ) -> Result<JoinHandle<()>, BusError> {
        let mut requests = bus.serve(&subject(prefix), Some(RESPONDERS)).await?;
        let recordings = Arc::clone(self);
        Ok(tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(reply_to) = request.reply else {
                    continue;
                };
                let recordings = Arc::clone(&recordings);
                let bus = Arc::clone(&bus);
                tokio::spawn(async move {
                    let reply = answer(&recordings, &request.payload).await;
                    let payload =
                        Bytes::from(serde_json::to_vec(&reply).expect("replies serialise"));
                    if let Err(e) = bus.publish(&reply_to, payload).await {
                        tracing::warn!(error = %e, "could not answer a recording call");
                    }
                });
            }
        }))
    }
}

async fn answer(recordings: &Arc<Recordings>, payload: &[u8]) -> RecordingReply {
    let command: RecordingCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return failure(
                ErrorCode::BadRequest,
                format!("unreadable recording call: {e}"),
            )
        }
    };
    let result = match command {
        RecordingCommand::Start { app, start } => recordings.start(&app, start).await,
        RecordingCommand::Stop { app, id } => recordings.stop(&app, &id, "stopped").await,
        RecordingCommand::Get { app, id } => recordings
            .store
            .get_recording(&app, &id)
            .await
            .map_err(Into::into),
    };
    match result {
        Ok(recording) => RecordingReply {
            recording: serde_json::value::to_raw_value(&recording).ok(),
            error: None,
        },
        Err(e) => failure(e.code, e.message),
    }
}

fn failure(code: ErrorCode, message: String) -> RecordingReply {
    RecordingReply {
        recording: None,
        error: Some(ErrorDetail { code, message }),
    }
}
