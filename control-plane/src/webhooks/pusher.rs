//! Pusher's webhook format, for endpoints with `format: "pusher"`: the request's body is
//! `{"time_ms": <attempt time>, "events": [...]}`, carrying every due event of the endpoint
//! at once, and it is signed with `X-Pusher-Key` (the app id, which is the app's Pusher key)
//! and `X-Pusher-Signature` (HMAC-SHA256 hex of the body keyed with the app's Pusher secret,
//! as Pusher signs with the app secret), so Pusher's server libraries' webhook validators
//! accept it.

use ring::hmac;

pub const KEY_HEADER: &str = "X-Pusher-Key";
pub const SIGNATURE_HEADER: &str = "X-Pusher-Signature";

/// The body for events already encoded as JSON objects (see `plan`), sent at `time_ms`.
pub fn body<'a>(time_ms: i64, events: impl Iterator<Item = &'a str>) -> String {
    let events: Vec<&str> = events.collect();
    format!(
        "{{\"time_ms\":{time_ms},\"events\":[{}]}}",
        events.join(",")
    )
}

/// `X-Pusher-Signature`: lowercase hex of HMAC-SHA256 of the body.
pub fn sign(secret: &str, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_lists_the_events() {
        let b = super::body(7, [r#"{"name":"a"}"#, r#"{"name":"b"}"#].into_iter());
        assert_eq!(b, r#"{"time_ms":7,"events":[{"name":"a"},{"name":"b"}]}"#);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["events"][1]["name"], "b");
    }
}
