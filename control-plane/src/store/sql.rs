//! The thin per-backend SQL layer that the store rules are written over once.
//!
//! Statements are written in PostgreSQL's syntax (`$1` placeholders, `::type` casts,
//! `FOR UPDATE`, `greatest`); the SQLite side rewrites them to its own (`sqlite/sql.rs`). Where
//! the two differ by more than spelling (batch inserts, JSON lists), the rules ask [`Sql`] for
//! the fragment or operation instead. Row locks only matter where several control-planes share
//! one database (PostgreSQL); SQLite serialises every write transaction, so dropping them there
//! keeps the same decisions.

use super::StoreError;

/// A value both drivers can bind.
pub(crate) trait Param: Sync {
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
    fn lite(&self) -> &dyn rusqlite::ToSql;
}

impl<T: tokio_postgres::types::ToSql + rusqlite::ToSql + Sync> Param for T {
    fn pg(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }
}

/// A value both drivers can read.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>> Column for T {}

/// One row of a result, read by column index.
pub(crate) trait SqlRow {
    /// A type mismatch means schema and code disagree: `Invalid`, not a panic, so one bad row
    /// cannot take the control-plane down.
    fn get<T: Column>(&self, column: usize) -> Result<T, StoreError>;
}

/// The constraint a failed statement broke, for those the rules tell callers about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Constraint {
    /// A primary key or a UNIQUE constraint.
    Unique,
    ForeignKey,
}

/// A failed statement: the error to report, and the constraint it broke when that is what
/// failed, so a rule can turn it into `Conflict` or `NotFound`.
#[derive(Debug)]
pub(crate) struct SqlError {
    pub constraint: Option<Constraint>,
    /// The constraint's name, where the backend says (PostgreSQL does, SQLite does not).
    pub constraint_name: Option<String>,
    pub error: StoreError,
}

impl From<SqlError> for StoreError {
    fn from(e: SqlError) -> Self {
        e.error
    }
}

/// One open transaction of either backend.
///
/// Futures of the SQLite side never wait (rusqlite blocks and runs on the blocking pool), so
/// the rules are `async` only for PostgreSQL's sake.
#[allow(async_fn_in_trait)]
pub(crate) trait Sql {
    type Row: SqlRow;

    /// Rows affected.
    async fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<u64, SqlError>;

    async fn query(&mut self, sql: &str, params: &[&dyn Param])
        -> Result<Vec<Self::Row>, SqlError>;

    async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Option<Self::Row>, SqlError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The current time, in the type of the backend's time columns: the database's clock on
    /// PostgreSQL (one clock for every control-plane), the machine's on SQLite.
    const NOW: &'static str;

    /// A time column read as whole seconds since the Unix epoch, under its own name: an
    /// `ORDER BY` of that name then orders by the second, as both backends store it.
    fn epoch(column: &str) -> String;

    /// An SQL expression for the next value of the store-wide app version counter (see
    /// `migrations/*/0001_init.sql`), for the one statement that writes it. PostgreSQL draws
    /// it in that statement, after the row lock, so versions follow the order changes commit
    /// in; SQLite, one writer at a time, draws it here.
    async fn next_version(&mut self) -> Result<&'static str, SqlError>;

    /// A `FROM` item with one `value` text column per element of the JSON array of strings
    /// bound at placeholder `n`: how a list is passed to both backends alike.
    fn json_strings(n: usize) -> String;

    /// Runs `insert` (`INSERT INTO t (a, b)`) for every row of `columns` (all of one length,
    /// the values of `a` then of `b`), with `tail` (`ON CONFLICT ...`) after each. Returns the
    /// rows inserted. PostgreSQL sends the batch as one statement over arrays, SQLite runs a
    /// prepared statement per row; rows must not repeat a key that `tail` updates.
    async fn insert_batch(
        &mut self,
        insert: &str,
        columns: &[Batch<'_>],
        tail: &str,
    ) -> Result<u64, SqlError>;
}

/// One column of [`Sql::insert_batch`].
pub(crate) enum Batch<'a> {
    Text(Vec<&'a str>),
    Int(Vec<i64>),
}

impl Batch<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Batch::Text(v) => v.len(),
            Batch::Int(v) => v.len(),
        }
    }
}

/// Maps a constraint violation to the error the caller is told about; other errors stay.
pub(crate) fn on_constraint(
    e: SqlError,
    f: impl FnOnce(Constraint) -> Option<StoreError>,
) -> StoreError {
    match e.constraint.and_then(f) {
        Some(mapped) => mapped,
        None => e.error,
    }
}
