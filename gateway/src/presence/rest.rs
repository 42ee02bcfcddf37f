//! Channel occupancy and presence over REST, shaped after Pusher's HTTP API: which channels
//! are occupied, how many subscriptions (and, on presence channels, distinct users) each has,
//! and who the members of a presence channel are. Answered from this gateway's view of the
//! cluster (see the module above).

use super::Presence;
use crate::gateway::Gateway;
use crate::rest::{ApiError, ServerAuth};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use waas_protocol::presence::{is_presence, Member};
use waas_protocol::{ChannelName, ErrorCode};

#[derive(Deserialize)]
pub struct ChannelsQuery {
    /// Only channels whose name starts with this.
    #[serde(default)]
    prefix: String,
}

#[derive(Debug, Serialize)]
pub struct ChannelInfo {
    occupied: bool,
    subscription_count: u64,
    /// Presence channels only: distinct members.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ChannelSummary {
    subscription_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ChannelsResponse {
    channels: BTreeMap<String, ChannelSummary>,
}

#[derive(Debug, Serialize)]
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
