//! End-user tokens for the WaaS subscribers (`--auth hs256|rs256`): one distinct token per
//! subscriber (`sub` = `load-{i}`), as a real connect storm has, so a server that caches
//! verified tokens gains nothing. Signed with the Rust SDK's `token` module, the way a tenant's
//! backend signs them, before the clock starts: only the server's verification is measured.

use crate::config::Auth;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;
use waas_sdk::token::{SigningKey, TokenBuilder};

/// Lifetime of the minted tokens: longer than any run.
const TTL: Duration = Duration::from_secs(4 * 3600);

/// The signing key for `auth`: the HS256 secret, or the RSA private key read from `rsa_key`.
/// `None` for API-key connections.
pub fn signing_key(
    auth: Auth,
    jwt_secret: &str,
    rsa_key: Option<&Path>,
) -> Result<Option<SigningKey>> {
    Ok(match auth {
        Auth::ApiKey => None,
        Auth::Hs256 => Some(SigningKey::hs256(jwt_secret)),
        Auth::Rs256 => {
            let path = rsa_key.context("--auth rs256 needs --jwt-rsa-key (RSA private key PEM)")?;
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(SigningKey::rs256_pem(pem).context("parsing the RSA private key")?)
        }
    })
}

/// `n` tokens for `app`, token `i` with `sub` `load-{i}`, allowed to subscribe to every channel
/// and nothing else. Signed on every core (RS256 costs about a millisecond each).
pub fn mint(key: &SigningKey, app: &str, n: usize) -> Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let chunk = n.div_ceil(threads).max(1);
    let starts: Vec<usize> = (0..n).step_by(chunk).collect();
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .iter()
            .map(|&start| {
                scope.spawn(move || {
                    (start..(start + chunk).min(n))
                        .map(|i| {
                            TokenBuilder::new(format!("load-{i}"))
                                .subscribe(">")
                                .audience(app)
                                .ttl(TTL)
                                .sign(key)
                                .context("signing a token")
                        })
                        .collect::<Result<Vec<String>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("token minting thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(parts.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use waas_sdk::token::{verify, VerifyingKey};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-support/fixtures");

    #[test]
    fn hs256_tokens_are_distinct_and_verify_for_the_app() {
        let key = signing_key(Auth::Hs256, "s3cret", None).unwrap().unwrap();
        let tokens = mint(&key, "demo", 5).unwrap();
        assert_eq!(tokens.len(), 5);
        let check = VerifyingKey::hs256("s3cret");
        for (i, token) in tokens.iter().enumerate() {
            let claims = verify(token, &check, "demo").unwrap();
            assert_eq!(claims.sub, format!("load-{i}"));
        }
        assert!(verify(&tokens[0], &check, "other").is_err());
        assert!(verify(&tokens[0], &VerifyingKey::hs256("wrong"), "demo").is_err());
    }

    #[test]
    fn rs256_tokens_verify_with_the_public_key() {
        let private = Path::new(FIXTURES).join("rsa_private.pem");
        let key = signing_key(Auth::Rs256, "", Some(&private))
            .unwrap()
            .unwrap();
        let tokens = mint(&key, "bench", 3).unwrap();
        let public = std::fs::read(Path::new(FIXTURES).join("rsa_public.pem")).unwrap();
        let check = VerifyingKey::rs256_pem(public).unwrap();
        assert_eq!(verify(&tokens[2], &check, "bench").unwrap().sub, "load-2");
        assert!(signing_key(Auth::Rs256, "", None).is_err());
    }

    #[test]
    fn api_key_needs_no_tokens_and_empty_mints_nothing() {
        assert!(signing_key(Auth::ApiKey, "", None).unwrap().is_none());
        let key = SigningKey::hs256("x");
        assert!(mint(&key, "demo", 0).unwrap().is_empty());
    }
}
