//! The JWT claims a tenant's backend signs for one of its end users (see `docs/auth.md`).

use crate::pattern::PatternSet;
use crate::rpc::CallSet;
use serde::{Deserialize, Serialize};

/// What the holder may do. Anything not granted here is refused.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    #[serde(default)]
    /// Channel patterns (`chat.*`, `users.alice.>`) the holder may subscribe to.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub subscribe: PatternSet,
    #[serde(default)]
    /// Channel patterns the holder may publish to.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub publish: PatternSet,
    /// Path prefixes the holder may send `request`s to (`docs/rpc.md`).
    #[serde(default, skip_serializing_if = "CallSet::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub call: CallSet,
    /// Channels the holder may store room keys for (`room_key_put`, `docs/e2ee.md`).
    #[serde(default, skip_serializing_if = "PatternSet::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub share: PatternSet,
}

/// `sub` reported for connections authenticated with an API key. Tokens claiming it are refused
/// and `POST /tokens` does not mint it, so a caller whose `sub` is this authenticated with an
/// API key, wherever the `sub` travels (RPC callers, upstream headers, webhooks).
pub const SERVER_SUB: &str = "server";

/// Why no token may carry `sub` (empty, or [`SERVER_SUB`]), in the words the server answers
/// with: one rule for the gateway verifying and minting tokens and for the SDKs signing them.
pub fn check_sub(sub: &str) -> Result<(), String> {
    if sub.is_empty() {
        Err("\"sub\" must not be empty".into())
    } else if sub == SERVER_SUB {
        Err(format!(
            "\"sub\" {SERVER_SUB:?} is reserved for API-key connections"
        ))
    } else {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The end user's id in the tenant's own system.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The app id the token is for. Optional; when present it must name the app connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default)]
    pub caps: Caps,
    /// What other members of a presence channel see about the holder (any JSON value), e.g.
    /// `{"name": "Alice"}`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}
