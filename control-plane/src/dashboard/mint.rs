//! Minting a token on an app's settings page: an HS256 JWT, signed with the app's secret, with
//! the subject, capabilities and lifetime the form asks for; the claims gateways check
//! (`docs/auth.md`), the same as a gateway's `POST /v1/apps/{app}/tokens` makes.

use super::app_edit::Fields;
use crate::store::AppRecord;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use waas_protocol::claims::{check_sub, Caps, Claims};

/// Patterns from a field: separated by commas, spaces or new lines.
fn list(fields: &Fields, name: &str) -> Vec<String> {
    fields
        .text(name)
        .split([',', ' ', '\n', '\r'])
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The token, or what is wrong with the form (or the app: no HS256 secret).
pub(super) fn mint(app: &AppRecord, fields: &Fields, max_ttl: u64) -> Result<String, String> {
    let secret = app.jwt_secret.as_deref().ok_or(
        "the app has no HS256 secret to sign with: set one (\"Replace the HS256 secret\") or sign tokens with your private key",
    )?;
    let sub = fields.text("sub");
    check_sub(sub)?;
    let ttl: u64 = fields
        .text("ttl")
        .parse()
        .ok()
        .filter(|t| (1..=max_ttl).contains(t))
        .ok_or_else(|| format!("the lifetime must be 1 to {max_ttl} seconds"))?;
    let caps: Caps = serde_json::from_value(json!({
        "subscribe": list(fields, "subscribe"),
        "publish": list(fields, "publish"),
        "call": list(fields, "call"),
    }))
    .map_err(|e| format!("capabilities: {e}"))?;
    let now = super::now().max(0) as u64;
    let claims = Claims {
        sub: sub.to_owned(),
        exp: now + ttl,
        iat: Some(now),
        aud: Some(app.id.to_string()),
        caps,
        info: None,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("signing failed: {e}"))
}
