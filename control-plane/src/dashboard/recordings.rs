//! An app's recordings in the dashboard (`docs/dashboard.md#recordings`): the list with a form
//! to start one, one recording with a page of its events, stop, export (JSON Lines download),
//! replay at the recorded pace, N× or all at once, and a replay's page whose progress moves
//! without a reload (`assets/recordings.js` polls its `progress` JSON).
//!
//! Everything goes through [`Recordings`](crate::recordings::Recordings), the logic behind the
//! admin API, so checks and limits are the same. Every read is bounded: events come a page at a
//! time (`EVENTS_PAGE`), the export is streamed from the store, and each recording, replay and
//! event is looked up under the app the page is for (after [`access::app`]), so a tenant user
//! guessing another app's ids gets "not found".

use super::pages::{bad_form, error_page, form, me, not_found, render};
use super::session::SignedIn;
use super::{access, when, Dashboard};
use crate::recordings::replay::{ReplayInfo, ReplayState, StartReplay};
use crate::recordings::routes::export_body;
use crate::recordings::{RecordingError, StartRecording};
use crate::store::recordings::{RecordedEvent, Recording, RecordingStatus};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use waas_protocol::AppId;

/// Events shown per page of a recording.
pub(crate) const EVENTS_PAGE: usize = 50;
/// Bytes of an event's `data` shown in the events table; the export has all of it.
const DATA_SHOWN: usize = 400;
/// Speed a "N×" replay gets when the form leaves the factor empty.
const DEFAULT_FACTOR: f64 = 10.0;

pub(crate) fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/dashboard/apps/{id}/recordings", get(list).post(start))
        .route("/dashboard/apps/{id}/recordings/{rid}", get(show))
        .route("/dashboard/apps/{id}/recordings/{rid}/stop", post(stop))
        .route("/dashboard/apps/{id}/recordings/{rid}/export", get(export))
        .route(
            "/dashboard/apps/{id}/recordings/{rid}/replays",
            post(replay),
        )
        .route("/dashboard/apps/{id}/replays/{pid}", get(replay_page))
        .route("/dashboard/apps/{id}/replays/{pid}/progress", get(progress))
        .route("/dashboard/apps/{id}/replays/{pid}/pause", post(pause))
        .route("/dashboard/apps/{id}/replays/{pid}/resume", post(resume))
        .route("/dashboard/apps/{id}/replays/{pid}/stop", post(stop_replay))
}

/// A recording failure as a page, with the status the admin API would answer.
fn failed(e: &RecordingError) -> Response {
    if e.code == waas_protocol::ErrorCode::NotFound {
        return not_found();
    }
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_page(status, &e.message)
}

#[derive(Serialize)]
struct RecordingView {
    id: String,
    name: String,
    channels: Vec<String>,
    recording: bool,
    max_events: Option<i64>,
    max_duration_secs: Option<i64>,
    event_count: i64,
    started_at: String,
    stopped_at: Option<String>,
    stop_reason: Option<String>,
}

impl From<Recording> for RecordingView {
    fn from(r: Recording) -> Self {
        RecordingView {
            recording: r.status == RecordingStatus::Recording,
            id: r.id,
            name: r.name,
            channels: r.channels,
            max_events: r.max_events,
            max_duration_secs: r.max_duration_ms.map(|ms| ms / 1000),
            event_count: r.event_count,
            started_at: when::utc(r.started_at),
            stopped_at: r.stopped_at.map(when::utc),
            stop_reason: r.stop_reason,
        }
    }
}

/// What the start form sent back, to show again after an error.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct StartForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    /// Patterns separated by commas, spaces or lines.
    #[serde(default)]
    channels: String,
    #[serde(default)]
    max_events: String,
    #[serde(default)]
    max_duration_secs: String,
}

async fn list_page(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    app: &AppId,
    status: StatusCode,
    error: Option<String>,
    form: StartForm,
) -> Response {
    let recordings = match dashboard.recordings.store.list_recordings(app).await {
        Ok(list) => list,
        Err(e) => return super::pages::unavailable(&e),
    };
    let rows: Vec<RecordingView> = recordings.into_iter().map(Into::into).collect();
    render(
        status,
        "recordings.html",
        context! {
            nav => "apps", me => me(signed_in), app_id => app.to_string(),
            recordings => rows, error, form => context! {
                name => form.name, channels => form.channels,
                max_events => form.max_events, max_duration_secs => form.max_duration_secs,
            },
        },
    )
}

pub(crate) async fn list(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    list_page(
        &dashboard,
        &signed_in,
        &app.id,
        StatusCode::OK,
        None,
        StartForm::default(),
    )
    .await
}

/// An optional whole number from a form field: empty is `None`.
fn number(field: &str, value: &str) -> Result<Option<i64>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{field} must be a whole number"))
}

fn start_request(form: &StartForm) -> Result<StartRecording, String> {
    Ok(StartRecording {
        name: form.name.trim().to_owned(),
        channels: form
            .channels
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        max_events: number("Max events", &form.max_events)?,
        max_duration_secs: number("Max duration", &form.max_duration_secs)?,
    })
}

