//! Apps and their API keys, written once over the SQL layer (`store/sql.rs`): every change
//! takes a new version from the store-wide counter, so gateways can tell a stale update.

use std::collections::HashMap;

use super::sql::{on_constraint, Constraint, Sql, SqlRow};
use super::{
    patch_field, stored_app_id, ApiKeyRecord, AppPatch, AppRecord, NewApiKey, NewApp, StoreError,
};
use waas_core::app::AppLimits;
use waas_core::route::Route;
use waas_protocol::AppId;

/// JSON columns read as text, so both backends hand back the same thing.
fn app_columns<S: Sql>() -> String {
    format!(
        "id, tenant_id, name, jwt_secret, jwt_rsa_public_key, jwt_ec_public_key, limits::text, \
         routes::text, allowed_origins::text, version, {}, {}, pusher_secret, \
         pusher_client_events",
        S::epoch("created_at"),
        S::epoch("updated_at")
    )
}

fn key_columns<S: Sql>() -> String {
    format!(
        "app_id, id, prefix, hash, label, {}",
        S::epoch("created_at")
    )
}

/// Whether a new key (`$2` id, `$3` hash) clashes with one of app `$1`'s keys, and on what:
/// asked before inserting so that a key clashing on both is reported as the same id whichever
/// index the database checks first.
const CLASHING_KEY: &str = "SELECT id = $2 FROM api_keys \
    WHERE app_id = $1 AND (id = $2 OR hash = $3) ORDER BY id = $2 DESC LIMIT 1";

fn json<T: serde::Serialize + ?Sized>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

fn stored<T: serde::de::DeserializeOwned>(app: &str, what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Invalid(format!("stored {what} of app {app}: {e}")))
}

fn app(row: &impl SqlRow, api_keys: Vec<ApiKeyRecord>) -> Result<AppRecord, StoreError> {
    let id: String = row.get(0)?;
    let limits: AppLimits = stored(&id, "limits", &row.get::<String>(6)?)?;
    let routes: Vec<Route> = stored(&id, "routes", &row.get::<String>(7)?)?;
    let allowed_origins: Vec<String> = stored(&id, "allowed_origins", &row.get::<String>(8)?)?;
    Ok(AppRecord {
        id: stored_app_id(&id)?,
        tenant_id: row.get(1)?,
        name: row.get(2)?,
        jwt_secret: row.get(3)?,
        jwt_rsa_public_key: row.get(4)?,
        jwt_ec_public_key: row.get(5)?,
        limits,
        routes,
        allowed_origins,
        api_keys,
        version: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        pusher_secret: row.get(12)?,
        pusher_client_events: row.get(13)?,
    })
}

/// The key, and the app it belongs to.
fn api_key(row: &impl SqlRow) -> Result<(String, ApiKeyRecord), StoreError> {
    Ok((
        row.get(0)?,
        ApiKeyRecord {
            id: row.get(1)?,
            prefix: row.get(2)?,
            hash: row.get(3)?,
            label: row.get(4)?,
            created_at: row.get(5)?,
        },
    ))
}

/// Oldest first (by `created_at`, then `id`).
async fn keys_of<S: Sql>(db: &mut S, id: &AppId) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let sql = format!(
        "SELECT {} FROM api_keys WHERE app_id = $1 ORDER BY created_at, id",
        key_columns::<S>()
    );
    db.query(&sql, &[&id.as_str()])
        .await?
        .iter()
        .map(|row| Ok(api_key(row)?.1))
        .collect()
}

