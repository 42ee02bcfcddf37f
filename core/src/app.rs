//! Apps (tenants' applications) as a gateway sees them: credentials compiled for verification,
//! plus a live connection count. `waas_gateway::registry` keeps them; the control-plane is where
//! they come from.

use crate::auth::jwt::JwtKeys;
use crate::auth::AuthError;
use crate::history::policy::{Namespace, NamespaceHistory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use waas_protocol::AppId;

/// An app's definition as stored and shipped to gateways. Secrets that only need verifying are
/// kept as hashes: API keys as SHA-256 hex.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    pub id: AppId,
    /// The tenant that owns the app. What one tenant's apps do together is still one tenant's
    /// doing (`App::tenant`); `None` (an app from a file, not the control-plane's store): the
    /// app is its own tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// SHA-256 (hex) of each valid API key; several allow rotation without downtime.
    #[serde(default)]
    pub api_key_hashes: Vec<String>,
    /// HS256 secret for end-user tokens; also what `POST /tokens` signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// PEM public key for RS256 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_rsa_public_key: Option<String>,
    /// PEM public key for ES256 tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_ec_public_key: Option<String>,
    #[serde(default)]
    pub limits: AppLimits,
    /// Request routes (`docs/rpc.md`): path prefix to service or HTTP upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<crate::route::Route>,
    /// Which publishes the app's webhook endpoints want forwarded (`docs/webhooks.md`).
    #[serde(
        default,
        skip_serializing_if = "crate::webhooks::report::WebhookInterest::is_empty"
    )]
    pub webhooks: crate::webhooks::report::WebhookInterest,
    /// Origins allowed to open WebSockets (lower-case, `crate::origin`); empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// The app as the Pusher-protocol front sees it (`docs/pusher.md`); `None`: that front
    /// refuses the app, because every Pusher signature (private and presence channels, the
    /// HTTP API, webhooks) needs a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pusher: Option<PusherSettings>,
    /// Increases with every change in the control-plane; an update with a lower version than
    /// the one held is stale and ignored.
    #[serde(default)]
    pub version: i64,
}

/// Per-app overrides of the gateway's limits; `None` keeps the gateway's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppLimits {
    /// Concurrent connections of this app on one gateway; 0 = unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_channels_per_connection: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_burst: Option<u32>,
    /// Messages kept per channel for history and recovery; 0 keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_size: Option<usize>,
    /// How long a message is kept in history, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_ttl_secs: Option<u64>,
    /// History rules for namespaces (a channel's first segment), overriding the two above for
    /// their channels (`docs/history.md`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, crate::history::policy::NamespaceHistory>)]
    pub history_namespaces: BTreeMap<Namespace, NamespaceHistory>,
}

/// Pusher credentials and switches. The Pusher key is the app id: Pusher keys are public (they
/// are in every client's URL) and so are app ids, and one name means a key needs no directory
/// of its own. The secret is kept in clear, like `jwt_secret`, because Pusher's HMAC
/// signatures are checked by recomputing them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PusherSettings {
    pub secret: String,
    /// Whether clients may send `client-` events on private and presence channels (Pusher's
    /// "enable client events" switch; off unless the app turns it on).
    #[serde(default)]
    pub client_events: bool,
}

/// Leaves out the secret.
impl std::fmt::Debug for PusherSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherSettings")
            .field("secret", &crate::redact::REDACTED)
            .field("client_events", &self.client_events)
            .finish()
    }
}

