//! [`SqliteStore`]: the embedded Store of `waas dev` and single-node installs, one file that
//! keeps apps across restarts with no database server to run.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool. One connection behind a
//! `std::sync::Mutex` serves them all: the control-plane writes rarely, and SQLite lets one writer
//! in at a time anyway. The lock is taken inside the blocking task and released before it ends, so
//! it is never held across an `.await`.

pub(crate) mod sql;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::store::migrations::{self, Migration};
use crate::store::StoreError;

/// How long a write waits for another process holding the file's write lock (a second `waas`
/// pointed at the same file, or an operator's `sqlite3` shell) before failing with `Backend`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Runs a shared rule (`|db| rule(db, ..)`, a future over [`sql::SqliteSql`]) in one
/// transaction of the store, `read` or `write` as [`SqliteStore::read`] and
/// [`SqliteStore::write`] open them.
macro_rules! sqlite_tx {
    ($store:expr, $mode:ident, |$db:ident| $rule:expr) => {
        $store
            .$mode(move |tx| {
                let mut sql = $crate::store::sqlite::sql::SqliteSql::new(tx);
                let $db = &mut sql;
                $crate::store::sqlite::sql::run($rule)
            })
            .await
    };
}

crate::store::webhooks::impl_webhook_store!(SqliteStore, sqlite_tx);
crate::store::recordings::impl_recording_store!(SqliteStore, sqlite_tx);
crate::store::keys::impl_key_store!(SqliteStore, sqlite_tx);
crate::store::impl_store!(SqliteStore, sqlite_tx);
crate::store::dashboard::impl_dashboard_store!(SqliteStore, sqlite_tx);
crate::store::usage::impl_usage_store!(SqliteStore, sqlite_tx);

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
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())",
            [migration.version],
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
