//! `/v1/admin/apps`: apps, their API keys, JWT keys, Pusher credentials and limits. Secrets (API
//! keys, generated HS256 and Pusher secrets) appear in a response once, when created; reads
//! never show them.

use super::{Admin, AdminError, Operator};
use crate::secrets;
use crate::store::{ApiKeyRecord, AppPatch, AppRecord, NewApiKey, NewApp};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waas_core::app::{hash_api_key, App, AppLimits};
use waas_core::route::{validate_routes, Route};
use waas_protocol::rest::ErrorBody;
use waas_protocol::{AppId, ErrorCode};

/// An app as the admin API shows it: everything but secrets.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AppView {
    #[schema(value_type = String)]
    id: AppId,
    tenant_id: String,
    name: String,
    has_jwt_secret: bool,
    jwt_rsa_public_key: Option<String>,
    jwt_ec_public_key: Option<String>,
    limits: AppLimits,
    routes: Vec<Route>,
    /// Origins allowed to open WebSockets; empty allows any (`docs/admin.md`).
    allowed_origins: Vec<String>,
    api_keys: Vec<KeyView>,
    /// Whether the app has a Pusher secret, so that the Pusher-protocol front serves it
    /// (`docs/pusher.md`); its Pusher key is its id.
    pusher_enabled: bool,
    /// Whether Pusher clients may send `client-` events on private and presence channels.
    pusher_client_events: bool,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    id: String,
    prefix: String,
    label: Option<String>,
    created_at: i64,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        KeyView {
            id: k.id.clone(),
            prefix: k.prefix.clone(),
            label: k.label.clone(),
            created_at: k.created_at,
        }
    }
}

impl From<AppRecord> for AppView {
    fn from(a: AppRecord) -> Self {
        AppView {
            has_jwt_secret: a.jwt_secret.is_some(),
            pusher_enabled: a.pusher_secret.is_some(),
            pusher_client_events: a.pusher_client_events,
            api_keys: a.api_keys.iter().map(KeyView::from).collect(),
            id: a.id,
            tenant_id: a.tenant_id,
            name: a.name,
            jwt_rsa_public_key: a.jwt_rsa_public_key,
            jwt_ec_public_key: a.jwt_ec_public_key,
            limits: a.limits,
            routes: a.routes,
            allowed_origins: a.allowed_origins,
            version: a.version,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    id: String,
    /// An existing tenant.
    tenant_id: String,
    name: Option<String>,
    /// Generated when absent and no public key is given.
    jwt_secret: Option<String>,
    jwt_rsa_public_key: Option<String>,
    jwt_ec_public_key: Option<String>,
    #[serde(default)]
    limits: AppLimits,
    /// Origins allowed to open WebSockets; empty or absent allows any.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Open the Pusher front for this app (`docs/pusher.md`). Off by default: a Pusher client
    /// needs no token to read public channels, so an app opts in knowingly.
    #[serde(default)]
    pusher: bool,
    /// The Pusher-protocol secret; giving one turns the Pusher front on, `pusher: true` without
    /// one generates it.
    pusher_secret: Option<String>,
    /// Let Pusher clients send `client-` events. Default `false`.
    #[serde(default)]
    pusher_client_events: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    app: AppView,
    /// The app's first API key. Shown only here.
    api_key: String,
    /// The HS256 secret when one was generated or given. Shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_secret: Option<String>,
    /// The Pusher secret, generated or given, when the Pusher front is on; the Pusher key is the
    /// app id. Shown only here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pusher_secret: Option<String>,
}

/// Refuses key material gateways could not use, before it is stored and shipped to them.
fn check_keys(record: &AppRecord) -> Result<(), AdminError> {
    App::new(record.gateway_config(), None)
        .map(|_| ())
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, e.to_string()))
}

/// Checks an `allowed_origins` list and returns it as stored (lower-case).
fn origins(list: &[String]) -> Result<Vec<String>, AdminError> {
    waas_core::origin::normalize(list)
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, e.to_string()))
}

