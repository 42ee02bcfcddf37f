//! The key directory's rules, written once over the SQL layer (`store/sql.rs`): how many device
//! keys a user keeps, which room key versions are kept, and the orders reads come in.

use super::{prune_below, RoomKeyPut};
use crate::store::sql::{on_constraint, Batch, Constraint, Sql, SqlError, SqlRow};
use crate::store::StoreError;
use waas_protocol::e2ee::{DeviceKey, RoomKey};
use waas_protocol::AppId;

/// One `publish_device_key`, owned so it can travel to SQLite's thread.
pub(crate) struct DeviceKeyPut {
    pub app: AppId,
    pub sub: String,
    pub device: String,
    pub public_key: String,
    pub at: i64,
    pub max_devices: usize,
}

/// A foreign key violation means the app is gone.
fn app_error(app: &AppId) -> impl FnOnce(SqlError) -> StoreError + '_ {
    move |e| {
        on_constraint(e, |c| {
            (c == Constraint::ForeignKey).then(|| StoreError::app_not_found(app))
        })
    }
}

/// Stores the key, then drops the user's least recently published others beyond
/// `max_devices` (never the one just published).
pub(crate) async fn publish_device_key(
    db: &mut impl Sql,
    key: DeviceKeyPut,
) -> Result<DeviceKey, StoreError> {
    let DeviceKeyPut {
        app,
        sub,
        device,
        public_key,
        at,
        max_devices,
    } = key;
    db.execute(
        "INSERT INTO device_keys (app_id, sub, device, public_key, ts) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (app_id, sub, device) DO UPDATE SET \
             public_key = excluded.public_key, ts = excluded.ts",
        &[&app.as_str(), &sub, &device, &public_key, &at],
    )
    .await
    .map_err(app_error(&app))?;
    db.execute(
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
    .await?;
    Ok(DeviceKey {
        device,
        public_key,
        ts: at.max(0) as u64,
    })
}

/// Newest first, then by device.
pub(crate) async fn device_keys(
    db: &mut impl Sql,
    app: &AppId,
    sub: &str,
) -> Result<Vec<DeviceKey>, StoreError> {
    db.query(
        "SELECT device, public_key, ts FROM device_keys WHERE app_id = $1 AND sub = $2 \
         ORDER BY ts DESC, device",
        &[&app.as_str(), &sub],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(DeviceKey {
            device: r.get(0)?,
            public_key: r.get(1)?,
            ts: r.get::<i64>(2)?.max(0) as u64,
        })
    })
    .collect()
}

/// Stores the wrapped keys of one version (a `(sub, device)` given twice: the last wins), then
/// drops the versions of the key id that fall out of `keep_versions`.
pub(crate) async fn put_room_keys(
    db: &mut impl Sql,
    app: &AppId,
    put: RoomKeyPut,
) -> Result<(), StoreError> {
    let mut wrapped = Vec::with_capacity(put.wrapped.len());
    for w in put.wrapped.iter().rev() {
        if !wrapped
            .iter()
            .any(|k: &&waas_protocol::e2ee::WrappedKey| (&k.sub, &k.device) == (&w.sub, &w.device))
        {
            wrapped.push(w);
        }
    }
    if !wrapped.is_empty() {
        let n = wrapped.len();
        let text = |f: fn(&waas_protocol::e2ee::WrappedKey) -> &str| {
            Batch::Text(wrapped.iter().map(|w| f(w)).collect())
        };
        db.insert_batch(
            "INSERT INTO room_keys (app_id, channel, key_id, version, sub, device, wrapped, ts)",
            &[
                Batch::Text(vec![app.as_str(); n]),
                Batch::Text(vec![put.channel.as_str(); n]),
                Batch::Text(vec![put.key_id.as_str(); n]),
                Batch::Int(vec![i64::from(put.version); n]),
                text(|w| &w.sub),
                text(|w| &w.device),
                text(|w| &w.key),
                Batch::Int(vec![put.at; n]),
            ],
            "ON CONFLICT (app_id, channel, sub, key_id, version, device) \
             DO UPDATE SET wrapped = excluded.wrapped, ts = excluded.ts",
        )
        .await
        .map_err(app_error(app))?;
    }
    db.execute(
        "DELETE FROM room_keys WHERE app_id = $1 AND channel = $2 AND key_id = $3 \
         AND version <= $4",
        &[
            &app.as_str(),
            &put.channel,
            &put.key_id,
            &prune_below(put.version, put.keep_versions),
        ],
    )
    .await?;
    Ok(())
}

/// By key id, version, device.
pub(crate) async fn room_keys(
    db: &mut impl Sql,
    app: &AppId,
    channel: &str,
    sub: &str,
) -> Result<Vec<RoomKey>, StoreError> {
    db.query(
        "SELECT key_id, version, device, wrapped FROM room_keys \
         WHERE app_id = $1 AND channel = $2 AND sub = $3 \
         ORDER BY key_id, version, device",
        &[&app.as_str(), &channel, &sub],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RoomKey {
            kid: r.get(0)?,
            v: r.get::<i64>(1)? as u32,
            device: r.get(2)?,
            key: r.get(3)?,
        })
    })
    .collect()
}
