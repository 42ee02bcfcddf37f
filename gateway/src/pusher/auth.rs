//! Pusher's signatures: `auth` is `key:signature`, the signature HMAC-SHA256 of the socket id
//! and the channel (and `channel_data` on presence channels, or `::user::` and `user_data` for
//! a sign-in) under the app's Pusher secret, in lower-case hex. Checked with `ring`, in constant
//! time; the secret never leaves the app's settings.

use ring::hmac;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no auth signature was given")]
    Missing,
    #[error("auth must be \"key:signature\"")]
    Malformed,
    #[error("auth is signed for another key")]
    WrongKey,
    #[error("invalid signature")]
    BadSignature,
}

/// What a channel subscription signs: `socket_id:channel`, then `:channel_data` when given.
pub fn channel_message(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// What a user sign-in signs: `socket_id::user::user_data`.
pub fn signin_message(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// Checks `auth` (`key:hex`) for `message` against `key` (the app id) and `secret`.
pub fn verify(auth: Option<&str>, key: &str, secret: &str, message: &str) -> Result<(), AuthError> {
    let auth = auth.filter(|a| !a.is_empty()).ok_or(AuthError::Missing)?;
    let (given_key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if given_key != key {
        return Err(AuthError::WrongKey);
    }
    let signature = super::hex::decode(signature).ok_or(AuthError::Malformed)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, message.as_bytes(), &signature).map_err(|_| AuthError::BadSignature)
}

/// `key:hex` signing `message`: what an app's server answers (tests use it).
pub fn sign(key: &str, secret: &str, message: &str) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        message.as_bytes(),
    );
    format!("{key}:{}", super::hex::encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Pusher's authentication docs: key `278d425bdf160c739803`, secret
    /// `7ad3773142a6692b25b8`, socket `1234.1234`, channel `private-foobar`.
    #[test]
    fn matches_pushers_documented_signature() {
        let message = channel_message("1234.1234", "private-foobar", None);
        let auth = sign("278d425bdf160c739803", "7ad3773142a6692b25b8", &message);
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert_eq!(
            verify(
                Some(&auth),
                "278d425bdf160c739803",
                "7ad3773142a6692b25b8",
                &message
            ),
            Ok(())
        );
    }

    #[test]
    fn refusals() {
        let m = channel_message("1.2", "private-a", None);
        let good = sign("app", "s3cret", &m);
        assert_eq!(verify(None, "app", "s3cret", &m), Err(AuthError::Missing));
        assert_eq!(
            verify(Some(""), "app", "s3cret", &m),
            Err(AuthError::Missing)
        );
        assert_eq!(
            verify(Some("nocolon"), "app", "s3cret", &m),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify(Some("app:zz"), "app", "s3cret", &m),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            verify(Some(&good), "other", "s3cret", &m),
            Err(AuthError::WrongKey)
        );
        assert_eq!(
            verify(Some(&good), "app", "wrong", &m),
            Err(AuthError::BadSignature)
        );
        let other = channel_message("1.3", "private-a", None);
        assert_eq!(
            verify(Some(&good), "app", "s3cret", &other),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(
                Some(&good.to_uppercase().replacen("APP", "app", 1)),
                "app",
                "s3cret",
                &m
            ),
            Ok(())
        );
    }
}
