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
        let token = waas_gateway::rest::bearer(parts);
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
        .with_state(recordings)
}

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

async fn list(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.check_app(&app).await?;
    Ok(Json(r.store.list_recordings(&app).await?).into_response())
}

async fn show(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(r.store.get_recording(&app, &rid).await?).into_response())
}

async fn stop(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(r.stop(&app, &rid, "stopped").await?).into_response())
}

async fn delete(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.delete(&app, &rid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

/// An event as the API shows it: the recorded frame inline as JSON, untouched.
#[derive(serde::Serialize)]
struct EventView<'a> {
    position: i64,
    channel: &'a str,
    ts: i64,
    offset: i64,
    message: &'a RawValue,
}

/// A page of events. Serialised as it is: going through `serde_json::Value` would re-encode
/// the recorded frames (keys sorted, spaces dropped), which must stay byte for byte.
#[derive(serde::Serialize)]
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
async fn export(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, rid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let app = app_id(&id)?;
    r.store.get_recording(&app, &rid).await?;
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
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

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

async fn pause(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Paused).await
}

async fn resume(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Running).await
}

async fn stop_replay(
    State(r): State<Arc<Recordings>>,
    _: Operator,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    control(&r, &id, &pid, ReplayState::Stopped).await
}
