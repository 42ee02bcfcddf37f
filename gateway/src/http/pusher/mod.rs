//! Pusher's HTTP API (`/apps/{app_id}/...`), so Pusher server libraries publish to WaaS and
//! read its channels unchanged (`docs/pusher.md`). A Pusher channel is the native channel of
//! the same name and a Pusher event a native message, published like the REST API does, so
//! native and Pusher subscribers get the same messages.
//!
//! # Layout
//! - [`signing`]: Pusher's request signature (auth version 1.0) and `body_md5`.
//! - [`data`]: a Pusher `data` string as native message data.
//! - [`events`]: `POST events`, `POST batch_events`.
//! - [`channels`]: `GET channels`, `GET channels/{name}`, `GET channels/{name}/users`.
//! - [`users`]: `POST users/{id}/terminate_connections`.

pub mod channels;
pub mod events;
pub mod signing;
pub mod users;

use crate::gateway::Gateway;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request};
use axum::routing::{get, post};
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use waas_core::app::App;
use waas_core::http::error::ApiError;
use waas_core::time::now_ms;
use waas_protocol::ErrorCode;

/// The Pusher routes, with their own body limit (`pusher_max_body_bytes`).
pub fn routes(gw: &Gateway) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/apps/{app}/events", post(events::event))
        .route("/apps/{app}/batch_events", post(events::batch))
        .route("/apps/{app}/channels", get(channels::list))
        .route("/apps/{app}/channels/{channel}", get(channels::get))
        .route("/apps/{app}/channels/{channel}/users", get(channels::users))
        .route(
            "/apps/{app}/users/{user}/terminate_connections",
            post(users::terminate),
        )
        .layer(DefaultBodyLimit::max(
            gw.config.limits.pusher_max_body_bytes,
        ))
}

/// A request signed with the app's Pusher secret: the app, its path parameters, its query
/// (without the `auth_*` and `body_md5` parameters) and body.
pub struct Signed {
    pub app: Arc<App>,
    pub path: BTreeMap<String, String>,
    pub query: BTreeMap<String, String>,
    pub body: Bytes,
}

const AUTH_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

impl FromRequest<Arc<Gateway>> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, gw: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Path(path) =
            <Path<BTreeMap<String, String>> as axum::extract::FromRequestParts<_>>::from_request_parts(
                &mut parts, gw,
            )
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
        let app_id = path.get("app").map(String::as_str).unwrap_or_default();
        let app = gw
            .apps
            .resolve(app_id)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?
            .filter(|app| app.config.pusher.is_some())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::AppNotFound,
                    format!("no app {app_id:?} with Pusher enabled"),
                )
            })?;
        let secret = app
            .config
            .pusher
            .as_ref()
            .map(|p| p.secret.clone())
            .unwrap_or_default();
        let Query(query) =
            <Query<Vec<(String, String)>> as axum::extract::FromRequestParts<_>>::from_request_parts(
                &mut parts, gw,
            )
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
        let method = parts.method.as_str().to_owned();
        let uri_path = parts.uri.path().to_owned();
        let body = Bytes::from_request(Request::from_parts(parts, body), gw)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ErrorCode::MessageTooLarge,
                        format!(
                            "body over pusher_max_body_bytes ({})",
                            gw.config.limits.pusher_max_body_bytes
                        ),
                    )
                } else {
                    ApiError::new(ErrorCode::BadRequest, e.body_text())
                }
            })?;
        let signed = signing::Request {
            method: &method,
            path: &uri_path,
            query: &query,
            body: &body,
        };
        signing::verify(
            &signed,
            &signing::Expect {
                key: app.id().as_str(),
                secret: &secret,
                now_secs: now_ms() / 1000,
                window_secs: gw.config.limits.pusher_auth_timestamp_window_secs,
            },
        )
        .map_err(|e| {
            let code = if e.is_bad_request() {
                ErrorCode::BadRequest
            } else {
                ErrorCode::Unauthorized
            };
            ApiError::new(code, e.to_string())
        })?;
        let query = query
            .into_iter()
            .filter(|(k, _)| !AUTH_PARAMS.contains(&k.to_ascii_lowercase().as_str()))
            .collect();
        Ok(Signed {
            app,
            path,
            query,
            body,
        })
    }
}

/// The attributes asked for in an `info` parameter (comma-separated).
pub fn info_attributes(
    info: Option<&str>,
    allowed: &[&'static str],
) -> Result<Vec<&'static str>, ApiError> {
    let mut out = Vec::new();
    for attr in info.unwrap_or_default().split(',').map(str::trim) {
        if attr.is_empty() {
            continue;
        }
        let Some(known) = allowed.iter().find(|a| **a == attr) else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "unknown info attribute {attr:?} (one of: {})",
                    allowed.join(", ")
                ),
            ));
        };
        if !out.contains(known) {
            out.push(*known);
        }
    }
    Ok(out)
}

/// Pusher's presence channels are `presence-*`; native ones (`presence.*`) count too.
pub fn is_presence(channel: &str) -> bool {
    channel.starts_with("presence-") || waas_protocol::presence::is_presence_name(channel)
}
