//! `pusher:subscribe` and `pusher:unsubscribe`: checks (name, signature, limits), then the
//! same hub and presence as native subscriptions, with cache channels answered from history.

use super::auth;
use super::channel::{Kind, SERVER_TO_USER};
use super::connection::{Conn, Sub};
use super::presence::ChannelData;
use super::wire::{self, SubscriptionError};
use crate::presence::Presence;
use crate::wsframe;
use bytes::Bytes;
use std::sync::Arc;
use waas_core::app::App;
use waas_core::history::{offset_of, Query};
use waas_protocol::presence::Member;
use waas_protocol::ChannelName;

impl Conn {
    fn refuse(&self, channel: &str, why: SubscriptionError, message: &str) {
        self.send(wire::subscription_error(channel, why, message));
    }

    /// The `subscription_succeeded` frame for `channel`: with the member list on presence
    /// channels.
    fn succeeded(&self, app: &App, channel: &ChannelName, kind: Kind) -> Bytes {
        if kind.presence {
            let key = Presence::key(app.id(), channel);
            super::presence::succeeded(channel.as_str(), &self.gw.presence.members(&key))
        } else {
            wire::event(
                "pusher_internal:subscription_succeeded",
                Some(channel.as_str()),
                None,
            )
        }
    }

    /// The member a presence subscription makes, checked against the limits.
    fn member(
        &self,
        app: &App,
        channel: &ChannelName,
        channel_data: Option<&str>,
    ) -> Result<Member, (SubscriptionError, String)> {
        let data = channel_data.ok_or((
            SubscriptionError::BadRequest,
            "presence channels need channel_data".to_owned(),
        ))?;
        let member = ChannelData::member(data).map_err(|m| (SubscriptionError::BadRequest, m))?;
        let max_id = waas_protocol::presence::MAX_MEMBER_ID_BYTES;
        if member.id.len() > max_id {
            return Err((
                SubscriptionError::LimitReached,
                format!("user_id is over {max_id} bytes"),
            ));
        }
        let limits = &self.gw.config.limits;
        let info_len = member
            .info
            .as_ref()
            .map_or(0, |i| serde_json::to_vec(i).map_or(usize::MAX, |v| v.len()));
        if info_len > limits.max_member_info_bytes {
            return Err((
                SubscriptionError::LimitReached,
                format!(
                    "user_info is {info_len} bytes, over max_member_info_bytes ({})",
                    limits.max_member_info_bytes
                ),
            ));
        }
        let key = Presence::key(app.id(), channel);
        let max = limits.max_presence_members;
        if !self.gw.presence.has_room(&key, &member.id, max) {
            return Err((
                SubscriptionError::LimitReached,
                format!("{channel} already has {max} members (max_presence_members)"),
            ));
        }
        Ok(member)
    }

    pub(super) async fn subscribe(&mut self, s: wire::Subscribe) {
        let Some(app) = self.app.clone() else { return };
        let name = s.channel.as_str();
        let channel = match ChannelName::parse(name) {
            Ok(c) => c,
            Err(e) => {
                return self.refuse(
                    name,
                    SubscriptionError::InvalidChannel,
                    &format!("invalid channel {name:?}: {e}"),
                )
            }
        };
        let kind = Kind::of(name);
        if kind.user {
            let mine = self
                .user
                .as_ref()
                .is_some_and(|u| name[SERVER_TO_USER.len()..] == u.user_id);
            if !mine {
                return self.refuse(
                    name,
                    SubscriptionError::Auth,
                    "only the connection signed in as that user may subscribe",
                );
            }
        }
        let mut member = None;
        if kind.signed {
            let Some(settings) = app.config.pusher.as_ref() else {
                return self.fail(
                    super::codes::PusherCode::APP_DISABLED,
                    "the app has no Pusher settings",
                );
            };
            let signed = kind.presence.then_some(s.channel_data.as_deref()).flatten();
            let message = auth::channel_message(&self.socket_id, name, signed);
            if let Err(e) = auth::verify(
                s.auth.as_deref(),
                app.id().as_str(),
                &settings.secret,
                &message,
            ) {
                return self.refuse(name, SubscriptionError::Auth, &e.to_string());
            }
            if kind.presence {
                match self.member(&app, &channel, s.channel_data.as_deref()) {
                    Ok(m) => member = Some(m),
                    Err((why, message)) => return self.refuse(name, why, &message),
                }
            }
        }
        if self.subs.iter().any(|sub| sub.channel == channel) {
            // Pusher clients resubscribe after errors; the answer is the same.
            return self.send(self.succeeded(&app, &channel, kind));
        }
        let max = app
            .config
            .limits
            .max_channels_per_connection
            .unwrap_or(self.gw.config.limits.max_channels_per_connection);
        if self.subs.len() >= max {
            return self.refuse(
                name,
                SubscriptionError::LimitReached,
                &format!("at most {max} channels per connection"),
            );
        }
        self.join(&app, channel, kind, member).await;
    }

