//! From events to deliveries: which endpoints want an event, and the exact body each gets.
//! Pure functions, shared by both stores so that SQLite and Postgres send the same bytes.

use crate::store::webhooks::{events_from_json, WebhookFormat};
use crate::store::StoreError;
use serde::Serialize;
use serde_json::value::RawValue;
use waas_core::webhooks::report::Report;
use waas_protocol::presence::Member;
use waas_protocol::webhook::EventType;
use waas_protocol::{ChannelName, ChannelPattern};

/// What one endpoint asks for, as read from the store.
#[derive(Debug, Clone)]
pub struct Filter {
    pub id: String,
    pub events: Vec<EventType>,
    /// Empty: every channel.
    pub channels: Vec<ChannelPattern>,
    pub format: WebhookFormat,
}

impl Filter {
    /// From the stored columns; patterns that no longer parse are skipped with a warning.
    pub fn from_row(
        id: String,
        events: &str,
        channels: &str,
        format: &str,
    ) -> Result<Filter, StoreError> {
        let events = events_from_json(events)?;
        let channels = crate::store::webhooks::channels_from_json(channels)?
            .iter()
            .filter_map(|p| match ChannelPattern::parse(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(endpoint = %id, pattern = %p, error = %e, "stored pattern skipped");
                    None
                }
            })
            .collect();
        Ok(Filter {
            id,
            events,
            channels,
            format: WebhookFormat::parse(format)?,
        })
    }

    fn wants(&self, kind: EventType, channel: &str) -> bool {
        if !self.events.contains(&kind) {
            return false;
        }
        // Pusher has no webhook for every message.
        if self.format == WebhookFormat::Pusher && kind == EventType::Message {
            return false;
        }
        if self.channels.is_empty() {
            return true;
        }
        ChannelName::parse(channel).is_ok_and(|c| self.channels.iter().any(|p| p.matches(&c)))
    }
}

/// A message that caused a `client_event` or `message` webhook.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: String,
    pub data: Box<RawValue>,
    pub offset: u64,
    pub user_id: Option<String>,
    pub connection_id: Option<String>,
}

/// Something that happened in an app, to be sent to the endpoints that want it.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub app: String,
    pub channel: String,
    pub time_ms: i64,
    pub member: Option<Member>,
    pub message: Option<Published>,
    /// When set, delivery ids derive from it and the endpoint, so the same event stored twice
    /// yields the same deliveries (a gateway's batch sent again after a lost answer).
    pub source: Option<String>,
}

/// A row for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: String,
    pub endpoint_id: String,
    pub app_id: String,
    pub event_type: EventType,
    pub body: String,
}

/// The JSON body of every webhook (`docs/webhooks.md`).
#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: EventType,
    app: &'a str,
    channel: &'a str,
    time_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a Member>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_id: Option<&'a str>,
}

fn delivery_id(source: Option<&str>, endpoint: &str) -> String {
    match source {
        Some(source) => {
            let digest = ring::digest::digest(
                &ring::digest::SHA256,
                format!("{source}\n{endpoint}").as_bytes(),
            );
            let hex: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("whd_{hex}")
        }
        None => format!("whd_{:032x}", rand::random::<u128>()),
    }
}

/// The deliveries `event` causes for `endpoints` (enabled ones of its app).
pub fn plan(endpoints: &[Filter], event: &Event) -> Vec<NewDelivery> {
    endpoints
        .iter()
        .filter(|e| e.wants(event.kind, &event.channel))
        .map(|e| {
            let id = delivery_id(event.source.as_deref(), &e.id);
            let m = event.message.as_ref();
            if e.format == WebhookFormat::Pusher {
                return NewDelivery {
                    body: pusher_event(event),
                    id,
                    endpoint_id: e.id.clone(),
                    app_id: event.app.clone(),
                    event_type: event.kind,
                };
            }
            let body = Body {
                id: &id,
                kind: event.kind,
                app: &event.app,
                channel: &event.channel,
                time_ms: event.time_ms,
                member: event.member.as_ref(),
                event: m.map(|m| m.event.as_str()),
                data: m.map(|m| m.data.as_ref()),
                offset: m.map(|m| m.offset),
                user_id: m.and_then(|m| m.user_id.as_deref()),
                connection_id: m.and_then(|m| m.connection_id.as_deref()),
            };
            NewDelivery {
                body: serde_json::to_string(&body).expect("bodies serialise"),
                id,
                endpoint_id: e.id.clone(),
                app_id: event.app.clone(),
                event_type: event.kind,
            }
        })
        .collect()
}

