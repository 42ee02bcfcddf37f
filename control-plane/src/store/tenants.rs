//! Tenants, written once over the SQL layer (`store/sql.rs`).

use super::sql::{on_constraint, Constraint, Sql, SqlRow};
use super::{generate_tenant_id, stored_app_id, NewTenant, StoreError, Tenant};
use waas_protocol::AppId;

fn columns<S: Sql>() -> String {
    format!("id, name, {}", S::epoch("created_at"))
}

fn tenant(row: &impl SqlRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: row.get(0)?,
        name: row.get(1)?,
        created_at: row.get(2)?,
    })
}

pub(crate) async fn create<S: Sql>(db: &mut S, new: NewTenant) -> Result<Tenant, StoreError> {
    let id = new.id.unwrap_or_else(generate_tenant_id);
    let sql = format!(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, {}) RETURNING {}",
        S::NOW,
        columns::<S>()
    );
    let row = db.query_opt(&sql, &[&id, &new.name]).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == Constraint::Unique).then(|| StoreError::tenant_exists(&id))
        })
    })?;
    tenant(&row.ok_or_else(|| StoreError::tenant_not_found(&id))?)
}

pub(crate) async fn get<S: Sql>(db: &mut S, id: &str) -> Result<Tenant, StoreError> {
    let sql = format!("SELECT {} FROM tenants WHERE id = $1", columns::<S>());
    let row = db.query_opt(&sql, &[&id]).await?;
    tenant(&row.ok_or_else(|| StoreError::tenant_not_found(id))?)
}

/// By id.
pub(crate) async fn list<S: Sql>(db: &mut S) -> Result<Vec<Tenant>, StoreError> {
    let sql = format!("SELECT {} FROM tenants ORDER BY id", columns::<S>());
    db.query(&sql, &[]).await?.iter().map(tenant).collect()
}

pub(crate) async fn rename<S: Sql>(db: &mut S, id: &str, name: &str) -> Result<Tenant, StoreError> {
    let sql = format!(
        "UPDATE tenants SET name = $2 WHERE id = $1 RETURNING {}",
        columns::<S>()
    );
    let row = db.query_opt(&sql, &[&id, &name]).await?;
    tenant(&row.ok_or_else(|| StoreError::tenant_not_found(id))?)
}

/// Returns the apps deleted with the tenant.
pub(crate) async fn delete(db: &mut impl Sql, id: &str) -> Result<Vec<AppId>, StoreError> {
    // Locking the tenant first makes a concurrent create_app for it wait (its foreign-key
    // check needs a share lock on this row) and then fail with NotFound, so no app can slip
    // in after the list below is read and be deleted without being reported.
    db.query_opt("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| StoreError::tenant_not_found(id))?;
    let apps = db
        .query(
            "SELECT id FROM apps WHERE tenant_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| stored_app_id(&row.get::<String>(0)?))
        .collect::<Result<Vec<_>, _>>()?;
    // Apps and their keys go with the tenant: ON DELETE CASCADE.
    db.execute("DELETE FROM tenants WHERE id = $1", &[&id])
        .await?;
    Ok(apps)
}
