//! JWTs for tests, signed the way a tenant's backend would.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;
use waas_protocol::{CallSet, Caps, ChannelPattern, Claims, PathPrefix, PatternSet};

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
        ..Caps::default()
    }
}

/// Caps allowing RPC calls under each path prefix of `call`, and nothing else.
pub fn call_caps(call: &[&str]) -> Caps {
    Caps {
        call: CallSet::new(
            call.iter()
                .map(|p| PathPrefix::parse(p).expect("valid test path prefix"))
                .collect(),
        ),
        ..Caps::default()
    }
}

/// An HS256 token of app `app` (signed with its `secret`) for `sub`, valid an hour.
pub fn for_app(secret: &str, app: &str, sub: &str, caps: Caps) -> String {
    hs256(secret, sub, Some(app), caps, 3600)
}

/// Like [`for_app`], with presence `info` (what other members see of `sub`).
pub fn with_info(secret: &str, app: &str, sub: &str, caps: Caps, info: Value) -> String {
    sign_hs256(
        secret,
        &Claims {
            info: Some(info),
            ..claims(sub, Some(app), caps, 3600)
        },
    )
}

fn claims(sub: &str, aud: Option<&str>, caps: Caps, ttl: i64) -> Claims {
    Claims {
        sub: sub.into(),
        exp: (now_s() as i64 + ttl).max(0) as u64,
        iat: Some(now_s()),
        aud: aud.map(Into::into),
        caps,
        info: None,
    }
}

fn sign_hs256(secret: &str, claims: &Claims) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign test token")
}

/// An HS256 token for `sub` valid `ttl` seconds (negative: already expired).
pub fn hs256(secret: &str, sub: &str, aud: Option<&str>, caps: Caps, ttl: i64) -> String {
    sign_hs256(secret, &claims(sub, aud, caps, ttl))
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

/// Path of a test key in `test-support/fixtures`.
pub fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A token signed with the fixture RSA (RS256) or EC (ES256) private key.
pub fn asymmetric(alg: Algorithm, sub: &str, aud: Option<&str>, caps: Caps, ttl: i64) -> String {
    let (file, key): (&str, fn(&[u8]) -> _) = match alg {
        Algorithm::RS256 => ("rsa_private.pem", EncodingKey::from_rsa_pem),
        Algorithm::ES256 => ("ec_private.pem", EncodingKey::from_ec_pem),
        other => panic!("no fixture key for {other:?}"),
    };
    let pem = std::fs::read(fixture(file)).expect("fixture key");
    let claims = claims(sub, aud, caps, ttl);
    encode(
        &Header::new(alg),
        &claims,
        &key(&pem).expect("fixture key parses"),
    )
    .expect("sign")
}
