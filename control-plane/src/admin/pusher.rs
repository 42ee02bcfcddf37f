//! `/v1/admin/apps/{id}/pusher-secret`: an app's Pusher credentials (`docs/pusher.md`). The
//! Pusher key is the app id; the secret appears in a response once, when set, and reads of the
//! app show only `pusher_enabled`.

use super::apps::{announce, app_id, AppView};
use super::{Admin, AdminError, Operator};
use crate::secrets;
use crate::store::AppPatch;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

/// A Pusher secret given by the caller, or a new one.
pub(super) fn secret(given: Option<String>) -> Result<String, AdminError> {
    match given {
        Some(s) if s.is_empty() => Err(AdminError::new(
            ErrorCode::BadRequest,
            "\"pusher_secret\" must not be empty",
        )),
        Some(s) => Ok(s),
        None => Ok(secrets::pusher_secret()),
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotatePusherSecret {
    /// Use this secret instead of generating one.
    pusher_secret: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PusherSecretRotated {
    /// The new Pusher secret. Shown only here. The Pusher key is the app id.
    pusher_secret: String,
    app: AppView,
}

/// Replaces the Pusher secret (or gives an app without one its first): connections, HTTP API
/// calls and channel authorizations signed with the old one are refused from now on, and
/// Pusher-format webhooks are signed with the new one (read at each attempt).
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/pusher-secret",
    operation_id = "rotate_pusher_secret",
    tag = "admin: apps",
    summary = "Replace the Pusher secret",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = Option<RotatePusherSecret>,
    responses(
        (status = 200, description = "The new secret (shown only here) and the app.", body = PusherSecretRotated),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid app id; an empty `pusher_secret`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn rotate_pusher_secret(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Option<Json<RotatePusherSecret>>,
) -> Result<Json<PusherSecretRotated>, AdminError> {
    let id = app_id(&id)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let secret = secret(req.pusher_secret)?;
    let app = admin
        .store
        .update_app(
            &id,
            AppPatch {
                pusher_secret: Some(Some(secret.clone())),
                ..AppPatch::default()
            },
        )
        .await?;
    announce(&admin, &app).await;
    Ok(Json(PusherSecretRotated {
        pusher_secret: secret,
        app: app.into(),
    }))
}

/// Removes the Pusher secret: the Pusher front refuses the app until a new one is set, and its
/// Pusher-format webhook deliveries go dead (nothing to sign them with).
#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{id}/pusher-secret",
    operation_id = "remove_pusher_secret",
    tag = "admin: apps",
    summary = "Turn the Pusher front off for an app",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 200, description = "The app, with `pusher_enabled` false.", body = AppView),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn remove_pusher_secret(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AppView>, AdminError> {
    let app = admin
        .store
        .update_app(
            &app_id(&id)?,
            AppPatch {
                pusher_secret: Some(None),
                ..AppPatch::default()
            },
        )
        .await?;
    announce(&admin, &app).await;
    Ok(Json(app.into()))
}