/// SHA-256 hex of an API key, the form in which keys are stored and compared.
pub fn hash_api_key(key: &str) -> String {
    // Checked on every REST request: one allocation, not one per byte.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut hex = String::with_capacity(2 * digest.as_ref().len());
    for b in digest.as_ref() {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    hex
}

/// An app ready for use on the hot path.
pub struct App {
    pub config: AppConfig,
    pub jwt: JwtKeys,
    /// Open connections on this gateway; shared across config updates of the same app.
    connections: Arc<AtomicUsize>,
    /// Its metric handles, resolved on first use rather than per publish.
    metrics: std::sync::OnceLock<crate::metrics::AppMetrics>,
    /// Its usage counters on this gateway ([`App::with_usage`]); `None` for apps nobody
    /// counts (the control-plane's own copies).
    usage: Option<Arc<crate::usage::AppCounters>>,
}

impl App {
    /// Compiles `config`; `previous` (the same app before an update) hands over its count.
    pub fn new(config: AppConfig, previous: Option<&App>) -> Result<Self, AuthError> {
        Ok(App {
            jwt: JwtKeys::from_config(&config)?,
            connections: previous
                .map(|p| Arc::clone(&p.connections))
                .unwrap_or_default(),
            metrics: std::sync::OnceLock::new(),
            usage: previous.and_then(|p| p.usage.clone()),
            config,
        })
    }

    /// Counts this app's connections and publishes on `counters`.
    pub fn with_usage(mut self, counters: Arc<crate::usage::AppCounters>) -> Self {
        self.usage = Some(counters);
        self
    }

    /// Its usage counters, when counted.
    pub fn usage(&self) -> Option<&Arc<crate::usage::AppCounters>> {
        self.usage.as_ref()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("id", &self.config.id).finish()
    }
}

impl App {
    /// This app's labelled metric handles ([`crate::metrics::Metrics::app`]).
    pub fn metrics(&self) -> &crate::metrics::AppMetrics {
        self.metrics
            .get_or_init(|| crate::metrics::METRICS.app(self.id().as_str()))
    }

    pub fn id(&self) -> &AppId {
        &self.config.id
    }

    /// The tenant that owns the app, or the app's id when it has none.
    pub fn tenant(&self) -> &str {
        self.config
            .tenant
            .as_deref()
            .unwrap_or(self.config.id.as_str())
    }

    /// Whether `key` is one of the app's API keys. Hashes are compared, so comparison time
    /// says nothing useful about the key.
    pub fn is_api_key(&self, key: &str) -> bool {
        let hash = hash_api_key(key);
        self.config.api_key_hashes.contains(&hash)
    }

    /// Takes a connection slot, or `None` when the app is at `limit` (0 = unlimited).
    pub fn acquire_connection(self: &Arc<Self>, default_limit: usize) -> Option<ConnectionSlot> {
        let limit = self.config.limits.max_connections.unwrap_or(default_limit);
        let prev = self.connections.fetch_add(1, Ordering::AcqRel);
        if limit != 0 && prev >= limit {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if let Some(usage) = &self.usage {
            usage.connected();
        }
        Some(ConnectionSlot(
            Arc::clone(&self.connections),
            self.usage.clone(),
        ))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

/// Releases its connection slot on drop.
pub struct ConnectionSlot(Arc<AtomicUsize>, Option<Arc<crate::usage::AppCounters>>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        if let Some(usage) = &self.1 {
            usage.disconnected();
        }
    }
}

/// Leaves out the HS256 secret (and the key hashes): logging an app must not leak them.
impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("api_key_hashes", &self.api_key_hashes.len())
            .field("jwt_secret", &crate::redact::option(&self.jwt_secret))
            .field("jwt_rsa_public_key", &self.jwt_rsa_public_key.is_some())
            .field("jwt_ec_public_key", &self.jwt_ec_public_key.is_some())
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field("webhooks", &self.webhooks)
            .field("pusher", &self.pusher)
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_key_hash_is_lowercase_hex_sha256() {
        assert_eq!(
            super::hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_app_is_its_own_tenant_unless_told_its_tenant() {
        let config: super::AppConfig = serde_json::from_value(serde_json::json!({"id": "chat"}))
            .expect("an app with no tenant (older control-planes, files) still loads");
        let alone = super::App::new(config.clone(), None).unwrap();
        assert_eq!(alone.tenant(), "chat");
        let owned = super::App::new(
            super::AppConfig {
                tenant: Some("acme".into()),
                ..config
            },
            None,
        )
        .unwrap();
        assert_eq!(owned.tenant(), "acme");
    }
}
