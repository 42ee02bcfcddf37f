//! `/v1/admin/apps/{id}/webhooks` and `/v1/admin/apps/{id}/deliveries`: an app's webhook
//! endpoints and the delivery log. A signing secret is shown when it is created (or set), never
//! by reads. Every change to endpoints is announced to gateways, whose forwarding of publishes
//! follows what endpoints ask for.

use super::{Admin, AdminError, Operator};
use crate::secrets;
use crate::store::webhooks::{
    Attempt, Delivery, DeliveryFilter, DeliveryStatus, Endpoint, EndpointPatch, NewEndpoint,
    WebhookFormat,
};
use crate::webhooks::now_ms;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waas_core::egress::Policy;
use waas_protocol::rest::ErrorBody;
use waas_protocol::webhook::EventType;
use waas_protocol::{AppId, ChannelPattern, ErrorCode};

/// Most deliveries one page of the log holds, and its default size.
const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 100;

pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/v1/admin/apps/{id}/webhooks", post(create).get(list))
        .route(
            "/v1/admin/apps/{id}/webhooks/{webhook}",
            get(read).patch(update).delete(remove),
        )
        .route("/v1/admin/apps/{id}/deliveries", get(deliveries))
        .route("/v1/admin/apps/{id}/deliveries/{delivery}", get(delivery))
        .route(
            "/v1/admin/apps/{id}/deliveries/{delivery}/retry",
            post(retry),
        )
}

/// An endpoint as the admin API shows it: everything but its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    id: String,
    #[schema(value_type = String)]
    app_id: AppId,
    url: String,
    events: Vec<EventType>,
    channels: Vec<String>,
    enabled: bool,
    /// `waas` or `pusher`: the body and headers of its requests.
    format: WebhookFormat,
    created_at: i64,
    updated_at: i64,
}

