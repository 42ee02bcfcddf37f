//! `GET /apps/{app}/channels[/{name}[/users]]`: Pusher's channel queries, answered from this
//! gateway's view of the cluster's occupancy and presence, as the native REST API is
//! ([`crate::http::channels`]).

use super::events::attributes;
use super::{info_attributes, is_presence, Signed};
use crate::gateway::Gateway;
use crate::presence::Presence;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{ChannelName, ErrorCode};

fn channel(signed: &Signed) -> Result<ChannelName, ApiError> {
    let name = signed
        .path
        .get("channel")
        .map(String::as_str)
        .unwrap_or_default();
    ChannelName::parse(name).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidChannel,
            format!("invalid channel {name:?}: {e}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/apps/{app}/channels",
    operation_id = "pusher_channels",
    tag = "pusher",
    summary = "Pusher: occupied channels",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("filter_by_prefix" = Option<String>, Query, description = "Only channels starting with this."), ("info" = Option<String>, Query, description = "`user_count`, `subscription_count`, comma-separated."), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    responses(
        (status = 200, description = "`{\"channels\": {name: attributes}}`.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: an unknown `info` attribute; `user_count` without a `presence-` `filter_by_prefix`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
/// `GET /apps/{app}/channels?filter_by_prefix=&info=`: occupied channels,
/// `{"channels": {name: attributes}}`. `user_count` needs a `presence-` prefix.
pub async fn list(State(gw): State<Arc<Gateway>>, signed: Signed) -> Result<Json<Value>, ApiError> {
    let prefix = signed
        .query
        .get("filter_by_prefix")
        .map(String::as_str)
        .unwrap_or_default();
    let info = info_attributes(
        signed.query.get("info").map(String::as_str),
        &["user_count", "subscription_count"],
    )?;
    if info.contains(&"user_count") && !is_presence(prefix) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "info=user_count needs filter_by_prefix=presence-",
        ));
    }
    let channels: Map<String, Value> = gw
        .presence
        .state()
        .channels(signed.app.id().as_str(), prefix)
        .into_iter()
        .map(|(name, counts)| {
            let mut attrs = Map::new();
            for attr in &info {
                match *attr {
                    "user_count" => attrs.insert("user_count".into(), counts.users.into()),
                    _ => attrs.insert("subscription_count".into(), counts.subscribers.into()),
                };
            }
            (name, Value::Object(attrs))
        })
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

#[utoipa::path(
    get,
    path = "/apps/{app}/channels/{channel}",
    operation_id = "pusher_channel",
    tag = "pusher",
    summary = "Pusher: one channel",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("channel" = String, Path, description = "The channel."), ("info" = Option<String>, Query, description = "`user_count`, `subscription_count`, `cache`, comma-separated."), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    responses(
        (status = 200, description = "`{\"occupied\": bool, user_count?, subscription_count?}`.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: an unknown `info` attribute; `user_count` on a channel that is not presence. `invalid_channel`: the name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
/// `GET /apps/{app}/channels/{name}?info=`: `{"occupied": bool, attributes...}`.
pub async fn get(State(gw): State<Arc<Gateway>>, signed: Signed) -> Result<Json<Value>, ApiError> {
    let channel = channel(&signed)?;
    let info = info_attributes(
        signed.query.get("info").map(String::as_str),
        &["user_count", "subscription_count", "cache"],
    )?;
    if info.contains(&"user_count") && !is_presence(channel.as_str()) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("user_count is only for presence channels; {channel} is not one"),
        ));
    }
    let counts = gw
        .presence
        .state()
        .counts(&Presence::key(signed.app.id(), &channel));
    let mut out = attributes(&gw, &signed.app, &channel, &info);
    out.insert("occupied".into(), (counts.subscribers > 0).into());
    Ok(Json(Value::Object(out)))
}

#[utoipa::path(
    get,
    path = "/apps/{app}/channels/{channel}/users",
    operation_id = "pusher_channel_users",
    tag = "pusher",
    summary = "Pusher: a presence channel's users",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("channel" = String, Path, description = "A presence channel."), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    responses(
        (status = 200, description = "`{\"users\": [{\"id\": ...}]}`.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: not a presence channel. `invalid_channel`: the name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
/// `GET /apps/{app}/channels/{name}/users`: a presence channel's members,
/// `{"users": [{"id": ...}]}`.
pub async fn users(
    State(gw): State<Arc<Gateway>>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    let channel = channel(&signed)?;
    if !is_presence(channel.as_str()) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{channel} is not a presence channel"),
        ));
    }
    let users: Vec<Value> = gw
        .presence
        .members(&Presence::key(signed.app.id(), &channel))
        .into_iter()
        .map(|m| json!({ "id": m.id }))
        .collect();
    Ok(Json(json!({ "users": users })))
}
