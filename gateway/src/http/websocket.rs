//! `GET /v1/apps/{app}/ws`: the WebSocket upgrade. What the handshake carries (app, token,
//! origin) is checked here, but refusals are sent over the socket as close codes
//! (`docs/protocol.md`), so the connection task gets the verdict rather than an HTTP status.

use crate::connection::{self, Upfront};
use crate::gateway::Gateway;
use axum::extract::{Path, Query, State};
use axum::http::header::ORIGIN;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use waas_core::auth::{self, AuthError};
use waas_core::http::accept::HttpStream;
use waas_core::http::error::{bearer_in, ApiError};
use waas_protocol::rest::ErrorBody;
use waas_protocol::server_name::SERVER_NAME_PARAM;
use waas_protocol::{ErrorCode, ServerName};

/// The `token` query parameter of a handshake: absent, once, or repeated (refused, rather than
/// guessing which one was meant).
fn query_token(query: &[(String, String)]) -> Result<Option<String>, AuthError> {
    let mut tokens = query.iter().filter(|(k, _)| k == "token");
    let first = tokens.next().map(|(_, v)| v.clone());
    if tokens.next().is_some() {
        return Err(AuthError::InvalidToken(
            "the token query parameter is given more than once".into(),
        ));
    }
    Ok(first)
}

/// The `server_name` query parameter: absent, or one valid name. Anything else is refused
/// before the upgrade (`400`), where a server's SDK sees it; browsers do not send one.
fn query_server_name(query: &[(String, String)]) -> Result<Option<ServerName>, String> {
    let mut names = query.iter().filter(|(k, _)| k == SERVER_NAME_PARAM);
    let Some((_, first)) = names.next() else {
        return Ok(None);
    };
    if names.next().is_some() {
        return Err("the server_name query parameter is given more than once".into());
    }
    ServerName::parse(first).map(Some).map_err(|e| {
        format!("invalid server_name: {e} (1-64 of letters, digits, '.', '_', ':', '-')")
    })
}

/// Documents the handshake's query for OpenAPI only: the handler reads the raw pairs (see
/// [`query_token`]), so that a repeated `token` is refused instead of axum answering a bare 400.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct WsQuery {
    /// An end-user JWT, or an API key; instead of `Authorization: Bearer`.
    token: Option<String>,
    /// For a server connecting with an API key: the name the dashboard and the admin API show
    /// for this connection, 1-64 of `[A-Za-z0-9._:-]`. Ignored for end users' tokens.
    server_name: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/apps/{app}/ws",
    operation_id = "websocket",
    tag = "websocket",
    summary = "The WebSocket endpoint (docs/protocol.md)",
    description = "Speaks the native protocol v1 after an HTTP/1.1 Upgrade. Authentication (a JWT or an API key, in `token` or `Authorization: Bearer`, or later in a `connect` frame) and refusals (unknown app, bad token) happen over the socket, as close codes.",
    params(("app" = String, Path, description = "The app id.", example = "demo"), WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "`bad_request`: an invalid or repeated `server_name`.", body = ErrorBody),
        (status = 426, description = "`bad_request`: not a WebSocket upgrade request.", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])),
)]
pub async fn websocket(
    State(gw): State<Arc<Gateway>>,
    Path(app_id): Path<String>,
    // Every pair, so a repeated `token` is seen (a struct would make axum answer a bare 400).
    // Decoding is lossy (invalid UTF-8 becomes U+FFFD), so this extractor never refuses.
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        let mut resp = ApiError::new(
            ErrorCode::BadRequest,
            "this endpoint speaks WebSocket: send an Upgrade request",
        )
        .into_response();
        *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
        return resp;
    };
    let server_name = match query_server_name(&query) {
        Ok(name) => name,
        Err(message) => return ApiError::new(ErrorCode::BadRequest, message).into_response(),
    };
    let (app, lookup_error) = match gw.apps.resolve(&app_id).await {
        Ok(app) => (app, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let credential =
        query_token(&query).map(|token| token.or_else(|| bearer_in(&headers).map(str::to_owned)));
    let origin = headers
        .get(ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    let upfront = match (&app, credential) {
        (None, _) if lookup_error.is_some() => {
            Upfront::Unavailable(lookup_error.unwrap_or_default())
        }
        (None, _) => Upfront::NoSuchApp,
        // Before any credential: a page of a foreign site learns nothing about its token.
        (Some(app), _)
            if origin
                .as_deref()
                .is_some_and(|o| !waas_core::origin::allowed(&app.config.allowed_origins, o)) =>
        {
            Upfront::OriginRefused(origin.unwrap_or_default())
        }
        (Some(_), Err(e)) => Upfront::Refused(e),
        (Some(_), Ok(None)) => Upfront::None,
        (Some(app), Ok(Some(c))) => match auth::authenticate(app, &c) {
            Ok(identity) => Upfront::Authenticated(identity),
            Err(e) => Upfront::Refused(e),
        },
    };
    let Ok((response, fut)) = upgrade.upgrade() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    spawn_upgraded(fut, move |stream, read_buf| {
        connection::run(gw, app_id, app, upfront, server_name, stream, read_buf)
    });
    response.into_response()
}

/// Runs `serve` on the TCP stream under an upgraded WebSocket once the upgrade completes, on a
/// task of its own: the native and the Pusher front alike. `serve` gets the stream and the
/// bytes the HTTP layer had already read past the handshake.
pub(crate) fn spawn_upgraded<F, Fut>(fut: fastwebsockets::upgrade::UpgradeFut, serve: F)
where
    F: FnOnce(tokio::net::TcpStream, bytes::Bytes) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let task = async move {
        // In a scope of its own: the upgraded WebSocket (over a kilobyte) must not stay in the
        // task's state for the connection's whole life, which it would if it were still in
        // scope while `serve` is awaited, moved or not.
        let (stream, read_buf, slot) = {
            let ws = match fut.await {
                Ok(ws) => ws,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            match ws
                .into_inner()
                .into_inner()
                .downcast::<TokioIo<HttpStream>>()
            {
                Ok(parts) => match parts.io.into_inner().into_upgraded().await {
                    Ok((stream, slot)) => (stream, parts.read_buf, slot),
                    Err(e) => {
                        tracing::debug!(error = %e, "sending the upgrade's answer failed");
                        return;
                    }
                },
                Err(_) => {
                    tracing::error!("upgraded connection is not a TCP stream; dropped");
                    return;
                }
            }
        };
        serve(stream, read_buf).await;
        // The source address's connection count covers the WebSocket's whole life.
        drop(slot);
    };
    tokio::spawn(task);
}
