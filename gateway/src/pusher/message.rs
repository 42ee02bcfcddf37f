//! Native message frames as Pusher clients receive them, and messages published by Pusher
//! clients (and by the Pusher HTTP API) as native message frames.
//!
//! A channel's messages travel once, as native `message` frames. The hub turns one into a
//! Pusher frame at most once per message and gateway, and only when the channel has Pusher
//! subscribers here ([`crate::hub`]); every Pusher subscriber then gets the same bytes.
//!
//! A message a Pusher client sent (a client event), or one the HTTP API published with a
//! `socket_id` to exclude, carries an extra field before `offset`:
//! `"pusher":{"socket_id":"…","user_id":"…"}`. The connection with that socket id does not
//! receive it, and `user_id` (presence channels) is passed on to the other Pusher clients.
//! Native clients see the field and may ignore it.

use super::{data, wire};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use waas_core::history::Head;

/// Who sent a message, on the Pusher side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The connection that does not receive the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// The presence member who sent it, passed on as the Pusher frame's `user_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

#[derive(Serialize)]
struct HeadFields<'a> {
    op: &'static str,
    channel: &'a str,
    event: &'a str,
    data: &'a RawValue,
    ts: u64,
    pusher: &'a Sender,
}

/// The head of a native message carrying `sender`, to publish with
/// `waas_core::publisher::Publisher::publish_head`. `data` is native (see [`data`]).
pub fn head(channel: &str, event: &str, data: &RawValue, ts: u64, sender: &Sender) -> Head {
    let mut json = serde_json::to_vec(&HeadFields {
        op: "message",
        channel,
        event,
        data,
        ts,
        pusher: sender,
    })
    .expect("message frames always serialise");
    json.pop();
    json.push(b',');
    Head(Bytes::from(json))
}

#[derive(Deserialize)]
struct Native<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(default)]
    pusher: Option<Sender>,
}

/// A native message as Pusher clients get it: the frame, and the socket that must not.
pub struct Converted {
    pub frame: Bytes,
    pub exclude: Option<String>,
}

/// The JSON inside a server WebSocket frame (unmasked, so the header is 2, 4 or 10 bytes).
pub(crate) fn payload(frame: &[u8]) -> Option<&[u8]> {
    let len = *frame.get(1)? & 0x7f;
    let head = match len {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(head..)
}

/// The Pusher frame for a native `message` WebSocket frame; `None` for every other frame (a
/// `gap` after the bus came back has no Pusher counterpart).
pub fn convert(ws_frame: &[u8]) -> Option<Converted> {
    let json = payload(ws_frame)?;
    let native: Native<'_> = serde_json::from_slice(json).ok()?;
    if native.op != "message" {
        return None;
    }
    let sender = native.pusher.unwrap_or_default();
    let frame = wire::event_from(
        &native.event,
        Some(&native.channel),
        Some(&data::to_pusher(native.data)),
        sender.user_id.as_deref(),
    );
    Some(Converted {
        frame,
        exclude: sender.socket_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsframe;

    fn body(frame: &Bytes) -> serde_json::Value {
        serde_json::from_slice(payload(frame).unwrap()).unwrap()
    }

    #[test]
    fn native_messages_become_pusher_events() {
        let data = RawValue::from_string("{\"n\": 1}".into()).unwrap();
        let native = Head::new("chat", "say", &data, 5, false).with_offset(9);
        let c = convert(&wsframe::text(&native)).unwrap();
        assert_eq!(c.exclude, None);
        let f = body(&c.frame);
        assert_eq!(f["event"], "say");
        assert_eq!(f["channel"], "chat");
        assert_eq!(f["data"], "{\"n\": 1}");
        assert!(f.get("user_id").is_none());
        assert!(f.get("offset").is_none());
    }

    #[test]
    fn sender_is_excluded_and_named() {
        let data = RawValue::from_string("\"hi\"".into()).unwrap();
        let sender = Sender {
            socket_id: Some("12.34".into()),
            user_id: Some("u1".into()),
        };
        let frame = head("presence-r", "client-x", &data, 5, &sender).with_offset(1234567);
        assert_eq!(waas_core::history::offset_of(&frame), Some(1234567));
        // Long enough for a 4-byte header.
        let padded = "x".repeat(300);
        let big = RawValue::from_string(serde_json::to_string(&padded).unwrap()).unwrap();
        for (frame, expect) in [
            (frame, "hi".to_owned()),
            (head("c", "e", &big, 1, &sender).with_offset(1), padded),
        ] {
            let c = convert(&wsframe::text(&frame)).unwrap();
            assert_eq!(c.exclude.as_deref(), Some("12.34"));
            let f = body(&c.frame);
            assert_eq!(f["user_id"], "u1");
            assert_eq!(f["data"], expect);
        }
    }

    #[test]
    fn other_frames_are_not_converted() {
        assert!(convert(&wsframe::text(
            b"{\"op\":\"gap\",\"channel\":\"c\",\"event\":\"e\",\"data\":1}"
        ))
        .is_none());
        assert!(convert(&wsframe::text(b"not json")).is_none());
        assert!(convert(b"").is_none());
    }
}
