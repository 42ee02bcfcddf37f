//! Capability patterns: which channels a token lets its holder subscribe or publish to.
//!
//! Patterns use NATS wildcards over `.`-separated segments so that the same pattern means the same
//! thing to a tenant reading `docs/auth.md` and to NATS in cluster mode: `*` matches exactly one
//! segment, `>` (only as the last segment) matches one or more remaining segments.

use crate::names::{validate_segments, ChannelName, NameError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// One parsed capability pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct ChannelPattern {
    source: String,
    segments: Vec<Segment>,
}

impl From<ChannelPattern> for String {
    fn from(p: ChannelPattern) -> String {
        p.source
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("'>' is only allowed as the last segment")]
    RestNotLast,
    #[error("wildcards must be whole segments")]
    PartialWildcard,
}

impl ChannelPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        validate_segments(s, |c| {
            c.is_ascii_alphanumeric() || "_-:@=+,;!~#/*>".contains(c)
        })?;
        let parts: Vec<&str> = s.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let seg = match *part {
                "*" => Segment::One,
                ">" if i + 1 == parts.len() => Segment::Rest,
                ">" => return Err(PatternError::RestNotLast),
                p if p.contains('*') || p.contains('>') => {
                    return Err(PatternError::PartialWildcard)
                }
                p => Segment::Literal(p.to_owned()),
            };
            segments.push(seg);
        }
        Ok(ChannelPattern {
            source: s.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, channel: &ChannelName) -> bool {
        let mut chan = channel.segments();
        for seg in &self.segments {
            match seg {
                Segment::Rest => return chan.next().is_some(),
                Segment::One => {
                    if chan.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(lit) => match chan.next() {
                    Some(c) if c == lit => {}
                    _ => return false,
                },
            }
        }
        chan.next().is_none()
    }
}

impl<'de> Deserialize<'de> for ChannelPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChannelPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A set of patterns; a channel is allowed when any pattern matches. Empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PatternSet(Vec<ChannelPattern>);

impl PatternSet {
    pub fn new(patterns: Vec<ChannelPattern>) -> Self {
        PatternSet(patterns)
    }

    /// Everything: the capability of a server holding the app's API key.
    pub fn all() -> Self {
        PatternSet(vec![ChannelPattern::parse(">").expect("valid pattern")])
    }

    pub fn allows(&self, channel: &ChannelName) -> bool {
        self.0.iter().any(|p| p.matches(channel))
    }

    pub fn patterns(&self) -> &[ChannelPattern] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, c: &str) -> bool {
        ChannelPattern::parse(p)
            .unwrap()
            .matches(&ChannelName::parse(c).unwrap())
    }

    #[test]
    fn wildcards() {
        assert!(m("weather.paris", "weather.paris"));
        assert!(!m("weather.paris", "weather.london"));
        assert!(m("weather.*", "weather.paris"));
        assert!(!m("weather.*", "weather"));
        assert!(!m("weather.*", "weather.paris.temp"));
        assert!(m("weather.>", "weather.paris.temp"));
        assert!(m("weather.>", "weather.paris"));
        assert!(!m("weather.>", "weather"));
        assert!(m(">", "anything.at.all"));
        assert!(m("*.temp", "paris.temp"));
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(
            ChannelPattern::parse("a.>.b"),
            Err(PatternError::RestNotLast)
        );
        assert_eq!(
            ChannelPattern::parse("a.b*"),
            Err(PatternError::PartialWildcard)
        );
        assert!(ChannelPattern::parse("a..b").is_err());
    }

    #[test]
    fn empty_set_allows_nothing() {
        let set = PatternSet::default();
        assert!(!set.allows(&ChannelName::parse("a").unwrap()));
        assert!(PatternSet::all().allows(&ChannelName::parse("a.b").unwrap()));
    }
}
