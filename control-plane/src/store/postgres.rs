//! [`PostgresStore`]: the Store of cluster mode, where several control-planes share one database
//! and its transactions keep them consistent.
//!
//! No TLS: the database is expected on localhost or a private network, and leaving TLS out keeps
//! a second TLS stack out of the binary. Timestamps are the database's `now()`, one clock for every
//! control-plane; versions come from the `app_versions` sequence (see `migrations/postgres`).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::{IsolationLevel, NoTls, Row, Transaction};
use waas_core::app::AppLimits;
use waas_core::route::Route;
use waas_protocol::AppId;

use super::migrations::{self, Migration};
use super::{
    generate_tenant_id, patch_field, stored_app_id, ApiKeyRecord, AppPatch, AppRecord, NewApiKey,
    NewApp, NewTenant, Store, StoreError, Tenant,
};

/// How long a request waits for a pooled connection, or for a new one to be opened, before it
/// fails with `Backend`: a database that is down should give callers an error, not a hang.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

const TENANT_COLUMNS: &str =
    "id, name, floor(extract(epoch FROM created_at))::bigint AS created_at";
const APP_COLUMNS: &str = "id, tenant_id, name, jwt_secret, jwt_rsa_public_key, \
    jwt_ec_public_key, limits, routes, allowed_origins, version, \
    floor(extract(epoch FROM created_at))::bigint AS created_at, \
    floor(extract(epoch FROM updated_at))::bigint AS updated_at";
const KEY_COLUMNS: &str = "app_id, id, prefix, hash, label, \
    floor(extract(epoch FROM created_at))::bigint AS created_at";

/// Whether a new key (`$2` id, `$3` hash) clashes with one of app `$1`'s keys, and on what:
/// asked before inserting so that a key clashing on both is reported as the same id in both
/// stores, whichever index the database checks first.
const CLASHING_KEY: &str = "SELECT id = $2 AS same_id FROM api_keys \
    WHERE app_id = $1 AND (id = $2 OR hash = $3) ORDER BY id = $2 DESC LIMIT 1";

/// Gives the app a new version and returns its row; `$1` is the app id.
const BUMP_APP: &str = "UPDATE apps SET version = nextval('app_versions'), updated_at = now() \
    WHERE id = $1 RETURNING ";

/// A pool of connections to one database (and one `search_path`). Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Opens a pool on `database_url` (`postgres://user@host:port/db?options=...`) and checks that
    /// one connection can be made, so that a wrong URL fails at start-up rather than at the first
    /// request. `?options=-c%20search_path%3Dname` puts the tables in another schema, which is
    /// how tests get a database each. Does not migrate: call [`PostgresStore::migrate`].
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = database_url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database URL: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A closed connection is noticed without a round trip; one that broke silently
                // fails one request and is then dropped.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Invalid(format!("connection pool: {e}")))?;
        let store = Self { pool };
        // Back to the pool, for the first request to use.
        drop(store.pool.get().await.map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to PostgreSQL at {}: {}",
                target(&config),
                super::error::chain(&e)
            ))
        })?);
        Ok(store)
    }

    /// Brings the schema up to date: applies each migration not yet recorded in
    /// `schema_migrations`, in order, one transaction each.
    ///
    /// Every transaction first takes an advisory lock named after the current schema, so
    /// control-planes starting together apply each migration once, while tests in different
    /// schemas do not wait for one another.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(StoreError::backend)?;
        for migration in migrations::POSTGRES {
            let tx = client.transaction().await.map_err(StoreError::backend)?;
            apply(&tx, migration).await?;
            tx.commit().await.map_err(StoreError::backend)?;
        }
        let newest: Option<i32> = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StoreError::backend)?;
        let known = migrations::POSTGRES.last().map_or(0, |m| m.version);
        if newest.is_some_and(|newest| newest > known) {
            tracing::warn!(
                newest,
                known,
                "the database was migrated by a newer control-plane"
            );
        }
        Ok(())
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(StoreError::backend)
    }
}

/// Where `config` points, for error messages: hosts with ports, database and user; never the
/// password.
fn target(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            // One port for all hosts, or one per host; 5432 when none is given.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}/.s.PGSQL.{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "the default host".to_owned()
    } else {
        hosts.join(",")
    };
    format!(
        "{hosts} (database {}, user {})",
        config.get_dbname().unwrap_or("(the user's)"),
        config.get_user().unwrap_or("(unset)")
    )
}

