//! `/v1/admin/tenants`.

use super::{Admin, AdminError, Operator};
use crate::store::{NewTenant, Tenant};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use waas_protocol::rest::ErrorBody;
use waas_protocol::ErrorCode;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Rename {
    /// 1 to 200 bytes.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

fn check_name(name: &str) -> Result<(), AdminError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(AdminError::new(
            ErrorCode::BadRequest,
            "\"name\" must be 1 to 200 bytes",
        ));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    operation_id = "create_tenant",
    tag = "admin: tenants",
    summary = "Create a tenant",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The new tenant.", body = Tenant),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; `name` not 1 to 200 bytes; an invalid id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token; tenant tokens reach only their tenant's apps.", body = ErrorBody),
        (status = 409, description = "`conflict`: a tenant with this id exists.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn create(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<Tenant>), AdminError> {
    let Json(new) = body?;
    check_name(&new.name)?;
    if let Some(id) = &new.id {
        waas_protocol::AppId::parse(id).map_err(|e| {
            AdminError::new(ErrorCode::BadRequest, format!("invalid tenant id: {e}"))
        })?;
    }
    Ok((
        StatusCode::CREATED,
        Json(admin.store.create_tenant(new).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    operation_id = "list_tenants",
    tag = "admin: tenants",
    summary = "Every tenant",
    responses(
        (status = 200, description = "The tenants.", body = Vec<Tenant>),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token; tenant tokens reach only their tenant's apps.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn list(
    State(admin): State<Arc<Admin>>,
    _: Operator,
) -> Result<Json<Vec<Tenant>>, AdminError> {
    Ok(Json(admin.store.list_tenants().await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    operation_id = "get_tenant",
    tag = "admin: tenants",
    summary = "One tenant",
    params(("id" = String, Path, description = "The tenant id.")),
    responses(
        (status = 200, description = "The tenant.", body = Tenant),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token; tenant tokens reach only their tenant's apps.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such tenant.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn get(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, AdminError> {
    Ok(Json(admin.store.get_tenant(&id).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    operation_id = "rename_tenant",
    tag = "admin: tenants",
    summary = "Rename a tenant",
    params(("id" = String, Path, description = "The tenant id.")),
    request_body = Rename,
    responses(
        (status = 200, description = "The renamed tenant.", body = Tenant),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; `name` not 1 to 200 bytes.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token; tenant tokens reach only their tenant's apps.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such tenant.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn rename(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Result<Json<Rename>, JsonRejection>,
) -> Result<Json<Tenant>, AdminError> {
    let Json(r) = body?;
    check_name(&r.name)?;
    Ok(Json(admin.store.rename_tenant(&id, &r.name).await?))
}

/// Deletes the tenant and its apps; gateways drop the apps' connections.
#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    operation_id = "delete_tenant",
    tag = "admin: tenants",
    summary = "Delete a tenant and its apps",
    params(("id" = String, Path, description = "The tenant id.")),
    responses(
        (status = 204, description = "Deleted, with its apps; their connections are closed with 4502."),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 403, description = "`forbidden`: a tenant token; tenant tokens reach only their tenant's apps.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such tenant.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn delete(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    for app in admin.store.delete_tenant(&id).await? {
        admin.directory.deleted(&app).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
