//! What each gateway tells the control-plane about itself, for the dashboard's Servers page and
//! `GET /v1/admin/nodes`, `GET /v1/admin/apps/{app}/servers` (`docs/admin.md`): a
//! [`NodeReport`] published every `node_report_ms`, and at once when one of its tenants'
//! servers connects, disconnects or is first measured. Every report is the node's whole state,
//! not a change, so a lost report costs nothing but freshness, and a control-plane that starts
//! late learns everything at the next one. Plain publishes (no queue group): every
//! control-plane keeps the same view.

use serde::{Deserialize, Serialize};
use waas_protocol::{AppId, ServerName};

/// Subject of [`NodeReport`]s, `{prefix}.$ctl.nodes.report`: internal, so no tenant reaches it
/// (`crate::subjects`).
pub fn report_subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "nodes.report")
}

/// One gateway process and the server connections it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's id: 16 hex digits drawn at start-up, the `{node}` of its connection ids.
    pub node: String,
    /// The `region` setting; empty when unset.
    #[serde(default)]
    pub region: String,
    /// The `waas` version the node runs.
    pub version: String,
    /// When the process started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// How often it reports, ms: the control-plane deems it gone after three missed reports.
    pub interval_ms: u64,
    /// Open WebSocket connections (native and Pusher), authenticated or not.
    pub connections: u64,
    /// The server connections (API key) it holds, at most `max_reported_servers`.
    #[serde(default)]
    pub servers: Vec<ServerConnection>,
    /// Server connections left out of `servers` because of that limit.
    #[serde(default)]
    pub servers_omitted: u64,
    /// The node's last report: it is shutting down, its servers are offline now.
    #[serde(default)]
    pub stopping: bool,
}

/// A connection authenticated with an API key (`sub` `"server"`): one of a tenant's servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConnection {
    pub app: AppId,
    /// Its `connection_id` (`ready.connection_id`), unique in the cluster.
    pub connection_id: String,
    /// The `server_name` its SDK sent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ServerName>,
    /// When it was authenticated, ms since the Unix epoch.
    pub connected_at_ms: u64,
    /// Round trip of the gateway's last answered WebSocket ping, microseconds; `None` until the
    /// first pong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_and_old_fields_default() {
        let report = NodeReport {
            node: "00ff".into(),
            region: "eu".into(),
            version: "0.1.0".into(),
            started_at_ms: 1,
            interval_ms: 5000,
            connections: 3,
            servers: vec![ServerConnection {
                app: AppId::parse("demo").unwrap(),
                connection_id: "demo-00ff-1".into(),
                name: Some(ServerName::parse("api-1").unwrap()),
                connected_at_ms: 2,
                latency_us: Some(350),
            }],
            servers_omitted: 0,
            stopping: false,
        };
        let json = serde_json::to_vec(&report).unwrap();
        assert_eq!(serde_json::from_slice::<NodeReport>(&json).unwrap(), report);
        let bare: NodeReport = serde_json::from_str(
            r#"{"node":"a","version":"v","started_at_ms":0,"interval_ms":1,"connections":0}"#,
        )
        .unwrap();
        assert!(bare.servers.is_empty() && !bare.stopping && bare.region.is_empty());
    }
}
