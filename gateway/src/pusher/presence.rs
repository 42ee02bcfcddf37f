//! Presence channels as Pusher clients see them. Members are kept by the gateway's presence
//! ([`crate::presence`], shared across gateways); a Pusher member is `{user_id, user_info}`
//! from the signed `channel_data`, kept as the native member `{id, info}`.

use super::wire;
use crate::presence::state::Change;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use waas_protocol::presence::Member;

/// A presence channel's `channel_data`, as signed by the app's server.
#[derive(Deserialize)]
pub struct ChannelData {
    /// A string or a number (Laravel sends numbers); kept as a string.
    pub user_id: Value,
    #[serde(default)]
    pub user_info: Option<Value>,
}

impl ChannelData {
    /// The member it makes, or why it makes none.
    pub fn member(text: &str) -> Result<Member, String> {
        let data: ChannelData = serde_json::from_str(text)
            .map_err(|e| format!("channel_data is not {{\"user_id\", \"user_info\"}}: {e}"))?;
        let id = match data.user_id {
            Value::String(s) if !s.is_empty() => s,
            Value::Number(n) => n.to_string(),
            _ => return Err("channel_data.user_id must be a non-empty string or a number".into()),
        };
        Ok(Member {
            id,
            info: data.user_info,
        })
    }
}

#[derive(Serialize)]
struct Roster<'a> {
    ids: Vec<&'a str>,
    hash: BTreeMap<&'a str, &'a Value>,
    count: usize,
}

#[derive(Serialize)]
struct Succeeded<'a> {
    presence: Roster<'a>,
}

/// `pusher_internal:subscription_succeeded` of a presence channel, listing `members`.
pub fn succeeded(channel: &str, members: &[Member]) -> Bytes {
    let null = Value::Null;
    let roster = Roster {
        ids: members.iter().map(|m| m.id.as_str()).collect(),
        hash: members
            .iter()
            .map(|m| (m.id.as_str(), m.info.as_ref().unwrap_or(&null)))
            .collect(),
        count: members.len(),
    };
    let data = wire::string_data(&Succeeded { presence: roster });
    wire::event(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        Some(&data),
    )
}

#[derive(Serialize)]
struct Added<'a> {
    user_id: &'a str,
    user_info: &'a Value,
}

#[derive(Serialize)]
struct Removed<'a> {
    user_id: &'a str,
}

/// `pusher_internal:member_added` or `member_removed` for a change of a Pusher presence
/// channel (`presence-…`); `None` for other channels, whose Pusher subscribers see no members.
pub fn member_frame(channel: &str, change: &Change) -> Option<Bytes> {
    if !super::channel::Kind::of(channel).presence {
        return None;
    }
    let null = Value::Null;
    let (event, data) = match change {
        Change::Added(m) => (
            "pusher_internal:member_added",
            wire::string_data(&Added {
                user_id: &m.id,
                user_info: m.info.as_ref().unwrap_or(&null),
            }),
        ),
        Change::Removed(m) => (
            "pusher_internal:member_removed",
            wire::string_data(&Removed { user_id: &m.id }),
        ),
    };
    Some(wire::event(event, Some(channel), Some(&data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &Bytes) -> Value {
        serde_json::from_slice(super::super::message::payload(frame).unwrap()).unwrap()
    }

    #[test]
    fn channel_data_makes_members() {
        let m = ChannelData::member(r#"{"user_id":7,"user_info":{"name":"a"}}"#).unwrap();
        assert_eq!(m.id, "7");
        assert_eq!(m.info.unwrap()["name"], "a");
        assert_eq!(
            ChannelData::member(r#"{"user_id":"u"}"#).unwrap().info,
            None
        );
        assert!(ChannelData::member(r#"{"user_id":""}"#).is_err());
        assert!(ChannelData::member(r#"{"user_id":null}"#).is_err());
        assert!(ChannelData::member("nope").is_err());
    }

    #[test]
    fn roster_shape() {
        let members = vec![
            Member {
                id: "a".into(),
                info: Some(serde_json::json!({"n": 1})),
            },
            Member {
                id: "b".into(),
                info: None,
            },
        ];
        let f = body(&succeeded("presence-r", &members));
        let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["presence"]["ids"], serde_json::json!(["a", "b"]));
        assert_eq!(data["presence"]["hash"]["a"]["n"], 1);
        assert!(data["presence"]["hash"]["b"].is_null());
        assert_eq!(data["presence"]["count"], 2);
    }

    #[test]
    fn member_events_only_on_pusher_presence_channels() {
        let m = Member {
            id: "a".into(),
            info: None,
        };
        assert!(member_frame("presence.room", &Change::Added(m.clone())).is_none());
        let f = body(&member_frame("presence-room", &Change::Removed(m)).unwrap());
        assert_eq!(f["event"], "pusher_internal:member_removed");
        assert_eq!(f["data"], "{\"user_id\":\"a\"}");
    }
}
