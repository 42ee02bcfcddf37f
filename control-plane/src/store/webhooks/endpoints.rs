//! Webhook endpoints of an app, written once over the SQL layer (`store/sql.rs`).

use super::{
    channels_from_json, channels_json, endpoint_not_found, events_from_json, events_json, Endpoint,
    EndpointPatch, NewEndpoint, WebhookFormat,
};
use crate::store::sql::{on_constraint, Constraint, Sql, SqlRow};
use crate::store::{stored_app_id, StoreError};
use waas_protocol::AppId;

/// JSON columns read as text, so both backends hand back the same thing.
const COLUMNS: &str = "id, app_id, url, secret, events::text, channels::text, enabled, \
    created_at, updated_at, format";

fn endpoint(row: &impl SqlRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: row.get(0)?,
        app_id: stored_app_id(&row.get::<String>(1)?)?,
        url: row.get(2)?,
        secret: row.get(3)?,
        events: events_from_json(&row.get::<String>(4)?)?,
        channels: channels_from_json(&row.get::<String>(5)?)?,
        enabled: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        format: WebhookFormat::parse(&row.get::<String>(9)?)?,
    })
}

pub(crate) async fn create(
    db: &mut impl Sql,
    new: NewEndpoint,
    now: i64,
) -> Result<Endpoint, StoreError> {
    // Asked first so the answer does not depend on which constraint a backend checks first.
    crate::store::apps::require(db, &new.app_id).await?;
    let sql = format!(
        "INSERT INTO webhook_endpoints (id, app_id, url, secret, events, channels, enabled, \
             created_at, updated_at, format) \
         VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $8, $9) \
         RETURNING {COLUMNS}"
    );
    let row = db
        .query_opt(
            &sql,
            &[
                &new.id,
                &new.app_id.as_str(),
                &new.url,
                &new.secret,
                &events_json(&new.events),
                &channels_json(&new.channels),
                &new.enabled,
                &now,
                &new.format.as_str(),
            ],
        )
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                Some(match c {
                    Constraint::Unique => {
                        StoreError::Conflict(format!("webhook endpoint {}", new.id))
                    }
                    // The app deleted since the check above.
                    Constraint::ForeignKey => StoreError::app_not_found(&new.app_id),
                })
            })
        })?;
    endpoint(&row.ok_or_else(|| endpoint_not_found(&new.app_id, &new.id))?)
}

pub(crate) async fn list(db: &mut impl Sql, app: &AppId) -> Result<Vec<Endpoint>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE app_id = $1 ORDER BY id");
    db.query(&sql, &[&app.as_str()])
        .await?
        .iter()
        .map(endpoint)
        .collect()
}

pub(crate) async fn get(db: &mut impl Sql, app: &AppId, id: &str) -> Result<Endpoint, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM webhook_endpoints WHERE app_id = $1 AND id = $2");
    let row = db.query_opt(&sql, &[&app.as_str(), &id]).await?;
    endpoint(&row.ok_or_else(|| endpoint_not_found(app, id))?)
}

pub(crate) async fn update(
    db: &mut impl Sql,
    app: &AppId,
    id: &str,
    patch: EndpointPatch,
    now: i64,
) -> Result<Endpoint, StoreError> {
    let sql = format!(
        "UPDATE webhook_endpoints SET \
             url = coalesce($3, url), secret = coalesce($4, secret), \
             events = coalesce($5::text::jsonb, events), \
             channels = coalesce($6::text::jsonb, channels), \
             enabled = coalesce($7, enabled), updated_at = $8, \
             format = coalesce($9, format) \
         WHERE app_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let events = patch.events.as_deref().map(events_json);
    let channels = patch.channels.as_deref().map(channels_json);
    let format = patch.format.map(WebhookFormat::as_str);
    let row = db
        .query_opt(
            &sql,
            &[
                &app.as_str(),
                &id,
                &patch.url,
                &patch.secret,
                &events,
                &channels,
                &patch.enabled,
                &now,
                &format,
            ],
        )
        .await?;
    endpoint(&row.ok_or_else(|| endpoint_not_found(app, id))?)
}

/// Its deliveries go with it: ON DELETE CASCADE.
pub(crate) async fn delete(db: &mut impl Sql, app: &AppId, id: &str) -> Result<(), StoreError> {
    let n = db
        .execute(
            "DELETE FROM webhook_endpoints WHERE app_id = $1 AND id = $2",
            &[&app.as_str(), &id],
        )
        .await?;
    if n == 0 {
        return Err(endpoint_not_found(app, id));
    }
    Ok(())
}
