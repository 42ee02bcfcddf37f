//! [`KeyStore`] on SQLite, for `waas dev`: each call one IMMEDIATE transaction.

use super::SqliteStore;
use crate::store::keys::{prune_below, KeyStore, RoomKeyPut};
use crate::store::StoreError;
use async_trait::async_trait;
use rusqlite::{params, ErrorCode, Transaction};
use waas_protocol::e2ee::{DeviceKey, RoomKey};
use waas_protocol::AppId;

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

/// A foreign key violation means the app is gone.
fn app_error(app: &AppId) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::app_not_found(app),
        _ => backend(e),
    }
}

fn device_keys(tx: &Transaction, app: &str, sub: &str) -> Result<Vec<DeviceKey>, StoreError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT device, public_key, ts FROM device_keys WHERE app_id = ?1 AND sub = ?2 \
             ORDER BY ts DESC, device",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![app, sub], |r| {
            Ok(DeviceKey {
                device: r.get(0)?,
                public_key: r.get(1)?,
                ts: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    Ok(rows)
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn publish_device_key(
        &self,
        app: &AppId,
        sub: &str,
        device: &str,
        public_key: &str,
        at: i64,
        max_devices: usize,
    ) -> Result<DeviceKey, StoreError> {
        let (app, sub, device, public_key) = (
            app.clone(),
            sub.to_owned(),
            device.to_owned(),
            public_key.to_owned(),
        );
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO device_keys (app_id, sub, device, public_key, ts) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (app_id, sub, device) DO UPDATE SET \
                     public_key = excluded.public_key, ts = excluded.ts",
                params![app.as_str(), sub, device, public_key, at],
            )
            .map_err(app_error(&app))?;
            tx.execute(
                "DELETE FROM device_keys WHERE app_id = ?1 AND sub = ?2 AND device <> ?3 \
                 AND device NOT IN (SELECT device FROM device_keys \
                     WHERE app_id = ?1 AND sub = ?2 AND device <> ?3 \
                     ORDER BY ts DESC, device LIMIT ?4)",
                params![
                    app.as_str(),
                    sub,
                    device,
                    max_devices.saturating_sub(1) as i64
                ],
            )
            .map_err(backend)?;
            Ok(DeviceKey {
                device,
                public_key,
                ts: at.max(0) as u64,
            })
        })
        .await
    }

    async fn device_keys(&self, app: &AppId, sub: &str) -> Result<Vec<DeviceKey>, StoreError> {
        let (app, sub) = (app.as_str().to_owned(), sub.to_owned());
        self.read(move |tx| device_keys(tx, &app, &sub)).await
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
        let (app, channel, key_id, wrapped) = (
            app.clone(),
            channel.to_owned(),
            key_id.to_owned(),
            wrapped.to_vec(),
        );
        self.write(move |tx| {
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO room_keys \
                             (app_id, channel, key_id, version, sub, device, wrapped, ts) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (app_id, channel, sub, key_id, version, device) \
                         DO UPDATE SET wrapped = excluded.wrapped, ts = excluded.ts",
                    )
                    .map_err(backend)?;
                for w in &wrapped {
                    stmt.execute(params![
                        app.as_str(),
                        channel,
                        key_id,
                        i64::from(version),
                        w.sub,
                        w.device,
                        w.key,
                        at
                    ])
                    .map_err(app_error(&app))?;
                }
            }
            tx.execute(
                "DELETE FROM room_keys WHERE app_id = ?1 AND channel = ?2 AND key_id = ?3 \
                 AND version <= ?4",
                params![
                    app.as_str(),
                    channel,
                    key_id,
                    prune_below(version, keep_versions)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn room_keys(
        &self,
        app: &AppId,
        channel: &str,
        sub: &str,
    ) -> Result<Vec<RoomKey>, StoreError> {
        let (app, channel, sub) = (app.as_str().to_owned(), channel.to_owned(), sub.to_owned());
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT key_id, version, device, wrapped FROM room_keys \
                     WHERE app_id = ?1 AND channel = ?2 AND sub = ?3 \
                     ORDER BY key_id, version, device",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![app, channel, sub], |r| {
                    Ok(RoomKey {
                        kid: r.get(0)?,
                        v: r.get::<_, i64>(1)? as u32,
                        device: r.get(2)?,
                        key: r.get(3)?,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }
}
