//! `waas dev`: the whole service in one process — gateway, control-plane and admin API — on the
//! in-process bus, with apps in an embedded SQLite file. The same components as a cluster, wired
//! together in memory.

use crate::settings::{Settings, SettingsError, DEV_OPERATOR_TOKEN};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waas_control_plane::admin::{self, Admin};
use waas_control_plane::directory::Directory;
use waas_control_plane::recordings::routes::routes as recording_routes;
use waas_control_plane::recordings::Recordings;
use waas_control_plane::seed::ensure_app;
use waas_control_plane::store::sqlite::SqliteStore;
use waas_control_plane::store::{Store, StoreError};
use waas_control_plane::webhooks::Webhooks;
use waas_core::bus::memory::MemoryBus;
use waas_core::bus::{Bus, BusError};
use waas_gateway::registry::{self, AppRegistry};
use waas_gateway::{Gateway, GatewayConfig};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A started all-in-one node, not yet serving HTTP.
pub struct Dev {
    pub gateway: Arc<Gateway>,
    pub store: Arc<dyn Store>,
    /// The admin API and `GET /openapi.json` (the document of both APIs, [`openapi`]), served
    /// beside the gateway's routes.
    pub admin: Router,
    /// Recordings and replays (their routes are part of `admin`).
    pub recordings: Arc<Recordings>,
    /// Webhook endpoints, outbox and delivery worker.
    pub webhooks: Arc<Webhooks>,
    directory: JoinHandle<()>,
    /// Answers the key directory calls of end-to-end encryption.
    keys: JoinHandle<()>,
    webhook_tasks: Vec<JoinHandle<()>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.directory.abort();
        self.keys.abort();
        for task in &self.webhook_tasks {
            task.abort();
        }
    }
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

/// The gateway of a node, learning apps from the control-plane over `bus`.
pub fn gateway(settings: &Settings, bus: Arc<dyn Bus>) -> Arc<Gateway> {
    let history = Arc::new(waas_core::history::memory::MemoryHistory::new(Arc::clone(
        &bus,
    )));
    gateway_on(settings, bus, history, true)
}

/// A gateway keeping channel history in `history` (JetStream in a cluster). `dev`: part of
/// `waas dev`, whose HTTP upstreams may be on loopback unless the settings say otherwise.
pub fn gateway_on(
    settings: &Settings,
    bus: Arc<dyn Bus>,
    history: Arc<dyn waas_core::history::History>,
    dev: bool,
) -> Arc<Gateway> {
    let d = &settings.directory;
    let apps = AppRegistry::new(
        Some(registry::Directory {
            bus: Arc::clone(&bus),
            prefix: settings.subject_prefix.clone(),
            timeout: d.timeout(),
        }),
        std::time::Duration::from_millis(d.refresh_ms),
        std::time::Duration::from_millis(d.missing_ttl_ms),
    );
    Gateway::with_history(
        GatewayConfig {
            subject_prefix: settings.subject_prefix.clone(),
            limits: settings.limits.clone(),
            outbound: settings.outbound(dev),
        },
        history,
        apps,
    )
}

/// Opens the store, makes the declared apps exist, and starts the control-plane's directory.
pub async fn start(settings: &Settings) -> Result<Dev, DevError> {
    settings.validate()?;
    let sqlite = open_store(settings)?;
    let recording_store = sqlite.clone();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    for seed in settings.app_seeds()? {
        ensure_app(store.as_ref(), seed).await?;
    }
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(settings.limits.bus_channel_capacity));
    let directory = Directory::new(
        Arc::clone(&store),
        Arc::clone(&bus),
        settings.subject_prefix.clone(),
    );
    let serving = directory.serve().await?;
    let keys = waas_control_plane::keys::serve(
        Arc::new(sqlite.clone()),
        Arc::clone(&bus),
        &settings.subject_prefix,
    )
    .await?;
    waas_control_plane::metrics::init();
    let webhooks = Webhooks::new(
        Arc::new(sqlite.clone()),
        settings.webhooks.clone(),
        settings.outbound(true),
    );
    directory.set_webhooks(Arc::clone(&webhooks));
    let webhook_tasks = webhooks
        .start(Arc::clone(&bus), &settings.subject_prefix)
        .await?;
    let token = settings
        .operator_token
        .as_deref()
        .unwrap_or(DEV_OPERATOR_TOKEN);
    let admin_state = Admin::new(
        Arc::clone(&store),
        directory,
        token,
        settings.outbound(true),
    );
    let _ = admin_state.webhooks.set(Arc::clone(&webhooks));
    // One history for the gateway and the recordings, so replays get the channel's offsets.
    let history: Arc<dyn waas_core::history::History> = Arc::new(
        waas_core::history::memory::MemoryHistory::new(Arc::clone(&bus)),
    );
    let recordings = Recordings::new(
        Arc::new(recording_store),
        Arc::clone(&store),
        Arc::clone(&history),
        settings.subject_prefix.clone(),
        settings.limits.history_policy(),
        token,
    );
    recordings.resume().await?;
    // Lives as long as the process: answers the REST recording calls of this node.
    let _calls = recordings
        .serve(Arc::clone(&bus), &settings.subject_prefix)
        .await?;
    let admin = admin::router(admin_state)
        .merge(recording_routes(Arc::clone(&recordings)))
        .merge(waas_core::http::openapi::route(&openapi()));
    Ok(Dev {
        gateway: gateway_on(settings, bus, history, true),
        recordings,
        store,
        admin,
        webhooks,
        directory: serving,
        keys,
        webhook_tasks,
    })
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
    let dev = start(&settings).await?;
    waas_gateway::server::serve(
        Arc::clone(&dev.gateway),
        listener,
        Some(dev.admin.clone()),
        shutdown,
    )
    .await?;
    Ok(())
}
