//! Cluster mode: `waas gateway` nodes and `waas control-plane` over NATS, with apps in
//! PostgreSQL. The gateway has no database connection: it learns apps from the control-plane.

use crate::dev::{self, DevError};
use crate::settings::{Settings, DEV_OPERATOR_TOKEN};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use waas_control_plane::admin::{self, Admin};
use waas_control_plane::directory::Directory;
use waas_control_plane::recordings::routes::routes as recording_routes;
use waas_control_plane::recordings::Recordings;
use waas_control_plane::store::postgres::PostgresStore;
use waas_control_plane::store::Store;
use waas_control_plane::webhooks::Webhooks;
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::bus::Bus;
use waas_core::history::jetstream::JetStreamHistory;
use waas_core::http::accept::accept_until;
use waas_core::http::accept::HttpLimits;

async fn nats_bus(settings: &Settings, name: &str) -> Result<Arc<NatsBus>, DevError> {
    let url = settings.require("nats", &settings.nats)?;
    let options = NatsOptions {
        name: name.into(),
        subscription_capacity: settings.limits.bus_channel_capacity,
        auth: settings.nats_auth.resolve()?,
        tls: settings.nats_tls.resolve()?,
        ..NatsOptions::default()
    };
    Ok(Arc::new(NatsBus::connect(url, options).await?))
}

/// Connects to PostgreSQL and applies pending migrations.
pub async fn migrate(settings: &Settings) -> Result<PostgresStore, DevError> {
    let url = settings.require("database_url", &settings.database_url)?;
    let store = PostgresStore::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

/// A gateway node with its bus connected, ready to serve.
pub struct GatewayNode {
    gateway: Arc<waas_gateway::Gateway>,
}

/// Connects a gateway node to NATS and JetStream. Done before the node says it is listening,
/// so a node that cannot reach NATS exits without ever claiming to serve.
pub async fn start_gateway(settings: &Settings) -> Result<GatewayNode, DevError> {
    settings.validate()?;
    let nats = nats_bus(settings, "waas-gateway").await?;
    // Channel history, offsets and recovery live in JetStream, shared by every gateway.
    let history = Arc::new(JetStreamHistory::new(
        Arc::clone(&nats),
        settings.subject_prefix.clone(),
    ));
    Ok(GatewayNode {
        gateway: dev::gateway_on(settings, nats, history, false),
    })
}

impl GatewayNode {
    /// Serves WebSockets and REST until `shutdown`, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DevError> {
        let openapi = waas_core::http::openapi::route(&waas_gateway::openapi::document());
        waas_gateway::server::serve(self.gateway, listener, Some(openapi), shutdown).await?;
        Ok(())
    }
}

/// A gateway node: serves WebSockets and REST until `shutdown`, then drains.
pub async fn run_gateway(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    start_gateway(&settings)
        .await?
        .serve(listener, shutdown)
        .await
}

/// A started control-plane: store migrated, NATS connected, responders and workers running;
/// not yet serving HTTP.
pub struct ControlPlane {
    routes: axum::Router,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    grace: std::time::Duration,
    /// The admin API gets the same header, keep-alive and per-address bounds as gateways.
    limits: HttpLimits,
}

/// Migrates, connects to NATS, and starts answering gateways' app queries, the key directory,
/// recordings and webhooks. Done before the control-plane says it is listening, so one that
/// cannot open its database or reach NATS exits without ever claiming to serve.
pub async fn start_control_plane(settings: &Settings) -> Result<ControlPlane, DevError> {
    settings.validate()?;
    let token = settings.require("operator_token", &settings.operator_token)?;
    if token == DEV_OPERATOR_TOKEN {
        return Err(crate::settings::SettingsError::Invalid {
            key: "operator_token".into(),
            reason: "the dev token is not accepted outside `waas dev`".into(),
        }
        .into());
    }
    // NATS settings are checked (and their files read) before the database is touched.
    settings.nats_auth.resolve()?;
    settings.nats_tls.resolve()?;
    let postgres = migrate(settings).await?;
    let store: Arc<dyn Store> = Arc::new(postgres.clone());
    let nats = nats_bus(settings, "waas-control-plane").await?;
    let bus: Arc<dyn Bus> = nats.clone();
    // The one recorder of the cluster: durable JetStream taps, so a restart loses no event.
    let recordings = Recordings::new(
        Arc::new(postgres.clone()),
        Arc::clone(&store),
        Arc::new(JetStreamHistory::new(nats, settings.subject_prefix.clone())),
        settings.subject_prefix.clone(),
        settings.limits.history_policy(),
        token,
    );
    recordings.resume().await?;
    let recording_calls = recordings
        .serve(Arc::clone(&bus), &settings.subject_prefix)
        .await?;
    let directory = Directory::new(
        Arc::clone(&store),
        Arc::clone(&bus),
        settings.subject_prefix.clone(),
    );
    let serving = directory.serve().await?;
    let keys = waas_control_plane::keys::serve(
        Arc::new(postgres.clone()),
        Arc::clone(&bus),
        &settings.subject_prefix,
    )
    .await?;
    waas_control_plane::metrics::init();
    let webhooks = Webhooks::new(
        Arc::new(postgres),
        settings.webhooks.clone(),
        settings.outbound(false),
    );
    directory.set_webhooks(Arc::clone(&webhooks));
    let mut tasks = webhooks.start(bus, &settings.subject_prefix).await?;
    tasks.extend([serving, keys, recording_calls]);
    let admin_state = Admin::new(store, directory, token, settings.outbound(false));
    let _ = admin_state.webhooks.set(webhooks);
    let routes = admin::router(admin_state)
        .merge(recording_routes(recordings))
        .merge(waas_core::http::openapi::route(
            &waas_control_plane::admin::openapi::document(),
        ))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/metrics",
            axum::routing::get(|| async { waas_core::metrics::METRICS.response() }),
        );
    Ok(ControlPlane {
        routes,
        tasks,
        grace: settings.limits.shutdown_grace(),
        limits: HttpLimits::from(&settings.limits),
    })
}

impl ControlPlane {
    /// Serves the admin API until `shutdown`, then stops the background tasks and drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DevError> {
        let http = accept_until(listener, self.routes, self.limits, shutdown).await;
        for task in self.tasks {
            task.abort();
        }
        let _ = tokio::time::timeout(self.grace, http.drain()).await;
        Ok(())
    }
}

/// The control-plane: migrates, answers gateways' app queries, serves the admin API.
pub async fn run_control_plane(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    start_control_plane(&settings)
        .await?
        .serve(listener, shutdown)
        .await
}
