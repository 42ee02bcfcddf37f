//! Pusher's request signing (auth version 1.0), checked on every call of the Pusher HTTP API.
//!
//! The client signs `METHOD\nPATH\nQUERY`, where QUERY is every query parameter but
//! `auth_signature`, keys lower-cased, sorted by key, joined as `key=value` with `&` (values
//! as they decode, not re-encoded), with HMAC-SHA256 under the app's Pusher secret. A POST
//! body is bound to the signature through `body_md5`. A signature older or newer than the
//! window is refused, so a captured request cannot be replayed after it.

use md5::{Digest, Md5};
use ring::hmac;
use std::collections::BTreeMap;

/// Why a request's signature was refused (each is a `401`), or its query unreadable (`400`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("query parameter {0:?} given twice")]
    Duplicate(String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("auth_key {0:?} is not this app's key")]
    WrongKey(String),
    #[error("auth_version must be 1.0")]
    Version,
    #[error("auth_timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("auth_timestamp is more than {0} s from the server's clock; check the clock")]
    Stale(u64),
    #[error("body_md5 does not match the body")]
    BodyMd5,
    #[error("invalid signature")]
    Signature,
}

impl SignError {
    /// A malformed query is the client's mistake (`400`); everything else is "not signed by
    /// this app" (`401`).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, SignError::Duplicate(_))
    }
}

/// A request as the signature covers it.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What the signature is checked against.
pub struct Expect<'a> {
    /// The app's Pusher key (its id).
    pub key: &'a str,
    pub secret: &'a str,
    pub now_secs: u64,
    pub window_secs: u64,
}

/// MD5 hex of a body, as `body_md5` carries it.
pub fn body_md5(body: &[u8]) -> String {
    crate::pusher::hex::encode(&Md5::digest(body))
}

/// HMAC-SHA256 hex of `data` under `secret`: the signature of requests and of webhooks.
pub fn sign(secret: &str, data: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    crate::pusher::hex::encode(hmac::sign(&key, data).as_ref())
}

/// The string a client signs for `req`.
pub fn string_to_sign(req: &Request<'_>) -> Result<String, SignError> {
    let mut params = BTreeMap::new();
    for (k, v) in req.query {
        let k = k.to_ascii_lowercase();
        if k == "auth_signature" {
            continue;
        }
        if params.insert(k.clone(), v.as_str()).is_some() {
            return Err(SignError::Duplicate(k));
        }
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(format!("{}\n{}\n{}", req.method, req.path, query.join("&")))
}

/// Checks `req` was signed with `expect.secret` within the time window; in constant time
/// where it compares secrets' outputs.
pub fn verify(req: &Request<'_>, expect: &Expect<'_>) -> Result<(), SignError> {
    let get = |name: &str| {
        let mut found = None;
        for (k, v) in req.query {
            if k.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return Err(SignError::Duplicate(name.to_owned()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    };
    let signed = string_to_sign(req)?;
    let key = get("auth_key")?.ok_or(SignError::Missing("auth_key"))?;
    if key != expect.key {
        return Err(SignError::WrongKey(key.to_owned()));
    }
    let ts = get("auth_timestamp")?.ok_or(SignError::Missing("auth_timestamp"))?;
    let ts: u64 = ts.parse().map_err(|_| SignError::BadTimestamp)?;
    if ts.abs_diff(expect.now_secs) > expect.window_secs {
        return Err(SignError::Stale(expect.window_secs));
    }
    match get("auth_version")? {
        Some("1.0") => {}
        Some(_) => return Err(SignError::Version),
        None => return Err(SignError::Missing("auth_version")),
    }
    let md5 = get("body_md5")?;
    if !req.body.is_empty() || md5.is_some() {
        let md5 = md5.ok_or(SignError::Missing("body_md5"))?;
        if !md5.eq_ignore_ascii_case(&body_md5(req.body)) {
            return Err(SignError::BodyMd5);
        }
    }
    let signature = get("auth_signature")?.ok_or(SignError::Missing("auth_signature"))?;
    let signature = crate::pusher::hex::decode(signature).ok_or(SignError::Signature)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, expect.secret.as_bytes());
    hmac::verify(&key, signed.as_bytes(), &signature).map_err(|_| SignError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The worked example of Pusher's HTTP API reference (key, secret, body and signature).
    #[test]
    fn pusher_reference_example_verifies() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let mut query = q(&[
            ("auth_key", "278d425bdf160c739803"),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
        ]);
        let req = Request {
            method: "POST",
            path: "/apps/3/events",
            query: &query,
            body,
        };
        let signed = string_to_sign(&req).unwrap();
        let sig = sign("7ad3773142a6692b25b8", signed.as_bytes());
        assert_eq!(
            sig,
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        query.push(("auth_signature".into(), sig));
        let req = Request {
            method: "POST",
            path: "/apps/3/events",
            query: &query,
            body,
        };
        let expect = Expect {
            key: "278d425bdf160c739803",
            secret: "7ad3773142a6692b25b8",
            now_secs: 1353088179 + 600,
            window_secs: 600,
        };
        assert_eq!(verify(&req, &expect), Ok(()));
        assert_eq!(
            verify(
                &req,
                &Expect {
                    now_secs: 1353088179 + 601,
                    ..expect
                }
            ),
            Err(SignError::Stale(600))
        );
        assert_eq!(
            verify(
                &req,
                &Expect {
                    secret: "other",
                    ..expect
                }
            ),
            Err(SignError::Signature)
        );
        let tampered = Request { body: b"{}", ..req };
        assert_eq!(verify(&tampered, &expect), Err(SignError::BodyMd5));
    }
}
