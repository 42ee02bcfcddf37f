//! [`KeyStore`] on PostgreSQL, for cluster mode: each call one transaction.

use super::PostgresStore;
use crate::store::keys::{prune_below, KeyStore, RoomKeyPut};
use crate::store::StoreError;
use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use waas_protocol::e2ee::{DeviceKey, RoomKey};
use waas_protocol::AppId;

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::backend(e)
}

/// A foreign key violation means the app is gone.
fn app_error(app: &AppId) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| match e.code() {
        Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::app_not_found(app),
        _ => backend(e),
    }
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn publish_device_key(
        &self,
        app: &AppId,
        sub: &str,
        device: &str,
        public_key: &str,
        at: i64,
        max_devices: usize,
    ) -> Result<DeviceKey, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO device_keys (app_id, sub, device, public_key, ts) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, sub, device) DO UPDATE SET \
                 public_key = excluded.public_key, ts = excluded.ts",
            &[&app.as_str(), &sub, &device, &public_key, &at],
        )
        .await
        .map_err(app_error(app))?;
        tx.execute(
            "DELETE FROM device_keys WHERE app_id = $1 AND sub = $2 AND device <> $3 \
             AND device NOT IN (SELECT device FROM device_keys \
                 WHERE app_id = $1 AND sub = $2 AND device <> $3 \
                 ORDER BY ts DESC, device LIMIT $4)",
            &[
                &app.as_str(),
                &sub,
                &device,
                &(max_devices.saturating_sub(1) as i64),
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(DeviceKey {
            device: device.to_owned(),
            public_key: public_key.to_owned(),
            ts: at.max(0) as u64,
        })
    }

    async fn device_keys(&self, app: &AppId, sub: &str) -> Result<Vec<DeviceKey>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT device, public_key, ts FROM device_keys WHERE app_id = $1 AND sub = $2 \
                 ORDER BY ts DESC, device",
                &[&app.as_str(), &sub],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(DeviceKey {
                    device: r.try_get(0).map_err(backend)?,
                    public_key: r.try_get(1).map_err(backend)?,
                    ts: r.try_get::<_, i64>(2).map_err(backend)?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn put_room_keys(&self, app: &AppId, put: &RoomKeyPut) -> Result<(), StoreError> {
        let RoomKeyPut {
            channel,
            key_id,
            version,
            wrapped,
            at,
            keep_versions,
        } = put;
        let (version, at, keep_versions) = (*version, *at, *keep_versions);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let subs: Vec<&str> = wrapped.iter().map(|w| w.sub.as_str()).collect();
        let devices: Vec<&str> = wrapped.iter().map(|w| w.device.as_str()).collect();
        let keys: Vec<&str> = wrapped.iter().map(|w| w.key.as_str()).collect();
        let version = i64::from(version);
        // One statement for the whole put. A repeated (sub, device) in one put would make
        // ON CONFLICT touch a row twice, so the last entry of each wins by DISTINCT ON.
        tx.execute(
            "INSERT INTO room_keys (app_id, channel, key_id, version, sub, device, wrapped, ts) \
             SELECT DISTINCT ON (sub, device) $1, $2, $3, $4, sub, device, wrapped, $8 \
             FROM UNNEST($5::text[], $6::text[], $7::text[]) WITH ORDINALITY \
                 AS w(sub, device, wrapped, n) \
             ORDER BY sub, device, n DESC \
             ON CONFLICT (app_id, channel, sub, key_id, version, device) \
             DO UPDATE SET wrapped = excluded.wrapped, ts = excluded.ts",
            &[
                &app.as_str(),
                &channel,
                &key_id,
                &version,
                &subs,
                &devices,
                &keys,
                &at,
            ],
        )
        .await
        .map_err(app_error(app))?;
        tx.execute(
            "DELETE FROM room_keys WHERE app_id = $1 AND channel = $2 AND key_id = $3 \
             AND version <= $4",
            &[
                &app.as_str(),
                &channel,
                &key_id,
                &prune_below(version as u32, keep_versions),
            ],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn room_keys(
        &self,
        app: &AppId,
        channel: &str,
        sub: &str,
    ) -> Result<Vec<RoomKey>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key_id, version, device, wrapped FROM room_keys \
                 WHERE app_id = $1 AND channel = $2 AND sub = $3 \
                 ORDER BY key_id, version, device",
                &[&app.as_str(), &channel, &sub],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(RoomKey {
                    kid: r.try_get(0).map_err(backend)?,
                    v: r.try_get::<_, i64>(1).map_err(backend)? as u32,
                    device: r.try_get(2).map_err(backend)?,
                    key: r.try_get(3).map_err(backend)?,
                })
            })
            .collect()
    }
}
