//! The state one gateway node shares between its tasks.

use crate::config::GatewayConfig;
use crate::connections::Connections;
use crate::hub::Hub;
use crate::registry::AppRegistry;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::directory::{changes_subject, AppChanged};
use waas_core::history::{memory::MemoryHistory, History};
use waas_core::publisher::Publisher;
use waas_protocol::CloseCode;

pub struct Gateway {
    pub config: GatewayConfig,
    pub apps: Arc<AppRegistry>,
    pub hub: Arc<Hub>,
    pub publisher: Publisher,
    pub connections: Arc<Connections>,
    /// Presence members and channel occupancy across the cluster.
    pub presence: Arc<crate::presence::Presence>,
    /// Reports to the control-plane for webhooks.
    pub reporter: Arc<crate::webhooks::Reporter>,
    /// Request/response: the pooled client for HTTP upstreams.
    pub rpc: crate::rpc::Rpc,
    /// Connections of the Pusher front signed in as a user, for `terminate_connections`.
    pub pusher_users: Arc<crate::pusher::users::Users>,
    /// Server connections (API key) and their latency, reported to the control-plane.
    pub servers: Arc<crate::servers::Servers>,
}

impl Gateway {
    /// A gateway keeping history in memory (one process, `waas dev`).
    pub fn new(config: GatewayConfig, bus: Arc<dyn Bus>, apps: AppRegistry) -> Arc<Self> {
        Self::with_history(config, Arc::new(MemoryHistory::new(bus)), apps)
    }

    /// A gateway on the given history (and the bus under it).
    pub fn with_history(
        config: GatewayConfig,
        history: Arc<dyn History>,
        apps: AppRegistry,
    ) -> Arc<Self> {
        let bus = Arc::clone(history.bus());
        // Presence reports its transitions to the reporter from the start: built first, and
        // handed over, rather than set once serving begins.
        let reporter = Arc::new(crate::webhooks::Reporter::new(
            &config.subject_prefix,
            config.limits.webhook_report_queue,
        ));
        Arc::new(Gateway {
            hub: Arc::new(
                Hub::with_resync(
                    Arc::clone(&history),
                    crate::resync::Settings::new(&config.limits),
                )
                .with_usage(Arc::clone(apps.usage()))
                .with_direct_writes(config.limits.direct_write_max_subscribers),
            ),
            publisher: Publisher::new(
                history,
                config.subject_prefix.clone(),
                config.limits.history_policy(),
            ),
            apps: Arc::new(apps),
            connections: Arc::default(),
            presence: Arc::new(crate::presence::Presence::new(
                Arc::clone(&bus),
                &config.subject_prefix,
                &config.limits,
                reporter.clone(),
            )),
            reporter,
            rpc: crate::rpc::Rpc::new(bus, &config.subject_prefix, config.outbound),
            pusher_users: Arc::default(),
            servers: Arc::default(),
            config,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.publisher.bus().is_ready()
    }

    /// Follows the control-plane's app change notices: a cached app is read again (updates take
    /// effect on the next lookup), and a deleted app's connections are closed. Subscribed before this returns, so no change made
    /// after start-up is missed.
    pub async fn follow_app_changes(self: &Arc<Self>) -> Result<JoinHandle<()>, BusError> {
        let mut changes = self
            .publisher
            .bus()
            .subscribe(&changes_subject(&self.config.subject_prefix))
            .await?;
        let gw = Arc::clone(self);
        Ok(tokio::spawn(async move {
            while let Some(payload) = changes.next().await {
                // One notice at a time, each read finished before the next: answers to two reads
                // of one app cannot then arrive in the wrong order (webhook interest changes
                // keep the app's version, so a stale answer could not be told apart).
                match serde_json::from_slice::<AppChanged>(&payload) {
                    Ok(change) => {
                        if gw.apps.follow(&change).await {
                            gw.connections
                                .close_app(change.id.as_str(), CloseCode::APP_NOT_FOUND);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable app change event"),
                }
            }
        }))
    }
}

/// Frees, every `history_sweep_ms`, the history state of channels that have expired and have no
/// subscriber here (`waas_core::history::History::sweep`), so that a gateway's memory follows the
/// channels in use rather than every channel ever used.
pub async fn sweep_history(gw: Arc<Gateway>) {
    let every = std::time::Duration::from_millis(gw.config.limits.history_sweep_ms.max(1));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        gw.publisher.history().sweep();
    }
}
