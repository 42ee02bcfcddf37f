//! [`SqliteStore`]: the embedded Store of `waas dev` and single-node installs, one file that
//! keeps apps across restarts with no database server to run.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool. One connection behind a
//! `std::sync::Mutex` serves them all: the control-plane writes rarely, and SQLite lets one writer
//! in at a time anyway. The lock is taken inside the blocking task and released before it ends, so
//! it is never held across an `.await`.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use waas_core::app::AppLimits;
use waas_core::route::Route;
use waas_protocol::AppId;

use super::migrations::{self, Migration};
use super::{
    generate_tenant_id, patch_field, stored_app_id, ApiKeyRecord, AppPatch, AppRecord, NewApiKey,
    NewApp, NewTenant, Store, StoreError, Tenant,
};

/// How long a write waits for another process holding the file's write lock (a second `waas`
/// pointed at the same file, or an operator's `sqlite3` shell) before failing with `Backend`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const TENANT_COLUMNS: &str = "id, name, created_at";
const APP_COLUMNS: &str = "id, tenant_id, name, jwt_secret, jwt_rsa_public_key, \
    jwt_ec_public_key, limits, routes, allowed_origins, version, created_at, updated_at";
const KEY_COLUMNS: &str = "app_id, id, prefix, hash, label, created_at";

/// Whether a new key (`?2` id, `?3` hash) clashes with one of app `?1`'s keys: true when on the
/// id, false when only on the hash, no row when not at all. Asked before inserting because which
/// of the two unique indexes SQLite checks first is not documented, and the answer should not
/// depend on it.
const CLASHING_KEY: &str = "SELECT id = ?2 FROM api_keys \
    WHERE app_id = ?1 AND (id = ?2 OR hash = ?3) ORDER BY id = ?2 DESC LIMIT 1";

