//! Receiving WaaS webhooks in a tenant's backend: check the signature, then read the event.
//!
//! ```
//! use std::time::Duration;
//! use waas_sdk::webhook;
//!
//! # let secret = "whsec_example_secret";
//! # let body = br#"{"id":"whd_1","type":"channel_occupied","app":"demo","channel":"c","time_ms":1}"#;
//! # let header = webhook::sign(secret, webhook::now_s(), body);
//! // `header` is the request's `WaaS-Signature`, `body` its raw bytes.
//! let event = webhook::verify_event(secret, &header, body, webhook::DEFAULT_TOLERANCE)?;
//! assert_eq!(event.kind, webhook::EventType::ChannelOccupied);
//! # Ok::<(), waas_sdk::webhook::WebhookError>(())
//! ```
//!
//! Verify the raw body, before any JSON parsing or re-encoding: the signature covers the exact
//! bytes. Delivery is at least once, so keep the ids you processed (`event.id`, also in
//! `WaaS-Webhook-Id`) for a while and skip repeats. See `docs/webhooks.md`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub use waas_protocol::webhook::{
    sign, verify, EventType, VerifyError, WebhookEvent, ATTEMPT_HEADER, EVENT_HEADER, ID_HEADER,
    SIGNATURE_HEADER,
};

/// How far a signature's timestamp may be from the receiver's clock: five minutes, enough for
/// clock skew and slow networks, short enough to refuse old replays.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error("the body is not a WaaS webhook event: {0}")]
    Body(#[from] serde_json::Error),
}

/// Seconds since the epoch, as signatures use.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// [`verify`]s the signature, then parses the body.
pub fn verify_event(
    secret: &str,
    signature_header: &str,
    body: &[u8],
    tolerance: Duration,
) -> Result<WebhookEvent, WebhookError> {
    verify(secret, signature_header, body, tolerance)?;
    Ok(serde_json::from_slice(body)?)
}
