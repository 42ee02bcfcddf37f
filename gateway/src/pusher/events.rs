//! Client events (`client-…`): sent by a Pusher client to a private or presence channel it is
//! subscribed to, when the app allows them (`client_events`), at most
//! `pusher_client_event_rate` a second. They are published like any message (other Pusher
//! clients and native clients receive them, history keeps them) with the sender's socket id, so
//! the sender does not get its own event back, and its `user_id` on presence channels.

use super::channel::Kind;
use super::codes::PusherCode;
use super::connection::Conn;
use super::message::{self, Sender};
use super::{data, wire};
use waas_core::publisher::check_event;

impl Conn {
    pub(super) async fn client_event(&mut self, frame: &wire::Incoming<'_>) {
        let Some(app) = self.app.clone() else { return };
        let event = &*frame.event;
        let Some(name) = frame.channel.as_deref() else {
            return self.error(None, "client events need a \"channel\"");
        };
        if !app.config.pusher.as_ref().is_some_and(|p| p.client_events) {
            return self.error(None, "client events are not enabled for this app");
        }
        if !Kind::of(name).allows_client_events() {
            return self.error(
                None,
                "client events are only allowed on private and presence channels",
            );
        }
        let Some(sub) = self.subs.iter().find(|s| s.channel.as_str() == name) else {
            return self.error(
                None,
                &format!("subscribe to {name} before sending client events on it"),
            );
        };
        if let Err(message) = check_event(event) {
            return self.error(None, &message);
        }
        let Some(raw) = frame.data else {
            return self.error(None, "client events need \"data\"");
        };
        if !self.client_events.try_take() {
            return self.error(
                Some(PusherCode::CLIENT_EVENT_RATE),
                "client event rate exceeded (pusher_client_event_rate); the event was not sent",
            );
        }
        let channel = sub.channel.clone();
        let sender = Sender {
            socket_id: Some(self.socket_id.clone()),
            user_id: sub.member.clone(),
        };
        let native = data::field_to_native(raw);
        let head = message::head(name, event, &native, waas_core::time::now_ms(), &sender);
        match self.gw.publisher.publish_head(&app, &channel, &head).await {
            Ok(offset) => super::hooks::client_event(
                &self.gw,
                &app,
                &channel,
                event,
                &native,
                offset,
                &self.socket_id,
                sender.user_id.as_deref(),
            ),
            Err(e) => self.error(None, &format!("the event was not sent: {e}")),
        }
    }
}