async fn apply(tx: &Transaction<'_>, migration: &Migration) -> Result<(), StoreError> {
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(
             hashtextextended('waas.migrate.' || coalesce(current_schema(), ''), 0));
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await
    .map_err(StoreError::backend)?;
    let applied = tx
        .query_opt(
            "SELECT 1 FROM schema_migrations WHERE version = $1",
            &[&migration.version],
        )
        .await
        .map_err(StoreError::backend)?
        .is_some();
    if applied {
        return Ok(());
    }
    tx.batch_execute(migration.sql).await.map_err(|e| {
        StoreError::Backend(format!(
            "migration {:04}_{}: {e}",
            migration.version, migration.name
        ))
    })?;
    tx.execute(
        "INSERT INTO schema_migrations (version) VALUES ($1)",
        &[&migration.version],
    )
    .await
    .map_err(StoreError::backend)?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied migration"
    );
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
        let id = new.id.unwrap_or_else(generate_tenant_id);
        let sql =
            format!("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING {TENANT_COLUMNS}");
        let row = self
            .client()
            .await?
            .query_one(&sql, &[&id, &new.name])
            .await
            .map_err(|e| match e.code() {
                Some(&SqlState::UNIQUE_VIOLATION) => StoreError::tenant_exists(&id),
                _ => StoreError::backend(e),
            })?;
        tenant(&row)
    }

    async fn get_tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&id])
            .await
            .map_err(StoreError::backend)?;
        tenant(&row.ok_or_else(|| StoreError::tenant_not_found(id))?)
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id");
        let rows = self
            .client()
            .await?
            .query(&sql, &[])
            .await
            .map_err(StoreError::backend)?;
        rows.iter().map(tenant).collect()
    }

    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        let sql = format!("UPDATE tenants SET name = $2 WHERE id = $1 RETURNING {TENANT_COLUMNS}");
        let row = self
            .client()
            .await?
            .query_opt(&sql, &[&id, &name])
            .await
            .map_err(StoreError::backend)?;
        tenant(&row.ok_or_else(|| StoreError::tenant_not_found(id))?)
    }

    async fn delete_tenant(&self, id: &str) -> Result<Vec<AppId>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        // Locking the tenant first makes a concurrent create_app for it wait (its foreign-key
        // check needs a share lock on this row) and then fail with NotFound, so no app can slip
        // in after the list below is read and be deleted without being reported.
        tx.query_opt("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(StoreError::backend)?
            .ok_or_else(|| StoreError::tenant_not_found(id))?;
        let apps = tx
            .query(
                "SELECT id FROM apps WHERE tenant_id = $1 ORDER BY id",
                &[&id],
            )
            .await
            .map_err(StoreError::backend)?
            .iter()
            .map(|row| stored_app_id(&get::<String>(row, "id")?))
            .collect::<Result<Vec<_>, _>>()?;
        // Apps and their keys go with the tenant: ON DELETE CASCADE.
        tx.execute("DELETE FROM tenants WHERE id = $1", &[&id])
            .await
            .map_err(StoreError::backend)?;
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(apps)
    }

    async fn create_app(&self, new: NewApp) -> Result<AppRecord, StoreError> {
        let sql = format!(
            "INSERT INTO apps (id, tenant_id, name, jwt_secret, jwt_rsa_public_key, \
                 jwt_ec_public_key, limits) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {APP_COLUMNS}"
        );
        let row = self
            .client()
            .await?
            .query_one(
                &sql,
                &[
                    &new.id.as_str(),
                    &new.tenant_id,
                    &new.name,
                    &new.jwt_secret,
                    &new.jwt_rsa_public_key,
                    &new.jwt_ec_public_key,
                    &Json(&new.limits),
                ],
            )
            .await
            .map_err(|e| match e.code() {
                Some(&SqlState::UNIQUE_VIOLATION) => StoreError::app_exists(&new.id),
                Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                    StoreError::tenant_not_found(&new.tenant_id)
                }
                _ => StoreError::backend(e),
            })?;
        app(&row, Vec::new())
    }

    async fn get_app(&self, id: &AppId) -> Result<AppRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
        let row = tx
            .query_opt(&sql, &[&id.as_str()])
            .await
            .map_err(StoreError::backend)?
            .ok_or_else(|| StoreError::app_not_found(id))?;
        let record = app(&row, keys_of(&tx, id).await?)?;
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(record)
    }

    async fn list_apps(&self, tenant_id: Option<&str>) -> Result<Vec<AppRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let filter = "$1::text IS NULL OR tenant_id = $1";
        let apps = tx
            .query(
                &format!("SELECT {APP_COLUMNS} FROM apps WHERE {filter} ORDER BY id"),
                &[&tenant_id],
            )
            .await
            .map_err(StoreError::backend)?;
        let key_rows = tx
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys \
                     WHERE app_id IN (SELECT id FROM apps WHERE {filter}) \
                     ORDER BY app_id, created_at, id"
                ),
                &[&tenant_id],
            )
            .await
            .map_err(StoreError::backend)?;
        tx.commit().await.map_err(StoreError::backend)?;
        let mut keys: HashMap<String, Vec<ApiKeyRecord>> = HashMap::new();
        for row in &key_rows {
            keys.entry(get(row, "app_id")?)
                .or_default()
                .push(api_key(row)?);
        }
        apps.iter()
            .map(|row| {
                let id: String = get(row, "id")?;
                app(row, keys.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<AppRecord, StoreError> {
        let (set_secret, secret) = patch_field(&patch.jwt_secret);
        let (set_rsa, rsa) = patch_field(&patch.jwt_rsa_public_key);
        let (set_ec, ec) = patch_field(&patch.jwt_ec_public_key);
        let sql = format!(
            "UPDATE apps SET \
                 name = coalesce($2, name), \
                 jwt_secret = CASE WHEN $3::bool THEN $4::text ELSE jwt_secret END, \
                 jwt_rsa_public_key = CASE WHEN $5::bool THEN $6::text ELSE jwt_rsa_public_key END, \
                 jwt_ec_public_key = CASE WHEN $7::bool THEN $8::text ELSE jwt_ec_public_key END, \
                 limits = coalesce($9::jsonb, limits), \
                 version = nextval('app_versions'), \
                 updated_at = now() \
             WHERE id = $1 RETURNING {APP_COLUMNS}"
        );
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        if let Some(routes) = &patch.routes {
            tx.execute(
                "UPDATE apps SET routes = $2::jsonb WHERE id = $1",
                &[&id.as_str(), &Json(routes)],
            )
            .await
            .map_err(StoreError::backend)?;
        }
        if let Some(origins) = &patch.allowed_origins {
            tx.execute(
                "UPDATE apps SET allowed_origins = $2::jsonb WHERE id = $1",
                &[&id.as_str(), &Json(origins)],
            )
            .await
            .map_err(StoreError::backend)?;
        }
        let row = tx
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
                    &patch.limits.as_ref().map(Json),
                ],
            )
            .await
            .map_err(StoreError::backend)?
            .ok_or_else(|| StoreError::app_not_found(id))?;
        let record = app(&row, keys_of(&tx, id).await?)?;
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(record)
    }

    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
        let deleted = self
            .client()
            .await?
            .execute("DELETE FROM apps WHERE id = $1", &[&id.as_str()])
            .await
            .map_err(StoreError::backend)?;
        if deleted == 0 {
            return Err(StoreError::app_not_found(id));
        }
        Ok(())
    }

    async fn add_api_key(&self, app_id: &AppId, key: NewApiKey) -> Result<AppRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let clash = tx
            .query_opt(CLASHING_KEY, &[&app_id.as_str(), &key.id, &key.hash])
            .await
            .map_err(StoreError::backend)?;
        if let Some(row) = clash {
            return Err(if get(&row, "same_id")? {
                StoreError::key_id_exists(app_id, &key.id)
            } else {
                StoreError::key_hash_exists(app_id)
            });
        }
        tx.execute(
            "INSERT INTO api_keys (app_id, id, prefix, hash, label) VALUES ($1, $2, $3, $4, $5)",
            &[
                &app_id.as_str(),
                &key.id,
                &key.prefix,
                &key.hash,
                &key.label,
            ],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::app_not_found(app_id),
            // A key added by another transaction since the check above.
            Some(&SqlState::UNIQUE_VIOLATION) => {
                let constraint = e.as_db_error().and_then(|db| db.constraint());
                if constraint == Some("api_keys_pkey") {
                    StoreError::key_id_exists(app_id, &key.id)
                } else {
                    StoreError::key_hash_exists(app_id)
                }
            }
            _ => StoreError::backend(e),
        })?;
        let record = bump(&tx, app_id).await?;
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(record)
    }

    async fn revoke_api_key(&self, app_id: &AppId, key_id: &str) -> Result<AppRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(StoreError::backend)?;
        let deleted = tx
            .execute(
                "DELETE FROM api_keys WHERE app_id = $1 AND id = $2",
                &[&app_id.as_str(), &key_id],
            )
            .await
            .map_err(StoreError::backend)?;
        if deleted == 0 {
            let app_exists = tx
                .query_opt("SELECT 1 FROM apps WHERE id = $1", &[&app_id.as_str()])
                .await
                .map_err(StoreError::backend)?
                .is_some();
            return Err(if app_exists {
                StoreError::key_not_found(app_id, key_id)
            } else {
                StoreError::app_not_found(app_id)
            });
        }
        let record = bump(&tx, app_id).await?;
        tx.commit().await.map_err(StoreError::backend)?;
        Ok(record)
    }
}

