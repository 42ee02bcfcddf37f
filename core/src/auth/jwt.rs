//! JWT verification with the keys an app configured: HS256 with its secret, RS256/ES256 with a
//! public key. Keys are parsed once when the app is loaded, not per connection.

use super::AuthError;
use crate::app::AppConfig;
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use waas_protocol::{AppId, Claims};

pub struct JwtKeys {
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    es256: Option<DecodingKey>,
}

impl JwtKeys {
    pub fn from_config(config: &AppConfig) -> Result<Self, AuthError> {
        let bad = |what: &str, e: jsonwebtoken::errors::Error| {
            AuthError::BadKey(format!("{what} for app {}: {e}", config.id))
        };
        Ok(JwtKeys {
            hs256: config
                .jwt_secret
                .as_deref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            rs256: config
                .jwt_rsa_public_key
                .as_deref()
                .map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()))
                .transpose()
                .map_err(|e| bad("RSA public key", e))?,
            es256: config
                .jwt_ec_public_key
                .as_deref()
                .map(|pem| DecodingKey::from_ec_pem(pem.as_bytes()))
                .transpose()
                .map_err(|e| bad("EC public key", e))?,
        })
    }

    /// Verifies signature, expiry and audience. When the signature fails, the claims are read
    /// without trusting them only to tell a user "this token is for another app" — a clearer
    /// error than "bad signature" for the most common integration mistake.
    pub fn verify(&self, token: &str, app: &AppId) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            Algorithm::ES256 => self.es256.as_ref(),
            other => {
                return Err(AuthError::InvalidToken(format!(
                    "algorithm {other:?} is not accepted"
                )))
            }
        }
        .ok_or_else(|| {
            AuthError::InvalidToken(format!("app {app} has no key for {:?}", header.alg))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match decode::<Claims>(token, key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                // Services, upstreams, webhooks and presence tell an API-key caller by its
                // `sub`: a token must never be able to claim it.
                waas_protocol::claims::check_sub(&claims.sub).map_err(AuthError::InvalidToken)?;
                match &claims.aud {
                    Some(aud) if aud != app.as_str() => Err(AuthError::WrongApp(aud.clone())),
                    _ => Ok(claims),
                }
            }
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => match unverified_aud(token, header.alg) {
                    Some(aud) if aud != app.as_str() => AuthError::WrongApp(aud),
                    _ => AuthError::InvalidToken("bad signature".into()),
                },
                _ => AuthError::InvalidToken(e.to_string()),
            }),
        }
    }
}

fn unverified_aud(token: &str, alg: Algorithm) -> Option<String> {
    let mut validation = Validation::new(alg);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    decode::<Claims>(token, &DecodingKey::from_secret(b""), &validation)
        .ok()
        .and_then(|d| d.claims.aud)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use waas_protocol::Caps;

    fn app(id: &str, secret: &str) -> (AppId, JwtKeys) {
        let config = AppConfig {
            id: AppId::parse(id).unwrap(),
            tenant: None,
            api_key_hashes: vec![],
            jwt_secret: Some(secret.into()),
            jwt_rsa_public_key: None,
            jwt_ec_public_key: None,
            limits: Default::default(),
            routes: vec![],
            webhooks: Default::default(),
            allowed_origins: vec![],
            pusher: None,
            version: 0,
        };
        (config.id.clone(), JwtKeys::from_config(&config).unwrap())
    }

    fn token(secret: &str, aud: Option<&str>, exp_offset: i64) -> String {
        token_for("u1", secret, aud, exp_offset)
    }

    fn token_for(sub: &str, secret: &str, aud: Option<&str>, exp_offset: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = Claims {
            sub: sub.into(),
            exp: (now + exp_offset) as u64,
            iat: None,
            aud: aud.map(Into::into),
            caps: Caps::default(),
            info: None,
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn verifies_and_classifies() {
        let (id, keys) = app("a", "s1");
        assert_eq!(keys.verify(&token("s1", None, 60), &id).unwrap().sub, "u1");
        assert_eq!(
            keys.verify(&token("s1", Some("a"), 60), &id).unwrap().sub,
            "u1"
        );
        assert_eq!(
            keys.verify(&token("s1", None, -10), &id),
            Err(AuthError::Expired)
        );
        assert_eq!(
            keys.verify(&token("other", Some("b"), 60), &id),
            Err(AuthError::WrongApp("b".into()))
        );
        assert!(matches!(
            keys.verify(&token("other", None, 60), &id),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            keys.verify("garbage", &id),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn a_token_cannot_claim_the_api_key_identity() {
        let (id, keys) = app("a", "s1");
        let err = keys
            .verify(&token_for("server", "s1", None, 60), &id)
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidToken(m) if m.contains("reserved")),
            "{err:?}"
        );
        // Only the exact `sub` is the API key's; other users keep any other name.
        assert_eq!(
            keys.verify(&token_for("Server", "s1", None, 60), &id)
                .unwrap()
                .sub,
            "Server"
        );
    }
}
