//! A message delivered on a subscription.
//!
//! The payload is kept as the raw JSON the server sent, behind an `Arc`: the SDK does not know the
//! application's types, several local subscriptions to one channel share one copy, and an app
//! that only forwards messages never pays for parsing them.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::sync::Arc;

#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Message {
    pub channel: String,
    pub event: String,
    /// Position of the message in its channel: strictly increasing within the channel's epoch,
    /// not necessarily contiguous. Across reconnects the SDK recovers what was missed and never
    /// delivers an offset twice; when it cannot, it says so with `ConnectionEvent::Unrecovered`.
    pub offset: u64,
    /// Server time of publication, milliseconds since the Unix epoch.
    pub ts: u64,
    /// Published again by a replay of a recording; `ts` is then the original publication's.
    pub replayed: bool,
    data: Arc<RawValue>,
}

impl Message {
    pub(crate) fn new(
        channel: String,
        event: String,
        data: Arc<RawValue>,
        offset: u64,
        ts: u64,
    ) -> Self {
        Message {
            channel,
            event,
            offset,
            ts,
            replayed: false,
            data,
        }
    }

    /// Decodes the payload into the application's type.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.get())
    }

    /// The payload as the JSON text the server sent.
    pub fn raw_data(&self) -> &str {
        self.data.get()
    }

    /// The payload as a `serde_json::Value`, for code that inspects it dynamically.
    pub fn json(&self) -> serde_json::Value {
        // A RawValue is valid JSON by construction, so this cannot fail.
        serde_json::from_str(self.data.get()).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_payload() {
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct Reading {
            t: f64,
        }
        let raw: Box<RawValue> = RawValue::from_string(r#"{"t": 21.5}"#.into()).unwrap();
        let m = Message::new("weather.paris".into(), "reading".into(), raw.into(), 3, 9);
        assert_eq!(m.data::<Reading>().unwrap(), Reading { t: 21.5 });
        assert_eq!(m.raw_data(), r#"{"t": 21.5}"#);
        assert_eq!(m.json()["t"], 21.5);
        assert!(m.data::<String>().is_err());
    }
}
