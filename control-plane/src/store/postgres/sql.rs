//! PostgreSQL's side of the SQL layer (`store/sql.rs`): statements run as written, on one
//! transaction.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Transaction};

use crate::store::sql::{Batch, Column, Constraint, Param, Sql, SqlError, SqlRow};
use crate::store::StoreError;

/// A transaction of [`super::PostgresStore`], as the shared rules see it.
pub(crate) struct PgSql<'t> {
    tx: &'t Transaction<'t>,
}

impl<'t> PgSql<'t> {
    pub(crate) fn new(tx: &'t Transaction<'t>) -> Self {
        Self { tx }
    }
}

impl SqlRow for Row {
    fn get<T: Column>(&self, column: usize) -> Result<T, StoreError> {
        self.try_get(column)
            .map_err(|e| StoreError::Invalid(format!("column {column}: {e}")))
    }
}

fn params<'a>(params: &'a [&'a dyn Param]) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
    params.iter().map(|p| p.pg()).collect()
}

impl Sql for PgSql<'_> {
    type Row = Row;

    async fn execute(&mut self, sql: &str, values: &[&dyn Param]) -> Result<u64, SqlError> {
        self.tx.execute(sql, &params(values)).await.map_err(error)
    }

    async fn query(&mut self, sql: &str, values: &[&dyn Param]) -> Result<Vec<Row>, SqlError> {
        self.tx.query(sql, &params(values)).await.map_err(error)
    }

    const NOW: &'static str = "now()";

    fn epoch(column: &str) -> String {
        format!("floor(extract(epoch FROM {column}))::bigint AS {column}")
    }

    async fn next_version(&mut self) -> Result<&'static str, SqlError> {
        Ok("nextval('app_versions')")
    }

    fn json_strings(n: usize) -> String {
        format!("json_array_elements_text(${n}::text::json)")
    }

    /// One statement for the whole batch: a round trip per row would cap a recorder or a
    /// batch of publishes at a few thousand rows per second.
    async fn insert_batch(
        &mut self,
        insert: &str,
        columns: &[Batch<'_>],
        tail: &str,
    ) -> Result<u64, SqlError> {
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Batch::Text(_) => format!("${}::text[]", i + 1),
                Batch::Int(_) => format!("${}::bigint[]", i + 1),
            })
            .collect();
        let sql = format!(
            "{insert} SELECT * FROM unnest({}) {tail}",
            arrays.join(", ")
        );
        let values: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
            .iter()
            .map(|c| -> &(dyn tokio_postgres::types::ToSql + Sync) {
                match c {
                    Batch::Text(v) => v,
                    Batch::Int(v) => v,
                }
            })
            .collect();
        self.tx.execute(&sql, &values).await.map_err(error)
    }
}

pub(crate) fn error(e: tokio_postgres::Error) -> SqlError {
    let constraint = match e.code() {
        Some(&SqlState::UNIQUE_VIOLATION) => Some(Constraint::Unique),
        Some(&SqlState::FOREIGN_KEY_VIOLATION) => Some(Constraint::ForeignKey),
        _ => None,
    };
    SqlError {
        constraint,
        constraint_name: e
            .as_db_error()
            .and_then(|db| db.constraint())
            .map(str::to_owned),
        error: StoreError::backend(e),
    }
}