pub(crate) async fn start(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: StartForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return super::pages::forbidden();
    }
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let request = match start_request(&form) {
        Ok(r) => r,
        Err(e) => {
            return list_page(
                &dashboard,
                &signed_in,
                &app.id,
                StatusCode::BAD_REQUEST,
                Some(e),
                form,
            )
            .await
        }
    };
    match dashboard.recordings.start(&app.id, request).await {
        Ok(recording) => {
            tracing::info!(app = %app.id, recording = recording.id, by = %signed_in.user.email, "dashboard: recording started");
            Redirect::to(&format!(
                "/dashboard/apps/{}/recordings/{}",
                app.id, recording.id
            ))
            .into_response()
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            list_page(
                &dashboard,
                &signed_in,
                &app.id,
                status,
                Some(e.message),
                form,
            )
            .await
        }
    }
}

/// One row of the events table.
#[derive(Serialize)]
struct EventRow {
    position: i64,
    channel: String,
    at: String,
    offset: i64,
    event: String,
    data: String,
    /// `data` was cut to `DATA_SHOWN` bytes.
    cut: bool,
}

/// The parts of a recorded `message` frame the table shows.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(default)]
    event: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn event_row(e: &RecordedEvent) -> EventRow {
    let (event, data) = match serde_json::from_str::<Frame>(&e.frame) {
        Ok(f) => (f.event, f.data.map_or("", RawValue::get).to_owned()),
        Err(_) => (String::new(), e.frame.clone()),
    };
    let cut = data.len() > DATA_SHOWN;
    let data = if cut {
        let mut end = DATA_SHOWN;
        while !data.is_char_boundary(end) {
            end -= 1;
        }
        data[..end].to_owned()
    } else {
        data
    };
    EventRow {
        position: e.position,
        channel: e.channel.clone(),
        at: when::utc(e.ts),
        offset: e.offset,
        event,
        data,
        cut,
    }
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    /// The position of the last event of the previous page.
    after: Option<i64>,
}

