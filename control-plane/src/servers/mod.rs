//! Gateways and the tenants' server connections, as the gateways report them over the bus
//! (`waas_core::nodes`): the dashboard's Servers page (`docs/dashboard.md#servers`) and the
//! admin API's `GET /v1/admin/nodes` and `GET /v1/admin/apps/{id}/servers` (`docs/admin.md`).
//!
//! - [`monitor`]: the view built from the reports: nodes, online and offline servers, expiry.
//! - [`routes`]: the admin API's part.

pub mod monitor;
pub mod routes;

pub use monitor::{Monitor, MonitorConfig, NodeView, ServerView};

use futures_util::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::nodes::{report_subject, NodeReport};

/// Follows the gateways' reports into `monitor`. Subscribed before this returns, so a gateway
/// reporting as soon as the control-plane is up is heard.
pub async fn follow(
    monitor: Arc<Monitor>,
    bus: Arc<dyn Bus>,
    prefix: &str,
) -> Result<JoinHandle<()>, BusError> {
    let mut reports = bus.subscribe(&report_subject(prefix)).await?;
    Ok(tokio::spawn(async move {
        while let Some(payload) = reports.next().await {
            match serde_json::from_slice::<NodeReport>(&payload) {
                Ok(report) => monitor.apply(report),
                Err(e) => tracing::warn!(error = %e, "unreadable node report"),
            }
        }
    }))
}
