//! The recordings part of the admin API, under `/v1/admin/apps/{id}/`, with the operator token
//! (`docs/recordings.md`). A router of its own, merged beside the admin API by the binary.

use super::replay::{ReplayState, StartReplay};
use super::{RecordingError, Recordings, StartRecording};
use crate::admin::AdminError;
use crate::store::recordings::RecordedEvent;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{AppId, ErrorCode};

/// Most events one page of `GET .../events` returns, and the default.
pub const MAX_PAGE: usize = 1000;
/// Events read from the store at a time while exporting.
const EXPORT_PAGE: usize = 1000;

impl From<RecordingError> for AdminError {
    fn from(e: RecordingError) -> Self {
        AdminError::new(e.code, e.message)
    }
}

/// A request carrying the operator token.
struct Operator;

impl FromRequestParts<Arc<Recordings>> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        recordings: &Arc<Recordings>,
    ) -> Result<Self, AdminError> {
        let token = waas_core::http::error::bearer(parts);
        match token {
            Some(t) if recordings.is_operator(t) => Ok(Operator),
            _ => Err(AdminError::new(
                ErrorCode::Unauthorized,
                "missing or wrong operator token (Authorization: Bearer <operator token>)",
            )),
        }
    }
}

fn app_id(id: &str) -> Result<AppId, AdminError> {
    AppId::parse(id)
        .map_err(|e| AdminError::new(ErrorCode::NotFound, format!("app {id} not found: {e}")))
}

