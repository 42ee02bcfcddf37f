//! An app's webhooks in the dashboard (`docs/dashboard.md#webhooks`): its endpoints, the
//! delivery log a page at a time (newest first, filtered by status), one delivery with each
//! attempt's status, error and the start of the answer's body, and "retry" for a dead letter.
//!
//! Reads go through the webhook store under the app the page is for (after [`access::app`]),
//! so another app's delivery ids are "not found"; retry is the admin API's own
//! ([`retry_now`]).

use super::pages::{bad_form, form, me, not_found, render, unavailable};
use super::session::SignedIn;
use super::{access, when, Dashboard};
use crate::admin::webhooks::retry_now;
use crate::store::webhooks::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, Endpoint};
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Deliveries shown per page of the log.
pub(crate) const LOG_PAGE: usize = 50;
/// Characters of a failure shown in the log's table; the delivery's page has all of it.
const ERROR_SHOWN: usize = 120;

pub(crate) fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/dashboard/apps/{id}/webhooks", get(log))
        .route("/dashboard/apps/{id}/deliveries/{did}", get(show))
        .route("/dashboard/apps/{id}/deliveries/{did}/retry", post(retry))
}

#[derive(Serialize)]
struct EndpointRow {
    id: String,
    url: String,
    events: Vec<String>,
    channels: Vec<String>,
    enabled: bool,
}

impl From<Endpoint> for EndpointRow {
    fn from(e: Endpoint) -> Self {
        EndpointRow {
            id: e.id,
            url: e.url,
            events: e.events.iter().map(|t| t.as_str().to_owned()).collect(),
            channels: e.channels,
            enabled: e.enabled,
        }
    }
}

#[derive(Serialize)]
struct DeliveryRow {
    id: String,
    seq: i64,
    endpoint_id: String,
    event_type: String,
    status: &'static str,
    attempts: i32,
    last_status: Option<i32>,
    last_error: Option<String>,
    created: String,
    next_attempt: String,
    delivered: Option<String>,
}

fn shorten(s: String, chars: usize) -> String {
    match s.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s,
    }
}

fn delivery_row(d: Delivery, error_chars: usize) -> DeliveryRow {
    DeliveryRow {
        id: d.id,
        seq: d.seq,
        endpoint_id: d.endpoint_id,
        event_type: d.event_type,
        status: d.status.as_str(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error.map(|e| shorten(e, error_chars)),
        created: when::utc(d.created_at),
        next_attempt: when::utc(d.next_attempt_at),
        delivered: d.delivered_at.map(when::utc),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    /// `pending`, `delivered`, `dead`; empty or absent: all.
    status: Option<String>,
    /// The `seq` of the last delivery of the previous page.
    before: Option<i64>,
}

pub(crate) async fn log(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let Ok(Query(query)) = query else {
        return bad_form("\"before\" must be a whole number");
    };
    let status_filter = query.status.filter(|s| !s.is_empty());
    let status = match status_filter.as_deref().map(DeliveryStatus::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return bad_form("\"status\" must be pending, delivered or dead"),
    };
    let store = &dashboard.admin.webhooks.store;
    let endpoints = match store.list_endpoints(&app.id).await {
        Ok(e) => e,
        Err(e) => return unavailable(&e),
    };
    let page = match store
        .list_deliveries(
            &app.id,
            DeliveryFilter {
                endpoint_id: None,
                status,
                before: query.before,
                limit: LOG_PAGE,
            },
        )
        .await
    {
        Ok(page) => page,
        Err(e) => return unavailable(&e),
    };
    let older = (page.len() == LOG_PAGE)
        .then(|| page.last().map(|d| d.seq))
        .flatten();
    let deliveries: Vec<DeliveryRow> = page
        .into_iter()
        .map(|d| delivery_row(d, ERROR_SHOWN))
        .collect();
    let endpoints: Vec<EndpointRow> = endpoints.into_iter().map(Into::into).collect();
    render(
        StatusCode::OK,
        "deliveries.html",
        context! {
            nav => "apps", me => me(&signed_in), app_id => app.id.to_string(),
            endpoints, deliveries, older, status => status_filter.unwrap_or_default(),
            paged => query.before.is_some(),
        },
    )
}

#[derive(Serialize)]
struct AttemptRow {
    attempt: i32,
    at: String,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
    response_body: Option<String>,
}

impl From<Attempt> for AttemptRow {
    fn from(a: Attempt) -> Self {
        AttemptRow {
            attempt: a.attempt,
            at: when::utc(a.at),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
            response_body: a.response_body,
        }
    }
}

pub(crate) async fn show(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, did)): Path<(String, String)>,
) -> Response {
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    let (delivery, attempts) = match dashboard
        .admin
        .webhooks
        .store
        .get_delivery(&app.id, &did)
        .await
    {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => return not_found(),
        Err(e) => return unavailable(&e),
    };
    let retryable = delivery.status != DeliveryStatus::Delivered;
    let body = delivery.body.clone();
    let attempts: Vec<AttemptRow> = attempts.into_iter().map(Into::into).collect();
    render(
        StatusCode::OK,
        "delivery.html",
        context! {
            nav => "apps", me => me(&signed_in), app_id => app.id.to_string(),
            delivery => delivery_row(delivery, usize::MAX), body, attempts, retryable,
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

/// Makes the delivery due now (a dead letter gets its next attempt at once).
pub(crate) async fn retry(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, did)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form: CsrfForm = match form(&body) {
        Ok(f) => f,
        Err(e) => return bad_form(&e),
    };
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return super::pages::forbidden();
    }
    let app = match access::app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(page) => return page,
    };
    match retry_now(&dashboard.admin, &app.id, &did).await {
        Ok(d) => {
            tracing::info!(app = %app.id, delivery = d.id, by = %signed_in.user.email, "dashboard: delivery retried");
            Redirect::to(&format!("/dashboard/apps/{}/deliveries/{}", app.id, d.id)).into_response()
        }
        Err(StoreError::NotFound(_)) => not_found(),
        Err(e) => unavailable(&e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(super::shorten("héllo".into(), 2), "hé…");
        assert_eq!(super::shorten("hi".into(), 2), "hi");
    }
}
