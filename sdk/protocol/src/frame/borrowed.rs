//! Server frames borrowed from their parts, encoded without copying a payload into an owned
//! [`super::ServerFrame`] first.

use crate::rpc::{Caller, Headers};
use serde::Serialize;
use serde_json::value::RawValue;

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
