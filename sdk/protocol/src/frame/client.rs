//! Frames a client sends: [`ClientFrame`] and how the server parses them.

use super::present;
use crate::codes::ErrorCode;
use crate::e2ee::WrappedKey;
use crate::history::{Since, SinceField};
use crate::rpc::Headers;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A frame sent by a client. Decode with [`ClientFrame::parse`]: serde's internally tagged enums
/// cannot carry a raw JSON `data` through deserialisation.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticate a connection opened without a token in the URL or headers.
    Connect {
        id: u64,
        token: String,
    },
    Subscribe {
        id: u64,
        channel: String,
        /// Recover from this position: missed messages are sent before the `ack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Since>,
    },
    /// Read a channel's history; answered by a `history` frame.
    History {
        id: u64,
        channel: String,
        /// Only messages after this offset (before it with `reverse`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Newest first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reverse: bool,
    },
    Unsubscribe {
        id: u64,
        channel: String,
    },
    /// The members of a presence channel, answered by `members` (`docs/protocol.md#presence`).
    Presence {
        id: u64,
        channel: String,
    },
    Publish {
        id: u64,
        channel: String,
        event: String,
        data: Box<RawValue>,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A request to the app's routes (`docs/rpc.md`), answered by `response` or `error`.
    Request {
        id: u64,
        /// Upper-case method; `GET` when absent.
        method: String,
        path: String,
        #[serde(default, skip_serializing_if = "Headers::is_empty")]
        headers: Headers,
        /// Any JSON value; absent means `null`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Box<RawValue>>,
        /// Shortens the route's timeout, ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// A responder's answer to the server's `request` with this `id`.
    Response {
        id: u64,
        status: u16,
        #[serde(default, skip_serializing_if = "Headers::is_empty")]
        headers: Headers,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Box<RawValue>>,
    },
    /// Start answering requests for a service (API-key connections only).
    Serve {
        id: u64,
        service: String,
    },
    /// Stop answering requests for a service.
    Unserve {
        id: u64,
        service: String,
    },
    /// Publish this device's public key to the key directory (`docs/e2ee.md`).
    KeysPublish {
        id: u64,
        public_key: String,
    },
    /// A user's published device keys, answered by `keys`.
    KeysGet {
        id: u64,
        sub: String,
    },
    /// Store room keys wrapped for devices (needs `caps.share` or an API key).
    RoomKeyPut {
        id: u64,
        channel: String,
        key_id: String,
        version: u32,
        wrapped: Vec<WrappedKey>,
    },
    /// The channel's room keys wrapped for the caller, answered by `room_keys`.
    RoomKeyGet {
        id: u64,
        channel: String,
    },
}

/// Why a client frame could not be understood, with the `id` to answer when one was readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

/// Every field any client op may carry; unknown fields are ignored so that clients may add their
/// own without breaking older servers.
#[derive(Deserialize)]
struct AnyClientFrame<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    id: Option<u64>,
    token: Option<String>,
    channel: Option<String>,
    event: Option<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    method: Option<String>,
    path: Option<String>,
    headers: Option<Headers>,
    #[serde(default, deserialize_with = "present")]
    body: Option<Box<RawValue>>,
    timeout_ms: Option<u64>,
    status: Option<u16>,
    service: Option<String>,
    since: Option<SinceField>,
    limit: Option<usize>,
    reverse: Option<bool>,
    public_key: Option<String>,
    sub: Option<String>,
    key_id: Option<String>,
    version: Option<u32>,
    wrapped: Option<Vec<WrappedKey>>,
}

/// Why a frame failed to parse: when it still is an object with a string `op` and a numeric
/// `id`, some field has the wrong type (`bad_request`, answerable by id); otherwise the frame
/// itself is unreadable (`malformed_frame`). Runs only on the error path.
fn readable_envelope(text: &str, e: serde_json::Error) -> FrameError {
    let envelope: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let op = envelope
        .as_ref()
        .and_then(|v| v.get("op"))
        .and_then(|o| o.as_str());
    let id = envelope
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(|i| i.as_u64());
    match (op, id) {
        (Some(op), Some(id)) => FrameError {
            id: Some(id),
            code: ErrorCode::BadRequest,
            message: format!("\"{op}\" has a field of the wrong type: {e}"),
        },
        _ => FrameError {
            id: None,
            code: ErrorCode::MalformedFrame,
            message: format!(
                "frame must be a JSON object with a string \"op\" and an optional numeric \"id\": {e}"
            ),
        },
    }
}

