//! `GET /v1/admin/apps/{id}/usage`: an app's usage over a range, by minute, hour or day
//! (`docs/admin.md#usage`), the figures the dashboard's Usage page charts.

use super::{Admin, AdminError, Operator};
use crate::usage::series::{SeriesError, UsageQuery, UsageSeries};
use crate::usage::Usage;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{AppId, ErrorCode};

/// What the usage route needs: the admin API's checks, and the usage figures.
pub struct UsageApi {
    admin: Arc<Admin>,
    usage: Arc<Usage>,
}

/// The same operator check as every admin route.
impl FromRequestParts<Arc<UsageApi>> for Operator {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<UsageApi>,
    ) -> Result<Self, AdminError> {
        Operator::from_request_parts(parts, &api.admin).await
    }
}

pub fn routes(admin: Arc<Admin>, usage: Arc<Usage>) -> Router {
    Router::new()
        .route("/v1/admin/apps/{id}/usage", get(usage_of_app))
        .layer(axum::middleware::map_response(
            waas_core::http::json_errors::json_errors,
        ))
        .with_state(Arc::new(UsageApi { admin, usage }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/usage",
    operation_id = "get_app_usage",
    tag = "admin: apps",
    summary = "An app's usage by minute, hour or day",
    description = "Counted on every gateway and added up cluster-wide; see docs/admin.md#usage. A range longer than `usage_max_points` steps is cut to its most recent points (`capped`).",
    params(("id" = String, Path, description = "The app id.", example = "demo"), UsageQuery),
    responses(
        (status = 200, description = "Every step of the range, zeros where nothing happened.", body = UsageSeries),
        (status = 400, description = "`bad_request`: an invalid app id or query string, `step` not minute, hour or day, `from` not before `to`, or a negative time.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn usage_of_app(
    State(api): State<Arc<UsageApi>>,
    _: Operator,
    Path(id): Path<String>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<UsageSeries>, AdminError> {
    let app = AppId::parse(&id).map_err(|e| {
        AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}"))
    })?;
    // The app must exist (and, for a caller scoped to a tenant, be theirs): usage of an id
    // nobody has is "not found", like every other route of an app.
    api.admin.store.get_app(&app).await?;
    match api.usage.series(&app, &q).await {
        Ok(series) => Ok(Json(series)),
        Err(SeriesError::BadRange(m)) => Err(AdminError::new(ErrorCode::BadRequest, m)),
        Err(SeriesError::Store(e)) => Err(e.into()),
    }
}
