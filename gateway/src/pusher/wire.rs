//! Pusher's wire format: `{"event": ..., "channel": ..., "data": ...}` frames, where `data` of
//! events is a JSON string (Pusher's own `pusher:error` and `pusher:subscription_error` carry
//! objects). Frames out are encoded here, ready to queue; frames in are read here.

use crate::wsframe;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::codes::PusherCode;

#[derive(Serialize)]
struct Out<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

/// An event frame; `data` is raw JSON (a string, for events).
pub fn event(event: &str, channel: Option<&str>, data: Option<&RawValue>) -> Bytes {
    event_from(event, channel, data, None)
}

/// An event frame naming the user who sent it (client events on presence channels).
pub fn event_from(
    event: &str,
    channel: Option<&str>,
    data: Option<&RawValue>,
    user_id: Option<&str>,
) -> Bytes {
    wsframe::json(&Out {
        event,
        channel,
        data,
        user_id,
    })
}

/// `value` serialised, then as a JSON string: Pusher's `data` of internal events.
pub fn string_data<T: Serialize>(value: &T) -> Box<RawValue> {
    let text = serde_json::to_string(value).expect("frames serialise");
    RawValue::from_string(serde_json::to_string(&text).expect("strings serialise"))
        .expect("a JSON string is JSON")
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: Option<u16>,
    message: &'a str,
}

/// `pusher:error`; `code` `None` for errors Pusher gives no code (bad frames, refused events).
pub fn error(code: Option<PusherCode>, message: &str) -> Bytes {
    let data = serde_json::value::to_raw_value(&ErrorData {
        code: code.map(|c| c.0),
        message,
    })
    .expect("errors serialise");
    event("pusher:error", None, Some(&data))
}

/// Why a subscription failed, as `pusher:subscription_error`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionError {
    /// A missing or wrong signature, or a server-to-user channel of another user: status 401.
    Auth,
    /// A name outside the native channel rules: status 400.
    InvalidChannel,
    /// Over `max_channels_per_connection`, `max_presence_members` or `max_member_info_bytes`:
    /// status 400.
    LimitReached,
    /// Bad `channel_data`: status 400.
    BadRequest,
    /// The bus or history could not be reached: status 503; worth retrying.
    Unavailable,
}

impl SubscriptionError {
    fn parts(self) -> (&'static str, u16) {
        match self {
            SubscriptionError::Auth => ("AuthError", 401),
            SubscriptionError::InvalidChannel => ("InvalidChannel", 400),
            SubscriptionError::LimitReached => ("LimitReached", 400),
            SubscriptionError::BadRequest => ("BadRequest", 400),
            SubscriptionError::Unavailable => ("ServerError", 503),
        }
    }
}

#[derive(Serialize)]
struct SubscriptionErrorData<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: &'a str,
    status: u16,
}

/// `pusher:subscription_error` for `channel`.
pub fn subscription_error(channel: &str, why: SubscriptionError, message: &str) -> Bytes {
    let (kind, status) = why.parts();
    let data = serde_json::value::to_raw_value(&SubscriptionErrorData {
        kind,
        error: message,
        status,
    })
    .expect("errors serialise");
    event("pusher:subscription_error", Some(channel), Some(&data))
}

/// A frame from a client, borrowed from its text.
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> Incoming<'a> {
    pub fn parse(text: &'a str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid frame: {e}"))
    }

    /// `data` read as `T`: an object, or a string holding one (clients send either).
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, String> {
        let raw = self.data.ok_or("the frame has no \"data\"")?;
        let text = raw.get();
        let parsed = if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(|e| e.to_string())?;
            serde_json::from_str(&inner)
        } else {
            serde_json::from_str(text)
        };
        parsed.map_err(|e| format!("invalid \"data\": {e}"))
    }
}

/// `pusher:subscribe`'s data.
#[derive(Deserialize)]
pub struct Subscribe {
    pub channel: String,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub channel_data: Option<String>,
}

/// `pusher:unsubscribe`'s data.
#[derive(Deserialize)]
pub struct Unsubscribe {
    pub channel: String,
}

/// `pusher:signin`'s data.
#[derive(Deserialize)]
pub struct Signin {
    pub auth: String,
    pub user_data: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &Bytes) -> serde_json::Value {
        serde_json::from_slice(super::super::message::payload(frame).unwrap()).unwrap()
    }

    #[test]
    fn internal_data_is_a_string_holding_json() {
        #[derive(Serialize)]
        struct Est {
            socket_id: &'static str,
        }
        let data = string_data(&Est { socket_id: "1.2" });
        let f = body(&event("pusher:connection_established", None, Some(&data)));
        assert_eq!(f["data"], "{\"socket_id\":\"1.2\"}");
        assert!(f.get("channel").is_none());
    }

    #[test]
    fn errors_carry_objects() {
        let f = body(&error(Some(PusherCode::CLIENT_EVENT_RATE), "slow down"));
        assert_eq!(f["data"]["code"], 4301);
        let f = body(&error(None, "x"));
        assert!(f["data"]["code"].is_null());
        let f = body(&subscription_error(
            "private-a",
            SubscriptionError::Auth,
            "bad",
        ));
        assert_eq!(f["channel"], "private-a");
        assert_eq!(f["data"]["type"], "AuthError");
        assert_eq!(f["data"]["status"], 401);
    }

    #[test]
    fn data_is_read_from_objects_and_strings() {
        let a = Incoming::parse(r#"{"event":"pusher:subscribe","data":{"channel":"a"}}"#).unwrap();
        assert_eq!(a.data_as::<Subscribe>().unwrap().channel, "a");
        let b = Incoming::parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"b\"}"}"#)
            .unwrap();
        assert_eq!(b.data_as::<Subscribe>().unwrap().channel, "b");
        let c = Incoming::parse(r#"{"event":"pusher:subscribe"}"#).unwrap();
        assert!(c.data_as::<Subscribe>().is_err());
        assert!(Incoming::parse("[]").is_err());
    }
}
