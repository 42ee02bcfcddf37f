//! The REST API that servers use with an app's API key: publish, batch publish, mint tokens.

mod pipeline;

use crate::gateway::Gateway;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use std::collections::BTreeMap;
use std::sync::Arc;
use waas_core::app::App;
use waas_core::http::error::{bearer, ApiError};
use waas_core::publisher::check_event;
use waas_core::time::now_ms;
use waas_protocol::rest::{
    BatchFailure, BatchRequest, BatchResponse, ErrorBody, ErrorDetail, PublishRequest,
    PublishResponse, TokenRequest, TokenResponse,
};
use waas_protocol::{ChannelName, Claims, ErrorCode};

/// An app whose API key the caller presented.
pub struct ServerAuth(pub Arc<App>);

impl FromRequestParts<Arc<Gateway>> for ServerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        // Raw (percent-decoded) parameters: no map of owned strings per request.
        let params = RawPathParams::from_request_parts(parts, gw)
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
        let app_id = params
            .iter()
            .find_map(|(name, value)| (name == "app").then_some(value))
            .unwrap_or_default();
        let app = gw
            .apps
            .resolve(app_id)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?
            .ok_or_else(|| ApiError::new(ErrorCode::AppNotFound, format!("no app {app_id:?}")))?;
        match bearer(parts) {
            Some(key) if app.is_api_key(key) => Ok(ServerAuth(app)),
            Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "wrong API key")),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer <API key>",
            )),
        }
    }
}

fn channels_of(gw: &Gateway, req: &PublishRequest) -> Result<Vec<ChannelName>, ApiError> {
    let names: Vec<&String> = match (&req.channel, &req.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !cs.is_empty() => {
            // A channel listed twice gets the message once.
            let mut seen = std::collections::HashSet::new();
            cs.iter().filter(|c| seen.insert(c.as_str())).collect()
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "give exactly one of \"channel\" and a non-empty \"channels\"",
            ))
        }
    };
    let max = gw.config.limits.max_channels_per_publish;
    if names.len() > max {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("at most {max} channels per publish"),
        ));
    }
    names
        .into_iter()
        .map(|n| {
            ChannelName::parse(n).map_err(|e| {
                ApiError::new(
                    ErrorCode::InvalidChannel,
                    format!("invalid channel {n:?}: {e}"),
                )
            })
        })
        .collect()
}

/// Validates a whole request before publishing any of it, so a bad channel in a list does not
/// leave the message half-published. One span per request (`docs/observability.md#traces`).
async fn publish_one(
    gw: &Gateway,
    app: &App,
    req: &PublishRequest,
    channels: &[ChannelName],
) -> Result<PublishResponse, ApiError> {
    use tracing::Instrument;
    let span = waas_core::span!("rest.publish", app = %app.id());
    publish_all(gw, app, req, channels).instrument(span).await
}

async fn publish_all(
    gw: &Gateway,
    app: &App,
    req: &PublishRequest,
    channels: &[ChannelName],
) -> Result<PublishResponse, ApiError> {
    let mut offsets = BTreeMap::new();
    for channel in channels {
        let offset = gw
            .publisher
            .publish(app, channel, &req.event, &req.data)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
        gw.reporter
            .published(app, channel, &req.event, &req.data, offset, None);
        offsets.insert(channel.to_string(), offset);
    }
    Ok(PublishResponse { offsets })
}

fn validate(gw: &Gateway, req: &PublishRequest) -> Result<Vec<ChannelName>, ApiError> {
    check_event(&req.event).map_err(|m| ApiError::new(ErrorCode::BadRequest, m))?;
    channels_of(gw, req)
}

