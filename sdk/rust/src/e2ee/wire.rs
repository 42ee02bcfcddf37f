//! The key directory ops on the socket (`docs/e2ee.md#the-key-directory`): the session keeps
//! each op waiting for its `ack`, `keys` or `room_keys`, and [`Client`] gets a typed method per
//! op. [`super::E2ee`] builds on these; they are public for tools and tests that speak to the
//! directory directly.

use crate::actor::Command;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::session::{Pending, Session};
use tokio::sync::oneshot;
use waas_protocol::e2ee::{DeviceKey, RoomKey, WrappedKey};
use waas_protocol::frame::{ClientFrame, ServerFrame};

/// Builds the op's frame once the session has given it an id.
pub(crate) type KeyRequest = Box<dyn FnOnce(u64) -> ClientFrame + Send>;

impl Session {
    /// Sends a key directory op; fails at once while disconnected (nothing is queued: the
    /// caller decides whether to try again).
    pub(crate) fn keys(
        &mut self,
        request: KeyRequest,
        reply: oneshot::Sender<Result<ServerFrame>>,
    ) {
        if !self.online {
            let _ = reply.send(Err(Error::Disconnected));
            return;
        }
        let id = self.id();
        let frame = request(id);
        self.outbox.push(
            serde_json::to_string(&frame).expect("client frames hold only strings and numbers"),
        );
        self.pending.insert(id, Pending::Keys { reply });
    }

    /// A `keys` or `room_keys` frame: the answer of the op with its id.
    pub(crate) fn on_key_frame(&mut self, frame: ServerFrame) {
        let id = match &frame {
            ServerFrame::Keys { id, .. } | ServerFrame::RoomKeys { id, .. } => *id,
            _ => return,
        };
        match self.pending.remove(&id) {
            Some(Pending::Keys { reply }) => {
                let _ = reply.send(Ok(frame));
            }
            Some(other) => {
                self.pending.insert(id, other);
                tracing::debug!(id, "key list answering another request");
            }
            None => tracing::debug!(id, "key list for a request this client did not make"),
        }
    }
}

fn unexpected(op: &str, frame: &ServerFrame) -> Error {
    Error::Protocol(format!("{op} answered by {frame:?}"))
}

impl Client {
    async fn key_op(
        &self,
        operation: &'static str,
        request: impl FnOnce(u64) -> ClientFrame + Send + 'static,
    ) -> Result<ServerFrame> {
        self.command(operation, |reply| Command::Keys {
            request: Box::new(request),
            reply,
        })
        .await
    }

    /// `keys_publish`: publishes this device's public key (base64 SPKI DER) under the
    /// connection's `sub`.
    pub async fn keys_publish(&self, public_key: &str) -> Result<()> {
        let public_key = public_key.to_owned();
        match self
            .key_op("keys_publish", move |id| ClientFrame::KeysPublish {
                id,
                public_key,
            })
            .await?
        {
            ServerFrame::Ack { .. } => Ok(()),
            other => Err(unexpected("keys_publish", &other)),
        }
    }

    /// `keys_get`: the published device keys of `sub`, newest first.
    pub async fn keys_get(&self, sub: &str) -> Result<Vec<DeviceKey>> {
        let sub = sub.to_owned();
        match self
            .key_op("keys_get", move |id| ClientFrame::KeysGet { id, sub })
            .await?
        {
            ServerFrame::Keys { keys, .. } => Ok(keys),
            other => Err(unexpected("keys_get", &other)),
        }
    }

    /// `room_key_put`: stores room keys wrapped for devices (needs `caps.share` for the channel,
    /// or an API key).
    pub async fn room_key_put(
        &self,
        channel: &str,
        key_id: &str,
        version: u32,
        wrapped: Vec<WrappedKey>,
    ) -> Result<()> {
        let (channel, key_id) = (channel.to_owned(), key_id.to_owned());
        match self
            .key_op("room_key_put", move |id| ClientFrame::RoomKeyPut {
                id,
                channel,
                key_id,
                version,
                wrapped,
            })
            .await?
        {
            ServerFrame::Ack { .. } => Ok(()),
            other => Err(unexpected("room_key_put", &other)),
        }
    }

    /// `room_key_get`: the channel's room keys wrapped for this connection's `sub`.
    pub async fn room_key_get(&self, channel: &str) -> Result<Vec<RoomKey>> {
        let channel = channel.to_owned();
        match self
            .key_op("room_key_get", move |id| ClientFrame::RoomKeyGet {
                id,
                channel,
            })
            .await?
        {
            ServerFrame::RoomKeys { keys, .. } => Ok(keys),
            other => Err(unexpected("room_key_get", &other)),
        }
    }
}
