//! The one rule that turns a Pusher event's `data` into a native message's and back, used by
//! the socket front and by the Pusher HTTP API alike, so that both directions round-trip
//! exactly (`docs/pusher.md#data`).
//!
//! Pusher's wire carries `data` as a string; native messages carry any JSON value. A Pusher
//! string whose text is a JSON object or array becomes that JSON itself, byte for byte (so a
//! native client reads the object an app meant to send); any other string stays a JSON string.
//! Going out, a native JSON string is sent as that string, anything else as its JSON text.

use serde_json::value::RawValue;
use std::borrow::Cow;

/// Native `data` for a Pusher data string `text`.
pub fn to_native(text: &str) -> Box<RawValue> {
    if looks_structured(text) {
        if let Ok(raw) = RawValue::from_string(text.to_owned()) {
            return raw;
        }
    }
    let quoted = serde_json::to_string(text).expect("strings serialise");
    RawValue::from_string(quoted).expect("a JSON string is JSON")
}

/// Native `data` for a Pusher `data` field as it arrived (raw JSON): a string goes through
/// [`to_native`]; anything else (pusher-js sends client events' data as objects) is kept as it
/// is.
pub fn field_to_native(field: &RawValue) -> Box<RawValue> {
    let text = field.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<Cow<'_, str>>(text) {
            return to_native(&s);
        }
    }
    field.to_owned()
}

/// Whether the text is exactly an object or an array with nothing around it: whitespace around
/// the value would be lost by a raw JSON value, and the round trip would not be exact.
fn looks_structured(text: &str) -> bool {
    let b = text.as_bytes();
    matches!(
        (b.first(), b.last()),
        (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
    )
}

/// The Pusher `data` field (raw JSON, always a string) for native `data`: a JSON string is
/// passed as it is (its JSON text already is the Pusher field), anything else becomes a string
/// holding its JSON text.
pub fn to_pusher(data: &RawValue) -> Cow<'_, RawValue> {
    let text = data.get();
    if text.starts_with('"') {
        return Cow::Borrowed(data);
    }
    let quoted = serde_json::to_string(text).expect("strings serialise");
    Cow::Owned(RawValue::from_string(quoted).expect("a JSON string is JSON"))
}

/// The Pusher data string (decoded) for native `data`.
pub fn to_pusher_string(data: &RawValue) -> String {
    let text = data.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_arrays_become_raw_json_byte_for_byte() {
        for text in [r#"{"a": 1,  "b":[1, 2]}"#, "[1,2 ,3]", "{}", "[]"] {
            let native = to_native(text);
            assert_eq!(native.get(), text);
            assert_eq!(to_pusher_string(&native), text, "round trip of {text}");
            let field = to_pusher(&native);
            assert_eq!(serde_json::from_str::<String>(field.get()).unwrap(), text);
        }
    }

    #[test]
    fn other_strings_stay_strings() {
        for text in [
            "hello",
            "",
            "42",
            "true",
            "null",
            " {\"a\":1}",
            "{\"a\":1} ",
            "{not json}",
            "[1,",
            "\"quoted\"",
            "é \u{1F600} \\ \n",
        ] {
            let native = to_native(text);
            assert_eq!(serde_json::from_str::<String>(native.get()).unwrap(), text);
            assert_eq!(to_pusher_string(&native), text, "round trip of {text:?}");
            assert_eq!(to_pusher(&native).get(), native.get(), "passed as it is");
        }
    }

    #[test]
    fn native_values_go_out_as_their_json_text() {
        for (native, text) in [
            ("17", "17"),
            ("true", "true"),
            ("null", "null"),
            ("{\"x\":[]}", "{\"x\":[]}"),
        ] {
            let raw = RawValue::from_string(native.into()).unwrap();
            assert_eq!(to_pusher_string(&raw), text);
            assert_eq!(to_pusher(&raw).get(), serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn fields_that_are_not_strings_are_kept() {
        let obj = RawValue::from_string("{\"k\": \"v\"}".into()).unwrap();
        assert_eq!(field_to_native(&obj).get(), "{\"k\": \"v\"}");
        let s = RawValue::from_string("\"{\\\"k\\\":1}\"".into()).unwrap();
        assert_eq!(field_to_native(&s).get(), "{\"k\":1}");
        let plain = RawValue::from_string("\"hi\"".into()).unwrap();
        assert_eq!(field_to_native(&plain).get(), "\"hi\"");
    }
}