/// One SQLite database, in a file or in memory. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating the file and its directory if needed, and brings
    /// its schema up to date. Blocks briefly; meant for start-up.
    ///
    /// The journal is put in WAL mode, so that reads do not wait for a write; `synchronous` stays
    /// at SQLite's default (FULL), so a change the store reported as done survives a power cut.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let at =
            |e: &dyn std::fmt::Display| StoreError::Backend(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| at(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| at(&e))?;
        let journal: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| at(&e))?;
        if !journal.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal, "SQLite could not use WAL mode");
        }
        Self::init(conn).map_err(|e| match e {
            StoreError::Backend(e) => at(&e),
            e => e,
        })
    }

    /// A database that lives as long as the store: for tests and throwaway runs.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(StoreError::backend)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        // Off by default in SQLite; the cascades from tenants to apps to keys depend on it.
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(StoreError::backend)?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(StoreError::backend)?;
        for migration in migrations::SQLITE {
            apply(&mut conn, migration)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            // A panic in `f` poisons the lock, but leaves the connection sound: the transaction
            // it had open rolled back when dropped. So the next call goes on with it.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Backend(format!("store task: {e}"))),
        }
    }

    /// Runs `f` in a write transaction, committed when `f` succeeds. IMMEDIATE takes the write
    /// lock at the start, so that a transaction never fails half-way for another writer.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.call(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::backend)?;
            let value = f(&tx)?;
            tx.commit().map_err(StoreError::backend)?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` in a read transaction, so that an app and its keys come from one snapshot.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.call(|conn| {
            let tx = conn.transaction().map_err(StoreError::backend)?;
            f(&tx)
        })
        .await
    }
}

/// Applies `migration` unless `schema_migrations` says it was. The IMMEDIATE transaction holds
/// the file's write lock throughout, so two processes opening the file together apply it once.
fn apply(conn: &mut Connection, migration: &Migration) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::backend)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER NOT NULL PRIMARY KEY,
             applied_at INTEGER NOT NULL
         ) STRICT;",
    )
    .map_err(StoreError::backend)?;
    let applied = tx
        .query_row(
            "SELECT 1 FROM schema_migrations WHERE version = ?1",
            [migration.version],
            |_| Ok(()),
        )
        .optional()
        .map_err(StoreError::backend)?
        .is_some();
    if !applied {
        tx.execute_batch(migration.sql).map_err(|e| {
            StoreError::Backend(format!(
                "migration {:04}_{}: {e}",
                migration.version, migration.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![migration.version, now()],
        )
        .map_err(StoreError::backend)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().map_err(StoreError::backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
        let id = new.id.unwrap_or_else(generate_tenant_id);
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, new.name, now()],
            )
            .map_err(|e| match constraint(&e) {
                Some(Constraint::Unique) => StoreError::tenant_exists(&id),
                _ => StoreError::backend(e),
            })?;
            tenant_of(tx, &id)
        })
        .await
    }

    async fn get_tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let id = id.to_owned();
        self.read(move |tx| tenant_of(tx, &id)).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                .map_err(StoreError::backend)?;
            let rows = stmt.query_map([], tenant).map_err(StoreError::backend)?;
            rows.map(|row| row.map_err(StoreError::backend)).collect()
        })
        .await
    }

    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE tenants SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )
                .map_err(StoreError::backend)?;
            if changed == 0 {
                return Err(StoreError::tenant_not_found(&id));
            }
            tenant_of(tx, &id)
        })
        .await
    }

    async fn delete_tenant(&self, id: &str) -> Result<Vec<AppId>, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let apps = {
                let mut stmt = tx
                    .prepare_cached("SELECT id FROM apps WHERE tenant_id = ?1 ORDER BY id")
                    .map_err(StoreError::backend)?;
                let rows = stmt
                    .query_map([&id], |row| row.get::<_, String>(0))
                    .map_err(StoreError::backend)?;
                rows.map(|row| stored_app_id(&row.map_err(StoreError::backend)?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            // Apps and their keys go with the tenant: ON DELETE CASCADE.
            let deleted = tx
                .execute("DELETE FROM tenants WHERE id = ?1", [&id])
                .map_err(StoreError::backend)?;
            if deleted == 0 {
                return Err(StoreError::tenant_not_found(&id));
            }
            Ok(apps)
        })
        .await
    }

    async fn create_app(&self, new: NewApp) -> Result<AppRecord, StoreError> {
        let limits = limits_to_json(&new.limits)?;
        self.write(move |tx| {
            let now = now();
            tx.execute(
                "INSERT INTO apps (id, tenant_id, name, jwt_secret, jwt_rsa_public_key, \
                     jwt_ec_public_key, limits, version, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![
                    new.id.as_str(),
                    new.tenant_id,
                    new.name,
                    new.jwt_secret,
                    new.jwt_rsa_public_key,
                    new.jwt_ec_public_key,
                    limits,
                    next_version(tx)?,
                    now,
                ],
            )
            .map_err(|e| match constraint(&e) {
                Some(Constraint::Unique) => StoreError::app_exists(&new.id),
                Some(Constraint::ForeignKey) => StoreError::tenant_not_found(&new.tenant_id),
                _ => StoreError::backend(e),
            })?;
            app_of(tx, &new.id)
        })
        .await
    }

    async fn get_app(&self, id: &AppId) -> Result<AppRecord, StoreError> {
        let id = id.clone();
        self.read(move |tx| app_of(tx, &id)).await
    }

    async fn list_apps(&self, tenant_id: Option<&str>) -> Result<Vec<AppRecord>, StoreError> {
        let tenant_id = tenant_id.map(str::to_owned);
        self.read(move |tx| {
            let ids = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id FROM apps WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY id",
                    )
                    .map_err(StoreError::backend)?;
                let rows = stmt
                    .query_map([&tenant_id], |row| row.get::<_, String>(0))
                    .map_err(StoreError::backend)?;
                rows.map(|row| stored_app_id(&row.map_err(StoreError::backend)?))
                    .collect::<Result<Vec<_>, _>>()?
            };
            // One lookup per app: an embedded store holds few apps, and each is two indexed
            // reads on a local file.
            ids.iter().map(|id| app_of(tx, id)).collect()
        })
        .await
    }

    async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<AppRecord, StoreError> {
        let id = id.clone();
        let limits = patch.limits.as_ref().map(limits_to_json).transpose()?;
        let routes = patch.routes.as_deref().map(routes_to_json).transpose()?;
        let origins = patch
            .allowed_origins
            .as_deref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(format!("allowed_origins: {e}")))?;
        self.write(move |tx| {
            if let Some(routes) = &routes {
                tx.execute(
                    "UPDATE apps SET routes = ?2 WHERE id = ?1",
                    params![id.as_str(), routes],
                )
                .map_err(StoreError::backend)?;
            }
            if let Some(origins) = &origins {
                tx.execute(
                    "UPDATE apps SET allowed_origins = ?2 WHERE id = ?1",
                    params![id.as_str(), origins],
                )
                .map_err(StoreError::backend)?;
            }
            let (set_secret, secret) = patch_field(&patch.jwt_secret);
            let (set_rsa, rsa) = patch_field(&patch.jwt_rsa_public_key);
            let (set_ec, ec) = patch_field(&patch.jwt_ec_public_key);
            let changed = tx
                .execute(
                    "UPDATE apps SET \
                         name = coalesce(?2, name), \
                         jwt_secret = CASE WHEN ?3 THEN ?4 ELSE jwt_secret END, \
                         jwt_rsa_public_key = CASE WHEN ?5 THEN ?6 ELSE jwt_rsa_public_key END, \
                         jwt_ec_public_key = CASE WHEN ?7 THEN ?8 ELSE jwt_ec_public_key END, \
                         limits = coalesce(?9, limits), \
                         version = ?10, \
                         updated_at = ?11 \
                     WHERE id = ?1",
                    params![
                        id.as_str(),
                        patch.name,
                        set_secret,
                        secret,
                        set_rsa,
                        rsa,
                        set_ec,
                        ec,
                        limits,
                        next_version(tx)?,
                        now(),
                    ],
                )
                .map_err(StoreError::backend)?;
            if changed == 0 {
                return Err(StoreError::app_not_found(&id));
            }
            app_of(tx, &id)
        })
        .await
    }

    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |tx| {
            let deleted = tx
                .execute("DELETE FROM apps WHERE id = ?1", [id.as_str()])
                .map_err(StoreError::backend)?;
            if deleted == 0 {
                return Err(StoreError::app_not_found(&id));
            }
            Ok(())
        })
        .await
    }

    async fn add_api_key(&self, app: &AppId, key: NewApiKey) -> Result<AppRecord, StoreError> {
        let app = app.clone();
        self.write(move |tx| {
            let clash = tx
                .query_row(
                    CLASHING_KEY,
                    params![app.as_str(), key.id, key.hash],
                    |row| row.get::<_, bool>(0),
                )
                .optional()
                .map_err(StoreError::backend)?;
            match clash {
                Some(true) => return Err(StoreError::key_id_exists(&app, &key.id)),
                Some(false) => return Err(StoreError::key_hash_exists(&app)),
                None => {}
            }
            tx.execute(
                "INSERT INTO api_keys (app_id, id, prefix, hash, label, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![app.as_str(), key.id, key.prefix, key.hash, key.label, now()],
            )
            .map_err(|e| match constraint(&e) {
                Some(Constraint::ForeignKey) => StoreError::app_not_found(&app),
                _ => StoreError::backend(e),
            })?;
            bump(tx, &app)
        })
        .await
    }

    async fn revoke_api_key(&self, app: &AppId, key_id: &str) -> Result<AppRecord, StoreError> {
        let (app, key_id) = (app.clone(), key_id.to_owned());
        self.write(move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM api_keys WHERE app_id = ?1 AND id = ?2",
                    params![app.as_str(), key_id],
                )
                .map_err(StoreError::backend)?;
            if deleted == 0 {
                // Which of the two is missing decides the message.
                app_of(tx, &app)?;
                return Err(StoreError::key_not_found(&app, &key_id));
            }
            bump(tx, &app)
        })
        .await
    }
}

/// The next value of the store-wide version counter (see `migrations/sqlite/0001_init.sql`).
fn next_version(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.query_row(
        "UPDATE app_versions SET last = last + 1 RETURNING last",
        [],
        |row| row.get(0),
    )
    .map_err(StoreError::backend)
}

/// Gives the app a new version after a change to its keys, and returns it as it now is.
fn bump(tx: &Transaction<'_>, id: &AppId) -> Result<AppRecord, StoreError> {
    let changed = tx
        .execute(
            "UPDATE apps SET version = ?2, updated_at = ?3 WHERE id = ?1",
            params![id.as_str(), next_version(tx)?, now()],
        )
        .map_err(StoreError::backend)?;
    if changed == 0 {
        return Err(StoreError::app_not_found(id));
    }
    app_of(tx, id)
}

fn tenant_of(tx: &Transaction<'_>, id: &str) -> Result<Tenant, StoreError> {
    tx.query_row(
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
        [id],
        tenant,
    )
    .optional()
    .map_err(StoreError::backend)?
    .ok_or_else(|| StoreError::tenant_not_found(id))
}

/// The app with its keys; `NotFound` when there is no such app.
fn app_of(tx: &Transaction<'_>, id: &AppId) -> Result<AppRecord, StoreError> {
    let mut stmt = tx
        .prepare_cached(&format!("SELECT {APP_COLUMNS} FROM apps WHERE id = ?1"))
        .map_err(StoreError::backend)?;
    let app = stmt
        .query_row([id.as_str()], AppRow::read)
        .optional()
        .map_err(StoreError::backend)?
        .ok_or_else(|| StoreError::app_not_found(id))?;
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = ?1 ORDER BY created_at, id"
        ))
        .map_err(StoreError::backend)?;
    let keys = stmt
        .query_map([id.as_str()], api_key)
        .map_err(StoreError::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    app.into_record(keys)
}

fn tenant(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: row.get("id")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    })
}

fn api_key(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get("id")?,
        prefix: row.get("prefix")?,
        hash: row.get("hash")?,
        label: row.get("label")?,
        created_at: row.get("created_at")?,
    })
}

/// An `apps` row as SQLite returns it, before the id and limits are parsed: rusqlite's row
/// closures can only fail with rusqlite errors, and a bad stored value is `Invalid`, not that.
struct AppRow {
    id: String,
    tenant_id: String,
    name: String,
    jwt_secret: Option<String>,
    jwt_rsa_public_key: Option<String>,
    jwt_ec_public_key: Option<String>,
    limits: String,
    routes: String,
    allowed_origins: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl AppRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            tenant_id: row.get("tenant_id")?,
            name: row.get("name")?,
            jwt_secret: row.get("jwt_secret")?,
            jwt_rsa_public_key: row.get("jwt_rsa_public_key")?,
            jwt_ec_public_key: row.get("jwt_ec_public_key")?,
            limits: row.get("limits")?,
            routes: row.get("routes")?,
            allowed_origins: row.get("allowed_origins")?,
            version: row.get("version")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }

    fn into_record(self, api_keys: Vec<ApiKeyRecord>) -> Result<AppRecord, StoreError> {
        let limits: AppLimits = serde_json::from_str(&self.limits)
            .map_err(|e| StoreError::Invalid(format!("stored limits of app {}: {e}", self.id)))?;
        let routes: Vec<Route> = serde_json::from_str(&self.routes)
            .map_err(|e| StoreError::Invalid(format!("stored routes of app {}: {e}", self.id)))?;
        let allowed_origins: Vec<String> =
            serde_json::from_str(&self.allowed_origins).map_err(|e| {
                StoreError::Invalid(format!("stored allowed_origins of app {}: {e}", self.id))
            })?;
        Ok(AppRecord {
            id: stored_app_id(&self.id)?,
            tenant_id: self.tenant_id,
            name: self.name,
            jwt_secret: self.jwt_secret,
            jwt_rsa_public_key: self.jwt_rsa_public_key,
            jwt_ec_public_key: self.jwt_ec_public_key,
            limits,
            routes,
            allowed_origins,
            api_keys,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn routes_to_json(routes: &[Route]) -> Result<String, StoreError> {
    serde_json::to_string(routes).map_err(|e| StoreError::Invalid(format!("routes: {e}")))
}

fn limits_to_json(limits: &AppLimits) -> Result<String, StoreError> {
    serde_json::to_string(limits).map_err(|e| StoreError::Invalid(format!("limits: {e}")))
}

/// The constraint a failed statement broke, for those that callers are told about.
enum Constraint {
    /// A primary key or a UNIQUE constraint.
    Unique,
    ForeignKey,
}

fn constraint(e: &rusqlite::Error) -> Option<Constraint> {
    let rusqlite::Error::SqliteFailure(failure, _) = e else {
        return None;
    };
    if failure.code != ErrorCode::ConstraintViolation {
        return None;
    }
    match failure.extended_code {
        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
            Some(Constraint::Unique)
        }
        rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Constraint::ForeignKey),
        _ => None,
    }
}

/// Seconds since the Unix epoch, by this machine's clock: the embedded store has one process.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
