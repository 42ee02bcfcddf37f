//! Presence channels: who is subscribed to a channel, as members identified by their token's
//! `sub`. A channel is a presence channel when its first segment is exactly `presence`
//! (`presence.room-1`, `presence.doc.42`), so capability patterns can grant them as a group
//! (`presence.>`). See `docs/protocol.md#presence`.

use crate::names::ChannelName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// First segment that makes a channel a presence channel.
pub const PRESENCE_SEGMENT: &str = "presence";

/// Longest `sub` that may join a presence channel as a member, bytes: member ids travel in every
/// member list, so they are bounded like channel and event names.
pub const MAX_MEMBER_ID_BYTES: usize = 200;

/// Whether `channel` is a presence channel.
pub fn is_presence(channel: &ChannelName) -> bool {
    is_presence_name(channel.as_str())
}

/// [`is_presence`] on a name not yet validated.
pub fn is_presence_name(channel: &str) -> bool {
    channel.split('.').next() == Some(PRESENCE_SEGMENT) && channel.len() > PRESENCE_SEGMENT.len()
}

/// One member of a presence channel: a user (token `sub`) with one or more connections
/// subscribed, counted once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The token's `sub`.
    pub id: String,
    /// The token's `info` claim, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_segment_decides() {
        let p = |s: &str| is_presence(&ChannelName::parse(s).unwrap());
        assert!(p("presence.room"));
        assert!(p("presence.a.b"));
        assert!(!p("presence"));
        assert!(!p("presence-room"));
        assert!(!p("chat.presence"));
        assert!(!p("presences.x"));
    }
}
