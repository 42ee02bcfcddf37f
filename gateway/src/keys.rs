//! The socket ops of the key directory: `keys_publish`, `keys_get`, `room_key_put`,
//! `room_key_get` (`docs/e2ee.md#the-key-directory`). Each checks the caller's rights and the
//! request's shape here, then asks the control-plane over the bus.

use crate::config::Limits;
use crate::op_error::OpError;
use crate::outbound::Outbound;
use crate::wsframe;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use std::time::Duration;
use waas_core::app::App;
use waas_core::auth::Identity;
use waas_core::keys::{call, KeyCommand, KeyReply};
use waas_core::publisher::Publisher;
use waas_protocol::e2ee::{
    self, DeviceAck, RoomKeyNotice, WrappedKey, MAX_SUB_LEN, MAX_WRAPPED_BYTES, ROOM_KEY_EVENT,
};
use waas_protocol::{ChannelName, ClientFrame, ErrorCode, ServerFrame};

/// Smallest and largest RSA modulus accepted for a device key, bits.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 4096;

/// What one op needs from its connection and its node.
pub struct Ctx<'a> {
    /// Publishes the room key notice, and its bus reaches the control-plane.
    pub publisher: &'a Publisher,
    /// The bus subject prefix the control-plane listens under.
    pub prefix: &'a str,
    pub limits: &'a Limits,
    pub app: &'a App,
    pub identity: &'a Identity,
    pub out: &'a Outbound,
}

fn bad(message: impl Into<String>) -> OpError {
    OpError::new(ErrorCode::BadRequest, message)
}

impl Ctx<'_> {
    fn reply(&self, frame: &impl serde::Serialize) {
        self.out.push(wsframe::json(frame));
    }

    fn error(&self, id: u64, e: OpError) {
        self.out.push(e.frame(id));
    }

    async fn ask(&self, command: KeyCommand) -> Result<KeyReply, OpError> {
        call(
            self.publisher.bus().as_ref(),
            self.prefix,
            &command,
            Duration::from_millis(self.limits.key_directory_timeout_ms),
        )
        .await
        .map_err(OpError::from)
    }

    fn channel(&self, name: &str) -> Result<ChannelName, OpError> {
        ChannelName::parse(name).map_err(|e| {
            OpError::new(
                ErrorCode::InvalidChannel,
                format!("invalid channel {name:?}: {e}"),
            )
        })
    }
}

/// Answers one key directory op. Errors go back as `error` frames with the op's id.
pub async fn on_frame(ctx: Ctx<'_>, frame: ClientFrame) {
    let Some(id) = frame.id() else { return };
    let result = match frame {
        ClientFrame::KeysPublish { id, public_key } => publish(&ctx, id, &public_key).await,
        ClientFrame::KeysGet { id, sub } => list(&ctx, id, sub).await,
        ClientFrame::RoomKeyPut {
            id,
            channel,
            key_id,
            version,
            wrapped,
        } => put(&ctx, id, &channel, key_id, version, wrapped).await,
        ClientFrame::RoomKeyGet { id, channel } => get(&ctx, id, &channel).await,
        _ => return,
    };
    if let Err(e) = result {
        ctx.error(id, e);
    }
}

/// The device id of `public_key` when it is base64 of an RSA SPKI of an accepted size.
pub fn check_public_key(public_key: &str) -> Result<String, OpError> {
    let der = B64
        .decode(public_key)
        .map_err(|e| bad(format!("\"public_key\" is not base64: {e}")))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|e| {
        bad(format!(
            "\"public_key\" is not an RSA SubjectPublicKeyInfo: {e}"
        ))
    })?;
    let bits = key.n().bits();
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(bad(format!(
            "\"public_key\" has a {bits}-bit modulus; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
        )));
    }
    Ok(e2ee::device_id(&der))
}

async fn publish(ctx: &Ctx<'_>, id: u64, public_key: &str) -> Result<(), OpError> {
    let device = check_public_key(public_key)?;
    ctx.ask(KeyCommand::Publish {
        app: ctx.app.id().clone(),
        sub: ctx.identity.sub.clone(),
        device: device.clone(),
        public_key: public_key.to_owned(),
        max_devices: ctx.limits.max_devices_per_user,
    })
    .await?;
    ctx.reply(&DeviceAck::new(id, &device));
    Ok(())
}

fn check_sub(sub: &str) -> Result<(), OpError> {
    if sub.is_empty() || sub.len() > MAX_SUB_LEN {
        return Err(bad(format!("\"sub\" must be 1 to {MAX_SUB_LEN} bytes")));
    }
    Ok(())
}

async fn list(ctx: &Ctx<'_>, id: u64, sub: String) -> Result<(), OpError> {
    check_sub(&sub)?;
    let reply = ctx
        .ask(KeyCommand::List {
            app: ctx.app.id().clone(),
            sub: sub.clone(),
        })
        .await?;
    ctx.reply(&ServerFrame::Keys {
        id,
        sub,
        keys: reply.keys.unwrap_or_default(),
    });
    Ok(())
}

