//! The key directory of end-to-end encryption (`docs/e2ee.md`): device public keys and room
//! keys wrapped for devices. It lives in the control-plane's store; gateways reach it over the
//! bus ([`KeyCommand`] on [`subject`], answered with [`KeyReply`]), like the app directory, so
//! every gateway of a cluster sees the same keys. `waas_core::keys` answers the four socket ops.
//!
//! The gateway validates everything before asking (it knows the caller and the limits), so the
//! control-plane only stores and reads.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use waas_protocol::e2ee::{DeviceKey, RoomKey, WrappedKey};
use waas_protocol::rest::ErrorDetail;
use waas_protocol::{AppId, ErrorCode};

use crate::bus::Bus;

/// Subject on which control-planes answer [`KeyCommand`]s (queue group
/// [`crate::directory::RESPONDERS`]).
pub fn subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "keys")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KeyCommand {
    /// Store (or refresh) a device key; keep at most `max_devices` keys for the `sub`, dropping
    /// the least recently published.
    Publish {
        app: AppId,
        sub: String,
        device: String,
        public_key: String,
        max_devices: usize,
    },
    /// A user's device keys, newest first.
    List { app: AppId, sub: String },
    /// Store wrapped room keys; keep the newest `keep_versions` versions of the key id.
    Put {
        app: AppId,
        channel: String,
        key_id: String,
        version: u32,
        wrapped: Vec<WrappedKey>,
        keep_versions: u32,
    },
    /// The channel's room keys wrapped for `sub`.
    Get {
        app: AppId,
        channel: String,
        sub: String,
    },
}

/// The control-plane's answer: what was asked for, or an error.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KeyReply {
    /// `publish`: the stored key; `list`: the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<DeviceKey>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_keys: Option<Vec<RoomKey>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl KeyReply {
    pub fn failure(code: ErrorCode, message: impl Into<String>) -> Self {
        KeyReply {
            error: Some(ErrorDetail {
                code,
                message: message.into(),
            }),
            ..Default::default()
        }
    }
}

/// Asks the directory; a bus failure or an unreadable answer is `unavailable`/`internal`.
pub async fn call(
    bus: &dyn Bus,
    prefix: &str,
    command: &KeyCommand,
    timeout: Duration,
) -> Result<KeyReply, ErrorDetail> {
    let payload = Bytes::from(serde_json::to_vec(command).expect("commands serialise"));
    let answer = bus
        .request(&subject(prefix), payload, timeout)
        .await
        .map_err(|e| ErrorDetail {
            code: ErrorCode::Unavailable,
            message: format!("key directory: {e}"),
        })?;
    let reply: KeyReply = serde_json::from_slice(&answer).map_err(|e| ErrorDetail {
        code: ErrorCode::Internal,
        message: format!("key directory answer: {e}"),
    })?;
    match reply.error {
        Some(e) => Err(e),
        None => Ok(reply),
    }
}