pub(crate) async fn create<S: Sql>(db: &mut S, new: NewApp) -> Result<AppRecord, StoreError> {
    let limits = json("limits", &new.limits)?;
    let version = db.next_version().await?;
    let sql = format!(
        "INSERT INTO apps (id, tenant_id, name, jwt_secret, jwt_rsa_public_key, \
             jwt_ec_public_key, limits, pusher_secret, pusher_client_events, version, \
             created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9::bool, {version}, {now}, \
             {now}) \
         RETURNING {}",
        app_columns::<S>(),
        now = S::NOW,
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &new.id.as_str(),
                &new.tenant_id,
                &new.name,
                &new.jwt_secret,
                &new.jwt_rsa_public_key,
                &new.jwt_ec_public_key,
                &limits,
                &new.pusher_secret,
                &new.pusher_client_events,
            ],
        )
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                Some(match c {
                    Constraint::Unique => StoreError::app_exists(&new.id),
                    Constraint::ForeignKey => StoreError::tenant_not_found(&new.tenant_id),
                })
            })
        })?;
    app(
        &row.ok_or_else(|| StoreError::app_not_found(&new.id))?,
        Vec::new(),
    )
}

/// The app with its keys; `NotFound` when there is no such app.
pub(crate) async fn get<S: Sql>(db: &mut S, id: &AppId) -> Result<AppRecord, StoreError> {
    let sql = format!("SELECT {} FROM apps WHERE id = $1", app_columns::<S>());
    let row = db
        .query_opt(&sql, &[&id.as_str()])
        .await?
        .ok_or_else(|| StoreError::app_not_found(id))?;
    app(&row, keys_of(db, id).await?)
}