impl ClientFrame {
    /// Parses a text frame, telling apart unreadable JSON (`malformed_frame`), an unknown op
    /// (`unknown_op`) and a known op with bad fields (`bad_request`).
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let raw: AnyClientFrame =
            serde_json::from_str(text).map_err(|e| readable_envelope(text, e))?;
        let id = raw.id;
        let missing = |field: &str| FrameError {
            id,
            code: ErrorCode::BadRequest,
            message: format!("\"{}\" needs the field \"{field}\"", raw.op),
        };
        let need_id = || id.ok_or_else(|| missing("id"));
        let wrong = |field: &str, want: &str| FrameError {
            id,
            code: ErrorCode::BadRequest,
            message: format!("\"{}\" needs \"{field}\" to be {want}", raw.op),
        };
        Ok(match raw.op.as_ref() {
            "connect" => ClientFrame::Connect {
                id: need_id()?,
                token: raw.token.ok_or_else(|| missing("token"))?,
            },
            "subscribe" => ClientFrame::Subscribe {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
                since: match raw.since {
                    None => None,
                    Some(SinceField::Position(since)) => Some(since),
                    Some(SinceField::Offset(_)) => return Err(wrong("since", "{offset, epoch}")),
                },
            },
            "history" => ClientFrame::History {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
                since: match raw.since {
                    None => None,
                    Some(SinceField::Offset(offset)) => Some(offset),
                    Some(SinceField::Position(_)) => return Err(wrong("since", "an offset")),
                },
                limit: raw.limit,
                reverse: raw.reverse.unwrap_or(false),
            },
            "unsubscribe" => ClientFrame::Unsubscribe {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
            },
            "publish" => ClientFrame::Publish {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
                event: raw.event.ok_or_else(|| missing("event"))?,
                data: raw.data.ok_or_else(|| missing("data"))?,
            },
            "presence" => ClientFrame::Presence {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
            },
            "ping" => ClientFrame::Ping { id },
            "request" => ClientFrame::Request {
                id: need_id()?,
                method: raw.method.unwrap_or_else(|| "GET".into()),
                path: raw.path.ok_or_else(|| missing("path"))?,
                headers: raw.headers.unwrap_or_default(),
                body: raw.body,
                timeout_ms: raw.timeout_ms,
            },
            "response" => ClientFrame::Response {
                id: need_id()?,
                status: raw.status.ok_or_else(|| missing("status"))?,
                headers: raw.headers.unwrap_or_default(),
                body: raw.body,
            },
            "serve" => ClientFrame::Serve {
                id: need_id()?,
                service: raw.service.ok_or_else(|| missing("service"))?,
            },
            "unserve" => ClientFrame::Unserve {
                id: need_id()?,
                service: raw.service.ok_or_else(|| missing("service"))?,
            },
            "keys_publish" => ClientFrame::KeysPublish {
                id: need_id()?,
                public_key: raw.public_key.ok_or_else(|| missing("public_key"))?,
            },
            "keys_get" => ClientFrame::KeysGet {
                id: need_id()?,
                sub: raw.sub.ok_or_else(|| missing("sub"))?,
            },
            "room_key_put" => ClientFrame::RoomKeyPut {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
                key_id: raw.key_id.ok_or_else(|| missing("key_id"))?,
                version: raw.version.ok_or_else(|| missing("version"))?,
                wrapped: raw.wrapped.ok_or_else(|| missing("wrapped"))?,
            },
            "room_key_get" => ClientFrame::RoomKeyGet {
                id: need_id()?,
                channel: raw.channel.ok_or_else(|| missing("channel"))?,
            },
            other => {
                return Err(FrameError {
                    id,
                    code: ErrorCode::UnknownOp,
                    message: format!("unknown op {other:?}"),
                })
            }
        })
    }

    pub fn id(&self) -> Option<u64> {
        match self {
            ClientFrame::Connect { id, .. }
            | ClientFrame::Subscribe { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::Unsubscribe { id, .. }
            | ClientFrame::Presence { id, .. }
            | ClientFrame::Publish { id, .. }
            | ClientFrame::Request { id, .. }
            | ClientFrame::Response { id, .. }
            | ClientFrame::Serve { id, .. }
            | ClientFrame::Unserve { id, .. }
            | ClientFrame::KeysPublish { id, .. }
            | ClientFrame::KeysGet { id, .. }
            | ClientFrame::RoomKeyPut { id, .. }
            | ClientFrame::RoomKeyGet { id, .. } => Some(*id),
            ClientFrame::Ping { id } => *id,
        }
    }
}
