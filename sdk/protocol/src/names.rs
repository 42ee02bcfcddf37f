//! Identifiers are validated once at the edge so that everything behind it (bus subjects, store
//! keys, logs) can use them without escaping. Channel names are chosen to be valid NATS subject
//! tokens, which is why the allowed alphabet is what it is.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 200;
/// Longest app id accepted, in bytes.
pub const MAX_APP_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("character {0:?} is not allowed")]
    BadChar(char),
    #[error("empty segment: '.' at the start, the end, or twice in a row")]
    EmptySegment,
}

fn channel_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-:@=+,;!~#/".contains(c)
}

fn app_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// App ids the admin API refuses, compared without regard to ASCII case: names of the
/// service's own parts and of its internal bus traffic. Bus subjects keep apps apart from
/// internal traffic whatever an app is called (`core/src/subjects.rs`); refusing these as
/// well keeps logs, metrics and URLs from ever suggesting an app is part of the service.
pub const RESERVED_APP_IDS: &[&str] = &[
    "admin", "api", "control", "ctl", "internal", "rpc", "sys", "system", "waas",
];

/// An app (tenant application) id: 1–64 of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_APP_ID_LEN {
            return Err(NameError::TooLong {
                max: MAX_APP_ID_LEN,
            });
        }
        if let Some(c) = s.chars().find(|c| !app_char_ok(*c)) {
            return Err(NameError::BadChar(c));
        }
        Ok(AppId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the id is one of [`RESERVED_APP_IDS`], in any case.
    pub fn is_reserved(&self) -> bool {
        RESERVED_APP_IDS
            .iter()
            .any(|r| self.0.eq_ignore_ascii_case(r))
    }
}

impl<'de> Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AppId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A channel name: `.`-separated non-empty segments of `[A-Za-z0-9_-:@=+,;!~#/]`, at most
/// [`MAX_CHANNEL_LEN`] bytes. `*` and `>` are reserved for patterns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        validate_segments(s, channel_char_ok)?;
        Ok(ChannelName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChannelName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn validate_segments(s: &str, ok: impl Fn(char) -> bool) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX_CHANNEL_LEN {
        return Err(NameError::TooLong {
            max: MAX_CHANNEL_LEN,
        });
    }
    for seg in s.split('.') {
        if seg.is_empty() {
            return Err(NameError::EmptySegment);
        }
        if let Some(c) = seg.chars().find(|c| !ok(*c)) {
            return Err(NameError::BadChar(c));
        }
    }
    Ok(())
}

/// The bus subject carrying a channel's messages: `{prefix}.{app}.{channel}`.
///
/// Both parts are validated names, so the subject needs no escaping; the prefix (default `waas`)
/// lets several deployments or test runs share one NATS without seeing each other.
pub fn channel_subject(prefix: &str, app: &AppId, channel: &ChannelName) -> String {
    let mut s = String::with_capacity(prefix.len() + app.0.len() + channel.0.len() + 2);
    s.push_str(prefix);
    s.push('.');
    s.push_str(&app.0);
    s.push('.');
    s.push_str(&channel.0);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(ChannelName::parse("weather.paris").is_ok());
        assert!(ChannelName::parse("chat:room-1").is_ok());
        assert_eq!(ChannelName::parse(""), Err(NameError::Empty));
        assert_eq!(ChannelName::parse("a..b"), Err(NameError::EmptySegment));
        assert_eq!(ChannelName::parse(".a"), Err(NameError::EmptySegment));
        assert_eq!(ChannelName::parse("a b"), Err(NameError::BadChar(' ')));
        assert_eq!(ChannelName::parse("a.*"), Err(NameError::BadChar('*')));
        assert_eq!(ChannelName::parse("a.>"), Err(NameError::BadChar('>')));
        assert!(matches!(
            ChannelName::parse(&"x".repeat(MAX_CHANNEL_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn app_ids() {
        assert!(AppId::parse("demo").is_ok());
        assert!(AppId::parse("a.b").is_err());
        assert!(AppId::parse("").is_err());
        assert!(AppId::parse("Control").unwrap().is_reserved());
        assert!(AppId::parse("rpc").unwrap().is_reserved());
        assert!(!AppId::parse("controls").unwrap().is_reserved());
    }

    #[test]
    fn subject_joins_parts() {
        let app = AppId::parse("demo").unwrap();
        let ch = ChannelName::parse("a.b").unwrap();
        assert_eq!(channel_subject("waas", &app, &ch), "waas.demo.a.b");
    }
}