pub fn routes(recordings: Arc<Recordings>) -> Router {
    Router::new()
        .route("/v1/admin/apps/{id}/recordings", post(start).get(list))
        .route(
            "/v1/admin/apps/{id}/recordings/{rid}",
            get(show).delete(delete),
        )
        .route("/v1/admin/apps/{id}/recordings/{rid}/stop", post(stop))
        .route("/v1/admin/apps/{id}/recordings/{rid}/events", get(events))
        .route("/v1/admin/apps/{id}/recordings/{rid}/export", get(export))
        .route("/v1/admin/apps/{id}/recordings/{rid}/replays", post(replay))
        .route("/v1/admin/apps/{id}/replays/{pid}", get(show_replay))
        .route("/v1/admin/apps/{id}/replays/{pid}/pause", post(pause))
        .route("/v1/admin/apps/{id}/replays/{pid}/resume", post(resume))
        .route("/v1/admin/apps/{id}/replays/{pid}/stop", post(stop_replay))
        .layer(axum::middleware::map_response(
            waas_core::http::json_errors::json_errors,
        ))
        .with_state(recordings)
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/recordings",
    operation_id = "admin_start_recording",
    tag = "admin: recordings",
    summary = "Start recording channels",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = StartRecording,
    responses(
        (status = 201, description = "The new recording.", body = waas_protocol::recording::RecordingInfo),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; `name` not 1 to 200 bytes; `channels` not 1 to 100 patterns; a limit under 1. `invalid_channel`: a pattern is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn start(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path(id): Path<String>,
    body: Result<Json<StartRecording>, JsonRejection>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    let Json(req) = body.map_err(|e| AdminError::new(ErrorCode::BadRequest, e.body_text()))?;
    let recording = r.start(&app, req).await?;
    Ok((StatusCode::CREATED, Json(recording)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/recordings",
    operation_id = "list_recordings",
    tag = "admin: recordings",
    summary = "An app's recordings, newest first",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 200, description = "The recordings.", body = Vec<waas_protocol::recording::RecordingInfo>),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn list(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.check_app(&app).await?;
    Ok(Json(r.store.list_recordings(&app).await?).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/recordings/{rid}",
    operation_id = "admin_get_recording",
    tag = "admin: recordings",
    summary = "One recording",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id.")),
    responses(
        (status = 200, description = "The recording.", body = waas_protocol::recording::RecordingInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn show(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(r.store.get_recording(&app, &rid).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/recordings/{rid}/stop",
    operation_id = "admin_stop_recording",
    tag = "admin: recordings",
    summary = "Stop a recording",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id.")),
    responses(
        (status = 200, description = "The recording, stopped.", body = waas_protocol::recording::RecordingInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn stop(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(r.stop(&app, &rid, "stopped").await?).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{id}/recordings/{rid}",
    operation_id = "delete_recording",
    tag = "admin: recordings",
    summary = "Delete a recording, its events and replays",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn delete(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.delete(&app, &rid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// The `position` of the last event of the previous page.
    after: Option<i64>,
    /// 1 to 1000, default 1000.
    limit: Option<usize>,
}

/// An event as the API shows it: the recorded frame inline as JSON, untouched.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct EventView<'a> {
    position: i64,
    channel: &'a str,
    ts: i64,
    offset: i64,
    /// The `message` frame as subscribers received it.
    #[schema(value_type = Object)]
    message: &'a RawValue,
}

/// A page of events. Serialised as it is: going through `serde_json::Value` would re-encode
/// the recorded frames (keys sorted, spaces dropped), which must stay byte for byte.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct EventsPage<'a> {
    events: Vec<EventView<'a>>,
    next: Option<i64>,
}

fn view(e: &RecordedEvent) -> Result<EventView<'_>, AdminError> {
    let message: &RawValue = serde_json::from_str(&e.frame)
        .map_err(|err| AdminError::new(ErrorCode::Internal, format!("stored frame: {err}")))?;
    Ok(EventView {
        position: e.position,
        channel: &e.channel,
        ts: e.ts,
        offset: e.offset,
        message,
    })
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/recordings/{rid}/events",
    operation_id = "recording_events",
    tag = "admin: recordings",
    summary = "A page of a recording's events",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id."), EventsQuery),
    responses(
        (status = 200, description = "Events after `after`; `next` is the `after` of the next page, `null` on the last.", body = EventsPage<'static>),
        (status = 400, description = "`bad_request`: an invalid query string; `limit` not 1 to 1000.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 500, description = "`internal`: a stored event is not JSON.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn events(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    let Query(q) = query.map_err(|e| AdminError::new(ErrorCode::BadRequest, e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AdminError::new(
            ErrorCode::BadRequest,
            format!("\"limit\" must be 1 to {MAX_PAGE}"),
        ));
    }
    let page = r.events(&app, &rid, q.after.unwrap_or(0), limit).await?;
    let next = if page.len() == limit {
        page.last().map(|e| e.position)
    } else {
        None
    };
    let events = page.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EventsPage { events, next }).into_response())
}

/// JSON Lines, one event per line, read from the store page by page as the body is sent.
#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/recordings/{rid}/export",
    operation_id = "export_recording",
    tag = "admin: recordings",
    summary = "Every event as JSON Lines",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id.")),
    responses(
        (status = 200, description = "One event per line, as in `events`.", body = String, content_type = "application/x-ndjson"),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn export(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.store.get_recording(&app, &rid).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        export_body(r, rid),
    )
        .into_response())
}

/// The JSON Lines of recording `rid`'s events, read from the store page by page as the body is
/// sent (constant memory whatever the recording's size). The caller has checked that the
/// recording is the app's: this reads by recording id. Also the dashboard's download.
pub(crate) fn export_body(r: Arc<Recordings>, rid: String) -> Body {
    let lines = futures_util::stream::unfold(Some(0i64), move |after| {
        let r = Arc::clone(&r);
        let rid = rid.clone();
        async move {
            let after = after?;
            match r.store.list_events(&rid, after, EXPORT_PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let mut chunk = Vec::new();
                    for e in &page {
                        if let Ok(v) = view(e) {
                            serde_json::to_writer(&mut chunk, &v).expect("events serialise");
                            chunk.push(b'\n');
                        }
                    }
                    let next = page.last().map(|e| e.position);
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Body::from_stream(lines)
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/recordings/{rid}/replays",
    operation_id = "start_replay",
    tag = "admin: recordings",
    summary = "Replay a recording",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("rid" = String, Path, description = "The recording id.")),
    request_body = StartReplay,
    responses(
        (status = 201, description = "The replay.", body = super::replay::ReplayInfo),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; `speed` not 0 to 1000. `invalid_channel`: `channel` is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or recording.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store or the message bus is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn replay(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
    body: Result<Json<StartReplay>, JsonRejection>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    let Json(req) = body.map_err(|e| AdminError::new(ErrorCode::BadRequest, e.body_text()))?;
    let info = r.start_replay(&app, &rid, req).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/replays/{pid}",
    operation_id = "get_replay",
    tag = "admin: recordings",
    summary = "One replay",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("pid" = String, Path, description = "The replay id.")),
    responses(
        (status = 200, description = "The replay.", body = super::replay::ReplayInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or replay.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn show_replay(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(r.replay(&app, &pid)?).into_response())
}

async fn control(
    r: &Recordings,
    id: &str,
    pid: &str,
    to: ReplayState,
) -> Result<Response, AdminError> {
    let app = app_id(id)?;
    Ok(Json(r.control_replay(&app, pid, to)?).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/replays/{pid}/pause",
    operation_id = "pause_replay",
    tag = "admin: recordings",
    summary = "Pause a replay",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("pid" = String, Path, description = "The replay id.")),
    responses(
        (status = 200, description = "The replay.", body = super::replay::ReplayInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or replay.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn pause(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Paused).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/replays/{pid}/resume",
    operation_id = "resume_replay",
    tag = "admin: recordings",
    summary = "Resume a replay",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("pid" = String, Path, description = "The replay id.")),
    responses(
        (status = 200, description = "The replay.", body = super::replay::ReplayInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or replay.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn resume(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Running).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/replays/{pid}/stop",
    operation_id = "stop_replay",
    tag = "admin: recordings",
    summary = "Stop a replay",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("pid" = String, Path, description = "The replay id.")),
    responses(
        (status = 200, description = "The replay.", body = super::replay::ReplayInfo),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or replay.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
async fn stop_replay(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Stopped).await
}
