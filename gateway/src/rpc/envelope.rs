//! What gateways exchange over the bus for a request to a service: the request as the caller's
//! gateway vouches for it (with the caller's identity), and the reply.
//!
//! Trusted path: only gateways publish on `{prefix}.$rpc.>` subjects, and the identity in
//! [`BusCall::caller`] is what the calling gateway authenticated, never what a client wrote. In a
//! cluster, NATS permissions must keep other clients off those subjects (`docs/rpc.md`).
//!
//! Bodies stay raw JSON text from the client's frame to the responder's and back: nothing is
//! re-encoded on the way.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use waas_protocol::rpc::{Caller, Headers};
use waas_protocol::{AppId, ErrorCode, ServiceName};

/// Bus subject of `service` of `app`; the queue group is the service name, so the servers
/// serving it share its requests, whichever gateway they are connected to.
pub fn subject(prefix: &str, app: &AppId, service: &ServiceName) -> String {
    waas_core::subjects::rpc(prefix, app.as_str(), service.as_str())
}

/// A request on its way to a service.
#[derive(Debug, Serialize, Deserialize)]
pub struct BusCall<'a> {
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    #[serde(borrow)]
    pub body: &'a RawValue,
    pub caller: Caller,
    /// Time the caller still waits, ms: relative, so gateways' clocks need not agree.
    pub timeout_ms: u64,
}

/// A service's answer, or why there is none.
#[derive(Debug, Serialize, Deserialize)]
pub struct BusReply<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyError {
    pub code: ErrorCode,
    pub message: String,
}

impl BusReply<'_> {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Vec<u8> {
        let reply = BusReply {
            status: None,
            headers: Headers::new(),
            body: None,
            error: Some(ReplyError {
                code,
                message: message.into(),
            }),
        };
        serde_json::to_vec(&reply).expect("replies serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_replies_roundtrip_with_raw_bodies() {
        let body = RawValue::from_string(r#"{"a": [1, 2]}"#.into()).unwrap();
        let call = BusCall {
            service: "weather".into(),
            method: "GET".into(),
            path: "/weather/paris".into(),
            headers: Headers::new(),
            body: &body,
            caller: Caller {
                sub: "alice".into(),
                app: "demo".into(),
                connection_id: "demo-1".into(),
            },
            timeout_ms: 900,
        };
        let bytes = serde_json::to_vec(&call).unwrap();
        let back: BusCall = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.body.get(), r#"{"a": [1, 2]}"#);
        assert_eq!((back.caller.sub.as_str(), back.timeout_ms), ("alice", 900));

        let bytes = BusReply::error(ErrorCode::UpstreamError, "gone");
        let back: BusReply = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.error.unwrap().code, ErrorCode::UpstreamError);
        assert!(back.status.is_none());
    }
}