pub(super) fn app_id(id: &str) -> Result<AppId, AdminError> {
    AppId::parse(id)
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}")))
}

pub(super) async fn announce(admin: &Admin, app: &AppRecord) {
    admin.directory.changed(&app.id).await;
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps",
    operation_id = "create_app",
    tag = "admin: apps",
    summary = "Create an app",
    request_body = CreateApp,
    responses(
        (status = 201, description = "The app, its first API key and its HS256 secret (shown only here).", body = Created),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid id; an empty `jwt_secret`; a PEM key that does not parse; an invalid limit or `allowed_origins` entry. `reserved_id`: the id is reserved.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such tenant.", body = ErrorBody),
        (status = 409, description = "`conflict`: an app with this id exists.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn create(
    State(admin): State<Arc<Admin>>,
    caller: Operator,
    body: Result<Json<CreateApp>, JsonRejection>,
) -> Result<(StatusCode, Json<Created>), AdminError> {
    let Json(req) = body?;
    // A tenant token creates apps in its own tenant only; another tenant reads as missing.
    if caller.tenant.as_ref().is_some_and(|t| *t != req.tenant_id) {
        return Err(crate::store::StoreError::tenant_not_found(&req.tenant_id).into());
    }
    Ok((StatusCode::CREATED, Json(create_app(&admin, req).await?)))
}

impl CreateApp {
    /// An app with only the required fields and its name, the rest as the admin API defaults
    /// them: what the dashboard's form asks for.
    pub(crate) fn new(id: String, tenant_id: String, name: Option<String>) -> Self {
        CreateApp {
            id,
            tenant_id,
            name,
            jwt_secret: None,
            jwt_rsa_public_key: None,
            jwt_ec_public_key: None,
            limits: AppLimits::default(),
            allowed_origins: Vec::new(),
            pusher: false,
            pusher_secret: None,
            pusher_client_events: false,
        }
    }
}

impl Created {
    /// The new app's id and its secrets, for the dashboard to show once.
    pub(crate) fn parts(&self) -> (&AppId, &str, Option<&str>) {
        (&self.app.id, &self.api_key, self.jwt_secret.as_deref())
    }
}

/// Creates an app as `POST /v1/admin/apps` does (checks, first API key, announcement); shared
/// with the dashboard so the two cannot differ.
pub(crate) async fn create_app(admin: &Admin, req: CreateApp) -> Result<Created, AdminError> {
    let id = app_id(&req.id)?;
    if id.is_reserved() {
        return Err(AdminError::new(
            ErrorCode::ReservedId,
            format!(
                "app id {:?} is reserved; reserved ids (any case): {}",
                id.as_str(),
                waas_protocol::RESERVED_APP_IDS.join(", ")
            ),
        ));
    }
    let allowed_origins = origins(&req.allowed_origins)?;
    let pusher_secret = match (req.pusher, req.pusher_secret) {
        (false, None) => None,
        (_, given) => Some(super::pusher::secret(given)?),
    };
    let jwt_secret = match (
        &req.jwt_secret,
        &req.jwt_rsa_public_key,
        &req.jwt_ec_public_key,
    ) {
        (Some(s), _, _) if s.is_empty() => {
            return Err(AdminError::new(
                ErrorCode::BadRequest,
                "\"jwt_secret\" must not be empty",
            ))
        }
        (Some(s), _, _) => Some(s.clone()),
        (None, None, None) => Some(secrets::jwt_secret()),
        (None, _, _) => None,
    };
    let new = NewApp {
        name: req.name.unwrap_or_else(|| id.to_string()),
        id,
        tenant_id: req.tenant_id,
        jwt_secret: jwt_secret.clone(),
        jwt_rsa_public_key: req.jwt_rsa_public_key,
        jwt_ec_public_key: req.jwt_ec_public_key,
        limits: req.limits,
        pusher_secret: pusher_secret.clone(),
        pusher_client_events: req.pusher_client_events,
    };
    let probe = AppRecord {
        id: new.id.clone(),
        tenant_id: new.tenant_id.clone(),
        name: new.name.clone(),
        jwt_secret: new.jwt_secret.clone(),
        jwt_rsa_public_key: new.jwt_rsa_public_key.clone(),
        jwt_ec_public_key: new.jwt_ec_public_key.clone(),
        limits: new.limits.clone(),
        routes: vec![],
        allowed_origins: vec![],
        api_keys: vec![],
        version: 0,
        created_at: 0,
        updated_at: 0,
        pusher_secret: new.pusher_secret.clone(),
        pusher_client_events: new.pusher_client_events,
    };
    check_keys(&probe)?;
    let mut app = admin.store.create_app(new).await?;
    if !allowed_origins.is_empty() {
        let patch = AppPatch {
            allowed_origins: Some(allowed_origins),
            ..AppPatch::default()
        };
        app = admin.store.update_app(&app.id, patch).await?;
    }
    let key = secrets::api_key();
    let app = admin
        .store
        .add_api_key(
            &app.id,
            NewApiKey {
                id: secrets::id(),
                prefix: key.prefix.clone(),
                hash: hash_api_key(&key.key),
                label: Some("initial".into()),
            },
        )
        .await?;
    announce(admin, &app).await;
    Ok(Created {
        app: app.into(),
        api_key: key.key,
        jwt_secret,
        pusher_secret,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's apps.
    tenant: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps",
    operation_id = "list_apps",
    tag = "admin: apps",
    summary = "Every app, or one tenant's",
    params(ListQuery),
    responses(
        (status = 200, description = "The apps, ordered by id.", body = Vec<AppView>),
        (status = 400, description = "`bad_request`: an invalid query string.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn list(
    State(admin): State<Arc<Admin>>,
    caller: Operator,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<AppView>>, AdminError> {
    // A tenant token lists its tenant's apps, whatever `tenant` it asks for.
    let tenant = caller.tenant.or(q.tenant);
    let apps = admin.store.list_apps(tenant.as_deref()).await?;
    Ok(Json(apps.into_iter().map(AppView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}",
    operation_id = "get_app",
    tag = "admin: apps",
    summary = "One app",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 200, description = "The app (no secrets).", body = AppView),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn get(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<AppView>, AdminError> {
    Ok(Json(admin.store.get_app(&app_id(&id)?).await?.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    name: Option<String>,
    /// A PEM public key; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    jwt_rsa_public_key: Option<Option<String>>,
    /// A PEM public key; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    jwt_ec_public_key: Option<Option<String>>,
    limits: Option<AppLimits>,
    /// Replaces every route (`docs/rpc.md`); `[]` removes them all.
    routes: Option<Vec<Route>>,
    /// Replaces the Origin allow-list; `[]` allows any origin again.
    allowed_origins: Option<Vec<String>>,
    /// Let Pusher clients send `client-` events on private and presence channels.
    pusher_client_events: Option<bool>,
}

/// Tells `"field": null` (clear it) apart from a missing field (leave it).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

#[utoipa::path(
    patch,
    path = "/v1/admin/apps/{id}",
    operation_id = "update_app",
    tag = "admin: apps",
    summary = "Change an app",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = UpdateApp,
    responses(
        (status = 200, description = "The changed app.", body = AppView),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid app id; a PEM key that does not parse; a route gateways could not follow; an invalid limit.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn update(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Result<Json<UpdateApp>, JsonRejection>,
) -> Result<Json<AppView>, AdminError> {
    let Json(req) = body?;
    let id = app_id(&id)?;
    let patch = AppPatch {
        name: req.name,
        jwt_secret: None,
        jwt_rsa_public_key: req.jwt_rsa_public_key,
        jwt_ec_public_key: req.jwt_ec_public_key,
        limits: req.limits,
        routes: req.routes,
        allowed_origins: req.allowed_origins.as_deref().map(origins).transpose()?,
        pusher_secret: None,
        pusher_client_events: req.pusher_client_events,
    };
    if let Some(routes) = &patch.routes {
        validate_routes(routes, &admin.outbound)
            .map_err(|e| AdminError::new(ErrorCode::BadRequest, e.to_string()))?;
    }
    // Check the result before storing it: a bad PEM must not reach gateways.
    let mut probe = admin.store.get_app(&id).await?;
    if let Some(k) = &patch.jwt_rsa_public_key {
        probe.jwt_rsa_public_key = k.clone();
    }
    if let Some(k) = &patch.jwt_ec_public_key {
        probe.jwt_ec_public_key = k.clone();
    }
    check_keys(&probe)?;
    let app = admin.store.update_app(&id, patch).await?;
    announce(&admin, &app).await;
    Ok(Json(app.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{id}",
    operation_id = "delete_app",
    tag = "admin: apps",
    summary = "Delete an app",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 204, description = "Deleted; its connections are closed with 4502 on every gateway."),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn delete(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let id = app_id(&id)?;
    admin.store.delete_app(&id).await?;
    admin.directory.deleted(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    label: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyCreated {
    /// The new API key. Shown only here.
    api_key: String,
    key: KeyView,
    app: AppView,
}

/// Adds a key; rotating is adding a new key, moving servers to it, then revoking the old one.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/keys",
    operation_id = "add_api_key",
    tag = "admin: apps",
    summary = "Add an API key",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = Option<AddKey>,
    responses(
        (status = 201, description = "The new key (shown only here), its id and the app.", body = KeyCreated),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 500, description = "`internal`: the new key was not stored.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn add_key(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Option<Json<AddKey>>,
) -> Result<(StatusCode, Json<KeyCreated>), AdminError> {
    let id = app_id(&id)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let key = secrets::api_key();
    let key_id = secrets::id();
    let app = admin
        .store
        .add_api_key(
            &id,
            NewApiKey {
                id: key_id.clone(),
                prefix: key.prefix.clone(),
                hash: hash_api_key(&key.key),
                label: req.label,
            },
        )
        .await?;
    announce(&admin, &app).await;
    let view = app
        .api_keys
        .iter()
        .find(|k| k.id == key_id)
        .map(KeyView::from)
        .ok_or_else(|| AdminError::new(ErrorCode::Internal, "new key missing after insert"))?;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            api_key: key.key,
            key: view,
            app: app.into(),
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{id}/keys/{key_id}",
    operation_id = "revoke_api_key",
    tag = "admin: apps",
    summary = "Revoke an API key",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("key_id" = String, Path, description = "The API key id.")),
    responses(
        (status = 200, description = "The app without the key, which is refused at once.", body = AppView),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or key.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn revoke_key(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<AppView>, AdminError> {
    let app = admin.store.revoke_api_key(&app_id(&id)?, &key_id).await?;
    announce(&admin, &app).await;
    Ok(Json(app.into()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Use this secret instead of generating one.
    jwt_secret: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretRotated {
    /// The new HS256 secret. Shown only here.
    jwt_secret: String,
    app: AppView,
}

/// Replaces the HS256 secret: tokens signed with the old one are refused from now on.
#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/jwt-secret",
    operation_id = "rotate_jwt_secret",
    tag = "admin: apps",
    summary = "Replace the HS256 secret",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = Option<RotateSecret>,
    responses(
        (status = 200, description = "The new secret (shown only here) and the app.", body = SecretRotated),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid app id; an empty `jwt_secret`.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn rotate_secret(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Option<Json<RotateSecret>>,
) -> Result<Json<SecretRotated>, AdminError> {
    let id = app_id(&id)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let secret = match req.jwt_secret {
        Some(s) if s.is_empty() => {
            return Err(AdminError::new(
                ErrorCode::BadRequest,
                "\"jwt_secret\" must not be empty",
            ))
        }
        Some(s) => s,
        None => secrets::jwt_secret(),
    };
    let app = admin
        .store
        .update_app(
            &id,
            AppPatch {
                jwt_secret: Some(Some(secret.clone())),
                ..AppPatch::default()
            },
        )
        .await?;
    announce(&admin, &app).await;
    Ok(Json(SecretRotated {
        jwt_secret: secret,
        app: app.into(),
    }))
}
