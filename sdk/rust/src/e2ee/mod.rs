//! End-to-end encryption (`docs/e2ee.md`): messages only a channel's members can read.
//!
//! A [`Keyring`] is one device's keys, persisted in a directory. [`E2ee`] ties it to a
//! [`Client`]: it publishes the device key, encrypts publishes into envelopes, decrypts
//! deliveries (fetching room keys from the service's key directory when it meets a version it
//! does not hold), and, for the owner of a channel, shares and rotates the room key as members
//! come and go ([`E2ee::own`]).
//!
//! ```no_run
//! # async fn demo(client: waas_sdk::Client) -> Result<(), waas_sdk::e2ee::E2eeError> {
//! use std::sync::Arc;
//! use waas_sdk::e2ee::{E2ee, Keyring};
//!
//! let keyring = Arc::new(Keyring::open("/var/lib/myapp/waas-keys")?);
//! let e2ee = E2ee::start(client, keyring).await?;
//! let mut room = e2ee.subscribe("presence.room-1").await?;
//! e2ee.publish("presence.room-1", "say", &serde_json::json!({"text": "hi"})).await?;
//! while let Some(item) = room.next().await {
//!     match item {
//!         Ok(m) => println!("{}: {}", m.message.event, m.data),
//!         Err(e) => eprintln!("cannot read a message: {} ({e})", e.code()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `crypto`: RSA-OAEP wrapping, AES-256-GCM envelopes, device key pairs.
//! - `keyring`: the device key and room key versions on disk.
//! - `wire`: the key directory ops on the socket ([`Client::keys_publish`], ...).
//! - `owner`: the owner's loop over presence events: share on join, rotate on leave.

pub mod crypto;
pub mod keyring;
pub mod owner;
pub(crate) mod wire;

pub use crypto::DeviceKeyPair;
pub use keyring::{Keyring, RoomKeyEntry};
pub use owner::{Owner, OwnerEvent};

use crate::client::Client;
use crate::message::Message;
use crate::subscription::Subscription;
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use waas_protocol::e2ee::{RoomKeyNotice, WrappedKey, ROOM_KEY_EVENT};
use waas_protocol::ErrorCode;

/// Recipients per `room_key_put`: well under the service's default limit (100) and, at about
/// 600 bytes each, under the default frame size.
const PUT_CHUNK: usize = 50;

/// Why encrypting, decrypting or sharing failed. [`E2eeError::code`] gives the names shared
/// with the TypeScript SDK (`docs/e2ee.md#sdk-errors`).
#[derive(Debug, thiserror::Error)]
pub enum E2eeError {
    /// No room key for this key id and version, even after asking the directory.
    #[error("no room key {kid} v{v} for {channel}")]
    UnknownKey {
        channel: String,
        kid: String,
        v: u32,
    },
    /// Authentication failed: tampered, moved to another channel or event, or the wrong key.
    #[error("the envelope does not decrypt (tampered, moved, or the wrong key)")]
    DecryptFailed,
    /// The data is not an envelope.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// The service refused `room_key_put`: this connection may not share keys for the channel.
    #[error("not allowed to share keys for {channel}")]
    NotShared { channel: String },
    /// The client failed (disconnected, rejected, timed out).
    #[error(transparent)]
    Client(#[from] crate::Error),
    /// Reading or writing the keyring's files failed.
    #[error("keyring storage: {0}")]
    Storage(String),
    /// A key could not be made, parsed, wrapped or unwrapped.
    #[error("crypto: {0}")]
    Crypto(String),
}

impl E2eeError {
    /// `unknown_key`, `decrypt_failed`, `malformed_envelope`, `not_shared`; `client`,
    /// `storage` and `crypto` for failures outside the shared contract.
    pub fn code(&self) -> &'static str {
        match self {
            E2eeError::UnknownKey { .. } => "unknown_key",
            E2eeError::DecryptFailed => "decrypt_failed",
            E2eeError::MalformedEnvelope(_) => "malformed_envelope",
            E2eeError::NotShared { .. } => "not_shared",
            E2eeError::Client(_) => "client",
            E2eeError::Storage(_) => "storage",
            E2eeError::Crypto(_) => "crypto",
        }
    }
}

/// Encrypts `data` (any `Serialize`, as its JSON text) for `channel` and `event` with `key`:
/// what [`E2ee::encrypt`] does, without a connection.
pub fn seal_data<T: Serialize + ?Sized>(
    key: &RoomKeyEntry,
    channel: &str,
    event: &str,
    data: &T,
) -> Result<waas_protocol::e2ee::Envelope, E2eeError> {
    let plaintext = serde_json::to_vec(data).map_err(crate::Error::from)?;
    Ok(crypto::seal(
        &key.key, &key.kid, key.v, channel, event, &plaintext,
    ))
}