impl From<Endpoint> for EndpointView {
    fn from(e: Endpoint) -> Self {
        EndpointView {
            id: e.id,
            app_id: e.app_id,
            url: e.url,
            events: e.events,
            channels: e.channels,
            enabled: e.enabled,
            format: e.format,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WithSecret {
    webhook: EndpointView,
    /// The signing secret. Shown only when created or set.
    secret: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// `http://` or `https://` with a host.
    url: String,
    #[schema(min_items = 1)]
    events: Vec<EventType>,
    #[serde(default)]
    channels: Vec<String>,
    /// Generated when absent; at least 16 bytes.
    #[schema(min_length = 16)]
    secret: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    /// `waas` (default) or `pusher` (Pusher's webhook body and headers, `docs/pusher.md`;
    /// not with the `message` event, which Pusher does not have).
    #[serde(default)]
    format: WebhookFormat,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpoint {
    url: Option<String>,
    events: Option<Vec<EventType>>,
    channels: Option<Vec<String>>,
    secret: Option<String>,
    enabled: Option<bool>,
    format: Option<WebhookFormat>,
}

fn app_id(id: &str) -> Result<AppId, AdminError> {
    AppId::parse(id)
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}")))
}

fn bad(message: impl Into<String>) -> AdminError {
    AdminError::new(ErrorCode::BadRequest, message)
}

/// An http(s) URL with a host; a literal IP host must be one the outbound policy allows (a
/// host name is checked by the worker on what it resolves to, at each attempt).
fn check_url(url: &str, outbound: &Policy) -> Result<(), AdminError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("invalid url {url:?}: {e}")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(bad("\"url\" must be http:// or https://"));
    }
    if parsed.host_str().is_none() {
        return Err(bad("\"url\" needs a host"));
    }
    outbound
        .check_url(&parsed)
        .map_err(|e| bad(format!("\"url\": {e}")))
}

fn check_events(events: &[EventType]) -> Result<(), AdminError> {
    if events.is_empty() {
        return Err(bad("\"events\" must name at least one event type"));
    }
    Ok(())
}

/// Pusher has no webhook for every message: a Pusher-format endpoint cannot ask for one.
fn check_format(format: WebhookFormat, events: &[EventType]) -> Result<(), AdminError> {
    if format == WebhookFormat::Pusher && events.contains(&EventType::Message) {
        return Err(bad(
            "a \"pusher\" format endpoint cannot receive \"message\" events (Pusher has no such webhook)",
        ));
    }
    Ok(())
}

/// Pusher-format requests are signed with the app's Pusher secret (as Pusher signs webhooks
/// with the app secret): an app without one cannot have such an endpoint.
async fn check_pusher_secret(admin: &Admin, app: &AppId) -> Result<(), AdminError> {
    if admin.store.get_app(app).await?.pusher_secret.is_none() {
        return Err(bad(format!(
            "a \"pusher\" format endpoint is signed with the app's Pusher secret, and the app has none: \
             give it one first (POST /v1/admin/apps/{app}/pusher-secret)"
        )));
    }
    Ok(())
}

fn check_channels(channels: &[String]) -> Result<(), AdminError> {
    for p in channels {
        ChannelPattern::parse(p).map_err(|e| bad(format!("invalid channel pattern {p:?}: {e}")))?;
    }
    Ok(())
}

fn check_secret(secret: &str) -> Result<(), AdminError> {
    if secret.len() < 16 {
        return Err(bad("\"secret\" must be at least 16 bytes"));
    }
    Ok(())
}

/// Tells gateways the app changed: they read it again, now with its endpoints' interest.
async fn announce(admin: &Admin, app: &AppId) {
    admin.directory.changed(app).await;
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/webhooks",
    operation_id = "create_webhook",
    tag = "admin: webhooks",
    summary = "Add a webhook endpoint",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    request_body = CreateEndpoint,
    responses(
        (status = 201, description = "The endpoint and its signing secret (shown only here).", body = WithSecret),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; an invalid app id; an unknown event type or an empty list; a `url` that is not `http(s)://host...`; a pattern that does not parse; a `secret` under 16 bytes; `format` `pusher` with the `message` event, or for an app without a Pusher secret.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn create(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Result<Json<CreateEndpoint>, JsonRejection>,
) -> Result<(StatusCode, Json<WithSecret>), AdminError> {
    let Json(req) = body?;
    let app = app_id(&id)?;
    check_url(&req.url, &admin.webhooks.outbound)?;
    check_events(&req.events)?;
    check_format(req.format, &req.events)?;
    check_channels(&req.channels)?;
    if req.format == WebhookFormat::Pusher {
        check_pusher_secret(&admin, &app).await?;
    }
    let secret = match req.secret {
        Some(s) => {
            check_secret(&s)?;
            s
        }
        None => secrets::webhook_secret(),
    };
    let mut events = req.events;
    events.sort();
    events.dedup();
    let endpoint = admin
        .webhooks
        .store
        .create_endpoint(
            NewEndpoint {
                id: format!("we_{}", secrets::id()),
                app_id: app.clone(),
                url: req.url,
                secret: secret.clone(),
                events,
                channels: req.channels,
                enabled: req.enabled,
                format: req.format,
            },
            now_ms(),
        )
        .await?;
    announce(&admin, &app).await;
    Ok((
        StatusCode::CREATED,
        Json(WithSecret {
            webhook: endpoint.into(),
            secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/webhooks",
    operation_id = "list_webhooks",
    tag = "admin: webhooks",
    summary = "An app's webhook endpoints",
    params(("id" = String, Path, description = "The app id.", example = "demo")),
    responses(
        (status = 200, description = "The endpoints, ordered by id (no secrets).", body = Vec<EndpointView>),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn list(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<Vec<EndpointView>>, AdminError> {
    let app = app_id(&id)?;
    // An unknown app is a 404, not an empty list.
    admin.store.get_app(&app).await?;
    let endpoints = admin.webhooks.store.list_endpoints(&app).await?;
    Ok(Json(endpoints.into_iter().map(Into::into).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/webhooks/{webhook}",
    operation_id = "get_webhook",
    tag = "admin: webhooks",
    summary = "One webhook endpoint",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("webhook" = String, Path, description = "The webhook endpoint id.")),
    responses(
        (status = 200, description = "The endpoint (no secret).", body = EndpointView),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or endpoint.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn read(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
) -> Result<Json<EndpointView>, AdminError> {
    let app = app_id(&id)?;
    let e = admin.webhooks.store.get_endpoint(&app, &webhook).await?;
    Ok(Json(e.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/apps/{id}/webhooks/{webhook}",
    operation_id = "update_webhook",
    tag = "admin: webhooks",
    summary = "Change a webhook endpoint",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("webhook" = String, Path, description = "The webhook endpoint id.")),
    request_body = PatchEndpoint,
    responses(
        (status = 200, description = "The endpoint; with `secret` in the request, `{\"webhook\", \"secret\"}`.", body = PatchedEndpoint),
        (status = 400, description = "`bad_request`: not JSON, no `Content-Type: application/json`, or a field of the wrong type; as for creating one.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or endpoint.", body = ErrorBody),
        (status = 413, description = "`message_too_large`: the body is too large.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn update(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
    body: Result<Json<PatchEndpoint>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Json(req) = body?;
    let app = app_id(&id)?;
    if let Some(url) = &req.url {
        check_url(url, &admin.webhooks.outbound)?;
    }
    if let Some(events) = &req.events {
        check_events(events)?;
    }
    if let Some(channels) = &req.channels {
        check_channels(channels)?;
    }
    if let Some(secret) = &req.secret {
        check_secret(secret)?;
    }
    if req.format.is_some() || req.events.is_some() {
        // Checked against what the endpoint will be after the change.
        let current = admin.webhooks.store.get_endpoint(&app, &webhook).await?;
        check_format(
            req.format.unwrap_or(current.format),
            req.events.as_deref().unwrap_or(&current.events),
        )?;
    }
    if req.format == Some(WebhookFormat::Pusher) {
        check_pusher_secret(&admin, &app).await?;
    }
    let events = req.events.map(|mut e| {
        e.sort();
        e.dedup();
        e
    });
    let endpoint = admin
        .webhooks
        .store
        .update_endpoint(
            &app,
            &webhook,
            EndpointPatch {
                url: req.url,
                secret: req.secret.clone(),
                events,
                channels: req.channels,
                enabled: req.enabled,
                format: req.format,
            },
            now_ms(),
        )
        .await?;
    announce(&admin, &app).await;
    let view = serde_json::to_value(EndpointView::from(endpoint)).expect("views serialise");
    Ok(Json(match req.secret {
        Some(secret) => serde_json::json!({"webhook": view, "secret": secret}),
        None => view,
    }))
}

/// What `PATCH .../webhooks/{webhook}` answers, for the OpenAPI document: the endpoint, or
/// with a new secret the endpoint and the secret.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Never built: `update` answers `serde_json::Value` of one of these shapes.
pub enum PatchedEndpoint {
    Endpoint(EndpointView),
    WithSecret(WithSecret),
}

#[utoipa::path(
    delete,
    path = "/v1/admin/apps/{id}/webhooks/{webhook}",
    operation_id = "delete_webhook",
    tag = "admin: webhooks",
    summary = "Delete a webhook endpoint",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("webhook" = String, Path, description = "The webhook endpoint id.")),
    responses(
        (status = 204, description = "Deleted, with its deliveries and their log."),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such app or endpoint.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn remove(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let app = app_id(&id)?;
    admin.webhooks.store.delete_endpoint(&app, &webhook).await?;
    announce(&admin, &app).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only this endpoint's deliveries.
    webhook: Option<String>,
    /// Only deliveries in this state.
    status: Option<DeliveryStatus>,
    /// The `seq` of the last delivery of the previous page.
    before: Option<i64>,
    /// 1 to 500, default 100.
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/deliveries",
    operation_id = "list_deliveries",
    tag = "admin: webhooks",
    summary = "The delivery log, newest first",
    params(("id" = String, Path, description = "The app id.", example = "demo"), LogQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = Vec<Delivery>),
        (status = 400, description = "`bad_request`: an invalid app id or query string; `limit` not 1 to 500.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn deliveries(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Vec<Delivery>>, AdminError> {
    let app = app_id(&id)?;
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(bad(format!("\"limit\" must be 1 to {MAX_PAGE}")));
    }
    let list = admin
        .webhooks
        .store
        .list_deliveries(
            &app,
            DeliveryFilter {
                endpoint_id: q.webhook,
                status: q.status,
                before: q.before,
                limit,
            },
        )
        .await?;
    Ok(Json(list))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryWithAttempts {
    #[serde(flatten)]
    delivery: Delivery,
    attempt_log: Vec<Attempt>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/apps/{id}/deliveries/{delivery}",
    operation_id = "get_delivery",
    tag = "admin: webhooks",
    summary = "One delivery with its attempts",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("delivery" = String, Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery and its `attempt_log`.", body = DeliveryWithAttempts),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such delivery.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn delivery(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<DeliveryWithAttempts>, AdminError> {
    let app = app_id(&id)?;
    let (delivery, attempt_log) = admin.webhooks.store.get_delivery(&app, &delivery).await?;
    Ok(Json(DeliveryWithAttempts {
        delivery,
        attempt_log,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/admin/apps/{id}/deliveries/{delivery}/retry",
    operation_id = "retry_delivery",
    tag = "admin: webhooks",
    summary = "Make a delivery due again now",
    params(("id" = String, Path, description = "The app id.", example = "demo"), ("delivery" = String, Path, description = "The delivery id.")),
    responses(
        (status = 200, description = "The delivery.", body = Delivery),
        (status = 400, description = "`bad_request`: an invalid app id.", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the operator token is missing or wrong.", body = ErrorBody),
        (status = 404, description = "`not_found`: no such delivery.", body = ErrorBody),
        (status = 503, description = "`unavailable`: the store (or the webhook service) is unavailable; retry with backoff.", body = ErrorBody),
    ),
    security(("operator_token" = [])),
)]
pub async fn retry(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<Delivery>, AdminError> {
    let app = app_id(&id)?;
    Ok(Json(retry_now(&admin, &app, &delivery).await?))
}

/// Makes a delivery of `app` due now (a delivered one stays as it is) and wakes the worker.
/// Also the dashboard's "retry".
pub(crate) async fn retry_now(
    admin: &Admin,
    app: &AppId,
    delivery: &str,
) -> Result<Delivery, crate::store::StoreError> {
    let webhooks = &admin.webhooks;
    let d = webhooks
        .store
        .retry_delivery(app, delivery, now_ms())
        .await?;
    webhooks.worker.wake();
    Ok(d)
}
