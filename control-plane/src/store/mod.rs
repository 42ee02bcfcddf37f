//! The **Store seam**: where the control-plane keeps tenants, apps and keys. Two
//! implementations: [`sqlite::SqliteStore`] (embedded, `waas dev`) and
//! [`postgres::PostgresStore`] (cluster mode). Both pass the same suite,
//! `control-plane/tests/store_suite.rs`.
//!
//! The rules are written once (`tenants.rs`, `apps.rs`, `keys/rules.rs`, `recordings/rules.rs`,
//! `webhooks/{endpoints,presence,outbox}.rs`) over the thin SQL layer of `sql.rs`; each backend's
//! folder holds only its connection, migrations runner and side of that layer (`sqlite/sql.rs`,
//! `postgres/sql.rs`), so the two cannot drift apart again.
//!
//! Guarantees: every method is atomic; `version` of an app strictly increases with each change to
//! it (key added or revoked included), and is drawn from one store-wide counter, so an app deleted
//! and created again under the same id still gets a version above any its gateways have seen;
//! deleting a tenant deletes its apps and their keys. Lists are ordered by id in byte order (the
//! order of [`AppId`]'s `Ord`), the same in both stores.

mod apps;
pub mod dashboard;
pub(crate) mod dashboard_access;
mod error;
pub mod keys;
mod migrations;
pub mod model;
pub mod postgres;
pub mod recordings;
pub(crate) mod sql;
pub mod sqlite;
mod tenants;
pub mod usage;
pub mod webhooks;

pub use dashboard::DashboardStore;
pub use error::StoreError;
pub use keys::KeyStore;
pub use model::*;
pub use postgres::PostgresStore;
pub use recordings::RecordingStore;
pub use sqlite::SqliteStore;
pub use usage::UsageStore;
pub use webhooks::WebhookStore;

use async_trait::async_trait;
use waas_protocol::AppId;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `Conflict` when the id is taken.
    async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError>;
    async fn get_tenant(&self, id: &str) -> Result<Tenant, StoreError>;
    /// Ordered by id.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError>;
    /// Deletes the tenant and returns the ids of the apps deleted with it.
    async fn delete_tenant(&self, id: &str) -> Result<Vec<AppId>, StoreError>;

    /// `Conflict` when the app id is taken, `NotFound` when the tenant does not exist.
    async fn create_app(&self, new: NewApp) -> Result<AppRecord, StoreError>;
    async fn get_app(&self, id: &AppId) -> Result<AppRecord, StoreError>;
    /// All apps, or those of one tenant; ordered by id.
    async fn list_apps(&self, tenant_id: Option<&str>) -> Result<Vec<AppRecord>, StoreError>;
    /// Applies `patch` and bumps `version`, even for an empty patch, so that a caller can make
    /// gateways reload an app.
    async fn update_app(&self, id: &AppId, patch: AppPatch) -> Result<AppRecord, StoreError>;
    /// Deletes the app and its keys.
    async fn delete_app(&self, id: &AppId) -> Result<(), StoreError>;

    /// `NotFound` when the app does not exist; `Conflict` when the app already has a key with
    /// this id or this hash.
    async fn add_api_key(&self, app: &AppId, key: NewApiKey) -> Result<AppRecord, StoreError>;
    /// `NotFound` when the app or its key does not exist.
    async fn revoke_api_key(&self, app: &AppId, key_id: &str) -> Result<AppRecord, StoreError>;
}

/// A tenant id for [`NewTenant`]s that come without one: `t_` and 16 random hex digits, enough
/// that two never meet in practice, short enough to read in a URL.
pub(crate) fn generate_tenant_id() -> String {
    format!("t_{:016x}", rand::random::<u64>())
}

/// An app id read back from a database. Ids are validated before they are stored, so a failure
/// here means the row was written by something else and is reported rather than skipped.
pub(crate) fn stored_app_id(id: &str) -> Result<AppId, StoreError> {
    AppId::parse(id).map_err(|e| StoreError::Invalid(format!("stored app id {id:?}: {e}")))
}

/// Splits a patch field into "touch it?" and "the new value", the form SQL can take as two
/// parameters without building statements on the fly.
pub(crate) fn patch_field(field: &Option<Option<String>>) -> (bool, Option<&str>) {
    match field {
        None => (false, None),
        Some(value) => (true, value.as_deref()),
    }
}

/// The [`Store`] of a backend, written once over its transaction runner (see
/// `store::webhooks::impl_webhook_store`): the rules live in `tenants.rs` and `apps.rs`.
macro_rules! impl_store {
    ($store:ty, $tx:ident) => {
        const _: () = {
            use waas_protocol::AppId;
            use $crate::store::{
                apps, tenants, AppPatch, AppRecord, NewApiKey, NewApp, NewTenant, Store,
                StoreError, Tenant,
            };

            #[async_trait::async_trait]
            impl Store for $store {
                async fn create_tenant(&self, new: NewTenant) -> Result<Tenant, StoreError> {
                    $tx!(self, write, |db| tenants::create(db, new))
                }

                async fn get_tenant(&self, id: &str) -> Result<Tenant, StoreError> {
                    let id = id.to_owned();
                    $tx!(self, read, |db| tenants::get(db, &id))
                }

                async fn list_tenants(&self) -> Result<Vec<Tenant>, StoreError> {
                    $tx!(self, read, |db| tenants::list(db))
                }

                async fn rename_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
                    let (id, name) = (id.to_owned(), name.to_owned());
                    $tx!(self, write, |db| tenants::rename(db, &id, &name))
                }

                async fn delete_tenant(&self, id: &str) -> Result<Vec<AppId>, StoreError> {
                    let id = id.to_owned();
                    $tx!(self, write, |db| tenants::delete(db, &id))
                }

                async fn create_app(&self, new: NewApp) -> Result<AppRecord, StoreError> {
                    $tx!(self, write, |db| apps::create(db, new))
                }

                async fn get_app(&self, id: &AppId) -> Result<AppRecord, StoreError> {
                    let id = id.clone();
                    $tx!(self, read, |db| apps::get(db, &id))
                }

                async fn list_apps(
                    &self,
                    tenant_id: Option<&str>,
                ) -> Result<Vec<AppRecord>, StoreError> {
                    let tenant_id = tenant_id.map(str::to_owned);
                    $tx!(self, read, |db| apps::list(db, tenant_id.as_deref()))
                }

                async fn update_app(
                    &self,
                    id: &AppId,
                    patch: AppPatch,
                ) -> Result<AppRecord, StoreError> {
                    let id = id.clone();
                    $tx!(self, write, |db| apps::update(db, &id, patch))
                }

                async fn delete_app(&self, id: &AppId) -> Result<(), StoreError> {
                    let id = id.clone();
                    $tx!(self, write, |db| apps::delete(db, &id))
                }

                async fn add_api_key(
                    &self,
                    app: &AppId,
                    key: NewApiKey,
                ) -> Result<AppRecord, StoreError> {
                    let app = app.clone();
                    $tx!(self, write, |db| apps::add_key(db, &app, key))
                }

                async fn revoke_api_key(
                    &self,
                    app: &AppId,
                    key_id: &str,
                ) -> Result<AppRecord, StoreError> {
                    let (app, key_id) = (app.clone(), key_id.to_owned());
                    $tx!(self, write, |db| apps::revoke_key(db, &app, &key_id))
                }
            }
        };
    };
}
pub(crate) use impl_store;
