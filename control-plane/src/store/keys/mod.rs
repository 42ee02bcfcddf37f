//! The **key store seam**: the key directory of end-to-end encryption (`docs/e2ee.md`) —
//! devices' public keys by user and room keys wrapped for devices. Implemented by both stores
//! (`sqlite/keys.rs`, `postgres/keys.rs`) and run through one suite,
//! `control-plane/tests/key_store.rs`.
//!
//! Guarantees: every method is atomic. A user keeps at most `max_devices` keys: publishing one
//! more removes the least recently published others (never the one just published). A put
//! replaces entries with the same `(channel, key_id, version, sub, device)` and keeps the
//! newest `keep_versions` versions of the key id. Reads are ordered: device keys newest first
//! (then by device), room keys by key id, version, device.

pub(crate) mod rules;

use super::StoreError;
use async_trait::async_trait;
use waas_protocol::e2ee::{DeviceKey, RoomKey, WrappedKey};
use waas_protocol::AppId;

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores (or refreshes, with `ts` = `at`) a device key of `sub`. `NotFound` when the app
    /// does not exist.
    async fn publish_device_key(
        &self,
        app: &AppId,
        sub: &str,
        device: &str,
        public_key: &str,
        at: i64,
        max_devices: usize,
    ) -> Result<DeviceKey, StoreError>;

    /// The device keys of `sub`, newest first.
    async fn device_keys(&self, app: &AppId, sub: &str) -> Result<Vec<DeviceKey>, StoreError>;

    /// Stores `put.wrapped` for one version of a channel's room key. `NotFound` when the app
    /// does not exist.
    async fn put_room_keys(&self, app: &AppId, put: &RoomKeyPut) -> Result<(), StoreError>;

    /// The channel's room keys wrapped for `sub`, every kept version.
    async fn room_keys(
        &self,
        app: &AppId,
        channel: &str,
        sub: &str,
    ) -> Result<Vec<RoomKey>, StoreError>;
}

/// One `room_key_put`, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeyPut {
    pub channel: String,
    pub key_id: String,
    pub version: u32,
    pub wrapped: Vec<WrappedKey>,
    /// When, ms since the epoch.
    pub at: i64,
    /// Versions of the key id to keep (`max_room_key_versions`).
    pub keep_versions: u32,
}

/// Versions of `key_id` at or below this are dropped when `version` is stored (0: none).
pub(crate) fn prune_below(version: u32, keep_versions: u32) -> i64 {
    i64::from(version) - i64::from(keep_versions.max(1))
}

/// The [`KeyStore`] of a backend, written once over its transaction runner (see
/// `store::webhooks::impl_webhook_store`).
macro_rules! impl_key_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use waas_protocol::e2ee::{DeviceKey, RoomKey};
            use waas_protocol::AppId;
            use $crate::store::keys::{rules, KeyStore, RoomKeyPut};
            use $crate::store::StoreError;

            #[async_trait::async_trait]
            impl KeyStore for $store {
                async fn publish_device_key(
                    &self,
                    app: &AppId,
                    sub: &str,
                    device: &str,
                    public_key: &str,
                    at: i64,
                    max_devices: usize,
                ) -> Result<DeviceKey, StoreError> {
                    let key = rules::DeviceKeyPut {
                        app: app.clone(),
                        sub: sub.to_owned(),
                        device: device.to_owned(),
                        public_key: public_key.to_owned(),
                        at,
                        max_devices,
                    };
                    $tx!(self, write, |db| rules::publish_device_key(db, key))
                }

                async fn device_keys(
                    &self,
                    app: &AppId,
                    sub: &str,
                ) -> Result<Vec<DeviceKey>, StoreError> {
                    let (app, sub) = (app.clone(), sub.to_owned());
                    $tx!(self, read, |db| rules::device_keys(db, &app, &sub))
                }

                async fn put_room_keys(
                    &self,
                    app: &AppId,
                    put: &RoomKeyPut,
                ) -> Result<(), StoreError> {
                    let (app, put) = (app.clone(), put.clone());
                    $tx!(self, write, |db| rules::put_room_keys(db, &app, put))
                }

                async fn room_keys(
                    &self,
                    app: &AppId,
                    channel: &str,
                    sub: &str,
                ) -> Result<Vec<RoomKey>, StoreError> {
                    let (app, channel, sub) = (app.clone(), channel.to_owned(), sub.to_owned());
                    $tx!(self, read, |db| rules::room_keys(db, &app, &channel, &sub))
                }
            }
        };
    };
}
pub(crate) use impl_key_store;
