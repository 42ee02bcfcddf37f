//! Bodies of the REST API (`docs/rest.md`).

use crate::claims::Caps;
use crate::codes::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// `POST /v1/apps/{app}/publish`, and each item of a batch. Exactly one of `channel` and
/// `channels` must be given.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishRequest {
    /// A channel name (docs/protocol.md#channel-names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = "^[A-Za-z0-9_:@=+,;!~#/-]+(\\.[A-Za-z0-9_:@=+,;!~#/-]+)*$",
            max_length = 200
        )
    )]
    pub channel: Option<String>,
    /// Several channels, 1 to `max_channels_per_publish` (default 100); a channel listed twice
    /// gets the message once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub channels: Option<Vec<String>>,
    /// The event name, 1 to 200 bytes.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub event: String,
    /// Any JSON value, `null` included; delivered to subscribers exactly as written.
    #[cfg_attr(feature = "openapi", schema(value_type = serde_json::Value))]
    pub data: Box<RawValue>,
}

/// The offset each channel gave the message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub offsets: BTreeMap<String, u64>,
}

/// `POST /v1/apps/{app}/batch`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRequest {
    pub batch: Vec<PublishRequest>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub batch: Vec<PublishResponse>,
}

/// The answer to a batch that was not stored whole (`503 unavailable`): the first failure, and
/// what became of every item, in order. Items are stored in order, but one that failed does not
/// stop those after it that were already on their way to storage: each says for itself.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchFailure {
    /// The first item's failure; the message starts with `batch[i]:`.
    pub error: ErrorDetail,
    pub batch: Vec<BatchItem>,
}

/// One item of a [`BatchFailure`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The channels the message was stored in, with its offset in each.
    pub offsets: BTreeMap<String, u64>,
    /// Why the message was not stored in its other channels (in none of them, when `offsets` is
    /// empty); absent when it was stored in all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// `POST /v1/apps/{app}/tokens`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRequest {
    /// The end user's id; must not be empty.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub sub: String,
    #[serde(default)]
    pub caps: Caps,
    /// Lifetime in seconds; the server's default when absent, capped by its maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub ttl: Option<u64>,
    /// The `info` claim: what presence channels show about the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Every non-2xx REST answer: `{"error": {"code": ..., "message": ...}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}
