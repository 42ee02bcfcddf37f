//! Channel occupancy and presence over REST, shaped after Pusher's HTTP API: which channels
//! are occupied, how many subscriptions (and, on presence channels, distinct users) each has,
//! and who the members of a presence channel are. Answered from this gateway's view of the
//! cluster ([`crate::presence`]).

use crate::gateway::Gateway;
use crate::http::rest::ServerAuth;
use crate::presence::Presence;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::presence::{is_presence, Member};
use waas_protocol::rest::ErrorBody;
use waas_protocol::{ChannelName, ErrorCode};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelsQuery {
    /// Only channels whose name starts with this.
    #[serde(default)]
    prefix: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelInfo {
    occupied: bool,
    subscription_count: u64,
    /// Presence channels only: distinct members.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelSummary {
    subscription_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelsResponse {
    channels: BTreeMap<String, ChannelSummary>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembersResponse {
    members: Vec<Member>,
}

fn channel(name: &str) -> Result<ChannelName, ApiError> {
    ChannelName::parse(name).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidChannel,
            format!("invalid channel {name:?}: {e}"),
        )
    })
}

/// `GET /v1/apps/{app}/channels?prefix=`: occupied channels.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/channels",
    operation_id = "list_channels",
    tag = "channels",
    summary = "Occupied channels, with subscription and user counts",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ChannelsQuery),
    responses(
        (status = 200, description = "The occupied channels, by name.", body = ChannelsResponse),
        (status = 400, description = "`bad_request`: an invalid query string.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Query(q): Query<ChannelsQuery>,
) -> Json<ChannelsResponse> {
    let channels = gw
        .presence
        .state()
        .channels(app.id().as_str(), &q.prefix)
        .into_iter()
        .map(|(name, counts)| {
            let presence = waas_protocol::presence::is_presence_name(&name);
            (
                name,
                ChannelSummary {
                    subscription_count: counts.subscribers,
                    user_count: presence.then_some(counts.users),
                },
            )
        })
        .collect();
    Json(ChannelsResponse { channels })
}

/// `GET /v1/apps/{app}/channels/{channel}`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/channels/{channel}",
    operation_id = "get_channel",
    tag = "channels",
    summary = "One channel's occupancy",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ("channel" = String, Path, description = "A channel name, percent-encoded where URLs need it.", example = "chat.room-1")),
    responses(
        (status = 200, description = "The channel's occupancy.", body = ChannelInfo),
        (status = 400, description = "`invalid_channel`: the channel name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<ChannelInfo>, ApiError> {
    let channel = channel(&name)?;
    let counts = gw
        .presence
        .state()
        .counts(&Presence::key(app.id(), &channel));
    Ok(Json(ChannelInfo {
        occupied: counts.subscribers > 0,
        subscription_count: counts.subscribers,
        user_count: is_presence(&channel).then_some(counts.users),
    }))
}

/// `GET /v1/apps/{app}/channels/{channel}/members`.
#[utoipa::path(
    get,
    path = "/v1/apps/{app}/channels/{channel}/members",
    operation_id = "channel_members",
    tag = "channels",
    summary = "The members of a presence channel",
    params(("app" = String, Path, description = "The app id.", example = "demo"), ("channel" = String, Path, description = "A channel name, percent-encoded where URLs need it.", example = "chat.room-1")),
    responses(
        (status = 200, description = "The members, ordered by id.", body = MembersResponse),
        (status = 400, description = "`invalid_channel`: the channel name is invalid. `bad_request`: not a presence channel.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn members(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<MembersResponse>, ApiError> {
    let channel = channel(&name)?;
    if !is_presence(&channel) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{channel} is not a presence channel (its first segment must be \"presence\")"),
        ));
    }
    Ok(Json(MembersResponse {
        members: gw.presence.members(&Presence::key(app.id(), &channel)),
    }))
}