/// One event of a Pusher-format webhook (`{"name": ..., "channel": ...}` and the fields of its
/// kind), as it goes into the request's `events` list. Pusher's `data` is a string: a native
/// JSON string is sent as its text, anything else as the JSON it is.
fn pusher_event(event: &Event) -> String {
    let mut out = serde_json::Map::new();
    out.insert("name".into(), event.kind.as_str().into());
    out.insert("channel".into(), event.channel.clone().into());
    if let Some(member) = &event.member {
        out.insert("user_id".into(), member.id.clone().into());
    }
    if let Some(m) = &event.message {
        out.insert("event".into(), m.event.clone().into());
        let data = serde_json::from_str::<String>(m.data.get())
            .unwrap_or_else(|_| m.data.get().to_owned());
        out.insert("data".into(), data.into());
        if let Some(socket) = &m.connection_id {
            out.insert("socket_id".into(), socket.clone().into());
        }
        if let Some(user) = &m.user_id {
            out.insert("user_id".into(), user.clone().into());
        }
    }
    serde_json::Value::Object(out).to_string()
}

/// The event of a cache miss report.
pub fn cache_miss_event(app: &str, channel: &str, time_ms: i64) -> Event {
    Event {
        kind: EventType::CacheMiss,
        app: app.to_owned(),
        channel: channel.to_owned(),
        time_ms,
        member: None,
        message: None,
        source: None,
    }
}

/// The events a publish report stands for: `client_event` when a client published it, and
/// `message` in any case.
pub fn publish_events(report: &Report) -> Vec<Event> {
    let Report::Publish {
        id,
        app,
        channel,
        event,
        data,
        offset,
        time_ms,
        client,
    } = report
    else {
        return Vec::new();
    };
    let message = Published {
        event: event.clone(),
        data: data.clone(),
        offset: *offset,
        user_id: client.as_ref().map(|c| c.user_id.clone()),
        connection_id: client.as_ref().map(|c| c.connection_id.clone()),
    };
    let mut kinds = vec![EventType::Message];
    if client.is_some() {
        kinds.insert(0, EventType::ClientEvent);
    }
    kinds
        .into_iter()
        .map(|kind| Event {
            kind,
            app: app.to_string(),
            channel: channel.to_string(),
            time_ms: *time_ms as i64,
            member: None,
            message: Some(message.clone()),
            source: Some(format!("{id}/{kind}")),
        })
        .collect()
}

