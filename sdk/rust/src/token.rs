//! Minting end-user tokens in a tenant's own backend, without a round trip to WaaS.
//!
//! The gateway verifies tokens locally (HS256 with the app's secret, RS256/ES256 with the public
//! key registered for the app), so a backend holding the secret or private key can sign them
//! itself: `TokenBuilder::new("alice").subscribe("chat.*").sign(&key)`. The claims are the
//! protocol crate's [`Claims`], so a token built here means exactly what the gateway reads.
//! [`verify`] applies the gateway's rules, for tests and for backends that check tokens too.

use crate::error::{Error, Result};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use waas_protocol::pattern::ChannelPattern;
use waas_protocol::{CallSet, Caps, Claims, PathPrefix, PatternSet};

/// Default token lifetime, the same as the REST token endpoint's: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A key to sign tokens with. Parse PEM keys once and reuse the key.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl SigningKey {
    /// The app's shared secret (`jwt_secret` in the gateway's config).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        SigningKey {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret.as_ref()),
        }
    }

    /// An RSA private key in PEM (PKCS#1 or PKCS#8); the app holds the public half.
    pub fn rs256_pem(private_key_pem: impl AsRef<[u8]>) -> Result<Self> {
        Ok(SigningKey {
            algorithm: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(private_key_pem.as_ref())?,
        })
    }

    /// A P-256 private key in PKCS#8 PEM; the app holds the public half.
    pub fn es256_pem(private_key_pem: impl AsRef<[u8]>) -> Result<Self> {
        Ok(SigningKey {
            algorithm: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(private_key_pem.as_ref())?,
        })
    }

    /// Signs claims as they are (see [`TokenBuilder`] to build them).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            claims,
            &self.key,
        )?)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The key the gateway checks tokens with.
#[derive(Clone)]
pub struct VerifyingKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl VerifyingKey {
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        VerifyingKey {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.as_ref()),
        }
    }

    pub fn rs256_pem(public_key_pem: impl AsRef<[u8]>) -> Result<Self> {
        Ok(VerifyingKey {
            algorithm: Algorithm::RS256,
            key: DecodingKey::from_rsa_pem(public_key_pem.as_ref())?,
        })
    }

    pub fn es256_pem(public_key_pem: impl AsRef<[u8]>) -> Result<Self> {
        Ok(VerifyingKey {
            algorithm: Algorithm::ES256,
            key: DecodingKey::from_ec_pem(public_key_pem.as_ref())?,
        })
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Checks a token the way the gateway does for `app`: signature and algorithm, `exp` required
/// and in the future, `aud` optional but equal to `app` when present.
pub fn verify(token: &str, key: &VerifyingKey, app: &str) -> Result<Claims> {
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = 0;
    validation.set_audience(&[app]);
    Ok(jsonwebtoken::decode::<Claims>(token, &key.key, &validation)?.claims)
}

/// Signs `claims` with HS256 and the app's secret.
pub fn sign_hs256(secret: impl AsRef<[u8]>, claims: &Claims) -> Result<String> {
    SigningKey::hs256(secret).sign(claims)
}

/// Signs `claims` with RS256 and an RSA private key in PEM.
pub fn sign_rs256(private_key_pem: impl AsRef<[u8]>, claims: &Claims) -> Result<String> {
    SigningKey::rs256_pem(private_key_pem)?.sign(claims)
}

/// Signs `claims` with ES256 and a P-256 private key in PKCS#8 PEM.
pub fn sign_es256(private_key_pem: impl AsRef<[u8]>, claims: &Claims) -> Result<String> {
    SigningKey::es256_pem(private_key_pem)?.sign(claims)
}

/// Builds the claims of one end user's token. Nothing is granted unless added: a token with no
/// `subscribe` or `publish` pattern connects but can do nothing.
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    sub: String,
    subscribe: Vec<String>,
    publish: Vec<String>,
    call: Vec<String>,
    share: Vec<String>,
    ttl: Duration,
    audience: Option<String>,
    info: Option<serde_json::Value>,
}

