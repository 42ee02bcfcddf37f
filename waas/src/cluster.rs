//! Cluster mode: `waas gateway` nodes and `waas control-plane` over NATS, with apps in
//! PostgreSQL. The gateway has no database connection: it learns apps from the control-plane.

use crate::dev::DevError;
use crate::settings::{Settings, DEV_OPERATOR_TOKEN};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use waas_control_plane::store::postgres::PostgresStore;
use waas_control_plane::{Backends, ControlPlane};
use waas_core::bus::nats::{NatsBus, NatsOptions};
use waas_core::history::jetstream::JetStreamHistory;
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
        gateway: settings.gateway_node(nats, history, false).build(),
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
        waas_gateway::run(self.gateway, listener, openapi, shutdown).await?;
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

/// A started control-plane, not yet serving HTTP.
pub struct ControlPlaneNode {
    control_plane: ControlPlane,
    /// The admin API gets the same header, keep-alive and per-address bounds as gateways.
    limits: HttpLimits,
    grace: std::time::Duration,
}

/// Migrates, connects to NATS, and starts answering gateways' app queries, the key directory,
/// recordings and webhooks. Done before the control-plane says it is listening, so one that
/// cannot open its database or reach NATS exits without ever claiming to serve.
pub async fn start_control_plane(settings: &Settings) -> Result<ControlPlaneNode, DevError> {
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
    let nats = nats_bus(settings, "waas-control-plane").await?;
    // The one recorder of the cluster: durable JetStream taps, so a restart loses no event.
    let history = Arc::new(JetStreamHistory::new(
        Arc::clone(&nats),
        settings.subject_prefix.clone(),
    ));
    let control_plane = ControlPlane::start(
        settings.control_plane(token, false),
        Backends::new(postgres, nats, history),
    )
    .await?;
    crate::first_operator::ensure(control_plane.accounts.as_ref(), false).await?;
    Ok(ControlPlaneNode {
        control_plane,
        limits: HttpLimits::from(&settings.limits),
        grace: settings.limits.shutdown_grace(),
    })
}

impl ControlPlaneNode {
    /// Serves the admin API until `shutdown`, then stops the background tasks and drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DevError> {
        self.control_plane
            .serve(listener, self.limits, self.grace, shutdown)
            .await;
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
