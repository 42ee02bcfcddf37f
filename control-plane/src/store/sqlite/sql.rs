//! SQLite's side of the SQL layer (`store/sql.rs`): PostgreSQL-spelled statements rewritten to
//! SQLite's, run on one write transaction.

use std::borrow::Cow;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, ErrorCode, Transaction};

use crate::store::sql::{Batch, Column, Constraint, Param, Sql, SqlError, SqlRow};
use crate::store::StoreError;

/// A transaction of [`super::SqliteStore`], as the shared rules see it.
pub(crate) struct SqliteSql<'t> {
    tx: &'t Transaction<'t>,
}

impl<'t> SqliteSql<'t> {
    pub(crate) fn new(tx: &'t Transaction<'t>) -> Self {
        Self { tx }
    }
}

/// Runs a rule on SQLite. Its statements block instead of waiting, so the future is ready at
/// the first poll; a rule that waits on anything else is a bug.
pub(crate) fn run<T>(rule: impl Future<Output = T>) -> T {
    match pin!(rule).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("a store rule waited on SQLite"),
    }
}

/// A row copied out of its statement, which rusqlite's rows borrow.
pub(crate) struct SqliteRow(Vec<Value>);

impl SqlRow for SqliteRow {
    fn get<T: Column>(&self, column: usize) -> Result<T, StoreError> {
        let value = self
            .0
            .get(column)
            .ok_or_else(|| StoreError::Invalid(format!("no column {column}")))?;
        T::column_result(ValueRef::from(value))
            .map_err(|e| StoreError::Invalid(format!("column {column}: {e}")))
    }
}

impl Sql for SqliteSql<'_> {
    type Row = SqliteRow;

    async fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<u64, SqlError> {
        let mut stmt = self.tx.prepare_cached(&dialect(sql)).map_err(error)?;
        let n = stmt
            .execute(params_from_iter(params.iter().map(|p| p.lite())))
            .map_err(error)?;
        Ok(n as u64)
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
    ) -> Result<Vec<SqliteRow>, SqlError> {
        let mut stmt = self.tx.prepare_cached(&dialect(sql)).map_err(error)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(params.iter().map(|p| p.lite())))
            .map_err(error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(error)? {
            let values = (0..columns)
                .map(|i| row.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(error)?;
            out.push(SqliteRow(values));
        }
        Ok(out)
    }

    const NOW: &'static str = "unixepoch()";

    fn epoch(column: &str) -> String {
        column.to_owned()
    }

    async fn next_version(&mut self) -> Result<&'static str, SqlError> {
        self.tx
            .execute("UPDATE app_versions SET last = last + 1", [])
            .map_err(error)?;
        Ok("(SELECT last FROM app_versions)")
    }

    fn json_strings(n: usize) -> String {
        format!("json_each(${n})")
    }

    async fn insert_batch(
        &mut self,
        insert: &str,
        columns: &[Batch<'_>],
        tail: &str,
    ) -> Result<u64, SqlError> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!("{insert} VALUES ({}) {tail}", marks.join(", "));
        let mut stmt = self.tx.prepare_cached(&sql).map_err(error)?;
        let rows = columns.first().map_or(0, Batch::len);
        let mut n = 0;
        for row in 0..rows {
            let values = columns.iter().map(|c| -> &dyn rusqlite::ToSql {
                match c {
                    Batch::Text(v) => &v[row],
                    Batch::Int(v) => &v[row],
                }
            });
            n += stmt.execute(params_from_iter(values)).map_err(error)? as u64;
        }
        Ok(n)
    }
}

fn error(e: rusqlite::Error) -> SqlError {
    let constraint = match &e {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => Some(Constraint::Unique),
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Constraint::ForeignKey),
                _ => None,
            }
        }
        _ => None,
    };
    SqlError {
        constraint,
        constraint_name: None,
        error: StoreError::backend(e),
    }
}

/// A statement in PostgreSQL's spelling as SQLite takes it: `$n` becomes `?n`, `::type` casts
/// go (SQLite's columns take what they are given), row locks go (one writer at a time), and
/// `greatest` becomes SQLite's two-argument `max`.
pub(crate) fn dialect(sql: &str) -> Cow<'_, str> {
    if !sql.contains(['$', ':']) && !sql.contains("FOR UPDATE") && !sql.contains("greatest(") {
        return Cow::Borrowed(sql);
    }
    let sql = sql
        .replace(" FOR UPDATE SKIP LOCKED", "")
        .replace(" FOR UPDATE", "")
        .replace("greatest(", "max(");
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push('?'),
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '[' | ']'))
                {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::dialect;

    #[test]
    fn postgres_spelling_becomes_sqlite() {
        assert_eq!(
            dialect(
                "SELECT a::text AS a FROM t WHERE ($2::text IS NULL OR b = $2) \
                 AND c = $10::text::jsonb FOR UPDATE SKIP LOCKED"
            ),
            "SELECT a AS a FROM t WHERE (?2 IS NULL OR b = ?2) AND c = ?10"
        );
        assert_eq!(
            dialect("SET x = greatest(t.x, $1) WHERE y = $2 FOR UPDATE"),
            "SET x = max(t.x, ?1) WHERE y = ?2"
        );
        assert_eq!(dialect("SELECT 1"), "SELECT 1");
    }
}