/// All apps, or those of one tenant, by id: two reads, whatever the number of apps.
pub(crate) async fn list<S: Sql>(
    db: &mut S,
    tenant_id: Option<&str>,
) -> Result<Vec<AppRecord>, StoreError> {
    let filter = "$1::text IS NULL OR tenant_id = $1";
    let apps = db
        .query(
            &format!(
                "SELECT {} FROM apps WHERE {filter} ORDER BY id",
                app_columns::<S>()
            ),
            &[&tenant_id],
        )
        .await?;
    let key_rows = db
        .query(
            &format!(
                "SELECT {} FROM api_keys WHERE app_id IN (SELECT id FROM apps WHERE {filter}) \
                 ORDER BY app_id, created_at, id",
                key_columns::<S>()
            ),
            &[&tenant_id],
        )
        .await?;
    let mut keys: HashMap<String, Vec<ApiKeyRecord>> = HashMap::new();
    for row in &key_rows {
        let (app_id, key) = api_key(row)?;
        keys.entry(app_id).or_default().push(key);
    }
    apps.iter()
        .map(|row| {
            let id: String = row.get(0)?;
            app(row, keys.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// Bumps the version even for an empty patch, so that a caller can make gateways reload.
pub(crate) async fn update<S: Sql>(
    db: &mut S,
    id: &AppId,
    patch: AppPatch,
) -> Result<AppRecord, StoreError> {
    let limits = patch
        .limits
        .as_ref()
        .map(|l| json("limits", l))
        .transpose()?;
    let routes = patch
        .routes
        .as_deref()
        .map(|r| json("routes", r))
        .transpose()?;
    let origins = patch
        .allowed_origins
        .as_deref()
        .map(|o| json("allowed_origins", o))
        .transpose()?;
    if let Some(routes) = &routes {
        db.execute(
            "UPDATE apps SET routes = $2::text::jsonb WHERE id = $1",
            &[&id.as_str(), routes],
        )
        .await?;
    }
    if let Some(origins) = &origins {
        db.execute(
            "UPDATE apps SET allowed_origins = $2::text::jsonb WHERE id = $1",
            &[&id.as_str(), origins],
        )
        .await?;
    }
    let (set_secret, secret) = patch_field(&patch.jwt_secret);
    let (set_rsa, rsa) = patch_field(&patch.jwt_rsa_public_key);
    let (set_ec, ec) = patch_field(&patch.jwt_ec_public_key);
    let (set_pusher, pusher_secret) = patch_field(&patch.pusher_secret);
    let version = db.next_version().await?;
    let sql = format!(
        "UPDATE apps SET \
             name = coalesce($2, name), \
             jwt_secret = CASE WHEN $3::bool THEN $4::text ELSE jwt_secret END, \
             jwt_rsa_public_key = CASE WHEN $5::bool THEN $6::text ELSE jwt_rsa_public_key END, \
             jwt_ec_public_key = CASE WHEN $7::bool THEN $8::text ELSE jwt_ec_public_key END, \
             limits = coalesce($9::text::jsonb, limits), \
             pusher_secret = CASE WHEN $10::bool THEN $11::text ELSE pusher_secret END, \
             pusher_client_events = coalesce($12::bool, pusher_client_events), \
             version = {version}, \
             updated_at = {} \
         WHERE id = $1 RETURNING {}",
        S::NOW,
        app_columns::<S>()
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &id.as_str(),
                &patch.name,
                &set_secret,
                &secret,
                &set_rsa,
                &rsa,
                &set_ec,
                &ec,
                &limits,
                &set_pusher,
                &pusher_secret,
                &patch.pusher_client_events,
            ],
        )
        .await?
        .ok_or_else(|| StoreError::app_not_found(id))?;
    app(&row, keys_of(db, id).await?)
}

/// `NotFound` unless the app exists: for rows that hang on an app.
pub(crate) async fn require(db: &mut impl Sql, id: &AppId) -> Result<(), StoreError> {
    match db
        .query_opt("SELECT 1 FROM apps WHERE id = $1", &[&id.as_str()])
        .await?
    {
        Some(_) => Ok(()),
        None => Err(StoreError::app_not_found(id)),
    }
}

/// Its keys go with it: ON DELETE CASCADE.
pub(crate) async fn delete(db: &mut impl Sql, id: &AppId) -> Result<(), StoreError> {
    let deleted = db
        .execute("DELETE FROM apps WHERE id = $1", &[&id.as_str()])
        .await?;
    if deleted == 0 {
        return Err(StoreError::app_not_found(id));
    }
    Ok(())
}

pub(crate) async fn add_key<S: Sql>(
    db: &mut S,
    app_id: &AppId,
    key: NewApiKey,
) -> Result<AppRecord, StoreError> {
    let clash = db
        .query_opt(CLASHING_KEY, &[&app_id.as_str(), &key.id, &key.hash])
        .await?;
    if let Some(row) = clash {
        return Err(if row.get(0)? {
            StoreError::key_id_exists(app_id, &key.id)
        } else {
            StoreError::key_hash_exists(app_id)
        });
    }
    let sql = format!(
        "INSERT INTO api_keys (app_id, id, prefix, hash, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, {})",
        S::NOW
    );
    db.execute(
        &sql,
        &[
            &app_id.as_str(),
            &key.id,
            &key.prefix,
            &key.hash,
            &key.label,
        ],
    )
    .await
    .map_err(|e| match e.constraint {
        Some(Constraint::ForeignKey) => StoreError::app_not_found(app_id),
        // A key added by another transaction since the check above.
        Some(Constraint::Unique) if e.constraint_name.as_deref() == Some("api_keys_pkey") => {
            StoreError::key_id_exists(app_id, &key.id)
        }
        Some(Constraint::Unique) => StoreError::key_hash_exists(app_id),
        None => e.error,
    })?;
    bump(db, app_id).await
}

pub(crate) async fn revoke_key(
    db: &mut impl Sql,
    app_id: &AppId,
    key_id: &str,
) -> Result<AppRecord, StoreError> {
    let deleted = db
        .execute(
            "DELETE FROM api_keys WHERE app_id = $1 AND id = $2",
            &[&app_id.as_str(), &key_id],
        )
        .await?;
    if deleted == 0 {
        // Which of the two is missing decides the message.
        require(db, app_id).await?;
        return Err(StoreError::key_not_found(app_id, key_id));
    }
    bump(db, app_id).await
}

/// Gives the app a new version after a change to its keys, and returns it as it now is.
async fn bump<S: Sql>(db: &mut S, id: &AppId) -> Result<AppRecord, StoreError> {
    let version = db.next_version().await?;
    let sql = format!(
        "UPDATE apps SET version = {version}, updated_at = {} WHERE id = $1 RETURNING {}",
        S::NOW,
        app_columns::<S>()
    );
    let row = db
        .query_opt(&sql, &[&id.as_str()])
        .await?
        .ok_or_else(|| StoreError::app_not_found(id))?;
    app(&row, keys_of(db, id).await?)
}
