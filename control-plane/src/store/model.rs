//! What the control-plane keeps: tenants own apps; apps own API keys (stored hashed), JWT
//! verification keys and per-app limits.

use serde::{Deserialize, Serialize};
use waas_core::app::AppConfig;
use waas_core::app::AppLimits;
use waas_core::app::PusherSettings;
use waas_core::redact;
use waas_core::route::Route;
use waas_protocol::AppId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewTenant {
    /// Chosen by the caller, or generated when absent (`t_` and 16 hex digits).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// 1 to 200 bytes.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// An API key as stored: only its SHA-256, plus a short prefix so operators can tell keys apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    /// First characters of the key, for display ("wk_3f9a…").
    pub prefix: String,
    /// SHA-256 hex of the key (`waas_core::app::hash_api_key`).
    pub hash: String,
    pub label: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub id: AppId,
    pub tenant_id: String,
    pub name: String,
    /// HS256 secret. Kept in clear because verifying HS256 needs it.
    pub jwt_secret: Option<String>,
    pub jwt_rsa_public_key: Option<String>,
    pub jwt_ec_public_key: Option<String>,
    pub limits: AppLimits,
    /// Request routes (`docs/rpc.md`), longest matching prefix first at lookup.
    pub routes: Vec<Route>,
    /// Origins allowed to open WebSockets, lower-case (`waas_core::origin`); empty = any.
    pub allowed_origins: Vec<String>,
    /// Oldest first (by `created_at`, then `id`).
    pub api_keys: Vec<ApiKeyRecord>,
    /// Increased by every change; gateways use it to ignore stale updates. Not contiguous: it is
    /// drawn from a counter shared by all apps, so it also increases across delete and re-create.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The Pusher-protocol secret (`docs/pusher.md`), in clear because Pusher's HMAC signatures
    /// are checked by recomputing them; `None`: the Pusher front refuses the app.
    pub pusher_secret: Option<String>,
    /// Whether Pusher clients may send `client-` events.
    pub pusher_client_events: bool,
}

impl AppRecord {
    /// The app as gateways need it: keys to verify with, hashes to compare, limits.
    pub fn gateway_config(&self) -> AppConfig {
        AppConfig {
            id: self.id.clone(),
            tenant: Some(self.tenant_id.clone()),
            api_key_hashes: self.api_keys.iter().map(|k| k.hash.clone()).collect(),
            jwt_secret: self.jwt_secret.clone(),
            jwt_rsa_public_key: self.jwt_rsa_public_key.clone(),
            jwt_ec_public_key: self.jwt_ec_public_key.clone(),
            limits: self.limits.clone(),
            routes: self.routes.clone(),
            allowed_origins: self.allowed_origins.clone(),
            // Filled by the directory from the app's webhook endpoints.
            webhooks: Default::default(),
            pusher: self.pusher_secret.as_ref().map(|secret| PusherSettings {
                secret: secret.clone(),
                client_events: self.pusher_client_events,
            }),
            version: self.version,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApp {
    pub id: AppId,
    pub tenant_id: String,
    pub name: String,
    pub jwt_secret: Option<String>,
    pub jwt_rsa_public_key: Option<String>,
    pub jwt_ec_public_key: Option<String>,
    #[serde(default)]
    pub limits: AppLimits,
    /// The Pusher-protocol secret; `None` leaves the Pusher front off for the app.
    #[serde(default)]
    pub pusher_secret: Option<String>,
    #[serde(default)]
    pub pusher_client_events: bool,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPatch {
    pub name: Option<String>,
    pub jwt_secret: Option<Option<String>>,
    pub jwt_rsa_public_key: Option<Option<String>>,
    pub jwt_ec_public_key: Option<Option<String>>,
    pub limits: Option<AppLimits>,
    /// Replaces every route when set.
    #[serde(default)]
    pub routes: Option<Vec<Route>>,
    /// Replaces the Origin allow-list when set (normalized by the caller).
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// `Some(None)` turns the Pusher front off for the app.
    #[serde(default)]
    pub pusher_secret: Option<Option<String>>,
    #[serde(default)]
    pub pusher_client_events: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub id: String,
    pub prefix: String,
    pub hash: String,
    pub label: Option<String>,
}

/// Leaves out the HS256 secret: logging an app must not leak it.
impl std::fmt::Debug for AppRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRecord")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("jwt_secret", &redact::option(&self.jwt_secret))
            .field("jwt_rsa_public_key", &self.jwt_rsa_public_key.is_some())
            .field("jwt_ec_public_key", &self.jwt_ec_public_key.is_some())
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field("api_keys", &self.api_keys)
            .field("version", &self.version)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("pusher_secret", &redact::option(&self.pusher_secret))
            .field("pusher_client_events", &self.pusher_client_events)
            .finish()
    }
}

impl std::fmt::Debug for NewApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApp")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("jwt_secret", &redact::option(&self.jwt_secret))
            .field("limits", &self.limits)
            .field("pusher_secret", &redact::option(&self.pusher_secret))
            .field("pusher_client_events", &self.pusher_client_events)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPatch")
            .field("name", &self.name)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(redact::option))
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field(
                "pusher_secret",
                &self.pusher_secret.as_ref().map(redact::option),
            )
            .field("pusher_client_events", &self.pusher_client_events)
            .finish_non_exhaustive()
    }
}
