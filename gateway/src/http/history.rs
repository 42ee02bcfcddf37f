//! `GET /v1/apps/{app}/channels/{channel}/history?since=&limit=&reverse=`: a page of a
//! channel's history for the app's servers, read as the socket's `history` op reads it
//! ([`crate::history_api::read`]).

use crate::gateway::Gateway;
use crate::http::rest::ServerAuth;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{ChannelName, ErrorCode};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    since: Option<u64>,
    limit: Option<usize>,
    reverse: Option<bool>,
}

/// `GET /v1/apps/{app}/channels/{channel}/history?since=&limit=&reverse=`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/channels/{channel}/history",
    operation_id = "channel_history",
    tag = "history",
    summary = "Read a channel's stored messages",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ("channel" = String, Path, description = "A channel name, percent-encoded where URLs need it.", example = "chat.room-1"), HistoryParams),
    responses(
        (status = 200, description = "A page of the channel's history.", body = waas_protocol::history::HistoryPage),
        (status = 400, description = "`bad_request`: an invalid query string, `limit` 0 or over `history_page_limit`. `invalid_channel`: the channel name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Path((_, channel)): Path<(String, String)>,
    params: Result<axum::extract::Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(params) =
        params.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let channel = ChannelName::parse(&channel).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidChannel,
            format!("invalid channel {channel:?}: {e}"),
        )
    })?;
    let body = crate::history_api::read(
        &gw,
        &app,
        &channel,
        params.since,
        params.limit,
        params.reverse.unwrap_or(false),
        None,
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
