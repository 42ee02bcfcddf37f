//! `POST /apps/{app}/users/{user}/terminate_connections`: closes every Pusher connection of a
//! signed-in user, on every gateway. The request goes out on the bus
//! (`{prefix}.$ctl.pusher.terminate`, `{"app", "user_id"}`) where each gateway's Pusher
//! connections listen; this gateway's included.

use super::Signed;
use crate::gateway::Gateway;
use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::ErrorCode;

/// What goes out on [`subject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminate {
    pub app: String,
    pub user_id: String,
}

/// The bus subject of [`Terminate`] requests.
pub fn subject(prefix: &str) -> String {
    waas_core::subjects::control(prefix, "pusher.terminate")
}

/// Longest user id accepted, bytes: a token `sub` is no longer.
const MAX_USER_ID: usize = 200;

pub async fn terminate(State(gw): State<Arc<Gateway>>, signed: Signed) -> Result<Json<Value>, ApiError> {
    let user_id = signed.path.get("user").cloned().unwrap_or_default();
    if user_id.is_empty() || user_id.len() > MAX_USER_ID {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the user id must be 1 to {MAX_USER_ID} bytes"),
        ));
    }
    let body = serde_json::to_vec(&Terminate {
        app: signed.app.id().to_string(),
        user_id,
    })
    .expect("serialises");
    gw.publisher
        .bus()
        .publish(&subject(&gw.config.subject_prefix), Bytes::from(body))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
    Ok(Json(json!({})))
}