pub(crate) async fn show(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, rid)): Path<(String, String)>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let Ok(Query(query)) = query else {
        return bad_form("\"after\" must be a whole number");
    };
    let after = query.after.unwrap_or(0).max(0);
    let recordings = &dashboard.recordings;
    let recording = match recordings.store.get_recording(&app.id, &rid).await {
        Ok(r) => r,
        Err(e) => return failed(&e.into()),
    };
    let page = match recordings.events(&app.id, &rid, after, EVENTS_PAGE).await {
        Ok(page) => page,
        Err(e) => return failed(&e),
    };
    let next = (page.len() == EVENTS_PAGE)
        .then(|| page.last().map(|e| e.position))
        .flatten();
    let events: Vec<EventRow> = page.iter().map(event_row).collect();
    render(
        StatusCode::OK,
        "recording.html",
        context! {
            nav => "apps", me => me(&signed_in), app_id => app.id.to_string(),
            recording => RecordingView::from(recording), events, after, next,
            page_size => EVENTS_PAGE, default_factor => DEFAULT_FACTOR.to_string(),
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

/// The CSRF check of a form that carries nothing else: the page to answer when it fails.
fn csrf_refused(signed_in: &SignedIn, body: &Bytes) -> Option<Response> {
    match form::<CsrfForm>(body) {
        Err(e) => Some(bad_form(&e)),
        Ok(f) if signed_in.csrf_ok(f.csrf.as_deref()) => None,
        Ok(_) => Some(super::pages::forbidden()),
    }
}

pub(crate) async fn stop(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Some(page) = csrf_refused(&signed_in, &body) {
        return page;
    }
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    match dashboard.recordings.stop(&app.id, &rid, "stopped").await {
        Ok(r) => {
            tracing::info!(app = %app.id, recording = r.id, by = %signed_in.user.email, "dashboard: recording stopped");
            Redirect::to(&format!("/dashboard/apps/{}/recordings/{}", app.id, r.id)).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// The recording's events as a JSON Lines download, streamed from the store.
pub(crate) async fn export(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, rid)): Path<(String, String)>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let recording = match dashboard
        .recordings
        .store
        .get_recording(&app.id, &rid)
        .await
    {
        Ok(r) => r,
        Err(e) => return failed(&e.into()),
    };
    // The id comes from the store (`rec_` and hex), so it is safe in the header as it is.
    let disposition = format!("attachment; filename=\"{}.jsonl\"", recording.id);
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        export_body(Arc::clone(&dashboard.recordings), recording.id),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct ReplayForm {
    csrf: Option<String>,
    /// Empty: each event into its own channel.
    #[serde(default)]
    channel: String,
    /// `recorded` (1×), `faster` (N×, `factor`) or `instant` (all at once).
    #[serde(default)]
    pace: String,
    #[serde(default)]
    factor: String,
}

/// The replay's speed from the form: 1, the factor, or 0.
fn speed(form: &ReplayForm) -> Result<f64, String> {
    match form.pace.as_str() {
        "" | "recorded" => Ok(1.0),
        "instant" => Ok(0.0),
        "faster" => {
            let factor = form.factor.trim();
            if factor.is_empty() {
                return Ok(DEFAULT_FACTOR);
            }
            factor
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| "The speed factor must be a number above 0.".to_owned())
        }
        other => Err(format!("unknown pace {other:?}")),
    }
}

pub(crate) async fn replay(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form: ReplayForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return super::pages::forbidden();
    }
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let speed = match speed(&form) {
        Ok(s) => s,
        Err(e) => return bad_form(&e),
    };
    let channel = Some(form.channel.trim().to_owned()).filter(|c| !c.is_empty());
    let request = StartReplay {
        channel,
        speed: Some(speed),
    };
    match dashboard
        .recordings
        .start_replay(&app.id, &rid, request)
        .await
    {
        Ok(info) => {
            tracing::info!(app = %app.id, recording = rid, replay = info.id, by = %signed_in.user.email, "dashboard: replay started");
            Redirect::to(&format!("/dashboard/apps/{}/replays/{}", app.id, info.id)).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// A replay as its page and its progress JSON show it.
#[derive(Serialize)]
struct ReplayView {
    #[serde(flatten)]
    info: ReplayInfo,
    /// Still running or paused: the page keeps polling.
    live: bool,
    started: String,
    /// `all at once`, `1×`, `10×`.
    pace: String,
}

fn replay_view(info: ReplayInfo) -> ReplayView {
    ReplayView {
        live: matches!(info.state, ReplayState::Running | ReplayState::Paused),
        started: when::utc(info.started_at),
        pace: if info.speed == 0.0 {
            "all at once".to_owned()
        } else {
            format!("{}×", info.speed)
        },
        info,
    }
}

pub(crate) async fn replay_page(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, pid)): Path<(String, String)>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    match dashboard.recordings.replay(&app.id, &pid) {
        Ok(info) => render(
            StatusCode::OK,
            "replay.html",
            context! {
                nav => "apps", me => me(&signed_in), app_id => app.id.to_string(),
                replay => replay_view(info),
            },
        ),
        Err(e) => failed(&e),
    }
}

/// `GET .../replays/{pid}/progress`: the replay as JSON, what the replay page polls.
pub(crate) async fn progress(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, pid)): Path<(String, String)>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    match dashboard.recordings.replay(&app.id, &pid) {
        Ok(info) => Json(replay_view(info)).into_response(),
        Err(e) => failed(&e),
    }
}

async fn control(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    id: &str,
    pid: &str,
    body: &Bytes,
    to: ReplayState,
) -> Response {
    if let Some(page) = csrf_refused(signed_in, body) {
        return page;
    }
    let app = match access::app(dashboard, signed_in, id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    match dashboard.recordings.control_replay(&app.id, pid, to) {
        Ok(info) => {
            Redirect::to(&format!("/dashboard/apps/{}/replays/{}", app.id, info.id)).into_response()
        }
        Err(e) => failed(&e),
    }
}

pub(crate) async fn pause(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, pid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    control(
        &dashboard,
        &signed_in,
        &id,
        &pid,
        &body,
        ReplayState::Paused,
    )
    .await
}

pub(crate) async fn resume(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, pid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    control(
        &dashboard,
        &signed_in,
        &id,
        &pid,
        &body,
        ReplayState::Running,
    )
    .await
}

pub(crate) async fn stop_replay(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, pid)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    control(
        &dashboard,
        &signed_in,
        &id,
        &pid,
        &body,
        ReplayState::Stopped,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_speed_from_the_form() {
        let f = |pace: &str, factor: &str| ReplayForm {
            csrf: None,
            channel: String::new(),
            pace: pace.into(),
            factor: factor.into(),
        };
        assert_eq!(speed(&f("recorded", "")), Ok(1.0));
        assert_eq!(speed(&f("", "")), Ok(1.0));
        assert_eq!(speed(&f("instant", "5")), Ok(0.0));
        assert_eq!(speed(&f("faster", "")), Ok(DEFAULT_FACTOR));
        assert_eq!(speed(&f("faster", "2.5")), Ok(2.5));
        assert!(speed(&f("faster", "0")).is_err());
        assert!(speed(&f("faster", "NaN")).is_err());
        assert!(speed(&f("warp", "")).is_err());
    }

    #[test]
    fn long_data_is_cut_on_a_character_boundary() {
        let data = format!("\"{}\"", "é".repeat(DATA_SHOWN));
        let e = RecordedEvent {
            position: 1,
            channel: "a".into(),
            ts: 0,
            offset: 1,
            frame: format!(
                "{{\"op\":\"message\",\"channel\":\"a\",\"event\":\"e\",\"data\":{data},\"ts\":0}}"
            ),
        };
        let row = event_row(&e);
        assert!(row.cut);
        assert!(row.data.len() <= DATA_SHOWN);
        assert_eq!(row.event, "e");
    }
}
