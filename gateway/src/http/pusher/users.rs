//! `POST /apps/{app}/users/{user}/terminate_connections`: closes every Pusher connection of a
//! signed-in user, on every gateway. The request goes out on the bus
//! (`{prefix}.$ctl.pusher.terminate`, `{"app", "user_id"}`) where each gateway's Pusher
//! connections listen; this gateway's included.

use super::Signed;
use crate::gateway::Gateway;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

/// Longest user id accepted, bytes: a token `sub` is no longer.
const MAX_USER_ID: usize = 200;

#[utoipa::path(
    post,
    path = "/apps/{app}/users/{user}/terminate_connections",
    operation_id = "pusher_terminate_user",
    tag = "pusher",
    summary = "Pusher: close a user's connections",
    params(("app" = String, Path, description = "The app id (Pusher app id and key).", example = "demo"), ("user" = String, Path, description = "The signed-in user id."), ("auth_key" = String, Query, description = "The app's Pusher key (its id)."), ("auth_timestamp" = u64, Query, description = "Unix seconds, within `pusher_auth_timestamp_window_secs`."), ("auth_version" = String, Query, description = "`1.0`."), ("auth_signature" = String, Query, description = "HMAC-SHA256 hex of `METHOD\\nPATH\\nQUERY` with the app's Pusher secret (docs/pusher.md).")),
    responses(
        (status = 200, description = "`{}`: every gateway closes the user's signed-in Pusher connections.", body = serde_json::Value),
        (status = 400, description = "`bad_request`: the user id is empty or over 200 bytes.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the signature is missing, wrong or stale, `auth_key` is not the app's, or `body_md5` does not match.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no such app, or Pusher is not enabled for it.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(()),
)]
pub async fn terminate(
    State(gw): State<Arc<Gateway>>,
    signed: Signed,
) -> Result<Json<Value>, ApiError> {
    let user_id = signed.path.get("user").cloned().unwrap_or_default();
    if user_id.is_empty() || user_id.len() > MAX_USER_ID {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the user id must be 1 to {MAX_USER_ID} bytes"),
        ));
    }
    crate::pusher::users::terminate(
        gw.publisher.bus().as_ref(),
        &gw.config.subject_prefix,
        signed.app.id().as_str(),
        &user_id,
    )
    .await
    .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    Ok(Json(json!({})))
}
