//! Frames of protocol v1. Every frame is a JSON object with a string `op`; client requests carry
//! a numeric `id` that the server echoes in the `ack` or `error` answering it.

use crate::codes::ErrorCode;
use crate::e2ee::{DeviceKey, RoomKey, WrappedKey};
use crate::history::{HistoryPage, Since, SinceField};
use crate::presence::Member;
use crate::rpc::{Caller, Headers};
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

/// Keeps `"data": null` apart from a missing `data`: null is a valid payload.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
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

/// A frame sent by the server. Decode with [`ServerFrame::parse`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The connection is authenticated; sent once, answering `connect` when there was one.
    Ready {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        connection_id: String,
        sub: String,
        version: u32,
        /// Seconds between the server's WebSocket pings.
        heartbeat: u64,
    },
    Ack {
        id: u64,
        /// For `publish`: the offset the message got in its channel. For `subscribe`: the
        /// channel's offset the subscription is live from (the last one sent to this client).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// For `subscribe`: the channel's epoch, which `offset` belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        /// For `subscribe` with `since`: whether every message missed since then was sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    /// Answer to `history`.
    History {
        id: u64,
        #[serde(flatten)]
        page: HistoryPage,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    Message {
        channel: String,
        event: String,
        data: Box<RawValue>,
        offset: u64,
        /// Server time of publication, milliseconds since the Unix epoch.
        ts: u64,
        /// Published again by a replay of a recording (`ts` is the original one).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    /// Messages of a channel this connection is subscribed to may have been lost: the server
    /// lost its bus connection and could not recover them from history. The subscription goes
    /// on; every message after this frame has an offset greater than `offset` in `epoch` (when
    /// `epoch` changed, `offset` is 0). SDKs report it like `recovered: false`.
    /// (`epoch` last: a frame ending in `"offset":N}` is a message to the hub.)
    Gap {
        channel: String,
        offset: u64,
        epoch: String,
    },
    /// Every member of a presence channel: answers `presence`, and comes right after the `ack`
    /// of a `subscribe` to a presence channel (with that request's `id`).
    Members {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        channel: String,
        members: Vec<Member>,
    },
    /// A member joined a presence channel this connection is subscribed to.
    MemberAdded { channel: String, member: Member },
    /// A member's last connection left a presence channel this connection is subscribed to.
    MemberRemoved { channel: String, member: Member },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// The answer to the client's `request` with this `id`.
    Response {
        id: u64,
        status: u16,
        #[serde(default, skip_serializing_if = "Headers::is_empty")]
        headers: Headers,
        /// `null` when the responder gave no body.
        body: Box<RawValue>,
    },
    /// To a responder: a request for a service it serves; answer with `response` and this `id`.
    Request {
        id: u64,
        service: String,
        method: String,
        path: String,
        #[serde(default, skip_serializing_if = "Headers::is_empty")]
        headers: Headers,
        body: Box<RawValue>,
        caller: Caller,
        /// Time left before the caller stops waiting, ms.
        timeout_ms: u64,
    },
    /// Answer to `keys_get`: the user's published device keys, newest first.
    Keys {
        id: u64,
        sub: String,
        keys: Vec<DeviceKey>,
    },
    /// Answer to `room_key_get`: the channel's room keys wrapped for the caller's `sub`.
    RoomKeys {
        id: u64,
        channel: String,
        keys: Vec<RoomKey>,
    },
}

#[derive(Deserialize)]
struct AnyServerFrame {
    op: String,
    id: Option<u64>,
    connection_id: Option<String>,
    sub: Option<String>,
    version: Option<u32>,
    heartbeat: Option<u64>,
    offset: Option<u64>,
    code: Option<ErrorCode>,
    message: Option<String>,
    channel: Option<String>,
    event: Option<String>,
    ts: Option<u64>,
    members: Option<Vec<Member>>,
    member: Option<Member>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    status: Option<u16>,
    headers: Option<Headers>,
    #[serde(default, deserialize_with = "present")]
    body: Option<Box<RawValue>>,
    service: Option<String>,
    method: Option<String>,
    epoch: Option<String>,
    recovered: Option<bool>,
    messages: Option<Vec<Box<RawValue>>>,
    replayed: Option<bool>,
    path: Option<String>,
    caller: Option<Caller>,
    timeout_ms: Option<u64>,
    keys: Option<serde_json::Value>,
}

/// A server frame an SDK could not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable server frame: {0}")]
pub struct ServerFrameError(pub String);

impl ServerFrame {
    /// Parses a server frame. Unknown ops are reported as errors so that SDKs can skip them
    /// (servers may add ops; clients must ignore those they do not know).
    pub fn parse(text: &str) -> Result<ServerFrame, ServerFrameError> {
        let raw: AnyServerFrame =
            serde_json::from_str(text).map_err(|e| ServerFrameError(e.to_string()))?;
        let missing = |f: &str| ServerFrameError(format!("{} without {f}", raw.op));
        Ok(match raw.op.as_str() {
            "ready" => ServerFrame::Ready {
                id: raw.id,
                connection_id: raw
                    .connection_id
                    .clone()
                    .ok_or_else(|| missing("connection_id"))?,
                sub: raw.sub.clone().unwrap_or_default(),
                version: raw.version.unwrap_or(1),
                heartbeat: raw.heartbeat.unwrap_or(0),
            },
            "ack" => ServerFrame::Ack {
                id: raw.id.ok_or_else(|| missing("id"))?,
                offset: raw.offset,
                epoch: raw.epoch,
                recovered: raw.recovered,
            },
            "history" => ServerFrame::History {
                id: raw.id.ok_or_else(|| missing("id"))?,
                page: HistoryPage {
                    channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                    epoch: raw.epoch.ok_or_else(|| missing("epoch"))?,
                    offset: raw.offset.unwrap_or(0),
                    messages: raw.messages.ok_or_else(|| missing("messages"))?,
                },
            },
            "error" => ServerFrame::Error {
                id: raw.id,
                code: raw.code.ok_or_else(|| missing("code"))?,
                message: raw.message.clone().unwrap_or_default(),
            },
            "message" => ServerFrame::Message {
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                event: raw.event.clone().ok_or_else(|| missing("event"))?,
                data: raw.data.ok_or_else(|| missing("data"))?,
                offset: raw.offset.unwrap_or(0),
                ts: raw.ts.unwrap_or(0),
                replayed: raw.replayed.unwrap_or(false),
            },
            "gap" => ServerFrame::Gap {
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                offset: raw.offset.unwrap_or(0),
                epoch: raw.epoch.clone().ok_or_else(|| missing("epoch"))?,
            },
            "members" => ServerFrame::Members {
                id: raw.id,
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                members: raw.members.clone().ok_or_else(|| missing("members"))?,
            },
            "member_added" => ServerFrame::MemberAdded {
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                member: raw.member.clone().ok_or_else(|| missing("member"))?,
            },
            "member_removed" => ServerFrame::MemberRemoved {
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                member: raw.member.clone().ok_or_else(|| missing("member"))?,
            },
            "pong" => ServerFrame::Pong { id: raw.id },
            "response" => ServerFrame::Response {
                id: raw.id.ok_or_else(|| missing("id"))?,
                status: raw.status.ok_or_else(|| missing("status"))?,
                headers: raw.headers.clone().unwrap_or_default(),
                body: raw.body.unwrap_or_else(null),
            },
            "request" => ServerFrame::Request {
                id: raw.id.ok_or_else(|| missing("id"))?,
                service: raw.service.clone().ok_or_else(|| missing("service"))?,
                method: raw.method.clone().ok_or_else(|| missing("method"))?,
                path: raw.path.clone().ok_or_else(|| missing("path"))?,
                headers: raw.headers.clone().unwrap_or_default(),
                body: raw.body.unwrap_or_else(null),
                caller: raw.caller.clone().ok_or_else(|| missing("caller"))?,
                timeout_ms: raw.timeout_ms.unwrap_or(0),
            },
            "keys" => ServerFrame::Keys {
                id: raw.id.ok_or_else(|| missing("id"))?,
                sub: raw.sub.clone().ok_or_else(|| missing("sub"))?,
                keys: keys(raw.keys.clone())?,
            },
            "room_keys" => ServerFrame::RoomKeys {
                id: raw.id.ok_or_else(|| missing("id"))?,
                channel: raw.channel.clone().ok_or_else(|| missing("channel"))?,
                keys: keys(raw.keys.clone())?,
            },
            other => return Err(ServerFrameError(format!("unknown op {other:?}"))),
        })
    }
}

/// The `keys` of a `keys` or `room_keys` frame, which differ in shape.
fn keys<T: serde::de::DeserializeOwned>(
    keys: Option<serde_json::Value>,
) -> Result<Vec<T>, ServerFrameError> {
    let keys = keys.ok_or_else(|| ServerFrameError("key list without keys".into()))?;
    serde_json::from_value(keys).map_err(|e| ServerFrameError(format!("keys: {e}")))
}

/// The JSON `null`, for an absent body.
pub fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

/// A `response` frame borrowed from its parts. Encodes exactly as [`ServerFrame::Response`].
#[derive(Debug, Serialize)]
pub struct ResponseRef<'a> {
    pub op: &'static str,
    pub id: u64,
    pub status: u16,
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: &'a Headers,
    pub body: &'a RawValue,
}

impl<'a> ResponseRef<'a> {
    pub fn new(id: u64, status: u16, headers: &'a Headers, body: &'a RawValue) -> Self {
        ResponseRef {
            op: "response",
            id,
            status,
            headers,
            body,
        }
    }
}

/// A `request` frame to a responder, borrowed from its parts. Encodes exactly as
/// [`ServerFrame::Request`].
#[derive(Debug, Serialize)]
pub struct RequestRef<'a> {
    pub op: &'static str,
    pub id: u64,
    pub service: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: &'a Headers,
    pub body: &'a RawValue,
    pub caller: &'a Caller,
    pub timeout_ms: u64,
}

/// A `message` frame borrowed from its parts, so the gateway can encode a delivery once without
/// copying the payload into an owned frame first. Encodes exactly as [`ServerFrame::Message`].
#[derive(Debug, Serialize)]
pub struct MessageRef<'a> {
    pub op: &'static str,
    pub channel: &'a str,
    pub event: &'a str,
    pub data: &'a RawValue,
    pub offset: u64,
    pub ts: u64,
}

impl<'a> MessageRef<'a> {
    pub fn new(channel: &'a str, event: &'a str, data: &'a RawValue, offset: u64, ts: u64) -> Self {
        MessageRef {
            op: "message",
            channel,
            event,
            data,
            offset,
            ts,
        }
    }
}

#[cfg(test)]
mod tests;
