//! An app's settings page, `/dashboard/apps/{id}/settings`: limits, routes, Origin
//! allow-list, JWT keys, API keys, the HS256 secret, the Pusher front, webhook endpoints, and
//! minting a token (`docs/dashboard.md`).
//!
//! Every change calls the admin API's own handler (`crate::admin`), so the dashboard checks,
//! stores and announces exactly as `/v1/admin/...` does. The dashboard's part is deciding who
//! may: [`owned_app`] answers "not found" for another tenant's app, before anything else is
//! looked at. Secrets (a new API key, HS256 or Pusher secret, webhook secret, a minted token)
//! are shown once, on the page that answers the form.

use super::pages::{bad_form, error_page, forbidden, me, not_found, render, unavailable};
use super::session::SignedIn;
use super::Dashboard;
use crate::admin::{apps as admin_apps, pusher as admin_pusher, webhooks as admin_webhooks};
use crate::admin::{AdminError, Operator};
use crate::store::{AppRecord, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use minijinja::context;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use waas_protocol::webhook::EventType;
use waas_protocol::AppId;

/// The app `id` when the signed-in user may see it. Another tenant's app answers exactly as
/// a missing one (404), so ids cannot be probed.
pub(super) async fn owned_app(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    id: &str,
) -> Result<AppRecord, Box<Response>> {
    let Ok(id) = AppId::parse(id) else {
        return Err(Box::new(not_found()));
    };
    match dashboard.store.get_app(&id).await {
        Ok(app) if signed_in.tenant().is_none_or(|t| t == app.tenant_id) => Ok(app),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(Box::new(not_found())),
        Err(e) => Err(Box::new(unavailable(&e))),
    }
}

/// A form as its (name, value) pairs, repeated names kept (checkboxes).
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The form, or the page answering that it does not parse (400).
    pub(super) fn parse(body: &Bytes) -> Result<Fields, Box<Response>> {
        serde_urlencoded::from_bytes(body)
            .map(Fields)
            .map_err(|e| Box::new(bad_form(&format!("invalid form: {e}"))))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field, trimmed; empty when absent.
    pub(super) fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim()
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Checks the CSRF token against the session's.
    pub(super) fn csrf_ok(&self, signed_in: &SignedIn) -> bool {
        signed_in.csrf_ok(self.get("csrf"))
    }
}

/// What the page says after a form: a message, and a secret shown once.
#[derive(Serialize, Default)]
struct Notice {
    error: Option<String>,
    done: Option<String>,
    secret_label: Option<String>,
    secret: Option<String>,
}

fn admin_status(e: &AdminError) -> StatusCode {
    StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
}

async fn page(
    dashboard: &Dashboard,
    signed_in: &SignedIn,
    id: &AppId,
    status: StatusCode,
    notice: Notice,
) -> Response {
    let admin = Arc::clone(&dashboard.admin);
    let path = || Path(id.to_string());
    let app = match admin_apps::get(State(Arc::clone(&admin)), Operator::everything(), path()).await
    {
        Ok(Json(app)) => app,
        Err(e) => return error_page(admin_status(&e), &e.message),
    };
    let webhooks =
        match admin_webhooks::list(State(Arc::clone(&admin)), Operator::everything(), path()).await
        {
            Ok(Json(w)) => w,
            Err(e) => return error_page(admin_status(&e), &e.message),
        };
    let app = serde_json::to_value(&app).unwrap_or(Value::Null);
    let routes = serde_json::to_string_pretty(&app["routes"]).unwrap_or_default();
    let events: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
    render(
        status,
        "app_settings.html",
        context! {
            nav => "apps",
            me => me(signed_in),
            app,
            routes,
            webhooks,
            events,
            notice,
            max_ttl => dashboard.config.max_minted_token_ttl_secs,
        },
    )
}

pub(crate) async fn settings(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    match owned_app(&dashboard, &signed_in, &id).await {
        Ok(app) => {
            page(
                &dashboard,
                &signed_in,
                &app.id,
                StatusCode::OK,
                Notice::default(),
            )
            .await
        }
        Err(r) => *r,
    }
}

/// An optional whole number from a form field: empty is `null` (no limit of its own).
fn number(fields: &Fields, name: &str) -> Result<Value, String> {
    match fields.text(name) {
        "" => Ok(Value::Null),
        v => v
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| format!("{name} must be a whole number or empty")),
    }
}

const LIMITS: [&str; 6] = [
    "max_connections",
    "max_channels_per_connection",
    "publish_rate",
    "publish_burst",
    "history_size",
    "history_ttl_secs",
];

/// The `PATCH /v1/admin/apps/{id}` body a settings form asks for.
fn patch_for(action: &str, fields: &Fields, app: &AppRecord) -> Result<Value, String> {
    Ok(match action {
        "limits" => {
            // Namespaced history is kept as it is: the form shows the flat limits only.
            let mut limits = serde_json::to_value(&app.limits).map_err(|e| e.to_string())?;
            for name in LIMITS {
                limits[name] = number(fields, name)?;
            }
            json!({ "limits": limits })
        }
        "routes" => {
            let text = fields.text("routes");
            let routes: Value = if text.is_empty() {
                json!([])
            } else {
                serde_json::from_str(text).map_err(|e| format!("routes: invalid JSON: {e}"))?
            };
            json!({ "routes": routes })
        }
        "origins" => {
            let origins: Vec<&str> = fields
                .text("origins")
                .split(['\n', ',', ' '])
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .collect();
            json!({ "allowed_origins": origins })
        }
        "jwt-keys" => {
            let key = |name| match fields.text(name) {
                "" => Value::Null,
                pem => Value::from(pem),
            };
            json!({
                "jwt_rsa_public_key": key("jwt_rsa_public_key"),
                "jwt_ec_public_key": key("jwt_ec_public_key"),
            })
        }
        _ => return Err(format!("unknown setting {action:?}")),
    })
}

