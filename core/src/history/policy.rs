//! How much history a channel keeps, and where those rules come from: the server's limits, an
//! app's own limits, and an app's rules for a namespace (the first segment of a channel name,
//! like Centrifugo's namespaces), most specific first.
//!
//! A namespace with a rule of its own gets its own JetStream stream in a cluster, because a
//! stream bounds every subject it holds alike (nats-server 2.9 has no per-subject limits besides
//! one `max_messages_per_subject`); [`Policy::namespaced`] tells the history which stream a
//! channel goes to.

use crate::app::AppLimits;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use waas_protocol::ChannelName;

/// How much history a channel keeps. `size == 0` keeps none (offsets and epochs still work;
/// recovery succeeds only when nothing was missed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Messages kept per channel.
    pub size: usize,
    /// How long a message is kept.
    pub ttl: Duration,
    /// The channel's namespace has a rule of its own: its history is kept apart from the rest
    /// of the app's (in a cluster, in the namespace's own stream).
    pub namespaced: bool,
}

impl Policy {
    pub fn enabled(&self) -> bool {
        self.size > 0 && !self.ttl.is_zero()
    }

    /// The history of `channel` in an app with `limits`, on a server whose limits give
    /// `defaults`. Without a channel, the app's own policy (what its namespaces without a rule
    /// keep).
    pub fn resolve(defaults: Policy, limits: &AppLimits, channel: Option<&ChannelName>) -> Policy {
        let app = defaults.overridden(limits.history_size, limits.history_ttl_secs, false);
        let rule = channel
            .and_then(namespace_of)
            .and_then(|ns| limits.history_namespaces.get(ns));
        match rule {
            None => app,
            Some(rule) => app.overridden(rule.history_size, rule.history_ttl_secs, true),
        }
    }

    /// This policy with the fields a more specific level sets.
    fn overridden(self, size: Option<usize>, ttl_secs: Option<u64>, namespaced: bool) -> Policy {
        Policy {
            size: size.unwrap_or(self.size),
            ttl: ttl_secs.map(Duration::from_secs).unwrap_or(self.ttl),
            namespaced,
        }
    }
}

/// The namespace of a channel: its first segment, when it has more than one (`chat.room-1` is
/// in `chat`; `chat` alone is in none).
pub fn namespace_of(channel: &ChannelName) -> Option<&str> {
    channel.as_str().split_once('.').map(|(ns, _)| ns)
}

/// A namespace's history rule; absent fields keep the app's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceHistory {
    /// Messages kept per channel of the namespace; 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_size: Option<usize>,
    /// How long a message is kept, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ttl_secs: Option<u64>,
}

/// A namespace name: one channel segment, checked when limits are read so that a rule that
/// could never match is refused rather than ignored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(s: &str) -> Result<Namespace, String> {
        if s.contains('.') {
            return Err(format!(
                "namespace {s:?} must be one channel segment (no '.')"
            ));
        }
        ChannelName::parse(s).map_err(|e| format!("namespace {s:?}: {e}"))?;
        Ok(Namespace(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Namespace {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Namespace::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: Policy = Policy {
        size: 100,
        ttl: Duration::from_secs(300),
        namespaced: false,
    };

    fn channel(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn namespace_rules_override_the_app_which_overrides_the_server() {
        let limits: AppLimits = serde_json::from_str(
            r#"{"history_size":10,
                "history_namespaces":{"chat":{"history_size":500,"history_ttl_secs":3600},
                                      "cursor":{"history_size":0},
                                      "feed":{"history_ttl_secs":60}}}"#,
        )
        .unwrap();
        let at = |c: &str| Policy::resolve(SERVER, &limits, Some(&channel(c)));
        assert_eq!(
            at("chat.room-1"),
            Policy {
                size: 500,
                ttl: Duration::from_secs(3600),
                namespaced: true
            }
        );
        assert!(!at("cursor.x").enabled());
        assert!(at("cursor.x").namespaced);
        assert_eq!(at("feed.a.b").size, 10);
        assert_eq!(at("feed.a.b").ttl, Duration::from_secs(60));
        // A channel named like a namespace is not in it; other namespaces keep the app's.
        for c in ["chat", "news.x", "chatter.x"] {
            assert_eq!(
                at(c),
                Policy {
                    size: 10,
                    ttl: Duration::from_secs(300),
                    namespaced: false
                },
                "{c}"
            );
        }
        assert_eq!(Policy::resolve(SERVER, &limits, None).size, 10);
        assert_eq!(
            Policy::resolve(SERVER, &AppLimits::default(), Some(&channel("chat.x"))),
            SERVER
        );
    }

    #[test]
    fn bad_namespaces_and_fields_are_refused() {
        for bad in [
            r#"{"history_namespaces":{"a.b":{}}}"#,
            r#"{"history_namespaces":{"":{}}}"#,
            r#"{"history_namespaces":{"a*":{}}}"#,
            r#"{"history_namespaces":{"a":{"size":1}}}"#,
        ] {
            assert!(serde_json::from_str::<AppLimits>(bad).is_err(), "{bad}");
        }
    }
}
