//! Pusher event data as native message data. Pusher carries `data` as a string; WaaS as JSON.
//! A string whose text is a JSON object or array becomes that JSON as it is written (so native
//! subscribers see the object the sender stringified); any other string stays a JSON string.
//!
//! The same rule is the Pusher WebSocket front's (`gateway/src/pusher/data.rs` on its branch);
//! this copy is for the HTTP API until the two meet.

use serde_json::value::RawValue;

/// The native data for a Pusher `data` string.
pub fn native_data(data: &str) -> Box<RawValue> {
    if let Ok(raw) = serde_json::from_str::<&RawValue>(data) {
        if raw.get().starts_with(['{', '[']) {
            return raw.to_owned();
        }
    }
    serde_json::value::to_raw_value(data).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::native_data;

    #[test]
    fn objects_and_arrays_pass_through_the_rest_are_strings() {
        assert_eq!(native_data(r#"{"a": 1}"#).get(), r#"{"a": 1}"#);
        assert_eq!(native_data("[1,2]").get(), "[1,2]");
        assert_eq!(native_data("hello").get(), r#""hello""#);
        assert_eq!(native_data("42").get(), r#""42""#);
        assert_eq!(native_data(r#""q""#).get(), r#""\"q\"""#);
        assert_eq!(native_data("{not json").get(), r#""{not json""#);
    }
}
