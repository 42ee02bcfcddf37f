//! What a tenant's admin token may reach (`docs/admin.md`, "Tenant tokens").
//!
//! The rule is written once, here, on the request's path, so that every route under
//! `/v1/admin/apps/{id}/...` (those of other modules too, present and future) is scoped the
//! same way without each handler remembering to check:
//!
//! - `/v1/admin/apps/{id}` and everything under it: only when the app is the tenant's.
//!   Another tenant's app answers `404 not_found` exactly as an app that does not exist, so
//!   ids cannot be probed.
//! - `/v1/admin/apps` (list, create): admitted; the two handlers confine the tenant there (the
//!   list shows only its apps, a new app must be in its tenant).
//! - anything else (tenants, the cluster, recordings' operator calls): `403 forbidden`.
//!
//! Deny by default: a route added elsewhere outside `/v1/admin/apps` is closed to tenant
//! tokens until someone opens it here.

use super::{Admin, AdminError, Operator};
use crate::store::StoreError;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use waas_protocol::{AppId, ErrorCode};

const APPS: &str = "/v1/admin/apps";

/// Admits a request carrying `tenant`'s token, or says why not.
pub(super) async fn admit(
    parts: &mut Parts,
    admin: &Admin,
    tenant: String,
) -> Result<Operator, AdminError> {
    let path = parts.uri.path();
    if path == APPS {
        return Ok(Operator {
            tenant: Some(tenant),
        });
    }
    if !path.starts_with("/v1/admin/apps/") {
        return Err(AdminError::new(
            ErrorCode::Forbidden,
            "a tenant token reaches only its tenant's apps (/v1/admin/apps...)",
        ));
    }
    // Every route under /v1/admin/apps/ names the app in its first parameter.
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, e.body_text()))?;
    let Some((_, id)) = params.iter().next() else {
        return Err(AdminError::new(ErrorCode::NotFound, "no such route"));
    };
    let id = AppId::parse(id).map_err(|e| {
        AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}"))
    })?;
    check_app(admin, &tenant, &id).await?;
    Ok(Operator {
        tenant: Some(tenant),
    })
}

/// `Ok` when app `id` is `tenant`'s; otherwise the store's own "no such app", so another
/// tenant's app and a missing one read the same.
pub(crate) async fn check_app(admin: &Admin, tenant: &str, id: &AppId) -> Result<(), AdminError> {
    match admin.store.get_app(id).await {
        Ok(app) if app.tenant_id == tenant => Ok(()),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(StoreError::app_not_found(id).into()),
        Err(e) => Err(e.into()),
    }
}
