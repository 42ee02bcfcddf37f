//! JWTs for tests, signed the way a tenant's backend would.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use waas_protocol::{Caps, ChannelPattern, Claims, PatternSet};

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

pub fn patterns(list: &[&str]) -> PatternSet {
    PatternSet::new(
        list.iter()
            .map(|p| ChannelPattern::parse(p).expect("valid test pattern"))
            .collect(),
    )
}

/// Caps from pattern lists.
pub fn caps(subscribe: &[&str], publish: &[&str]) -> Caps {
    Caps {
        subscribe: patterns(subscribe),
        publish: patterns(publish),
    }
}

/// An HS256 token for `sub` valid `ttl` seconds (negative: already expired).
pub fn hs256(secret: &str, sub: &str, aud: Option<&str>, caps: Caps, ttl: i64) -> String {
    let exp = (now_s() as i64 + ttl).max(0) as u64;
    let claims = Claims {
        sub: sub.into(),
        exp,
        iat: Some(now_s()),
        aud: aud.map(Into::into),
        caps,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign test token")
}

/// A token for the default `demo` app.
pub fn demo(sub: &str, subscribe: &[&str], publish: &[&str]) -> String {
    hs256(
        "demo-secret",
        sub,
        Some("demo"),
        caps(subscribe, publish),
        3600,
    )
}
