//! `waas dev`: the whole service in one process — gateway, control-plane and admin API — on the
//! in-process bus, with apps in an embedded SQLite file. The same components as a cluster, wired
//! together in memory.

use crate::settings::{Settings, SettingsError, DEV_OPERATOR_TOKEN};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use waas_control_plane::seed::ensure_app;
use waas_control_plane::store::sqlite::SqliteStore;
use waas_control_plane::store::{Store, StoreError};
use waas_control_plane::{Backends, ControlPlane, StartError};
use waas_core::bus::memory::MemoryBus;
use waas_core::bus::{Bus, BusError};
use waas_core::history::memory::MemoryHistory;
use waas_core::history::History;
use waas_gateway::Gateway;

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    ControlPlane(#[from] StartError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("dashboard account: {0}")]
    Account(#[from] waas_control_plane::dashboard::accounts::AccountError),
}

/// A started all-in-one node, not yet serving HTTP.
pub struct Dev {
    pub gateway: Arc<Gateway>,
    pub store: Arc<dyn Store>,
    /// The admin API and `GET /openapi.json` (the document of both APIs, [`openapi`]), served
    /// beside the gateway's routes.
    pub admin: Router,
    /// Recordings, webhooks and the bus responders; dropping it stops them.
    pub control_plane: ControlPlane,
    /// The dashboard's dev sign-in (email, password), when no operator is configured.
    pub dev_login: Option<(&'static str, &'static str)>,
}

fn open_store(settings: &Settings) -> Result<SqliteStore, DevError> {
    if settings.store.as_os_str() == ":memory:" {
        return Ok(SqliteStore::open_in_memory()?);
    }
    if let Some(dir) = settings
        .store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }
    Ok(SqliteStore::open(&settings.store)?)
}

/// Opens the store, makes the declared apps exist, and starts the control-plane and the
/// gateway on one in-process bus.
pub async fn start(settings: &Settings) -> Result<Dev, DevError> {
    settings.validate()?;
    let sqlite = open_store(settings)?;
    for seed in settings.app_seeds()? {
        ensure_app(&sqlite, seed).await?;
    }
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(settings.limits.bus_channel_capacity));
    // One history for the gateway and the recordings, so replays get the channel's offsets.
    let history: Arc<dyn History> = Arc::new(MemoryHistory::new(Arc::clone(&bus)));
    let token = settings
        .operator_token
        .as_deref()
        .unwrap_or(DEV_OPERATOR_TOKEN);
    let control_plane = ControlPlane::start(
        settings.control_plane(token, true),
        Backends::new(sqlite, Arc::clone(&bus), Arc::clone(&history)),
    )
    .await?;
    let dev_login = crate::first_operator::ensure(control_plane.accounts.as_ref(), true).await?;
    let admin = control_plane
        .routes()
        .merge(waas_core::http::openapi::route(&openapi()));
    Ok(Dev {
        gateway: settings.gateway_node(bus, history, true).build(),
        store: Arc::clone(&control_plane.store),
        admin,
        control_plane,
        dev_login,
    })
}

impl Dev {
    /// Serves on `listener` until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DevError> {
        waas_gateway::run(Arc::clone(&self.gateway), listener, self.admin, shutdown).await?;
        drop(self.control_plane);
        Ok(())
    }
}

/// The OpenAPI 3.1 document of `waas dev`: the gateway's REST API and the control-plane's admin
/// API in one, as the process serves both. A gateway and a control-plane each serve their own.
pub fn openapi() -> waas_core::http::openapi::Document {
    let mut doc = waas_gateway::openapi::document();
    doc.merge(waas_control_plane::admin::openapi::document());
    doc.info.description = Some(
        "WaaS `dev`: the REST API (docs/rest.md, API key) and the admin API (docs/admin.md, \
         operator token) of one process. Every error answer has the body \
         `{\"error\": {\"code\", \"message\"}}`."
            .into(),
    );
    doc
}

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    start(&settings).await?.serve(listener, shutdown).await
}
