//! The gateway's one entry point. `waas dev` and `waas gateway` build their node from the same
//! [`Node`] description, differing only in the bus and history they hand it, so a gateway is
//! wired the same way whichever command runs it.

use crate::config::GatewayConfig;
use crate::gateway::Gateway;
use crate::registry::{self, AppRegistry};
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use waas_core::bus::Bus;
use waas_core::history::History;

/// How the node's cache of apps asks the control-plane's directory, and how long answers last.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryTimings {
    /// Wait for an answer about an app the node does not know.
    pub timeout: Duration,
    /// Age after which a cached app is refreshed in the background.
    pub refresh: Duration,
    /// How long "no such app" is remembered.
    pub missing_ttl: Duration,
}

/// Everything a gateway node is made of.
pub struct Node {
    pub config: GatewayConfig,
    /// Where channels' messages travel; also how the node reaches the control-plane.
    pub bus: Arc<dyn Bus>,
    /// Offsets and kept messages (over the same bus).
    pub history: Arc<dyn History>,
    pub directory: DirectoryTimings,
}

impl Node {
    /// The node's shared state, ready to [`run`].
    pub fn build(self) -> Arc<Gateway> {
        waas_core::metrics::METRICS
            .app_labels
            .set_limit(self.config.limits.metrics_app_labels);
        let apps = AppRegistry::new(
            Some(registry::Directory {
                bus: self.bus,
                prefix: self.config.subject_prefix.clone(),
                timeout: self.directory.timeout,
            }),
            self.directory.refresh,
            self.directory.missing_ttl,
        );
        Gateway::with_history(self.config, self.history, apps)
    }
}

/// Serves WebSockets and REST (plus `routes`: an OpenAPI document, an all-in-one process's
/// admin API) on `listener` until `shutdown`, then drains; see [`crate::server::serve`].
pub async fn run(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::server::serve(gateway, listener, Some(routes), shutdown).await
}
