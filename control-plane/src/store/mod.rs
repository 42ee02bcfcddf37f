//! The **Store seam**: where the control-plane keeps tenants, apps and keys. Two
//! implementations: [`sqlite::SqliteStore`] (embedded, `waas dev`) and
//! [`postgres::PostgresStore`] (cluster mode). Both pass the same suite,
//! `control-plane/tests/store_suite.rs`.
//!
//! Guarantees: every method is atomic; `version` of an app strictly increases with each change to
//! it (key added or revoked included); deleting a tenant deletes its apps and their keys.

pub mod model;

pub use model::*;

use async_trait::async_trait;
use waas_protocol::AppId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("invalid data: {0}")]
    Invalid(String),
    #[error("store unavailable: {0}")]
    Backend(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError>;
    async fn get_tenant(&self, id: &str) -> Result<Tenant, StoreError>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError>;
    /// Deletes the tenant and returns the ids of the apps deleted with it.
    async fn delete_tenant(&self, id: &str) -> Result<Vec<AppId>, StoreError>;

    /// `Conflict` when the app id is taken, `NotFound` when the tenant does not exist.
    async fn create_app(&self, new: NewApp) -> Result<AppRecord, StoreError>;
    async fn get_app(&self, id: &AppId) -> Result<AppRecord, StoreError>;
    /// All apps, or those of one tenant; ordered by id.
    async fn list_apps(&self, tenant_id: Option<&str>) -> Result<Vec<AppRecord>, StoreError>;
    async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<AppRecord, StoreError>;
    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError>;

    async fn add_api_key(&self, app: &AppId, key: NewApiKey) -> Result<AppRecord, StoreError>;
    async fn revoke_api_key(&self, app: &AppId, key_id: &str) -> Result<AppRecord, StoreError>;
}
