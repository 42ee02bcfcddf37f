//! Recordings for an app's own servers (API key): start, stop and look at a recording over REST.
//! Recordings live in the control-plane; the gateway forwards each call over the bus
//! (`RecordingCommand` on `waas_core::recordings::subject`) and passes the answer on
//! (`docs/recordings.md`).

use crate::gateway::Gateway;
use crate::http::rest::ServerAuth;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use waas_core::http::error::ApiError;
use waas_core::recordings::{subject, RecordingCommand, RecordingReply};
use waas_protocol::recording::StartRecording;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

/// How long a gateway waits for the control-plane to answer a recording call.
pub const TIMEOUT: Duration = Duration::from_secs(5);

async fn call(
    gw: &Gateway,
    command: RecordingCommand,
    ok: StatusCode,
) -> Result<Response, ApiError> {
    let payload = Bytes::from(serde_json::to_vec(&command).expect("commands serialise"));
    let answer = gw
        .publisher
        .bus()
        .request(&subject(&gw.config.subject_prefix), payload, TIMEOUT)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("control-plane: {e}")))?;
    let reply: RecordingReply = serde_json::from_slice(&answer)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("control-plane answer: {e}")))?;
    match (reply.recording, reply.error) {
        (_, Some(e)) => Err(ApiError::new(e.code, e.message)),
        (Some(recording), None) => Ok((
            ok,
            [(header::CONTENT_TYPE, "application/json")],
            recording.get().to_owned(),
        )
            .into_response()),
        (None, None) => Err(ApiError::new(
            ErrorCode::Internal,
            "empty control-plane answer",
        )),
    }
}

/// `POST /v1/apps/{app}/recordings`.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/recordings",
    operation_id = "start_recording",
    tag = "recordings",
    summary = "Start recording channels",
    params(("app" = String, Path, description = "The app id.", example = "demo")),
    request_body = StartRecording,
    responses(
        (status = 201, description = "The new recording.", body = waas_protocol::recording::RecordingInfo),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, an invalid field (see docs/recordings.md).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: body over `max_frame_bytes`.", body = ErrorBody),
        (status = 500, description = "`internal`: the control-plane's answer was not understood.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn start(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    body: Result<Json<StartRecording>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(start) = body?;
    let command = RecordingCommand::Start {
        app: app.id().clone(),
        start,
    };
    call(&gw, command, StatusCode::CREATED).await
}

/// `POST /v1/apps/{app}/recordings/{id}/stop`.
#[utoipa::path(
    post,
    path = "/v1/apps/{app}/recordings/{id}/stop",
    operation_id = "stop_recording",
    tag = "recordings",
    summary = "Stop a recording",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ("id" = String, Path, description = "The recording id.")),
    responses(
        (status = 200, description = "The stopped recording.", body = waas_protocol::recording::RecordingInfo),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id; `not_found`: no such recording.", body = ErrorBody),
        (status = 500, description = "`internal`: the control-plane's answer was not understood.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn stop(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let command = RecordingCommand::Stop {
        app: app.id().clone(),
        id,
    };
    call(&gw, command, StatusCode::OK).await
}

/// `GET /v1/apps/{app}/recordings/{id}`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/recordings/{id}",
    operation_id = "get_recording",
    tag = "recordings",
    summary = "One recording",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ("id" = String, Path, description = "The recording id.")),
    responses(
        (status = 200, description = "The recording.", body = waas_protocol::recording::RecordingInfo),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id; `not_found`: no such recording.", body = ErrorBody),
        (status = 500, description = "`internal`: the control-plane's answer was not understood.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let command = RecordingCommand::Get {
        app: app.id().clone(),
        id,
    };
    call(&gw, command, StatusCode::OK).await
}
