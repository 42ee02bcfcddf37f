//! One error type for the whole SDK, with kinds an application can match on.
//!
//! The server speaks in [`ErrorCode`]s (in `error` frames and REST bodies) and close codes; they
//! are kept as data in [`Error::Rejected`], [`Error::Http`] and [`Error::Closed`] rather than
//! flattened into strings, so that callers decide from the code (retry on `rate_limited`, ask the
//! user to log in again on `token_expired`, ...). [`Error::code`] gives the code whichever way it
//! arrived.

use waas_protocol::names::NameError;
use waas_protocol::pattern::PatternError;
use waas_protocol::rpc::RpcNameError;
use waas_protocol::ErrorCode;

/// Boxed error from application code (a token provider).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered a request (or the connect) with an `error` frame.
    #[error("refused by the server: {code}: {message}")]
    Rejected { code: ErrorCode, message: String },

    /// A REST call (or the WebSocket upgrade request) got a non-2xx answer.
    #[error("HTTP {status}: {code}: {message}")]
    Http {
        status: u16,
        code: ErrorCode,
        message: String,
    },

    /// The server closed the connection with a code that forbids reconnecting (4500–4999, 1000),
    /// or reconnecting was given up.
    #[error("connection closed by the server: {code} {reason}")]
    Closed { code: u16, reason: String },

    /// `close()` was called, or every handle was dropped; the client is finished.
    #[error("the client is closed")]
    ClientClosed,

    /// The connection dropped while the request was in flight, so whether the server applied it
    /// is unknown. Only a publish can fail this way; subscriptions are restored on reconnect.
    #[error("disconnected before the server answered")]
    Disconnected,

    /// Reconnecting has been given up after the configured number of attempts.
    #[error("gave up reconnecting after {attempts} attempts: {last}")]
    ReconnectFailed { attempts: u32, last: Box<Error> },

    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    /// The WebSocket upgrade did not complete (not a WebSocket endpoint, a proxy in the way, ...).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),

    /// The WebSocket framing broke (invalid frame, unexpected EOF, ...).
    #[error("WebSocket: {0}")]
    WebSocket(String),

    /// The server sent something this SDK cannot understand.
    #[error("protocol violation: {0}")]
    Protocol(String),

    #[error("{operation} timed out")]
    Timeout { operation: &'static str },

    /// Refused locally: the name can never be valid, so it is not worth a round trip.
    #[error("invalid channel name {channel:?}: {reason}")]
    InvalidChannel { channel: String, reason: NameError },

    /// A capability pattern given to a token builder does not parse.
    #[error("invalid capability pattern {pattern:?}: {reason}")]
    InvalidPattern {
        pattern: String,
        reason: PatternError,
    },

    /// Refused locally: a request path, method, service name or `caps.call` prefix that can
    /// never be valid (`docs/rpc.md`).
    #[error("invalid {path:?}: {reason}")]
    InvalidPath { path: String, reason: RpcNameError },

    /// The options given to a builder cannot work (no URL, unsupported scheme, bad app id...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The discovery document ([`crate::ClientBuilder::discovery_url`]) could not be fetched
    /// or is not a valid regions document (too large, not JSON, a URL that is not `ws://` or
    /// `wss://`, more than 32 regions...).
    #[error("discovery document {url}: {reason}")]
    Discovery { url: String, reason: String },

    /// The token provider failed.
    #[error("token provider failed: {0}")]
    TokenProvider(#[source] BoxError),

    /// Encoding a payload or decoding a message's data failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Signing a token failed (bad key PEM, ...).
    #[error("token signing: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),

    /// The HTTP client failed before getting an answer (connection refused, timeout, ...).
    #[error("HTTP transport: {0}")]
    Transport(#[from] reqwest::Error),
}

impl Error {
    /// The server's error code, when the error comes from one (or is its local equivalent).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Rejected { code, .. } | Error::Http { code, .. } => Some(*code),
            Error::InvalidChannel { .. } => Some(ErrorCode::InvalidChannel),
            Error::ReconnectFailed { last, .. } => last.code(),
            _ => None,
        }
    }

    /// A copy for when one failure must be reported to several waiters. Kinds holding foreign
    /// errors that cannot be cloned keep their kind where possible and their message.
    pub(crate) fn clone_lossy(&self) -> Error {
        match self {
            Error::Rejected { code, message } => Error::Rejected {
                code: *code,
                message: message.clone(),
            },
            Error::Http {
                status,
                code,
                message,
            } => Error::Http {
                status: *status,
                code: *code,
                message: message.clone(),
            },
            Error::Closed { code, reason } => Error::Closed {
                code: *code,
                reason: reason.clone(),
            },
            Error::ClientClosed => Error::ClientClosed,
            Error::Disconnected => Error::Disconnected,
            Error::ReconnectFailed { attempts, last } => Error::ReconnectFailed {
                attempts: *attempts,
                last: Box::new(last.clone_lossy()),
            },
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Handshake(m) => Error::Handshake(m.clone()),
            Error::WebSocket(m) => Error::WebSocket(m.clone()),
            Error::Protocol(m) => Error::Protocol(m.clone()),
            Error::Timeout { operation } => Error::Timeout { operation },
            Error::InvalidChannel { channel, reason } => Error::InvalidChannel {
                channel: channel.clone(),
                reason: reason.clone(),
            },
            Error::InvalidPattern { pattern, reason } => Error::InvalidPattern {
                pattern: pattern.clone(),
                reason: reason.clone(),
            },
            Error::InvalidPath { path, reason } => Error::InvalidPath {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Config(m) => Error::Config(m.clone()),
            Error::Discovery { url, reason } => Error::Discovery {
                url: url.clone(),
                reason: reason.clone(),
            },
            Error::TokenProvider(e) => Error::TokenProvider(e.to_string().into()),
            Error::Json(e) => Error::Protocol(format!("JSON: {e}")),
            Error::Jwt(e) => Error::Jwt(e.clone()),
            Error::Transport(e) => Error::WebSocket(format!("HTTP transport: {e}")),
        }
    }

    /// The WebSocket close code, when the server ended the connection with one.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::Closed { code, .. } => Some(*code),
            Error::ReconnectFailed { last, .. } => last.close_code(),
            _ => None,
        }
    }
}
