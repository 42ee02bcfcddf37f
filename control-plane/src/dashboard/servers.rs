//! The Servers page: the tenant's server connections (connected with an API key) with their
//! gateway, region, connection time, state and ping latency, and for operators the cluster's
//! gateway nodes. The page is rendered whole by the server; `servers.js` then asks
//! `/dashboard/servers.json` every `servers_refresh_ms` and redraws the tables, so it follows
//! servers coming and going without a reload.
//!
//! A tenant user sees the servers of their tenant's apps only. `?app=` narrows the page to one
//! app; another tenant's app answers 404, like one that does not exist.

use super::session::SignedIn;
use super::Dashboard;
use crate::servers::{NodeView, ServerView};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use waas_protocol::AppId;

#[derive(Deserialize)]
pub(crate) struct Filter {
    app: Option<String>,
}

/// What both the page and its JSON show.
#[derive(Serialize)]
struct Figures {
    /// The server's clock, ms since the Unix epoch: times are shown relative to it.
    now: u64,
    /// The app the page is narrowed to, if any.
    app: Option<String>,
    servers: Vec<ServerRow>,
    /// Operators only; `null` for tenant users.
    nodes: Option<Vec<NodeRow>>,
}

#[derive(Serialize)]
struct ServerRow {
    #[serde(flatten)]
    server: ServerView,
    since: String,
    /// How long ago it went offline.
    left: Option<String>,
    latency: String,
}

#[derive(Serialize)]
struct NodeRow {
    #[serde(flatten)]
    node: NodeView,
    last_seen_ago: String,
}

/// `ms` before `now`, as a person reads it: `5 s`, `3 min`, `2 h`, `4 d`.
pub(crate) fn ago(then_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// A round trip in ms: one decimal below 10 ms, whole above.
pub(crate) fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms:.0} ms"),
    }
}

/// The figures the signed-in user may see, or `Err` with the answer to give.
async fn figures(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    filter: &Filter,
) -> Result<Figures, Response> {
    let apps = dashboard
        .store
        .list_apps(signed_in.tenant())
        .await
        .map_err(|e| super::pages::unavailable(&e))?;
    let mut ids: HashSet<AppId> = apps.into_iter().map(|a| a.id).collect();
    let app = filter.app.as_deref().filter(|a| !a.is_empty());
    if let Some(wanted) = app {
        // Another tenant's app reads as one that does not exist.
        match AppId::parse(wanted) {
            Ok(id) if ids.contains(&id) => ids = HashSet::from([id]),
            _ => return Err(super::pages::not_found()),
        }
    }
    let now = waas_core::time::now_ms();
    let servers = dashboard
        .servers
        .servers(&ids)
        .into_iter()
        .map(|server| ServerRow {
            since: ago(server.connected_at, now),
            left: server.disconnected_at.map(|at| ago(at, now)),
            latency: latency(server.latency_ms),
            server,
        })
        .collect();
    let nodes = signed_in.tenant().is_none().then(|| {
        dashboard
            .servers
            .nodes()
            .into_iter()
            .map(|node| NodeRow {
                last_seen_ago: ago(node.last_seen, now),
                node,
            })
            .collect()
    });
    Ok(Figures {
        now,
        app: app.map(str::to_owned),
        servers,
        nodes,
    })
}

/// `GET /dashboard/servers`.
pub(crate) async fn page(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Query(filter): Query<Filter>,
) -> Response {
    match figures(&dashboard, &signed_in, &filter).await {
        Ok(figures) => super::pages::render(
            StatusCode::OK,
            "servers.html",
            context! {
                nav => "servers",
                me => super::pages::me(&signed_in),
                figures,
                refresh_ms => dashboard.config.servers_refresh_ms,
            },
        ),
        Err(response) => response,
    }
}

/// `GET /dashboard/servers.json`: the same figures, for `servers.js`.
pub(crate) async fn json(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Query(filter): Query<Filter>,
) -> Response {
    match figures(&dashboard, &signed_in, &filter).await {
        Ok(figures) => Json(figures).into_response(),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_latencies_read_well() {
        assert_eq!(ago(1_000, 6_500), "5 s");
        assert_eq!(ago(0, 180_000), "3 min");
        assert_eq!(ago(0, 7_200_000), "2 h");
        assert_eq!(ago(0, 4 * 86_400_000), "4 d");
        assert_eq!(ago(10, 0), "0 s");
        assert_eq!(latency(None), "—");
        assert_eq!(latency(Some(0.31)), "0.3 ms");
        assert_eq!(latency(Some(42.4)), "42 ms");
    }
}
