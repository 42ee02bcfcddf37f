//! `GET /app/{key}?protocol=7&client=…&version=…`: the Pusher WebSocket endpoint, beside the
//! native one ([`crate::http::websocket`]) and with the same accept limits and `Origin`
//! allow-list. Refusals are sent over the socket, as Pusher does: `pusher:error` with the code,
//! then a close with it.

use super::codes::PusherCode;
use super::connection::{self, Verdict};
use crate::gateway::Gateway;
use crate::http::websocket::spawn_upgraded;
use axum::extract::{Path, Query, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use std::sync::Arc;
use waas_core::http::error::ApiError;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

/// The only Pusher protocol version served.
pub const PROTOCOL: u32 = 7;

/// What `protocol` in the query says.
fn protocol_verdict(query: &[(String, String)]) -> Option<(PusherCode, String)> {
    let given = query.iter().find(|(k, _)| k == "protocol").map(|(_, v)| v);
    match given.map(|v| v.parse::<u32>()) {
        None => Some((
            PusherCode::NO_PROTOCOL,
            "no protocol version supplied (?protocol=7)".into(),
        )),
        Some(Err(_)) => Some((
            PusherCode::INVALID_VERSION,
            "the protocol version is not a number".into(),
        )),
        Some(Ok(PROTOCOL)) => None,
        Some(Ok(v)) => Some((
            PusherCode::UNSUPPORTED_PROTOCOL,
            format!("protocol {v} is not supported; this server speaks protocol {PROTOCOL}"),
        )),
    }
}

/// Documents the handshake's query for OpenAPI; the handler reads the raw pairs, so that a
/// missing or bad `protocol` is answered with Pusher's codes over the socket.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PusherQuery {
    /// The Pusher protocol version; only `7` is served.
    protocol: Option<String>,
    /// The client library's name (informative).
    client: Option<String>,
    /// The client library's version (informative).
    version: Option<String>,
}

#[utoipa::path(
    get,
    path = "/app/{key}",
    operation_id = "pusher_websocket",
    tag = "pusher",
    summary = "The Pusher protocol 7 WebSocket endpoint (docs/pusher.md)",
    description = "Speaks Pusher protocol 7 after an HTTP/1.1 Upgrade, for Pusher client libraries. Refusals (no such app, app without Pusher settings, bad protocol, origin not allowed, connection quota) are sent over the socket as `pusher:error` and a close with Pusher's code.",
    params(("key" = String, Path, description = "The Pusher key: the app id.", example = "demo"), PusherQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 426, description = "`bad_request`: not a WebSocket upgrade request.", body = ErrorBody),
    ),
    security(()),
)]
pub async fn websocket(
    State(gw): State<Arc<Gateway>>,
    Path(key): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let verdict = match protocol_verdict(&query) {
        Some((code, message)) => Verdict::Refuse(code, message),
        None => app_verdict(&gw, &key, &headers).await,
    };
    serve(gw, key, verdict, upgrade)
}

/// `GET /app/{key}/{rest}` (one more segment): no such Pusher path; refused over the socket with 4005.
#[utoipa::path(
    get,
    path = "/app/{key}/{rest}",
    operation_id = "pusher_unknown_path",
    tag = "pusher",
    summary = "No such Pusher path",
    description = "Upgrades, then refuses over the socket with `pusher:error` and close 4005 (path not found), as Pusher does.",
    params(
        ("key" = String, Path, description = "The Pusher key: the app id."),
        ("rest" = String, Path, description = "Anything."),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol, then close 4005."),
        (status = 426, description = "`bad_request`: not a WebSocket upgrade request.", body = ErrorBody),
    ),
    security(()),
)]
pub async fn unknown_path(
    State(gw): State<Arc<Gateway>>,
    Path((key, _rest)): Path<(String, String)>,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let verdict = Verdict::Refuse(PusherCode::PATH_NOT_FOUND, "no such path".into());
    serve(gw, key, verdict, upgrade)
}

async fn app_verdict(gw: &Arc<Gateway>, key: &str, headers: &HeaderMap) -> Verdict {
    let app = match gw.apps.resolve(key).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            return Verdict::Refuse(
                PusherCode::APP_NOT_FOUND,
                format!("app key {key} does not exist"),
            )
        }
        // The directory is unreachable for now: worth reconnecting.
        Err(e) => return Verdict::Refuse(PusherCode::RECONNECT, e.to_string()),
    };
    if app.config.pusher.is_none() {
        return Verdict::Refuse(
            PusherCode::APP_DISABLED,
            "the Pusher protocol is not enabled for this app".into(),
        );
    }
    let origin = headers
        .get(ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    if let Some(origin) = origin {
        if !waas_core::origin::allowed(&app.config.allowed_origins, &origin) {
            return Verdict::Refuse(
                PusherCode::UNAUTHORIZED,
                format!("origin {origin:?} is not allowed for this app"),
            );
        }
    }
    Verdict::Accept(app)
}

fn serve(
    gw: Arc<Gateway>,
    key: String,
    verdict: Verdict,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let mut resp = ApiError::new(
            ErrorCode::BadRequest,
            "this endpoint speaks WebSocket (the Pusher protocol): send an Upgrade request",
        )
        .into_response();
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return resp;
    };
    let Ok((response, fut)) = upgrade.upgrade() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    spawn_upgraded(fut, move |stream, read_buf| {
        connection::run(gw, key, verdict, stream, read_buf)
    });
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn protocol_codes() {
        let code = |query| protocol_verdict(&q(query)).map(|(c, _)| c);
        assert_eq!(code(&[("protocol", "7")]), None);
        assert_eq!(code(&[]), Some(PusherCode::NO_PROTOCOL));
        assert_eq!(
            code(&[("protocol", "seven")]),
            Some(PusherCode::INVALID_VERSION)
        );
        assert_eq!(
            code(&[("protocol", "5")]),
            Some(PusherCode::UNSUPPORTED_PROTOCOL)
        );
    }
}