/// `POST /dashboard/apps/{id}/settings/{action}`: one form of the settings page.
pub(crate) async fn change(
    State(dashboard): State<Arc<Dashboard>>,
    signed_in: SignedIn,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let fields = match Fields::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    if !fields.csrf_ok(&signed_in) {
        return forbidden();
    }
    let app = match owned_app(&dashboard, &signed_in, &id).await {
        Ok(app) => app,
        Err(r) => return *r,
    };
    let result = act(&dashboard, &action, &fields, &app).await;
    let (status, notice) = match result {
        Ok(notice) => {
            tracing::info!(app = %app.id, action, by = %signed_in.user.email, "dashboard: app changed");
            (StatusCode::OK, notice)
        }
        Err((status, message)) => (
            status,
            Notice {
                error: Some(message),
                ..Notice::default()
            },
        ),
    };
    page(&dashboard, &signed_in, &app.id, status, notice).await
}

type Outcome = Result<Notice, (StatusCode, String)>;

fn done(message: &str) -> Notice {
    Notice {
        done: Some(message.to_owned()),
        ..Notice::default()
    }
}

fn secret(message: &str, label: &str, value: String) -> Notice {
    Notice {
        done: Some(message.to_owned()),
        secret_label: Some(label.to_owned()),
        secret: Some(value),
        ..Notice::default()
    }
}

fn failed(e: AdminError) -> (StatusCode, String) {
    (admin_status(&e), e.message)
}

fn invalid(message: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message)
}

/// A JSON body for an admin handler; a field of the wrong shape is the form's fault (400).
fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (StatusCode, String)> {
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

async fn act(dashboard: &Dashboard, action: &str, fields: &Fields, app: &AppRecord) -> Outcome {
    let admin = || State(Arc::clone(&dashboard.admin));
    let op = Operator::everything;
    let path = || Path(app.id.to_string());
    match action {
        "limits" | "routes" | "origins" | "jwt-keys" => {
            let patch = patch_for(action, fields, app).map_err(invalid)?;
            let _changed = admin_apps::update(admin(), op(), path(), Ok(Json(body(patch)?)))
                .await
                .map_err(failed)?;
            Ok(done("Saved."))
        }
        "api-key" => {
            let label = Some(fields.text("label")).filter(|l| !l.is_empty());
            let req = body(json!({ "label": label }))?;
            let (_, Json(created)) = admin_apps::add_key(admin(), op(), path(), Some(Json(req)))
                .await
                .map_err(failed)?;
            let value = serde_json::to_value(&created).unwrap_or(Value::Null);
            let key = value["api_key"].as_str().unwrap_or_default().to_owned();
            Ok(secret(
                "API key added. Move your servers to it, then revoke the old one.",
                "New API key",
                key,
            ))
        }
        "revoke-key" => {
            let key = fields.text("key").to_owned();
            let _changed = admin_apps::revoke_key(admin(), op(), Path((app.id.to_string(), key)))
                .await
                .map_err(failed)?;
            Ok(done("API key revoked: it is refused from now on."))
        }
        "jwt-secret" => {
            let Json(rotated) = admin_apps::rotate_secret(admin(), op(), path(), None)
                .await
                .map_err(failed)?;
            let value = serde_json::to_value(&rotated).unwrap_or(Value::Null);
            Ok(secret(
                "HS256 secret replaced: tokens signed with the old one are refused from now on.",
                "New JWT secret (HS256)",
                value["jwt_secret"].as_str().unwrap_or_default().to_owned(),
            ))
        }
        "pusher-on" => {
            let Json(rotated) = admin_pusher::rotate_pusher_secret(admin(), op(), path(), None)
                .await
                .map_err(failed)?;
            let value = serde_json::to_value(&rotated).unwrap_or(Value::Null);
            Ok(secret(
                "The Pusher front serves this app. Its Pusher key is the app id.",
                "Pusher secret",
                value["pusher_secret"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
        "pusher-off" => {
            let _changed = admin_pusher::remove_pusher_secret(admin(), op(), path())
                .await
                .map_err(failed)?;
            Ok(done("The Pusher front no longer serves this app."))
        }
        "webhook" => {
            let channels: Vec<&str> = fields
                .text("channels")
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let req = body(json!({
                "url": fields.text("url"),
                "events": fields.all("events"),
                "channels": channels,
            }))?;
            let (_, Json(created)) = admin_webhooks::create(admin(), op(), path(), Ok(Json(req)))
                .await
                .map_err(failed)?;
            let value = serde_json::to_value(&created).unwrap_or(Value::Null);
            Ok(secret(
                "Webhook endpoint added. Check its requests' signatures with this secret.",
                "Webhook secret",
                value["secret"].as_str().unwrap_or_default().to_owned(),
            ))
        }
        "remove-webhook" => {
            let webhook = fields.text("webhook").to_owned();
            admin_webhooks::remove(admin(), op(), Path((app.id.to_string(), webhook)))
                .await
                .map_err(failed)?;
            Ok(done("Webhook endpoint removed."))
        }
        "token" => {
            let token = super::mint::mint(app, fields, dashboard.config.max_minted_token_ttl_secs)
                .map_err(invalid)?;
            Ok(secret("Token minted.", "Token (HS256 JWT)", token))
        }
        _ => Err((StatusCode::NOT_FOUND, "No such setting.".into())),
    }
}