#[utoipa::path(
    post,
    path = "/v1/apps/{app}/publish",
    operation_id = "publish",
    tag = "messages",
    summary = "Publish one message to one or more channels",
    params(("app" = String, Path, description = "The app id.", example = "demo")),
    request_body = PublishRequest,
    responses(
        (status = 200, description = "The offset the message got in each channel.", body = PublishResponse),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, `event` missing/empty/over 200 bytes, `data` missing, both or neither of `channel` and `channels`, `channels` empty or too long. `invalid_channel`: a channel name is invalid.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: body over `max_frame_bytes`.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn publish(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<PublishResponse>, ApiError> {
    let Json(req) = body?;
    let channels = validate(&gw, &req)?;
    Ok(Json(publish_one(&gw, &app, &req, &channels).await?))
}

#[utoipa::path(
    post,
    path = "/v1/apps/{app}/batch",
    operation_id = "batch",
    tag = "messages",
    summary = "Publish several messages in one call",
    params(("app" = String, Path, description = "The app id.", example = "demo")),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "The offsets of each item, in order.", body = BatchResponse),
        (status = 400, description = "`bad_request`: `batch` missing, empty or longer than `max_batch_size`; `bad_request` / `invalid_channel`: an item is invalid (the message starts with `batch[i]:`).", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: body over `max_frame_bytes`.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the app directory is unavailable (an error body), or items were not stored: the error of the first, and beside it `batch`, what became of each item (`batch[i].offsets`, and `batch[i].error` for an item not stored in all its channels; `BatchFailure` in waas-protocol).", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn batch(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let max = gw.config.limits.max_batch_size;
    if req.batch.is_empty() || req.batch.len() > max {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("\"batch\" must hold 1 to {max} items"),
        ));
    }
    let checked = req
        .batch
        .iter()
        .enumerate()
        .map(|(i, item)| {
            validate(&gw, item)
                .map_err(|e| ApiError::new(e.code, format!("batch[{i}]: {}", e.message)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let items = pipeline::publish(&gw, &app, &req.batch, &checked).await;
    let failed = items
        .iter()
        .enumerate()
        .find_map(|(i, item)| item.error.as_ref().map(|e| (i, e)));
    Ok(match failed {
        None => Json(BatchResponse {
            batch: items
                .into_iter()
                .map(|item| PublishResponse {
                    offsets: item.offsets,
                })
                .collect(),
        })
        .into_response(),
        Some((i, e)) => {
            let error = ErrorDetail {
                code: e.code,
                message: format!("batch[{i}]: {}", e.message),
            };
            let body = BatchFailure {
                error,
                batch: items,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    })
}

#[utoipa::path(
    post,
    path = "/v1/apps/{app}/tokens",
    operation_id = "mint_token",
    tag = "tokens",
    summary = "Have the server sign an end-user token",
    params(("app" = String, Path, description = "The app id.", example = "demo")),
    request_body = TokenRequest,
    responses(
        (status = 200, description = "An HS256 JWT and its expiry.", body = TokenResponse),
        (status = 400, description = "`bad_request`: `sub` missing or empty, `ttl` 0 or over `max_token_ttl_secs`, an invalid pattern in `caps`, `info` over `max_member_info_bytes`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `Authorization` missing or not one of the app's API keys.", body = ErrorBody),
        (status = 404, description = "`app_not_found`: no app with this id.", body = ErrorBody),
        (status = 409, description = "`no_signing_secret`: the app has no HS256 secret.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: body over `max_frame_bytes`.", body = ErrorBody),
        (status = 500, description = "`internal`: signing failed.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the message bus or the app directory is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn mint_token(
    State(gw): State<Arc<Gateway>>,
    ServerAuth(app): ServerAuth,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Json<TokenResponse>, ApiError> {
    let Json(req) = body?;
    let limits = &gw.config.limits;
    let ttl = req.ttl.unwrap_or(limits.default_token_ttl_secs);
    if ttl == 0 || ttl > limits.max_token_ttl_secs {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("\"ttl\" must be 1 to {} seconds", limits.max_token_ttl_secs),
        ));
    }
    waas_protocol::claims::check_sub(&req.sub)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, m))?;
    if let Some(info) = &req.info {
        let max = limits.max_member_info_bytes;
        let len = serde_json::to_vec(info).map_or(usize::MAX, |v| v.len());
        if len > max {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("\"info\" is {len} bytes, over max_member_info_bytes ({max})"),
            ));
        }
    }
    let secret = app.config.jwt_secret.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoSigningSecret,
            "the app has no HS256 secret to sign with; sign tokens with your private key",
        )
    })?;
    let now = now_ms() / 1000;
    let claims = Claims {
        sub: req.sub,
        exp: now + ttl,
        iat: Some(now),
        aud: Some(app.id().to_string()),
        caps: req.caps,
        info: req.info,
    };
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(Json(TokenResponse {
        token,
        expires_at: claims.exp,
    }))
}
