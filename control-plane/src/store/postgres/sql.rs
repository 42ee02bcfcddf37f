//! PostgreSQL's side of the SQL layer (`store/sql.rs`): statements run as written, on one
//! transaction.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Transaction};

use crate::store::sql::{Column, Constraint, Param, Sql, SqlError, SqlRow};
use crate::store::StoreError;
use crate::webhooks::plan::NewDelivery;

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

    fn json_strings(n: usize) -> String {
        format!("json_array_elements_text(${n}::text::json)")
    }

    /// One statement for the whole batch: a batch of publishes can make hundreds.
    async fn enqueue(&mut self, deliveries: &[NewDelivery], now: i64) -> Result<usize, SqlError> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let column =
            |f: fn(&NewDelivery) -> &str| -> Vec<&str> { deliveries.iter().map(f).collect() };
        let n = self
            .tx
            .execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, app_id, event_type, body, \
                     status, next_attempt_at, created_at, updated_at) \
                 SELECT id, endpoint_id, app_id, event_type, body, 'pending', $6, $6, $6 \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                     AS d (id, endpoint_id, app_id, event_type, body) \
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &column(|d| &d.id),
                    &column(|d| &d.endpoint_id),
                    &column(|d| &d.app_id),
                    &column(|d| d.event_type.as_str()),
                    &column(|d| &d.body),
                    &now,
                ],
            )
            .await
            .map_err(error)?;
        Ok(n as usize)
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
        error: StoreError::backend(e),
    }
}
