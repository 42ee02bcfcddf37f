//! `GET /v1/admin/nodes` and `GET /v1/admin/apps/{id}/servers`, with the operator token
//! (`docs/admin.md#servers-and-nodes`). A router of its own, merged beside the admin API.

use super::{Monitor, NodeView, ServerView};
use crate::admin::{Admin, AdminError, Operator};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use std::collections::HashSet;
use std::sync::Arc;
use waas_protocol::rest::ErrorBody;
use waas_protocol::{AppId, ErrorCode};

/// What the handlers share: the admin API (its store, its operator token) and the view.
pub struct ServersApi {
    pub admin: Arc<Admin>,
    pub monitor: Arc<Monitor>,
}

/// The operator token, checked as the rest of the admin API checks it.
pub struct Authorized;

impl FromRequestParts<Arc<ServersApi>> for Authorized {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<ServersApi>,
    ) -> Result<Self, AdminError> {
        Operator::from_request_parts(parts, &api.admin).await?;
        Ok(Authorized)
    }
}

#[utoipa::path(
    get,
    path = "/v1/admin/nodes",
    operation_id = "list_nodes",
    tag = "admin: servers",
    summary = "The cluster's gateway nodes",
    description = "Every gateway heard from: online ones, and for `servers_offline_keep_secs` those that stopped or missed three reports.",
    responses(
        (status = 200, description = "The nodes, online first.", body = Vec<NodeView>),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn nodes(State(api): State<Arc<ServersApi>>, _: Authorized) -> Json<Vec<NodeView>> {
    Json(api.monitor.nodes())
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/servers",
    operation_id = "list_servers",
    tag = "admin: servers",
    summary = "An app's server connections",
    description = "Connections authenticated with one of the app's API keys, online and recently offline, with their gateway, region and ping latency.",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 200, description = "Online servers first, then offline ones, latest first.", body = Vec<ServerView>),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn servers(
    State(api): State<Arc<ServersApi>>,
    _: Authorized,
    Path(id): Path<String>,
) -> Result<Json<Vec<ServerView>>, AdminError> {
    let id = AppId::parse(&id).map_err(|e| {
        AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}"))
    })?;
    api.admin.store.get_app(&id).await?;
    Ok(Json(api.monitor.servers(&HashSet::from([id]))))
}

pub fn routes(api: Arc<ServersApi>) -> Router {
    Router::new()
        .route("/v1/admin/nodes", get(nodes))
        .route("/v1/admin/apps/{id}/servers", get(servers))
        .layer(axum::middleware::map_response(
            waas_core::http::json_errors::json_errors,
        ))
        .with_state(api)
}
