//! [`PostgresStore`]: the Store of cluster mode, where several control-planes share one database
//! and its transactions keep them consistent.
//!
//! No TLS: the database is expected on localhost or a private network, and leaving TLS out keeps
//! a second TLS stack out of the binary. Timestamps are the database's `now()`, one clock for every
//! control-plane; versions come from the `app_versions` sequence (see `migrations/postgres`).

pub(crate) mod sql;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, NoTls, Transaction};

use crate::store::migrations::{self, Migration};
use crate::store::StoreError;

/// How long a request waits for a pooled connection, or for a new one to be opened, before it
/// fails with `Backend`: a database that is down should give callers an error, not a hang.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

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
                crate::store::error::chain(&e)
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

/// Runs a shared rule (`|db| rule(db, ..)`, a future over [`sql::PgSql`]) in one transaction,
/// committed when the rule succeeds; `read` sees one snapshot, `write` takes no lock up front.
macro_rules! pg_tx {
    ($store:expr, $mode:ident, |$db:ident| $rule:expr) => {{
        let mut client = $store.client().await?;
        let tx = $crate::store::postgres::begin(&mut client, stringify!($mode) == "read").await?;
        let value = {
            let mut sql = $crate::store::postgres::sql::PgSql::new(&tx);
            let $db = &mut sql;
            $rule.await?
        };
        tx.commit()
            .await
            .map_err($crate::store::StoreError::backend)?;
        Ok(value)
    }};
}

crate::store::webhooks::impl_webhook_store!(PostgresStore, pg_tx);
crate::store::recordings::impl_recording_store!(PostgresStore, pg_tx);
crate::store::keys::impl_key_store!(PostgresStore, pg_tx);
crate::store::impl_store!(PostgresStore, pg_tx);
crate::store::dashboard::impl_dashboard_store!(PostgresStore, pg_tx);
crate::store::usage::impl_usage_store!(PostgresStore, pg_tx);

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

/// A transaction for a rule. One for reads is read-only and sees one snapshot, so an app and
/// its keys are read as of the same moment even while another control-plane changes them.
pub(crate) async fn begin(
    client: &mut deadpool_postgres::Client,
    read: bool,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let builder = client.build_transaction();
    let builder = if read {
        builder
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
    } else {
        builder
    };
    builder.start().await.map_err(StoreError::backend)
}
