//! The connection's less frequent ops — presence, requests, the E2EE key directory — apart
//! from its loop and its pub/sub.

use super::Conn;
use waas_protocol::{ChannelName, ClientFrame, ErrorCode, ServerFrame};

impl Conn {
    /// The member this connection is on `channel`: none outside presence channels and for
    /// API-key connections; refused when the token's `info` is over `max_member_info_bytes`.
    pub(super) fn presence_member(
        &self,
        channel: &ChannelName,
    ) -> Result<Option<waas_protocol::presence::Member>, String> {
        let Some(identity) = self.identity.as_ref() else {
            return Ok(None);
        };
        if identity.is_server || !waas_protocol::presence::is_presence(channel) {
            return Ok(None);
        }
        let max_id = waas_protocol::presence::MAX_MEMBER_ID_BYTES;
        if identity.sub.len() > max_id {
            return Err(format!(
                "the token's \"sub\" is {} bytes; presence members' ids are at most {max_id}",
                identity.sub.len()
            ));
        }
        let max = self.gw.config.limits.max_member_info_bytes;
        if let Some(info) = &identity.info {
            let len = serde_json::to_vec(info).map_or(usize::MAX, |v| v.len());
            if len > max {
                return Err(format!(
                    "the token's \"info\" is {len} bytes, over max_member_info_bytes ({max})"
                ));
            }
        }
        Ok(Some(waas_protocol::presence::Member {
            id: identity.sub.clone(),
            info: identity.info.clone(),
        }))
    }

    /// Tells presence that this connection left `channel`.
    pub(super) fn presence_leave(&self, channel: &ChannelName) {
        let Some(app) = self.app.as_ref() else { return };
        let member_id = match &self.identity {
            Some(i) if !i.is_server && waas_protocol::presence::is_presence(channel) => {
                Some(i.sub.as_str())
            }
            _ => None,
        };
        let key = crate::presence::Presence::key(app.id(), channel);
        self.gw.presence.left(&self.gw.hub, &key, member_id);
    }

    /// `presence`: the members of a presence channel the token may subscribe to.
    pub(super) fn presence(&self, id: u64, name: &str) {
        let Some(channel) = self.channel(id, name) else {
            return;
        };
        if !waas_protocol::presence::is_presence(&channel) {
            return self.error(
                Some(id),
                ErrorCode::BadRequest,
                format!(
                    "{channel} is not a presence channel (its first segment must be \"presence\")"
                ),
            );
        }
        let identity = self.identity.as_ref().expect("presence after connect");
        if !identity.may_subscribe(&channel) {
            return self.error(
                Some(id),
                ErrorCode::Forbidden,
                format!("the token does not allow subscribing to {channel}"),
            );
        }
        let Some(app) = self.app.as_ref() else { return };
        let key = crate::presence::Presence::key(app.id(), &channel);
        self.reply(&ServerFrame::Members {
            id: Some(id),
            channel: channel.to_string(),
            members: self.gw.presence.members(&key),
        });
    }

    /// Reading history takes the right to subscribe to the channel.
    /// `request`, `response`, `serve`, `unserve`: see [`crate::rpc`].
    pub(super) async fn rpc(&mut self, frame: ClientFrame) {
        let (Some(app), Some(identity)) = (self.app.as_ref(), self.identity.as_ref()) else {
            return;
        };
        let ctx = crate::rpc::Ctx {
            rpc: &self.gw.rpc,
            limits: &self.gw.config.limits,
            connections: &self.gw.connections,
            app,
            identity,
            out: &self.reg.tracked.out,
        };
        self.rpc.on_frame(ctx, frame).await;
    }

    /// `keys_publish`, `keys_get`, `room_key_put`, `room_key_get`: see [`crate::keys`]. The two
    /// that write to the directory count against the publish rate.
    pub(super) async fn keys(&mut self, frame: ClientFrame) {
        let (Some(app), Some(identity)) = (self.app.as_ref(), self.identity.as_ref()) else {
            return;
        };
        let writes = matches!(
            frame,
            ClientFrame::KeysPublish { .. } | ClientFrame::RoomKeyPut { .. }
        );
        if writes && !self.bucket.try_take() {
            if let Some(id) = frame.id() {
                self.error(
                    Some(id),
                    ErrorCode::RateLimited,
                    "publish rate exceeded; nothing was stored",
                );
            }
            return;
        }
        let ctx = crate::keys::Ctx {
            publisher: &self.gw.publisher,
            prefix: &self.gw.config.subject_prefix,
            limits: &self.gw.config.limits,
            app,
            identity,
            out: &self.reg.tracked.out,
        };
        crate::keys::on_frame(ctx, frame).await;
    }
}
