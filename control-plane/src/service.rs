//! The control-plane's one entry point. `waas dev` and `waas control-plane` start the same
//! components in the same order from a [`Config`] and the [`Backends`] they run on (SQLite and
//! the in-process bus, or PostgreSQL and NATS), so the two can no longer drift apart; every
//! component gets what it needs when it is built, none is patched in afterwards.

use crate::admin::{self, Admin};
use crate::dashboard::{Dashboard, DashboardConfig};
use crate::directory::Directory;
use crate::recordings::routes::routes as recording_routes;
use crate::recordings::Recordings;
use crate::store::{
    DashboardStore, KeyStore, RecordingStore, Store, StoreError, UsageStore, WebhookStore,
};
use crate::usage::{Usage, UsageConfig};
use crate::webhooks::{WebhookConfig, Webhooks};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::egress::Policy;
use waas_core::history::{self, History};
use waas_core::http::accept::HttpLimits;

/// Why a control-plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// What a control-plane is told by its operator.
#[derive(Debug, Clone)]
pub struct Config {
    /// First token of every bus subject.
    pub subject_prefix: String,
    /// Bearer token of the admin API (and of recordings' operator calls).
    pub operator_token: String,
    /// Which addresses webhook endpoints and routes' upstreams may be at.
    pub outbound: Policy,
    pub webhooks: WebhookConfig,
    /// The history apps keep unless they set their own (the server's limits).
    pub history: history::Policy,
    /// The browser dashboard's sessions and sign-in limits.
    pub dashboard: DashboardConfig,
    /// Per-app usage: report interval, how long it is kept.
    pub usage: UsageConfig,
}

/// What a control-plane runs on. One store serves every role; it is kept as one trait object
/// per role because the components each know only the role they use.
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub keys: Arc<dyn KeyStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub recordings: Arc<dyn RecordingStore>,
    /// Dashboard accounts and sessions.
    pub dashboard: Arc<dyn DashboardStore>,
    /// Per-app usage.
    pub usage: Arc<dyn UsageStore>,
    pub bus: Arc<dyn Bus>,
    /// Where recordings tap channels, and replays publish.
    pub history: Arc<dyn History>,
}

impl Backends {
    pub fn new<S>(store: S, bus: Arc<dyn Bus>, history: Arc<dyn History>) -> Self
    where
        S: Store + KeyStore + WebhookStore + RecordingStore + DashboardStore + UsageStore + Clone,
    {
        Backends {
            store: Arc::new(store.clone()),
            keys: Arc::new(store.clone()),
            webhooks: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            dashboard: Arc::new(store.clone()),
            usage: Arc::new(store),
            bus,
            history,
        }
    }
}

/// A started control-plane: answering gateways over the bus (app directory, key directory,
/// recording calls, webhook reports) and delivering webhooks. Its HTTP side is [`routes`]
/// (served beside a gateway's by `waas dev`) or [`serve`] (a control-plane of its own).
/// Dropping it stops the background tasks.
///
/// [`routes`]: ControlPlane::routes
/// [`serve`]: ControlPlane::serve
pub struct ControlPlane {
    pub store: Arc<dyn Store>,
    pub recordings: Arc<Recordings>,
    pub webhooks: Arc<Webhooks>,
    admin: Arc<Admin>,
    dashboard: Arc<Dashboard>,
    /// Gateways and server connections, from the gateways' reports.
    servers: Arc<crate::servers::Monitor>,
    /// Per-app usage figures.
    pub usage: Arc<Usage>,
    /// Dashboard accounts: for the first operator, made by the caller after start.
    pub accounts: Arc<dyn DashboardStore>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ControlPlane {
    /// Resumes recordings and subscribes every responder before it returns, so a gateway
    /// asking as soon as the process says it is listening gets an answer.
    pub async fn start(config: Config, backends: Backends) -> Result<ControlPlane, StartError> {
        let Config {
            subject_prefix: prefix,
            operator_token,
            outbound,
            webhooks: webhook_config,
            history,
            dashboard: dashboard_config,
            usage: usage_config,
        } = config;
        let bus = backends.bus;
        let recordings = Recordings::new(
            backends.recordings,
            Arc::clone(&backends.store),
            backends.history,
            prefix.clone(),
            history,
            &operator_token,
        );
        recordings.resume().await?;
        let mut tasks = vec![recordings.serve(Arc::clone(&bus), &prefix).await?];
        let webhooks = Webhooks::new(backends.webhooks, webhook_config, outbound);
        let directory = Directory::new(
            Arc::clone(&backends.store),
            Arc::clone(&bus),
            prefix.clone(),
            Arc::clone(&webhooks),
        );
        tasks.push(directory.serve().await?);
        tasks.push(crate::keys::serve(backends.keys, Arc::clone(&bus), &prefix).await?);
        crate::metrics::init();
        let servers = Arc::new(crate::servers::Monitor::new(
            dashboard_config.servers_monitor(),
        ));
        tasks.push(crate::servers::follow(Arc::clone(&servers), Arc::clone(&bus), &prefix).await?);
        let usage = Usage::new(
            backends.usage,
            usage_config,
            Arc::clone(&webhooks.worker.usage),
        );
        tasks.extend(usage.start(Arc::clone(&bus), &prefix).await?);
        tasks.extend(webhooks.start(bus, &prefix).await?);
        let admin = Admin::new(
            Arc::clone(&backends.store),
            directory,
            Arc::clone(&webhooks),
            &operator_token,
            outbound,
            Arc::clone(&backends.dashboard),
        );
        let dashboard = Dashboard::new(
            Arc::clone(&backends.dashboard),
            Arc::clone(&backends.store),
            Arc::clone(&admin),
            Arc::clone(&recordings),
            dashboard_config,
            Arc::clone(&servers),
        );
        Ok(ControlPlane {
            accounts: backends.dashboard,
            dashboard,
            usage,
            store: backends.store,
            recordings,
            webhooks,
            admin,
            servers,
            tasks,
        })
    }

    /// The admin API, the recordings' admin routes and the dashboard.
    pub fn routes(&self) -> Router {
        admin::router(Arc::clone(&self.admin))
            .merge(recording_routes(Arc::clone(&self.recordings)))
            .merge(crate::dashboard::router(Arc::clone(&self.dashboard)))
            .merge(crate::servers::routes::routes(Arc::new(
                crate::servers::routes::ServersApi {
                    admin: Arc::clone(&self.admin),
                    monitor: Arc::clone(&self.servers),
                },
            )))
            .merge(crate::admin::usage::routes(
                Arc::clone(&self.admin),
                Arc::clone(&self.usage),
            ))
            .merge(crate::dashboard::usage::router(
                Arc::clone(&self.dashboard),
                Arc::clone(&self.usage),
            ))
    }

    /// Serves [`routes`](Self::routes), the admin API's OpenAPI document, health and metrics
    /// on `listener` within `limits` (the same bounds as gateways) until `shutdown`; then stops
    /// the background tasks and gives requests in flight `grace` to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        limits: HttpLimits,
        grace: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let routes = self
            .routes()
            .merge(waas_core::http::openapi::route(&admin::openapi::document()))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/metrics",
                axum::routing::get(|| async { waas_core::metrics::METRICS.response() }),
            );
        let http = waas_core::http::accept::accept_until(listener, routes, limits, shutdown).await;
        drop(self);
        let _ = tokio::time::timeout(grace, http.drain()).await;
    }
}