    /// Joins presence (before the hub, so the member does not see its own `member_added`), then
    /// the hub, answering `subscription_succeeded` and, on cache channels, the last event or
    /// `pusher:cache_miss`, before any live message.
    pub(super) async fn join(
        &mut self,
        app: &Arc<App>,
        channel: ChannelName,
        kind: Kind,
        member: Option<Member>,
    ) {
        let subject = self.gw.publisher.subject(app.id(), &channel);
        let key = Presence::key(app.id(), &channel);
        let member_id = member.as_ref().map(|m| m.id.clone());
        self.gw.presence.joined(&self.gw.hub, &key, member);
        match self.go_live(app, &channel, &subject, kind).await {
            Ok(()) => {
                if self.subs.len() == self.subs.capacity() {
                    self.subs.reserve_exact(self.subs.len().max(1));
                }
                self.subs.push(Sub {
                    channel,
                    subject,
                    member: member_id,
                });
            }
            Err(message) => {
                self.gw
                    .presence
                    .left(&self.gw.hub, &key, member_id.as_deref());
                self.refuse(channel.as_str(), SubscriptionError::Unavailable, &message);
            }
        }
    }

    async fn go_live(
        &self,
        app: &App,
        channel: &ChannelName,
        subject: &str,
        kind: Kind,
    ) -> Result<(), String> {
        let out = Arc::clone(self.out());
        let hub = &self.gw.hub;
        hub.subscribe_held(app.into(), subject, out.id)
            .await
            .map_err(|e| e.to_string())?;
        let policy = self.gw.publisher.policy(app, channel);
        let history = self.gw.publisher.history();
        let mut frames = vec![self.succeeded(app, channel, kind)];
        let position = if kind.cache {
            let last = Query {
                since: None,
                limit: 1,
                reverse: true,
            };
            history.read(policy, subject, last).await.map(|page| {
                let mut covered = page.offset;
                match page.messages.first() {
                    Some(m) => {
                        covered = covered.max(offset_of(m).unwrap_or(0));
                        if let Some(c) = super::message::convert(&wsframe::text(m)) {
                            frames.push(c.frame);
                        }
                    }
                    None => {
                        frames.push(wire::event(
                            "pusher:cache_miss",
                            Some(channel.as_str()),
                            None,
                        ));
                        super::hooks::cache_miss(&self.gw, app, channel);
                    }
                }
                (page.epoch, covered)
            })
        } else {
            history
                .recover(policy, subject, None)
                .await
                .map(|r| (r.epoch, r.offset))
        };
        let (epoch, covered) = match position {
            Ok(p) => p,
            Err(e) => {
                hub.unsubscribe(subject, out.id).await;
                return Err(e.to_string());
            }
        };
        let at = crate::hub::Joined {
            channel: channel.as_str(),
            policy,
            epoch: &epoch,
        };
        hub.join(subject, out, frames, covered, at, |_| None);
        Ok(())
    }

    pub(super) fn leave_presence(&self, sub: &Sub) {
        let Some(app) = self.app.as_ref() else { return };
        let key = Presence::key(app.id(), &sub.channel);
        self.gw
            .presence
            .left(&self.gw.hub, &key, sub.member.as_deref());
    }

    /// Pusher sends no answer to `pusher:unsubscribe`.
    pub(super) async fn unsubscribe(&mut self, name: &str) {
        if let Some(i) = self.subs.iter().position(|s| s.channel.as_str() == name) {
            let sub = self.subs.swap_remove(i);
            self.gw.hub.unsubscribe(&sub.subject, self.out().id).await;
            self.leave_presence(&sub);
        }
    }
}
