//! Webhooks: what the control-plane POSTs to a tenant's endpoints, and how a receiver checks
//! that a request really comes from WaaS (`docs/webhooks.md`).
//!
//! Every delivery carries `WaaS-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
//! HMAC-SHA256 with the endpoint's secret over `"<t>.<body>"` (the raw body bytes), and
//! `WaaS-Webhook-Id: <id>`, the same on every attempt of one delivery so receivers can drop
//! duplicates (delivery is at least once). The timestamp is of the attempt, so a receiver can
//! refuse old replays with a tolerance.

use ring::hmac;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header with the timestamp and signature.
pub const SIGNATURE_HEADER: &str = "WaaS-Signature";
/// Header with the delivery's id, the same on every retry.
pub const ID_HEADER: &str = "WaaS-Webhook-Id";
/// Header with the event type (`channel_occupied`, ...).
pub const EVENT_HEADER: &str = "WaaS-Webhook-Event";
/// Header with the attempt number, 1 for the first.
pub const ATTEMPT_HEADER: &str = "WaaS-Webhook-Attempt";

/// The kinds of events an endpoint may ask for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A channel got its first subscriber anywhere in the cluster.
    ChannelOccupied,
    /// A channel has had no subscriber anywhere for the debounce window.
    ChannelVacated,
    /// A member joined a presence channel (its first connection anywhere).
    MemberAdded,
    /// A member left a presence channel (its last connection anywhere).
    MemberRemoved,
    /// A message published by a client connection (WebSocket `publish`).
    ClientEvent,
    /// Every message published to a channel the endpoint routes, from a client or the REST
    /// API: the endpoint's URL is a route for those channels.
    Message,
    /// A client subscribed to a Pusher cache channel that holds no cached event yet
    /// (`docs/pusher.md`).
    CacheMiss,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::ChannelOccupied,
        EventType::ChannelVacated,
        EventType::MemberAdded,
        EventType::MemberRemoved,
        EventType::ClientEvent,
        EventType::Message,
        EventType::CacheMiss,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ChannelOccupied => "channel_occupied",
            EventType::ChannelVacated => "channel_vacated",
            EventType::MemberAdded => "member_added",
            EventType::MemberRemoved => "member_removed",
            EventType::ClientEvent => "client_event",
            EventType::Message => "message",
            EventType::CacheMiss => "cache_miss",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every webhook request, as a receiver reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The delivery's id, equal to the `WaaS-Webhook-Id` header: drop an id seen before.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub app: String,
    pub channel: String,
    /// When it happened, milliseconds since the epoch (for `channel_vacated` and
    /// `member_removed`: when the last subscriber or connection left).
    pub time_ms: i64,
    /// `member_added`, `member_removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<crate::presence::Member>,
    /// `client_event`, `message`: the event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// `client_event`, `message`: the payload exactly as published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<serde_json::value::RawValue>>,
    /// `client_event`, `message`: the message's offset in its channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// `client_event` (and `message` from a client): the publisher's token `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `client_event` (and `message` from a client): the publisher's connection id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
}

/// Why a webhook request was not accepted as genuine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the signature's timestamp is {0:?} away from now, beyond the tolerance")]
    Expired(Duration),
}

fn key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

fn signed_payload(timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{timestamp}.").into_bytes();
    payload.extend_from_slice(body);
    payload
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `WaaS-Signature` value for `body` sent at `timestamp` (seconds since the epoch).
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &signed_payload(timestamp, body));
    format!("t={timestamp},v1={}", hex(tag.as_ref()))
}

/// Checks a `WaaS-Signature` header against the raw `body` and the endpoint's `secret`, and
/// that its timestamp is within `tolerance` of this machine's clock (`Duration::MAX` skips
/// that check). Several `v1=` values are accepted (any may match), so a future secret rotation
/// can sign with both secrets. The comparison is constant-time.
pub fn verify(
    secret: &str,
    signature_header: &str,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature_header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(
                    t.parse::<u64>()
                        .map_err(|_| VerifyError::Malformed("t is not a number"))?,
                )
            }
            Some(("v1", sig)) => {
                signatures.push(unhex(sig).ok_or(VerifyError::Malformed("v1 is not hexadecimal"))?)
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed("no t="))?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed("no v1="));
    }
    let payload = signed_payload(timestamp, body);
    let key = key(secret);
    if !signatures
        .iter()
        .any(|sig| hmac::verify(&key, &payload, sig).is_ok())
    {
        return Err(VerifyError::Mismatch);
    }
    if tolerance != Duration::MAX {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let skew = Duration::from_secs(now.abs_diff(timestamp));
        if skew > tolerance {
            return Err(VerifyError::Expired(skew));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_catch_tampering() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = sign("whsec_x", now, b"{\"a\":1}");
        assert!(header.starts_with(&format!("t={now},v1=")));
        let tol = Duration::from_secs(300);
        assert_eq!(verify("whsec_x", &header, b"{\"a\":1}", tol), Ok(()));
        assert_eq!(
            verify("whsec_x", &header, b"{\"a\":2}", tol),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("other", &header, b"{\"a\":1}", tol),
            Err(VerifyError::Mismatch)
        );
        let old = sign("whsec_x", now - 3600, b"x");
        assert!(matches!(
            verify("whsec_x", &old, b"x", tol),
            Err(VerifyError::Expired(_))
        ));
        assert_eq!(verify("whsec_x", &old, b"x", Duration::MAX), Ok(()));
        assert!(matches!(
            verify("whsec_x", "v1=00", b"x", tol),
            Err(VerifyError::Malformed(_))
        ));
        // A vector computed independently (Python's hmac module).
        assert_eq!(
            sign("key", 1, b"body"),
            "t=1,v1=91b5374b153842ad05b2c4eab9349b8321b14703165bd3fb8b034dfb8be98ae5"
        );
    }
}