/// Decrypts `data` (the JSON text of an envelope) delivered on `channel` under `event` with
/// the keys `keyring` holds: what [`E2ee::decrypt_local`] does, without a connection.
pub fn open_data(
    keyring: &Keyring,
    channel: &str,
    event: &str,
    data: &str,
) -> Result<serde_json::Value, E2eeError> {
    let (envelope, iv, ct) = crypto::parse_envelope(data)?;
    let key = keyring
        .get(&envelope.kid, envelope.v)
        .ok_or_else(|| E2eeError::UnknownKey {
            channel: channel.to_owned(),
            kid: envelope.kid.clone(),
            v: envelope.v,
        })?;
    let plaintext = crypto::open(&key, iv, ct, channel, event)?;
    serde_json::from_slice(&plaintext).map_err(|_| E2eeError::DecryptFailed)
}

/// A delivered message with its decrypted data.
#[derive(Debug, Clone)]
pub struct Decrypted {
    pub message: Message,
    pub data: serde_json::Value,
}

/// A [`Client`] with a device's keys: encrypts, decrypts, fetches and shares room keys. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct E2ee {
    client: Client,
    keyring: Arc<Keyring>,
    sub: String,
}

impl E2ee {
    /// Publishes the device's public key to the key directory (`keys_publish`) and returns the
    /// handle. The directory keeps the key across reconnects and restarts.
    pub async fn start(client: Client, keyring: Arc<Keyring>) -> Result<E2ee, E2eeError> {
        client
            .keys_publish(&keyring.device().public_key_b64())
            .await?;
        let sub = match client.state() {
            crate::State::Connected { sub, .. } => sub,
            _ => String::new(),
        };
        Ok(E2ee {
            client,
            keyring,
            sub,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        self.keyring.device().id()
    }

    /// The user this connection is (`ready.sub`).
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// Asks the directory for the channel's room keys wrapped for this device and keeps the new
    /// ones. Returns how many were new.
    pub async fn fetch(&self, channel: &str) -> Result<usize, E2eeError> {
        let keys = self.client.room_key_get(channel).await?;
        let me = self.device_id().to_owned();
        let keyring = Arc::clone(&self.keyring);
        let channel = channel.to_owned();
        // RSA unwrapping (milliseconds a key) and the keyring's fsync block: off the runtime's
        // workers, which serve the application's other tasks meanwhile.
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            for k in keys.into_iter().filter(|k| k.device == me) {
                if keyring.has(&channel, &k.kid, k.v) {
                    continue;
                }
                match keyring.device().unwrap_key(&k.key) {
                    Ok(key) => entries.push(RoomKeyEntry {
                        kid: k.kid,
                        v: k.v,
                        key,
                    }),
                    // One bad entry (an owner's mistake) must not hide the others.
                    Err(e) => {
                        tracing::warn!(%channel, kid = %k.kid, v = k.v, error = %e, "cannot unwrap a room key")
                    }
                }
            }
            keyring.insert(&channel, entries)
        })
        .await
        .map_err(|e| E2eeError::Storage(format!("keyring task failed: {e}")))?
    }

    /// Encrypts `data` for `channel` and `event` with the newest room key held.
    pub fn encrypt<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<waas_protocol::e2ee::Envelope, E2eeError> {
        let current = self
            .keyring
            .current(channel)
            .ok_or_else(|| E2eeError::UnknownKey {
                channel: channel.to_owned(),
                kid: String::new(),
                v: 0,
            })?;
        seal_data(&current, channel, event, data)
    }

