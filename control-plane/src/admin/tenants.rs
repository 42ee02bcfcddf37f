//! `/v1/admin/tenants`.

use super::{Admin, AdminError, Operator};
use crate::store::{NewTenant, Tenant};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use waas_protocol::ErrorCode;

#[derive(Deserialize)]
pub struct Rename {
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

pub async fn list(
    State(admin): State<Arc<Admin>>,
    _: Operator,
) -> Result<Json<Vec<Tenant>>, AdminError> {
    Ok(Json(admin.store.list_tenants().await?))
}

pub async fn get(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, AdminError> {
    Ok(Json(admin.store.get_tenant(&id).await?))
}

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
