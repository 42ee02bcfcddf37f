//! An app's Usage page (`docs/dashboard.md#usage`): live charts of the last hour by minute,
//! which `assets/usage.js` redraws from `usage.json` every few seconds without a reload, and
//! history charts by hour or day. The figures are those of `GET /v1/admin/apps/{id}/usage`.
//!
//! A tenant user asking for another tenant's app gets the same 404 as for an app that does
//! not exist, page and JSON alike.

use super::pages::{me, not_found, render, unavailable};
use super::session::{security_headers, SignedIn};
use super::Dashboard;
use crate::store::{AppRecord, StoreError};
use crate::usage::series::{SeriesError, UsageQuery};
use crate::usage::Usage;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use minijinja::context;
use std::sync::Arc;
use waas_protocol::AppId;

/// What the usage pages need: the dashboard's sessions, and the usage figures.
pub(crate) struct UsagePages {
    dashboard: Arc<Dashboard>,
    usage: Arc<Usage>,
}

impl FromRequestParts<Arc<UsagePages>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        pages: &Arc<UsagePages>,
    ) -> Result<Self, Response> {
        SignedIn::from_request_parts(parts, &pages.dashboard).await
    }
}

pub(crate) fn router(dashboard: Arc<Dashboard>, usage: Arc<Usage>) -> Router {
    Router::new()
        .route("/dashboard/apps/{id}/usage", get(page))
        .route("/dashboard/apps/{id}/usage.json", get(data))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(UsagePages { dashboard, usage }))
}

/// The app, when it exists and the signed-in user may see it; else the answer to give.
async fn visible_app(
    pages: &UsagePages,
    signed_in: &SignedIn,
    id: &str,
) -> Result<AppRecord, Response> {
    let Ok(id) = AppId::parse(id) else {
        return Err(not_found());
    };
    match pages.dashboard.store.get_app(&id).await {
        Ok(app) if signed_in.tenant().is_none_or(|t| t == app.tenant_id) => Ok(app),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// `?step=hour|day` chooses the history chart's step.
#[derive(serde::Deserialize)]
pub(crate) struct PageQuery {
    step: Option<String>,
}

pub(crate) async fn page(
    State(pages): State<Arc<UsagePages>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let app = match visible_app(&pages, &signed_in, &id).await {
        Ok(app) => app,
        Err(answer) => return answer,
    };
    let step = match q.step.as_deref() {
        Some("day") => "day",
        _ => "hour",
    };
    render(
        StatusCode::OK,
        "usage.html",
        context! {
            nav => "apps",
            me => me(&signed_in),
            app => context! { id => app.id.to_string(), name => app.name },
            step,
            // How often the live charts ask again, ms: the report interval, within 1–10 s.
            refresh_ms => pages.usage.config.report_interval.as_millis().clamp(1000, 10_000) as u64,
        },
    )
}

/// The same figures as the admin API's `GET /v1/admin/apps/{id}/usage`, for the page's script.
pub(crate) async fn data(
    State(pages): State<Arc<UsagePages>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Response {
    let app = match visible_app(&pages, &signed_in, &id).await {
        Ok(app) => app,
        Err(answer) => return answer,
    };
    match pages.usage.series(&app.id, &q).await {
        Ok(series) => Json(series).into_response(),
        Err(SeriesError::BadRange(m)) => (StatusCode::BAD_REQUEST, m).into_response(),
        Err(SeriesError::Store(e)) => unavailable(&e),
    }
}
