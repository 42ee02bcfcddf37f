//! `POST /apps/{app}/events` and `POST /apps/{app}/batch_events`: Pusher's trigger, published
//! through the same [`waas_core::publisher::Publisher`] as the REST API, and reported to
//! webhooks the same way.

use super::{info_attributes, is_presence, Signed};
use crate::gateway::Gateway;
use crate::presence::Presence;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use waas_core::app::App;
use waas_core::http::error::ApiError;
use waas_core::publisher::check_event;
use waas_core::time::now_ms;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{ChannelName, ErrorCode};

/// One event as Pusher's libraries send it.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PusherEvent)]
pub struct Event {
    name: String,
    data: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    /// The connection that caused the event, which is not to get it.
    #[serde(default)]
    socket_id: Option<String>,
    /// Attributes to return for each channel: `user_count`, `subscription_count`.
    #[serde(default)]
    info: Option<String>,
}

/// Events published in one call.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PusherBatch)]
pub struct Batch {
    batch: Vec<Event>,
}

/// An event that passed every check, ready to publish.
struct Checked {
    name: String,
    data: Box<serde_json::value::RawValue>,
    channels: Vec<ChannelName>,
    info: Vec<&'static str>,
    socket_id: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

/// Pusher socket ids are two numbers joined by a dot.
fn check_socket_id(id: &str) -> bool {
    let mut parts = id.split('.');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

fn check(gw: &Gateway, e: Event) -> Result<Checked, ApiError> {
    check_event(&e.name).map_err(|m| bad(m.replace("\"event\"", "\"name\"")))?;
    let max = gw.config.limits.pusher_max_event_data_bytes;
    if e.data.len() > max {
        return Err(ApiError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "\"data\" is {} bytes, over pusher_max_event_data_bytes ({max})",
                e.data.len()
            ),
        ));
    }
    let names = match (e.channel, e.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !cs.is_empty() => {
            let mut seen = std::collections::HashSet::new();
            cs.into_iter().filter(|c| seen.insert(c.clone())).collect()
        }
        _ => {
            return Err(bad(
                "give exactly one of \"channel\" and a non-empty \"channels\"",
            ))
        }
    };
    let max = gw.config.limits.pusher_max_channels_per_event;
    if names.len() > max {
        return Err(bad(format!("at most {max} channels per event")));
    }
    let channels = names
        .iter()
        .map(|n| {
            ChannelName::parse(n).map_err(|err| {
                ApiError::new(
                    ErrorCode::InvalidChannel,
                    format!("invalid channel {n:?}: {err}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(id) = &e.socket_id {
        if !check_socket_id(id) {
            return Err(bad(format!("invalid socket_id {id:?}")));
        }
    }
    let info = info_attributes(e.info.as_deref(), &["user_count", "subscription_count"])?;
    if info.contains(&"user_count") {
        if let Some(c) = channels.iter().find(|c| !is_presence(c.as_str())) {
            return Err(bad(format!(
                "user_count is only for presence channels; {c} is not one"
            )));
        }
    }
    Ok(Checked {
        name: e.name,
        data: crate::pusher::data::to_native(&e.data),
        channels,
        info,
        socket_id: e.socket_id,
    })
}

/// The attributes `info` asks for, of one channel, now.
pub(super) fn attributes(
    gw: &Gateway,
    app: &App,
    channel: &ChannelName,
    info: &[&str],
) -> Map<String, Value> {
    let counts = gw
        .presence
        .state()
        .counts(&Presence::key(app.id(), channel));
    let mut out = Map::new();
    for attr in info {
        match *attr {
            "user_count" => out.insert("user_count".into(), counts.users.into()),
            "subscription_count" => {
                out.insert("subscription_count".into(), counts.subscribers.into())
            }
            _ => None,
        };
    }
    out
}

async fn publish(gw: &Gateway, app: &App, e: &Checked) -> Result<(), ApiError> {
    for channel in &e.channels {
        let published = match &e.socket_id {
            None => gw.publisher.publish(app, channel, &e.name, &e.data).await,
            Some(socket_id) => {
                let sender = crate::pusher::message::Sender {
                    socket_id: Some(socket_id.clone()),
                    user_id: None,
                };
                let head = crate::pusher::message::head(
                    channel.as_str(),
                    &e.name,
                    &e.data,
                    now_ms(),
                    &sender,
                );
                gw.publisher.publish_head(app, channel, &head).await
            }
        };
        let offset =
            published.map_err(|err| ApiError::new(ErrorCode::Unavailable, err.to_string()))?;
        gw.reporter
            .published(app, channel, &e.name, &e.data, offset, None);
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid body: {e}")))
}

#[utoipa::path(
    post,
    path = "/apps/{app}/events",
    operation_id = "pusher_trigger",
    tag = "pusher",
    summary = "Pusher: trigger an event on channels",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    request_body = Event,
    responses(
        (status = 200, description = "`{}`, or `{\"channels\": {name: {user_count?, subscription_count?}}}` when `info` asks.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: a field missing or of the wrong type, both or neither of `channel` and `channels`, more than `pusher_max_channels_per_event` channels, a bad `socket_id`, an unknown `info` attribute, `user_count` on a channel that is not presence. `invalid_channel`: a channel name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: an event's `data` over `pusher_max_event_data_bytes`, or the body over `pusher_max_body_bytes`.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
/// `POST /apps/{app}/events`: `{}`, or `{"channels": {name: attributes}}` when `info` asks.
pub async fn event(
    State(gw): State<Arc<Gateway>>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    let e = check(&gw, parse::<Event>(&signed.body)?)?;
    publish(&gw, &signed.app, &e).await?;
    if e.info.is_empty() {
        return Ok(Json(json!({})));
    }
    let channels: Map<String, Value> = e
        .channels
        .iter()
        .map(|c| {
            (
                c.to_string(),
                Value::Object(attributes(&gw, &signed.app, c, &e.info)),
            )
        })
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

#[utoipa::path(
    post,
    path = "/apps/{app}/batch_events",
    operation_id = "pusher_trigger_batch",
    tag = "pusher",
    summary = "Pusher: trigger several events",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    request_body = Batch,
    responses(
        (status = 200, description = "`{}`, or `{\"batch\": [attributes per event]}` when an event asks for `info`.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: `batch` empty or over `pusher_max_batch_size`, or an event invalid as for `events` (the message starts with `batch[i]:`).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: an event's `data` over `pusher_max_event_data_bytes`, or the body over `pusher_max_body_bytes`.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
/// `POST /apps/{app}/batch_events`: every event is checked before any is published. `{}`, or
/// `{"batch": [attributes per event]}` when an event asks for `info`.
pub async fn batch(
    State(gw): State<Arc<Gateway>>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    let req: Batch = parse(&signed.body)?;
    let max = gw.config.limits.pusher_max_batch_size;
    if req.batch.is_empty() || req.batch.len() > max {
        return Err(bad(format!("\"batch\" must hold 1 to {max} events")));
    }
    let events = req
        .batch
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e.channels.is_some() {
                return Err(bad(format!(
                    "batch[{i}]: a batched event has one \"channel\""
                )));
            }
            check(&gw, e)
                .map_err(|err| ApiError::new(err.code, format!("batch[{i}]: {}", err.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    for e in &events {
        publish(&gw, &signed.app, e).await?;
    }
    if events.iter().all(|e| e.info.is_empty()) {
        return Ok(Json(json!({})));
    }
    let batch: Vec<Value> = events
        .iter()
        .map(|e| Value::Object(attributes(&gw, &signed.app, &e.channels[0], &e.info)))
        .collect();
    Ok(Json(json!({ "batch": batch })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn socket_ids() {
        for ok in ["1.2", "123456.7890"] {
            assert!(super::check_socket_id(ok), "{ok}");
        }
        for bad in ["", "1", "1.", ".1", "1.2.3", "a.1", "1.2 "] {
            assert!(!super::check_socket_id(bad), "{bad}");
        }
    }
}
