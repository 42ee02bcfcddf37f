//! Frames the server sends: [`ServerFrame`] and how SDKs parse them.

use super::{null, present};
use crate::codes::ErrorCode;
use crate::e2ee::{DeviceKey, RoomKey};
use crate::history::HistoryPage;
use crate::presence::Member;
use crate::rpc::{Caller, Headers};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
