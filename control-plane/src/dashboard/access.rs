//! The app a page is about, if the signed-in user may see it. A tenant user asking for another
//! tenant's app gets the same "not found" page as for an app that does not exist, so app ids
//! cannot be probed; every page under `/dashboard/apps/{id}/` starts here, and what it then
//! reads (recordings, replays, deliveries) it reads by that app's id, so another app's ids are
//! "not found" too.

use super::pages::{not_found, unavailable};
use super::session::SignedIn;
use super::Dashboard;
use crate::store::{AppRecord, StoreError};
use axum::response::Response;
use waas_protocol::AppId;

/// The app `id`, when it exists and `signed_in` may see it; else the page to answer.
pub(crate) async fn app(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    id: &str,
) -> Result<AppRecord, Response> {
    let Ok(id) = AppId::parse(id) else {
        return Err(not_found());
    };
    let app = match dashboard.store.get_app(&id).await {
        Ok(app) => app,
        Err(StoreError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(unavailable(&e)),
    };
    if signed_in.tenant().is_some_and(|t| t != app.tenant_id) {
        return Err(not_found());
    }
    Ok(app)
}
