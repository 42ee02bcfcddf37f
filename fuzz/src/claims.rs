//! JWT claims as the gateway reads them: the `Claims` JSON on its own, and whole tokens through
//! [`JwtKeys::verify`] with the keys an app configures. The fuzzer cannot forge signatures, so
//! [`signed`] signs the fuzzed payload with the app's HS256 secret: that way the claims parsing
//! and validation behind the signature check are reached, not just the signature check.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::hmac;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};
use waas_core::auth::jwt::JwtKeys;
use waas_core::auth::AuthError;
use waas_core::app::AppConfig;
use waas_protocol::{AppId, Claims};

const APP: &str = "demo";
const SECRET: &str = "fuzz-secret";
/// A fixed RSA public key (no private half kept) for an RS256-only app.
const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqsXiOIzcPfDBGgjo5QVZ
u2YGB6CGy5nRl5D6vuSYiVRUo/TMvnDmxp+CAwSXYojWSHDHpxaazR/DZXwLOul0
+Afh/8wwlHCltUNh/hRzx/z/PtcIz8bMCNTjr9lSwWFEWz7+cATa4Kx1YQ7T60AR
3Ic6DkEw0/hfoOIQ9yw3kZLuhORC+x/55g6gBpQqqPR5dy3nT+n9d8NLrny32rdV
Ekmbuan3eX6LgCf2KifcACI4S4gPN8SfGWMfR/Pyc4CQQhnPkj16S4Vjp6VidwhR
4bq/MStXauK2ryv5GNxAtxr6Guab/xlb/CGLruWBeslYjOGZ6/X9VeV9CU75go0B
tQIDAQAB
-----END PUBLIC KEY-----
";

/// Algorithms a fuzzed token's header names; only HS256 can verify against the HS256 app.
const ALGS: &[&str] = &["HS256", "RS256", "ES256", "HS512", "none", "hs256"];

struct Apps {
    id: AppId,
    hs256: JwtKeys,
    rs256: JwtKeys,
}

/// Apps are built from JSON as the control-plane ships them, so that fields added to
/// `AppConfig` later do not break this crate.
static APPS: LazyLock<Apps> = LazyLock::new(|| {
    let keys = |json: serde_json::Value| {
        let config: AppConfig = serde_json::from_value(json).expect("valid app config");
        JwtKeys::from_config(&config).expect("valid keys")
    };
    Apps {
        id: AppId::parse(APP).expect("valid app id"),
        hs256: keys(serde_json::json!({ "id": APP, "jwt_secret": SECRET })),
        rs256: keys(serde_json::json!({ "id": APP, "jwt_rsa_public_key": RSA_PUBLIC_PEM })),
    }
});

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `header.payload.signature` with an HMAC-SHA256 signature under `secret`.
fn sign(alg: &str, payload: &[u8], secret: &[u8]) -> String {
    let header = serde_json::json!({ "alg": alg, "typ": "JWT" }).to_string();
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", B64URL.encode(tag.as_ref()))
}

/// Claims JSON on its own: what parses re-encodes and parses equal.
pub fn claims_json(payload: &[u8]) -> Option<Claims> {
    let claims: Claims = serde_json::from_slice(payload).ok()?;
    let encoded = serde_json::to_string(&claims).expect("claims encode");
    let again: Claims = serde_json::from_str(&encoded).expect("encoded claims parse");
    assert_eq!(again, claims);
    Some(claims)
}

/// Whatever a token verifies to satisfies what `docs/auth.md` promises of it.
fn accepted(claims: &Claims, checked_at: u64) {
    assert!(!claims.sub.is_empty());
    assert!(claims.exp >= checked_at, "expired token accepted");
    if let Some(aud) = &claims.aud {
        assert_eq!(aud, APP, "token for another app accepted");
    }
}

/// `data[0]` chooses the header's `alg`, the rest is the payload, signed with the HS256 app's
/// secret. The outcome must be exactly what the claims and the clock say.
pub fn signed(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let apps = &*APPS;
    let alg = ALGS[usize::from(which) % ALGS.len()];
    let token = sign(alg, payload, SECRET.as_bytes());
    let before = now();
    let result = apps.hs256.verify(&token, &apps.id);
    let after = now();
    let parsed = claims_json(payload);
    if let Ok(claims) = &result {
        accepted(claims, before);
        assert_eq!(
            Some(claims),
            parsed.as_ref(),
            "verified claims differ from the payload"
        );
    }
    match (alg, parsed) {
        ("HS256", Some(c)) if c.exp > after + 1 => {
            let want = if c.sub.is_empty() {
                Err("invalid")
            } else {
                match &c.aud {
                    Some(aud) if aud != APP => Err("wrong app"),
                    _ => Ok(()),
                }
            };
            match (&result, want) {
                (Ok(_), Ok(())) => {}
                (Err(AuthError::InvalidToken(_)), Err("invalid")) => {}
                (Err(AuthError::WrongApp(a)), Err("wrong app")) => {
                    assert_eq!(Some(a), c.aud.as_ref())
                }
                (got, want) => panic!("{token}: got {got:?}, expected {want:?}"),
            }
        }
        ("HS256", Some(c)) if c.exp.saturating_add(1) < before => {
            assert_eq!(result, Err(AuthError::Expired), "{token}");
        }
        ("HS256", Some(_)) => {} // expires right now: either answer is right
        _ => assert!(result.is_err(), "{token} verified: {result:?}"),
    }
    // An RS256 app accepts no HMAC-signed token, whatever its header says; nor one signed with
    // its public key as an HMAC secret (the classic algorithm confusion).
    assert!(apps.rs256.verify(&token, &apps.id).is_err());
    let confused = sign(alg, payload, RSA_PUBLIC_PEM.as_bytes());
    assert!(apps.rs256.verify(&confused, &apps.id).is_err());
    assert!(apps.hs256.verify(&confused, &apps.id).is_err());
}

/// Any string as a token: it may only verify to claims the gateway may accept.
pub fn raw_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let apps = &*APPS;
    let before = now();
    for keys in [&apps.hs256, &apps.rs256] {
        if let Ok(claims) = keys.verify(token, &apps.id) {
            accepted(&claims, before);
        }
    }
}
