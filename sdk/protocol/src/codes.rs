//! Error and close codes are data: every SDK decides what to do from them, so they never change
//! meaning once published. Error codes are snake_case strings; close codes follow the ranges
//! documented in `docs/protocol.md`: 4000–4499 mean "reconnect", 4500–4999 mean "do not
//! reconnect with the same credentials".

use serde::{Deserialize, Serialize};

/// Machine-readable reason carried by `error` frames and REST error bodies.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object with a string `op`.
    MalformedFrame,
    /// The `op` is not one this server knows.
    UnknownOp,
    /// A known op with missing or ill-typed fields.
    BadRequest,
    /// A frame or body larger than the configured limit.
    MessageTooLarge,
    /// An op other than `connect` or `ping` before the connection is authenticated.
    NotConnected,
    /// A second `connect` on an authenticated connection.
    AlreadyConnected,
    /// The token is malformed, has a bad signature or an unsupported algorithm.
    InvalidToken,
    /// The token's `exp` is in the past.
    TokenExpired,
    /// The token was issued for another app (`aud`).
    TokenWrongApp,
    /// REST call without a valid API key.
    Unauthorized,
    /// The credentials do not grant this channel or action.
    Forbidden,
    /// The channel name is not valid (see `docs/protocol.md#channel-names`).
    InvalidChannel,
    /// The connection is already subscribed to the maximum number of channels.
    TooManyChannels,
    /// `subscribe`: the presence channel already has `max_presence_members` members.
    PresenceFull,
    /// The connection published faster than its allowed rate; the message was not published.
    RateLimited,
    /// No app with this id.
    AppNotFound,
    /// The app has reached its maximum number of concurrent connections.
    ConnectionLimit,
    /// The app cannot mint tokens: it has no HS256 secret.
    NoSigningSecret,
    /// An admin API resource (tenant, app, key) does not exist.
    NotFound,
    /// An admin API resource with this id already exists.
    Conflict,
    /// Admin API: the app id is reserved ([`crate::RESERVED_APP_IDS`]).
    ReservedId,
    /// A dependency (the bus) is unavailable; retry later.
    Unavailable,
    /// A bug or an unexpected failure on the server.
    Internal,
    /// `request`: no route of the app matches the path.
    NoRoute,
    /// `request`: no answer within the request's timeout.
    Timeout,
    /// `request`: no server is serving the route's service.
    NoResponder,
    /// `request`: the responder failed (HTTP upstream unreachable or broken, responder gone).
    UpstreamError,
    /// `request`: the response is larger than the route allows.
    ResponseTooLarge,
    /// `request`: the connection already has its maximum of requests in flight.
    TooManyRequests,
    /// A code this SDK version does not know yet (decoding only).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::NotConnected => "not_connected",
            ErrorCode::AlreadyConnected => "already_connected",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenWrongApp => "token_wrong_app",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::TooManyChannels => "too_many_channels",
            ErrorCode::PresenceFull => "presence_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::AppNotFound => "app_not_found",
            ErrorCode::ConnectionLimit => "connection_limit",
            ErrorCode::NoSigningSecret => "no_signing_secret",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ReservedId => "reserved_id",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::NoRoute => "no_route",
            ErrorCode::Timeout => "timeout",
            ErrorCode::NoResponder => "no_responder",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::ResponseTooLarge => "response_too_large",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// HTTP status used when this code answers a REST call.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedFrame
            | ErrorCode::UnknownOp
            | ErrorCode::BadRequest
            | ErrorCode::InvalidChannel
            | ErrorCode::NotConnected
            | ErrorCode::AlreadyConnected
            | ErrorCode::TooManyChannels
            | ErrorCode::ReservedId => 400,
            ErrorCode::InvalidToken
            | ErrorCode::TokenExpired
            | ErrorCode::TokenWrongApp
            | ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::AppNotFound | ErrorCode::NotFound | ErrorCode::NoRoute => 404,
            ErrorCode::NoSigningSecret | ErrorCode::Conflict | ErrorCode::PresenceFull => 409,
            ErrorCode::MessageTooLarge => 413,
            ErrorCode::RateLimited | ErrorCode::TooManyRequests => 429,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
            ErrorCode::UpstreamError | ErrorCode::ResponseTooLarge => 502,
            ErrorCode::Unavailable | ErrorCode::ConnectionLimit | ErrorCode::NoResponder => 503,
            ErrorCode::Timeout => 504,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses, and what a client should do on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The client or server ended the session normally.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The server is shutting down (SIGTERM drain); reconnect, possibly to another gateway.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The client broke the WebSocket protocol itself (not the JSON protocol).
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// The client sent a frame over `max_frame_bytes`; the stream cannot be resynchronised.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// The client did not read fast enough and its outbound queue overflowed.
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4000);
    /// Nothing was received from the client for `idle_timeout`.
    pub const HEARTBEAT_TIMEOUT: CloseCode = CloseCode(4001);
    /// No `connect` frame arrived within `connect_timeout`.
    pub const CONNECT_TIMEOUT: CloseCode = CloseCode(4002);
    /// An unexpected server failure.
    pub const SERVER_ERROR: CloseCode = CloseCode(4003);
    /// The app is at its connection limit; retry later with backoff.
    pub const CONNECTION_LIMIT: CloseCode = CloseCode(4004);
    /// The token was refused (malformed, bad signature, another app's).
    pub const INVALID_TOKEN: CloseCode = CloseCode(4500);
    /// The token expired; reconnect only with a fresh token.
    pub const TOKEN_EXPIRED: CloseCode = CloseCode(4501);
    /// The app does not exist (or was deleted).
    pub const APP_NOT_FOUND: CloseCode = CloseCode(4502);
    /// The handshake's `Origin` is not in the app's `allowed_origins`; another attempt from the
    /// same page would be refused again.
    pub const ORIGIN_NOT_ALLOWED: CloseCode = CloseCode(4503);

    /// Whether an SDK should reconnect on its own (with backoff) after this close.
    ///
    /// 4500–4999 mean the same credentials will be refused again; everything else is transient.
    pub fn should_reconnect(self) -> bool {
        !(4500..=4999).contains(&self.0) && self != CloseCode::NORMAL
    }

    /// The short reason string the server sends with this code.
    pub fn reason(self) -> &'static str {
        match self.0 {
            1000 => "normal",
            1001 => "going away",
            1002 => "protocol error",
            1009 => "message too big",
            4000 => "slow consumer",
            4001 => "heartbeat timeout",
            4002 => "connect timeout",
            4003 => "server error",
            4004 => "connection limit",
            4500 => "invalid token",
            4501 => "token expired",
            4502 => "app not found",
            4503 => "origin not allowed",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialise_as_documented_strings() {
        for code in [
            ErrorCode::MalformedFrame,
            ErrorCode::TokenWrongApp,
            ErrorCode::NoSigningSecret,
            ErrorCode::ConnectionLimit,
            ErrorCode::ReservedId,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn reconnect_policy_follows_ranges() {
        assert!(CloseCode::GOING_AWAY.should_reconnect());
        assert!(CloseCode::SLOW_CONSUMER.should_reconnect());
        assert!(!CloseCode::INVALID_TOKEN.should_reconnect());
        assert!(!CloseCode::TOKEN_EXPIRED.should_reconnect());
        assert!(!CloseCode::NORMAL.should_reconnect());
    }
}