/// The event a presence transition stands for.
pub fn presence_event(
    app: &str,
    channel: &str,
    member: Option<Member>,
    present: bool,
    time_ms: i64,
) -> Event {
    let kind = match (member.is_some(), present) {
        (false, true) => EventType::ChannelOccupied,
        (false, false) => EventType::ChannelVacated,
        (true, true) => EventType::MemberAdded,
        (true, false) => EventType::MemberRemoved,
    };
    Event {
        kind,
        app: app.to_owned(),
        channel: channel.to_owned(),
        time_ms,
        member,
        message: None,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(events: &[EventType], channels: &[&str]) -> Filter {
        Filter {
            id: "we_1".into(),
            events: events.to_vec(),
            channels: channels
                .iter()
                .map(|p| ChannelPattern::parse(p).unwrap())
                .collect(),
            format: WebhookFormat::Waas,
        }
    }

    #[test]
    fn pusher_endpoints_get_pushers_event_shapes() {
        let pusher = |events: &[EventType]| Filter {
            format: WebhookFormat::Pusher,
            ..filter(events, &[])
        };
        let all = [pusher(&EventType::ALL)];
        let body = |ev: &Event| -> serde_json::Value {
            serde_json::from_str(&plan(&all, ev)[0].body).unwrap()
        };
        assert_eq!(
            body(&presence_event("demo", "presence-a", None, true, 5)),
            serde_json::json!({"name": "channel_occupied", "channel": "presence-a"})
        );
        let member = Member {
            id: "alice".into(),
            info: None,
        };
        assert_eq!(
            body(&presence_event(
                "demo",
                "presence-a",
                Some(member),
                false,
                5
            )),
            serde_json::json!({"name": "member_removed", "channel": "presence-a", "user_id": "alice"})
        );
        assert_eq!(
            body(&cache_miss_event("demo", "cache-a", 5)),
            serde_json::json!({"name": "cache_miss", "channel": "cache-a"})
        );
        let report: Report = serde_json::from_str(
            r#"{"publish":{"id":"n-1","app":"demo","channel":"private-c","event":"client-e",
               "data":"text","offset":3,"time_ms":9,"client":{"user_id":"u","connection_id":"1.2"}}}"#,
        )
        .unwrap();
        let events = publish_events(&report);
        assert_eq!(
            body(&events[0]),
            serde_json::json!({"name": "client_event", "channel": "private-c", "event": "client-e",
                "data": "text", "socket_id": "1.2", "user_id": "u"})
        );
        // No Pusher webhook stands for every message.
        assert!(plan(&all, &events[1]).is_empty());
        let report: Report = serde_json::from_str(
            r#"{"publish":{"id":"n-2","app":"demo","channel":"c","event":"e",
               "data":{"x": 1},"offset":3,"time_ms":9,"client":{"user_id":"u","connection_id":"1.2"}}}"#,
        )
        .unwrap();
        assert_eq!(body(&publish_events(&report)[0])["data"], r#"{"x": 1}"#);
    }

    #[test]
    fn endpoints_get_what_they_asked_for() {
        let ev = presence_event("demo", "chat.a", None, true, 5);
        assert_eq!(
            plan(&[filter(&[EventType::ChannelOccupied], &[])], &ev).len(),
            1
        );
        assert!(plan(&[filter(&[EventType::ChannelVacated], &[])], &ev).is_empty());
        assert!(plan(&[filter(&[EventType::ChannelOccupied], &["news.>"])], &ev).is_empty());
        let d = &plan(&[filter(&[EventType::ChannelOccupied], &["chat.*"])], &ev)[0];
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["id"], d.id.as_str());
        assert_eq!(body["type"], "channel_occupied");
        assert_eq!(body["channel"], "chat.a");
        assert_eq!(body["time_ms"], 5);
    }

    #[test]
    fn publish_ids_are_stable_per_report_and_endpoint() {
        let report: Report = serde_json::from_str(
            r#"{"publish":{"id":"n-1","app":"demo","channel":"c","event":"e","data":{"x": 1},
               "offset":3,"time_ms":9,"client":{"user_id":"u","connection_id":"demo-1"}}}"#,
        )
        .unwrap();
        let events = publish_events(&report);
        assert_eq!(events.len(), 2);
        let f = [filter(&[EventType::ClientEvent, EventType::Message], &[])];
        let a = plan(&f, &events[0]);
        let b = plan(&f, &events[0]);
        assert_eq!(a[0].id, b[0].id);
        assert_ne!(a[0].id, plan(&f, &events[1])[0].id);
        let body: serde_json::Value = serde_json::from_str(&a[0].body).unwrap();
        assert!(
            a[0].body.contains(r#""data":{"x": 1}"#),
            "data kept as written"
        );
        assert_eq!(body["user_id"], "u");
        assert_eq!(body["type"], "client_event");
    }
}