/// A read-only transaction that sees one snapshot, so an app and its keys are read as of the
/// same moment even while another control-plane changes them.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(StoreError::backend)
}

/// Gives the app a new version after a change to its keys, and returns it as it now is.
async fn bump(tx: &Transaction<'_>, id: &AppId) -> Result<AppRecord, StoreError> {
    let row = tx
        .query_opt(&format!("{BUMP_APP}{APP_COLUMNS}"), &[&id.as_str()])
        .await
        .map_err(StoreError::backend)?
        .ok_or_else(|| StoreError::app_not_found(id))?;
    app(&row, keys_of(tx, id).await?)
}

async fn keys_of(tx: &Transaction<'_>, id: &AppId) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE app_id = $1 ORDER BY created_at, id");
    tx.query(&sql, &[&id.as_str()])
        .await
        .map_err(StoreError::backend)?
        .iter()
        .map(api_key)
        .collect()
}

fn tenant(row: &Row) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: get(row, "id")?,
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
    })
}

fn app(row: &Row, api_keys: Vec<ApiKeyRecord>) -> Result<AppRecord, StoreError> {
    let id: String = get(row, "id")?;
    let limits: serde_json::Value = get(row, "limits")?;
    let limits: AppLimits = serde_json::from_value(limits)
        .map_err(|e| StoreError::Invalid(format!("stored limits of app {id}: {e}")))?;
    let routes: serde_json::Value = get(row, "routes")?;
    let routes: Vec<Route> = serde_json::from_value(routes)
        .map_err(|e| StoreError::Invalid(format!("stored routes of app {id}: {e}")))?;
    let origins: serde_json::Value = get(row, "allowed_origins")?;
    let allowed_origins: Vec<String> = serde_json::from_value(origins)
        .map_err(|e| StoreError::Invalid(format!("stored allowed_origins of app {id}: {e}")))?;
    Ok(AppRecord {
        id: stored_app_id(&id)?,
        tenant_id: get(row, "tenant_id")?,
        name: get(row, "name")?,
        jwt_secret: get(row, "jwt_secret")?,
        jwt_rsa_public_key: get(row, "jwt_rsa_public_key")?,
        jwt_ec_public_key: get(row, "jwt_ec_public_key")?,
        limits,
        routes,
        allowed_origins,
        api_keys,
        version: get(row, "version")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

fn api_key(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: get(row, "id")?,
        prefix: get(row, "prefix")?,
        hash: get(row, "hash")?,
        label: get(row, "label")?,
        created_at: get(row, "created_at")?,
    })
}

/// A column of `row`; a type mismatch means schema and code disagree, reported as `Backend`
/// rather than a panic so one bad row cannot take the control-plane down.
fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> Result<T, StoreError> {
    row.try_get(column).map_err(StoreError::backend)
}
