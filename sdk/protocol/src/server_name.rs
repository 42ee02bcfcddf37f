//! The name a tenant's server gives its connection (`server_name` in the WebSocket URL,
//! `docs/protocol.md`), shown on the dashboard's Servers page and by the admin API. Validated
//! here so the gateway and the SDKs refuse the same names.

use crate::names::NameError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest server name accepted, in bytes.
pub const MAX_SERVER_NAME_LEN: usize = 64;

/// The query parameter of the WebSocket URL that carries it.
pub const SERVER_NAME_PARAM: &str = "server_name";

/// A server connection's name: 1–64 of `[A-Za-z0-9._:-]`, what host, pod and process names are
/// made of. It needs no escaping in a URL, a log line or a page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ServerName(String);

impl ServerName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_SERVER_NAME_LEN {
            return Err(NameError::TooLong {
                max: MAX_SERVER_NAME_LEN,
            });
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._:-".contains(*c)))
        {
            return Err(NameError::BadChar(c));
        }
        Ok(ServerName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ServerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ServerName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_pod_names_pass_the_rest_is_refused() {
        for ok in ["api-1", "api-7d9f.eu-west:2", "a", &"x".repeat(64)] {
            assert_eq!(ServerName::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(ServerName::parse(""), Err(NameError::Empty));
        assert_eq!(
            ServerName::parse(&"x".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
        for bad in ["a b", "a/b", "<script>", "é", "a&b"] {
            assert!(matches!(ServerName::parse(bad), Err(NameError::BadChar(_))));
        }
        assert!(serde_json::from_str::<ServerName>("\"a b\"").is_err());
    }
}
