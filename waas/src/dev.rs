//! `waas dev`: the whole service in one process, on the in-process bus, with its apps in
//! memory. Nothing to install: the fastest way from `git clone` to a working socket.

use crate::settings::{Settings, SettingsError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use waas_gateway::bus::memory::MemoryBus;
use waas_gateway::{Gateway, GatewayConfig};

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("invalid app: {0}")]
    App(#[from] waas_gateway::auth::AuthError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Builds the gateway for `settings` without serving it, so callers can inspect it.
pub fn build(settings: &Settings) -> Result<Arc<Gateway>, DevError> {
    settings.validate()?;
    let bus = Arc::new(MemoryBus::new(settings.limits.bus_channel_capacity));
    let gw = Gateway::new(
        GatewayConfig {
            subject_prefix: settings.subject_prefix.clone(),
            limits: settings.limits.clone(),
        },
        bus,
    );
    for app in settings.app_configs()? {
        gw.apps.upsert(app)?;
    }
    Ok(gw)
}

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    let gw = build(&settings)?;
    waas_gateway::server::serve(gw, listener, shutdown).await?;
    Ok(())
}