/// Refuses a put whose fields are out of shape (`docs/e2ee.md#room_key_put`, step 4).
pub fn check_put(
    key_id: &str,
    version: u32,
    wrapped: &[WrappedKey],
    max_recipients: usize,
) -> Result<(), OpError> {
    if !e2ee::is_id(key_id) {
        return Err(bad("\"key_id\" must be 32 lowercase hex digits"));
    }
    if version == 0 {
        return Err(bad("\"version\" starts at 1"));
    }
    if wrapped.is_empty() || wrapped.len() > max_recipients {
        return Err(bad(format!(
            "\"wrapped\" must have 1 to {max_recipients} entries (max_room_key_recipients)"
        )));
    }
    for w in wrapped {
        check_sub(&w.sub)?;
        if !e2ee::is_id(&w.device) {
            return Err(bad(format!(
                "device {:?} is not 32 lowercase hex digits",
                w.device
            )));
        }
        match B64.decode(&w.key) {
            Ok(key) if !key.is_empty() && key.len() <= MAX_WRAPPED_BYTES => {}
            _ => {
                return Err(bad(format!(
                    "the key for {:?} must be base64 of 1 to {MAX_WRAPPED_BYTES} bytes",
                    w.device
                )))
            }
        }
    }
    Ok(())
}

async fn put(
    ctx: &Ctx<'_>,
    id: u64,
    name: &str,
    key_id: String,
    version: u32,
    wrapped: Vec<WrappedKey>,
) -> Result<(), OpError> {
    let channel = ctx.channel(name)?;
    if !ctx.identity.may_share(&channel) {
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("the token does not allow sharing keys for {channel} (caps.share)"),
        ));
    }
    let limits = ctx.limits;
    check_put(&key_id, version, &wrapped, limits.max_room_key_recipients)?;
    let mut recipients: Vec<String> = Vec::new();
    for w in &wrapped {
        if !recipients.contains(&w.sub) {
            recipients.push(w.sub.clone());
        }
    }
    ctx.ask(KeyCommand::Put {
        app: ctx.app.id().clone(),
        channel: channel.to_string(),
        key_id: key_id.clone(),
        version,
        wrapped,
        keep_versions: limits.max_room_key_versions,
    })
    .await?;
    let notice = RoomKeyNotice {
        kid: key_id,
        v: version,
        recipients,
    };
    let data = serde_json::value::to_raw_value(&notice).expect("notices serialise");
    if let Err(e) = ctx
        .publisher
        .publish(ctx.app, &channel, ROOM_KEY_EVENT, &data)
        .await
    {
        return Err(OpError::new(
            ErrorCode::Unavailable,
            format!("the keys were stored but {ROOM_KEY_EVENT} was not published: {e}"),
        ));
    }
    ctx.reply(&ServerFrame::Ack {
        id,
        offset: None,
        epoch: None,
        recovered: None,
    });
    Ok(())
}

async fn get(ctx: &Ctx<'_>, id: u64, name: &str) -> Result<(), OpError> {
    let channel = ctx.channel(name)?;
    if !ctx.identity.may_subscribe(&channel) {
        return Err(OpError::new(
            ErrorCode::Forbidden,
            format!("the token does not allow subscribing to {channel}"),
        ));
    }
    let reply = ctx
        .ask(KeyCommand::Get {
            app: ctx.app.id().clone(),
            channel: channel.to_string(),
            sub: ctx.identity.sub.clone(),
        })
        .await?;
    ctx.reply(&ServerFrame::RoomKeys {
        id,
        channel: channel.to_string(),
        keys: reply.room_keys.unwrap_or_default(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_must_be_rsa_spki() {
        assert_eq!(
            check_public_key("not base64!").unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            check_public_key(&B64.encode(b"not der")).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn rsa_keys_of_the_accepted_sizes_only() {
        use rsa::pkcs8::EncodePublicKey;
        let spki = |bits| {
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).unwrap();
            let der = rsa::RsaPublicKey::from(&private)
                .to_public_key_der()
                .unwrap();
            (B64.encode(der.as_bytes()), e2ee::device_id(der.as_bytes()))
        };
        let (small, _) = spki(1024);
        let e = check_public_key(&small).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(e.message.contains("1024-bit"), "{}", e.message);
        let (ok, device) = spki(2048);
        assert_eq!(check_public_key(&ok).unwrap(), device);
    }

    #[test]
    fn puts_are_checked() {
        let kid = "0123456789abcdef0123456789abcdef";
        let w = |device: &str, key: &str| WrappedKey {
            sub: "bob".into(),
            device: device.into(),
            key: key.into(),
        };
        let ok = [w(kid, "AAAA")];
        assert!(check_put(kid, 1, &ok, 10).is_ok());
        assert!(check_put("ABC", 1, &ok, 10).is_err());
        assert!(check_put(kid, 0, &ok, 10).is_err());
        assert!(check_put(kid, 1, &[], 10).is_err());
        assert!(check_put(kid, 1, &[w(kid, "AAAA"), w(kid, "AAAA")], 1).is_err());
        assert!(check_put(kid, 1, &[w("x", "AAAA")], 10).is_err());
        assert!(check_put(kid, 1, &[w(kid, "%%")], 10).is_err());
        let long = B64.encode(vec![1u8; MAX_WRAPPED_BYTES + 1]);
        assert!(check_put(kid, 1, &[w(kid, &long)], 10).is_err());
    }
}
