//! `/v1/admin/apps/{id}/webhooks` and `/v1/admin/apps/{id}/deliveries`: an app's webhook
//! endpoints and the delivery log. A signing secret is shown when it is created (or set), never
//! by reads. Every change to endpoints is announced to gateways, whose forwarding of publishes
//! follows what endpoints ask for.

use super::{Admin, AdminError, Operator};
use crate::secrets;
use crate::store::webhooks::{
    Attempt, Delivery, DeliveryFilter, DeliveryStatus, Endpoint, EndpointPatch, NewEndpoint,
};
use crate::webhooks::{now_ms, Webhooks};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
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
#[derive(Serialize)]
pub struct EndpointView {
    id: String,
    app_id: AppId,
    url: String,
    events: Vec<EventType>,
    channels: Vec<String>,
    enabled: bool,
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
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Serialize)]
pub struct WithSecret {
    webhook: EndpointView,
    /// The signing secret. Shown only when created or set.
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    url: String,
    events: Vec<EventType>,
    #[serde(default)]
    channels: Vec<String>,
    /// Generated when absent.
    secret: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpoint {
    url: Option<String>,
    events: Option<Vec<EventType>>,
    channels: Option<Vec<String>>,
    secret: Option<String>,
    enabled: Option<bool>,
}

fn webhooks(admin: &Admin) -> Result<&Arc<Webhooks>, AdminError> {
    admin
        .webhooks
        .get()
        .ok_or_else(|| AdminError::new(ErrorCode::Unavailable, "webhooks are not running"))
}

fn app_id(id: &str) -> Result<AppId, AdminError> {
    AppId::parse(id)
        .map_err(|e| AdminError::new(ErrorCode::BadRequest, format!("invalid app id {id:?}: {e}")))
}

fn bad(message: impl Into<String>) -> AdminError {
    AdminError::new(ErrorCode::BadRequest, message)
}

fn check_url(url: &str) -> Result<(), AdminError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("invalid url {url:?}: {e}")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(bad("\"url\" must be http:// or https://"));
    }
    if parsed.host_str().is_none() {
        return Err(bad("\"url\" needs a host"));
    }
    Ok(())
}

fn check_events(events: &[EventType]) -> Result<(), AdminError> {
    if events.is_empty() {
        return Err(bad("\"events\" must name at least one event type"));
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

pub async fn create(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
    body: Result<Json<CreateEndpoint>, JsonRejection>,
) -> Result<(StatusCode, Json<WithSecret>), AdminError> {
    let Json(req) = body?;
    let app = app_id(&id)?;
    check_url(&req.url)?;
    check_events(&req.events)?;
    check_channels(&req.channels)?;
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
    let endpoint = webhooks(&admin)?
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

pub async fn list(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path(id): Path<String>,
) -> Result<Json<Vec<EndpointView>>, AdminError> {
    let app = app_id(&id)?;
    // An unknown app is a 404, not an empty list.
    admin.store.get_app(&app).await?;
    let endpoints = webhooks(&admin)?.store.list_endpoints(&app).await?;
    Ok(Json(endpoints.into_iter().map(Into::into).collect()))
}

pub async fn read(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
) -> Result<Json<EndpointView>, AdminError> {
    let app = app_id(&id)?;
    let e = webhooks(&admin)?.store.get_endpoint(&app, &webhook).await?;
    Ok(Json(e.into()))
}

pub async fn update(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
    body: Result<Json<PatchEndpoint>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Json(req) = body?;
    let app = app_id(&id)?;
    if let Some(url) = &req.url {
        check_url(url)?;
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
    let events = req.events.map(|mut e| {
        e.sort();
        e.dedup();
        e
    });
    let endpoint = webhooks(&admin)?
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

pub async fn remove(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, webhook)): Path<(String, String)>,
) -> Result<StatusCode, AdminError> {
    let app = app_id(&id)?;
    webhooks(&admin)?
        .store
        .delete_endpoint(&app, &webhook)
        .await?;
    announce(&admin, &app).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    webhook: Option<String>,
    status: Option<DeliveryStatus>,
    before: Option<i64>,
    limit: Option<usize>,
}

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
    let list = webhooks(&admin)?
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

#[derive(Serialize)]
pub struct DeliveryWithAttempts {
    #[serde(flatten)]
    delivery: Delivery,
    attempt_log: Vec<Attempt>,
}

pub async fn delivery(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<DeliveryWithAttempts>, AdminError> {
    let app = app_id(&id)?;
    let (delivery, attempt_log) = webhooks(&admin)?
        .store
        .get_delivery(&app, &delivery)
        .await?;
    Ok(Json(DeliveryWithAttempts {
        delivery,
        attempt_log,
    }))
}

pub async fn retry(
    State(admin): State<Arc<Admin>>,
    _: Operator,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Json<Delivery>, AdminError> {
    let app = app_id(&id)?;
    let webhooks = webhooks(&admin)?;
    let d = webhooks
        .store
        .retry_delivery(&app, &delivery, now_ms())
        .await?;
    webhooks.worker.wake();
    Ok(Json(d))
}