impl TokenBuilder {
    /// `sub` is the end user's id in the tenant's own system.
    pub fn new(sub: impl Into<String>) -> Self {
        TokenBuilder {
            sub: sub.into(),
            subscribe: Vec::new(),
            publish: Vec::new(),
            call: Vec::new(),
            share: Vec::new(),
            ttl: DEFAULT_TTL,
            audience: None,
            info: None,
        }
    }

    /// Grants subscribing to channels matching `pattern` (`*` one segment, `>` the rest).
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.subscribe.push(pattern.into());
        self
    }

    /// Grants publishing to channels matching `pattern`.
    pub fn publish(mut self, pattern: impl Into<String>) -> Self {
        self.publish.push(pattern.into());
        self
    }

    /// Grants sending `request`s to paths at or below `prefix` (`/weather` allows
    /// `/weather/paris`; `/` allows every path). See `docs/rpc.md`.
    pub fn call(mut self, prefix: impl Into<String>) -> Self {
        self.call.push(prefix.into());
        self
    }

    /// Grants sharing end-to-end encryption room keys for channels matching `pattern`
    /// (`caps.share`, `room_key_put`; see `docs/e2ee.md`): the holder may own such channels.
    pub fn share(mut self, pattern: impl Into<String>) -> Self {
        self.share.push(pattern.into());
        self
    }

    /// How long the token is valid from now. Default [`DEFAULT_TTL`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// What other members of presence channels see about the holder (the `info` claim), e.g.
    /// `json!({"name": "Alice"})`.
    pub fn info(mut self, info: serde_json::Value) -> Self {
        self.info = Some(info);
        self
    }

    /// Restricts the token to one app (`aud`), so it cannot be replayed against another app
    /// sharing the same secret.
    pub fn audience(mut self, app: impl Into<String>) -> Self {
        self.audience = Some(app.into());
        self
    }

    /// The claims, with `iat` now and `exp` now + ttl. Fails on a pattern that does not parse,
    /// and on a `sub` the server would refuse (`invalid_token`, docs/auth.md): empty, or
    /// `"server"`, which names API-key connections to services and webhooks.
    pub fn claims(&self) -> Result<Claims> {
        waas_protocol::claims::check_sub(&self.sub)
            .map_err(|m| Error::Config(format!("{m}: a token with it is refused by the server")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Ok(Claims {
            sub: self.sub.clone(),
            exp: now + self.ttl.as_secs(),
            iat: Some(now),
            aud: self.audience.clone(),
            caps: Caps {
                subscribe: patterns(&self.subscribe)?,
                publish: patterns(&self.publish)?,
                call: call_set(&self.call)?,
                share: patterns(&self.share)?,
            },
            info: self.info.clone(),
        })
    }

    pub fn sign(&self, key: &SigningKey) -> Result<String> {
        key.sign(&self.claims()?)
    }

    pub fn sign_hs256(&self, secret: impl AsRef<[u8]>) -> Result<String> {
        self.sign(&SigningKey::hs256(secret))
    }
}

fn call_set(sources: &[String]) -> Result<CallSet> {
    sources
        .iter()
        .map(|p| {
            PathPrefix::parse(p).map_err(|reason| Error::InvalidPath {
                path: p.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(CallSet::new)
}

fn patterns(sources: &[String]) -> Result<PatternSet> {
    sources
        .iter()
        .map(|p| {
            ChannelPattern::parse(p).map_err(|reason| Error::InvalidPattern {
                pattern: p.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(PatternSet::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;
    use waas_protocol::ChannelName;

    const RSA_PRIVATE: &[u8] = include_bytes!("../testdata/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../testdata/rsa_public.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../testdata/ec_private.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../testdata/ec_public.pem");

    #[test]
    fn a_sub_the_server_refuses_is_not_signed() {
        for sub in ["server", ""] {
            let err = TokenBuilder::new(sub)
                .subscribe("chat.*")
                .sign_hs256("secret")
                .unwrap_err();
            assert!(
                matches!(&err, Error::Config(m) if m.contains("refused by the server")),
                "{sub:?}: {err}"
            );
        }
        assert!(TokenBuilder::new("servers").sign_hs256("secret").is_ok());
    }

    fn jwt_kind(e: Error) -> ErrorKind {
        match e {
            Error::Jwt(e) => e.into_kind(),
            other => panic!("expected a JWT error, got {other}"),
        }
    }

    #[test]
    fn hs256_roundtrip_keeps_caps() {
        let token = TokenBuilder::new("alice")
            .subscribe("weather.*")
            .publish("chat.room-1")
            .audience("demo")
            .sign_hs256("demo-secret")
            .unwrap();
        let claims = verify(&token, &VerifyingKey::hs256("demo-secret"), "demo").unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.aud.as_deref(), Some("demo"));
        let paris = ChannelName::parse("weather.paris").unwrap();
        assert!(claims.caps.subscribe.allows(&paris));
        assert!(!claims.caps.publish.allows(&paris));
        assert!(claims.exp >= claims.iat.unwrap() + 3599);
    }

    #[test]
    fn wrong_secret_app_or_expiry_is_refused() {
        let token = TokenBuilder::new("a")
            .audience("demo")
            .sign_hs256("s1")
            .unwrap();
        assert_eq!(
            jwt_kind(verify(&token, &VerifyingKey::hs256("s2"), "demo").unwrap_err()),
            ErrorKind::InvalidSignature
        );
        assert_eq!(
            jwt_kind(verify(&token, &VerifyingKey::hs256("s1"), "other").unwrap_err()),
            ErrorKind::InvalidAudience
        );
        // Without `aud` the token is valid for any app using this secret.
        let token = TokenBuilder::new("a").sign_hs256("s1").unwrap();
        assert!(verify(&token, &VerifyingKey::hs256("s1"), "other").is_ok());

        let mut claims = TokenBuilder::new("a").claims().unwrap();
        claims.exp = claims.iat.unwrap() - 10;
        let token = sign_hs256("s1", &claims).unwrap();
        assert_eq!(
            jwt_kind(verify(&token, &VerifyingKey::hs256("s1"), "demo").unwrap_err()),
            ErrorKind::ExpiredSignature
        );
    }

    #[test]
    fn rs256_and_es256_roundtrip() {
        let claims = TokenBuilder::new("bob").subscribe(">").claims().unwrap();
        let token = sign_rs256(RSA_PRIVATE, &claims).unwrap();
        let key = VerifyingKey::rs256_pem(RSA_PUBLIC).unwrap();
        assert_eq!(verify(&token, &key, "demo").unwrap(), claims);

        let token = sign_es256(EC_PRIVATE, &claims).unwrap();
        let key = VerifyingKey::es256_pem(EC_PUBLIC).unwrap();
        assert_eq!(verify(&token, &key, "demo").unwrap(), claims);

        // An RS256 token is refused by an ES256 key: the algorithm is pinned by the key.
        let token = sign_rs256(RSA_PRIVATE, &claims).unwrap();
        assert!(verify(&token, &key, "demo").is_err());
    }

    #[test]
    fn bad_pem_and_bad_pattern_are_typed() {
        assert!(matches!(
            SigningKey::rs256_pem("not a pem"),
            Err(Error::Jwt(_))
        ));
        assert!(matches!(
            SigningKey::es256_pem(RSA_PRIVATE),
            Err(Error::Jwt(_))
        ));
        let e = TokenBuilder::new("a")
            .subscribe("a.>.b")
            .claims()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidPattern { ref pattern, .. } if pattern == "a.>.b"));
    }

    #[test]
    fn token_is_a_three_part_jwt_with_alg_header() {
        let token = TokenBuilder::new("a").sign_hs256("s").unwrap();
        assert_eq!(token.split('.').count(), 3);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
    }
}