    /// Encrypts and publishes; asks the directory once when no key is held for the channel.
    /// Returns the message's offset.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<u64, E2eeError> {
        if self.keyring.current(channel).is_none() {
            self.fetch(channel).await?;
        }
        let envelope = self.encrypt(channel, event, data)?;
        Ok(self.client.publish(channel, event, &envelope).await?)
    }

    /// Decrypts `data` (JSON text) delivered on `channel` under `event` with the keys held,
    /// without asking the directory.
    pub fn decrypt_local(
        &self,
        channel: &str,
        event: &str,
        data: &str,
    ) -> Result<serde_json::Value, E2eeError> {
        open_data(&self.keyring, channel, event, data)
    }

    /// Decrypts `data` delivered on `channel` under `event`; on an unknown key, asks the
    /// directory once and tries again.
    pub async fn decrypt(
        &self,
        channel: &str,
        event: &str,
        data: &str,
    ) -> Result<serde_json::Value, E2eeError> {
        match self.decrypt_local(channel, event, data) {
            Err(E2eeError::UnknownKey { .. }) => {
                self.fetch(channel).await?;
                self.decrypt_local(channel, event, data)
            }
            other => other,
        }
    }

    /// Decrypts a delivered message.
    pub async fn open(&self, message: &Message) -> Result<serde_json::Value, E2eeError> {
        self.decrypt(&message.channel, &message.event, message.raw_data())
            .await
    }

    /// Subscribes to an encrypted channel, then fetches its room keys. The stream yields each
    /// message decrypted (or why it could not be) and handles `waas:room_key` notices itself.
    pub async fn subscribe(&self, channel: &str) -> Result<EncryptedSubscription, E2eeError> {
        let inner = self.client.subscribe(channel).await?;
        self.fetch(channel).await?;
        Ok(EncryptedSubscription {
            inner,
            e2ee: self.clone(),
        })
    }

    /// Wraps `key` for every published device of each of `subs` and stores it in the directory
    /// (several puts for many recipients). `not_shared` when the service refuses.
    pub async fn share(
        &self,
        channel: &str,
        key: &RoomKeyEntry,
        subs: &[String],
    ) -> Result<usize, E2eeError> {
        let mut wrapped = Vec::new();
        for sub in subs {
            let devices = self.client.keys_get(sub).await?;
            for d in devices {
                wrapped.push(WrappedKey {
                    sub: sub.clone(),
                    device: d.device,
                    key: crypto::wrap_key(&d.public_key, &key.key)?,
                });
            }
        }
        // This device always, whether or not its key is in the directory yet.
        if !wrapped.iter().any(|w| w.device == self.device_id()) {
            wrapped.push(WrappedKey {
                sub: self.sub.clone(),
                device: self.device_id().to_owned(),
                key: crypto::wrap_key(&self.keyring.device().public_key_b64(), &key.key)?,
            });
        }
        let total = wrapped.len();
        for chunk in wrapped.chunks(PUT_CHUNK) {
            match self
                .client
                .room_key_put(channel, &key.kid, key.v, chunk.to_vec())
                .await
            {
                Err(crate::Error::Rejected {
                    code: ErrorCode::Forbidden,
                    ..
                }) => {
                    return Err(E2eeError::NotShared {
                        channel: channel.to_owned(),
                    })
                }
                other => other?,
            }
        }
        Ok(total)
    }

    /// Makes a new room key for `channel` — version 1 with a new key id when none is held,
    /// else the next version of the current key id — shares it with `members` (and this
    /// device), and keeps it. Messages published after this returns use it.
    pub async fn rotate(
        &self,
        channel: &str,
        members: &[String],
    ) -> Result<RoomKeyEntry, E2eeError> {
        let next = match self.keyring.current(channel) {
            Some(current) => RoomKeyEntry {
                kid: current.kid,
                v: current.v + 1,
                key: crypto::random::<32>(),
            },
            None => RoomKeyEntry {
                kid: crypto::new_key_id(),
                v: 1,
                key: crypto::random::<32>(),
            },
        };
        self.share(channel, &next, members).await?;
        self.keyring.insert(channel, [next.clone()])?;
        Ok(next)
    }
}

/// The messages of an encrypted channel, decrypted; see [`E2ee::subscribe`].
#[derive(Debug)]
pub struct EncryptedSubscription {
    inner: Subscription,
    e2ee: E2ee,
}

impl EncryptedSubscription {
    pub fn channel(&self) -> &str {
        self.inner.channel()
    }

    /// The next message, decrypted, or why it could not be; `None` when the subscription ended.
    /// `waas:room_key` notices naming this user make it fetch keys and are not yielded.
    pub async fn next(&mut self) -> Option<Result<Decrypted, E2eeError>> {
        loop {
            let message = self.inner.next().await?;
            if message.event == ROOM_KEY_EVENT {
                match message.data::<RoomKeyNotice>() {
                    Ok(notice) if notice.recipients.contains(&self.e2ee.sub) => {
                        if let Err(e) = self.e2ee.fetch(&message.channel).await {
                            tracing::warn!(channel = %message.channel, error = %e, "cannot fetch room keys");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "unreadable room key notice"),
                }
                continue;
            }
            return Some(
                self.e2ee
                    .open(&message)
                    .await
                    .map(|data| Decrypted { message, data }),
            );
        }
    }

    /// Unsubscribes and waits for the server's confirmation.
    pub async fn unsubscribe(self) -> Result<(), E2eeError> {
        Ok(self.inner.unsubscribe().await?)
    }
}
