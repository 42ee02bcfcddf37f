//! Configuration read in one place: a TOML file (`--config`), then `WAAS_*` environment
//! variables and flags on top. Every key has its default beside it; invalid configuration stops
//! the process at start-up with a message naming the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use waas_control_plane::seed::AppSeed;
use waas_core::app::{AppLimits, PusherSettings};
use waas_core::bus::Bus;
use waas_core::egress::Policy;
use waas_core::history::History;
use waas_core::redact;
use waas_core::route::{validate_routes, Route};
use waas_gateway::{DirectoryTimings, GatewayConfig, Limits};
use waas_protocol::AppId;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// One app declared in the config file. API keys are given in clear here (it is the operator's
/// own file) and hashed on load. `Debug` leaves the keys and the secret out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSettings {
    pub id: String,
    #[serde(default)]
    pub api_keys: Vec<String>,
    pub jwt_secret: Option<String>,
    /// Path to a PEM file with the RS256 public key.
    pub jwt_rsa_public_key_file: Option<String>,
    /// Path to a PEM file with the ES256 public key.
    pub jwt_ec_public_key_file: Option<String>,
    /// Overrides of the gateway's limits for this app.
    #[serde(default)]
    pub limits: AppLimits,
    /// Request routes (`[[apps.routes]]`, `docs/rpc.md`); when absent, the stored routes are
    /// left as they are.
    pub routes: Option<Vec<Route>>,
    /// Pusher-protocol credentials (`[apps.pusher]`, `docs/pusher.md`); when absent, the stored
    /// ones are left as they are (none for a new app: its Pusher front stays off).
    #[serde(default)]
    pub pusher: Option<PusherAppSettings>,
}

/// `[apps.pusher]`: the Pusher secret of an app (its Pusher key is its id) and its switches.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PusherAppSettings {
    /// Required, not empty.
    pub secret: String,
    /// Let clients send `client-` events on private and presence channels. Default `false`.
    #[serde(default)]
    pub client_events: bool,
}

impl std::fmt::Debug for PusherAppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherAppSettings")
            .field("secret", &redact::REDACTED)
            .field("client_events", &self.client_events)
            .finish()
    }
}

/// How gateways cache apps learnt from the control-plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorySettings {
    /// How long a gateway waits for the control-plane to answer an app query, ms. Default 2000.
    pub timeout_ms: u64,
    /// Age after which a cached app is refreshed in the background, ms. Default 30000.
    pub refresh_ms: u64,
    /// How long "no such app" is cached, ms. Default 5000.
    pub missing_ttl_ms: u64,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        DirectorySettings {
            timeout_ms: 2000,
            refresh_ms: 30_000,
            missing_ttl_ms: 5000,
        }
    }
}

impl DirectorySettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The whole configuration, shared by every command; each uses the keys it needs. `Debug`
/// leaves secrets out (see the impl), so logging settings can never print one.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// First token of bus subjects. Default `waas`.
    pub subject_prefix: String,
    /// NATS URL (gateway, control-plane). No default: cluster commands require it.
    pub nats: Option<String>,
    /// Credentials for NATS: `[nats_auth]`. Default none.
    pub nats_auth: crate::nats_settings::NatsAuthSettings,
    /// TLS to NATS: `[nats_tls]`. Default: TLS when the server asks for it.
    pub nats_tls: crate::nats_settings::NatsTlsSettings,
    /// PostgreSQL URL (control-plane, migrate). No default.
    pub database_url: Option<String>,
    /// SQLite file of `waas dev`; `:memory:` keeps nothing. Default `.waas/dev.db`.
    pub store: PathBuf,
    /// Bearer token of the admin API. `waas dev` defaults to `dev-operator-token`; the
    /// control-plane requires one.
    pub operator_token: Option<String>,
    /// The default app of `waas dev`. Default `demo`.
    pub app_id: String,
    /// Its API key. Default `demo-key`.
    pub api_key: String,
    /// Its HS256 secret. Default `demo-secret`.
    pub jwt_secret: String,
    /// Its Pusher secret (its Pusher key is its id). Default `demo-pusher-secret`.
    pub pusher_secret: String,
    /// Further apps (`waas dev`).
    pub apps: Vec<AppSettings>,
    pub limits: Limits,
    pub directory: DirectorySettings,
    /// Webhook delivery (control-plane, `waas dev`): `[webhooks]`.
    pub webhooks: waas_control_plane::webhooks::WebhookConfig,
    /// Whether webhooks and HTTP upstreams may reach loopback addresses (127.0.0.0/8, ::1).
    /// Default: `true` for `waas dev` (endpoints on the developer's machine), `false` for the
    /// cluster commands.
    pub outbound_allow_loopback: Option<bool>,
    /// Whether webhooks and HTTP upstreams may reach private addresses (10/8, 172.16/12,
    /// 192.168/16, 100.64/10, fc00::/7). Default `false`.
    pub outbound_allow_private: bool,
    /// The `region` label of every metric of this process. Default empty: no label.
    pub region: String,
    /// Every region's public gateway URL (`[[regions]]` with `name` and `url`), served by the
    /// gateway at `GET /v1/regions` for the SDKs' discovery option (`docs/regions.md`).
    /// Default none: the endpoint answers 404.
    pub regions: Vec<waas_protocol::regions::Region>,
    /// The browser dashboard (control-plane, `waas dev`): `[dashboard]`, docs/dashboard.md.
    pub dashboard: waas_control_plane::dashboard::DashboardConfig,
}

/// Operator token of `waas dev` when none is configured.
pub const DEV_OPERATOR_TOKEN: &str = "dev-operator-token";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            subject_prefix: "waas".into(),
            nats: None,
            nats_auth: Default::default(),
            nats_tls: Default::default(),
            database_url: None,
            store: PathBuf::from(".waas/dev.db"),
            operator_token: None,
            app_id: "demo".into(),
            api_key: "demo-key".into(),
            jwt_secret: "demo-secret".into(),
            pusher_secret: "demo-pusher-secret".into(),
            apps: Vec::new(),
            limits: Limits::default(),
            directory: DirectorySettings::default(),
            webhooks: waas_control_plane::webhooks::WebhookConfig::default(),
            outbound_allow_loopback: None,
            outbound_allow_private: false,
            region: String::new(),
            regions: Vec::new(),
            dashboard: Default::default(),
        }
    }
}

/// Secrets show as `***`, URLs without their userinfo.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(|u| redact::url(u).into_owned());
        let secret = |s: &Option<String>| s.as_ref().map(|_| redact::REDACTED);
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("subject_prefix", &self.subject_prefix)
            .field("nats", &url(&self.nats))
            .field("nats_auth", &self.nats_auth)
            .field("nats_tls", &self.nats_tls)
            .field("database_url", &url(&self.database_url))
            .field("store", &self.store)
            .field("operator_token", &secret(&self.operator_token))
            .field("app_id", &self.app_id)
            .field("api_key", &redact::REDACTED)
            .field("jwt_secret", &redact::REDACTED)
            .field("pusher_secret", &redact::REDACTED)
            .field("apps", &self.apps)
            .field("limits", &self.limits)
            .field("directory", &self.directory)
            .field("webhooks", &self.webhooks)
            .field("region", &self.region)
            .field("regions", &self.regions)
            .finish()
    }
}

impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("id", &self.id)
            .field("api_keys", &self.api_keys.len())
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| redact::REDACTED),
            )
            .field("jwt_rsa_public_key_file", &self.jwt_rsa_public_key_file)
            .field("jwt_ec_public_key_file", &self.jwt_ec_public_key_file)
            .field("limits", &self.limits)
            .field("routes", &self.routes)
            .field("pusher", &self.pusher)
            .finish()
    }
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| SettingsError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Which addresses outbound requests (webhooks, HTTP upstreams) may reach; `dev` for
    /// `waas dev`, where loopback is allowed unless the settings say otherwise.
    pub fn outbound(&self, dev: bool) -> Policy {
        Policy {
            allow_loopback: self.outbound_allow_loopback.unwrap_or(dev),
            allow_private: self.outbound_allow_private,
        }
    }

    /// The gateway node these settings describe, on `bus` and `history`; `dev` as for
    /// [`outbound`](Self::outbound).
    pub fn gateway_node(
        &self,
        bus: Arc<dyn Bus>,
        history: Arc<dyn History>,
        dev: bool,
    ) -> waas_gateway::Node {
        let d = &self.directory;
        waas_gateway::Node {
            config: GatewayConfig {
                subject_prefix: self.subject_prefix.clone(),
                limits: self.limits.clone(),
                outbound: self.outbound(dev),
                regions: waas_protocol::regions::RegionsDocument {
                    regions: self.regions.clone(),
                },
            },
            bus,
            history,
            directory: DirectoryTimings {
                timeout: d.timeout(),
                refresh: Duration::from_millis(d.refresh_ms),
                missing_ttl: Duration::from_millis(d.missing_ttl_ms),
            },
        }
    }

    /// The control-plane these settings describe, with the admin API behind `operator_token`;
    /// `dev` as for [`outbound`](Self::outbound).
    pub fn control_plane(&self, operator_token: &str, dev: bool) -> waas_control_plane::Config {
        waas_control_plane::Config {
            subject_prefix: self.subject_prefix.clone(),
            operator_token: operator_token.into(),
            outbound: self.outbound(dev),
            webhooks: self.webhooks.clone(),
            history: self.limits.history_policy(),
            dashboard: self.dashboard.clone(),
            usage: waas_control_plane::usage::UsageConfig {
                report_interval: Duration::from_millis(self.limits.usage_report_interval_ms),
                minutes_keep_secs: self.limits.usage_minutes_keep_secs,
                hours_keep_secs: self.limits.usage_hours_keep_secs,
                max_points: self.limits.usage_max_points,
            },
        }
    }

    /// Every app declared, the default one first, validated.
    pub fn app_seeds(&self) -> Result<Vec<AppSeed>, SettingsError> {
        if self.pusher_secret.is_empty() {
            return Err(SettingsError::Invalid {
                key: "pusher_secret".into(),
                reason: "must not be empty".into(),
            });
        }
        let default = AppSettings {
            id: self.app_id.clone(),
            api_keys: vec![self.api_key.clone()],
            jwt_secret: Some(self.jwt_secret.clone()),
            jwt_rsa_public_key_file: None,
            jwt_ec_public_key_file: None,
            limits: AppLimits::default(),
            routes: None,
            pusher: Some(PusherAppSettings {
                secret: self.pusher_secret.clone(),
                client_events: false,
            }),
        };
        // Declared apps are `waas dev`'s: their routes are checked with its outbound rules.
        let outbound = self.outbound(true);
        std::iter::once(&default)
            .chain(self.apps.iter())
            .map(|a| app_seed(a, &outbound))
            .collect()
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.limits.validate().map_err(|e| SettingsError::Invalid {
            key: format!("limits.{}", e.key),
            reason: e.reason.into(),
        })?;
        if let Some((key, reason)) = self.webhooks.invalid() {
            return Err(SettingsError::Invalid {
                key: format!("webhooks.{key}"),
                reason: reason.into(),
            });
        }
        if let Err(reason) = self.dashboard.validate() {
            return Err(SettingsError::Invalid {
                key: "dashboard".into(),
                reason,
            });
        }
        if self.subject_prefix.is_empty() || self.subject_prefix.contains(['*', '>', ' ']) {
            return Err(SettingsError::Invalid {
                key: "subject_prefix".into(),
                reason: "must be a non-empty NATS subject without wildcards".into(),
            });
        }
        waas_core::metrics::check_region(&self.region).map_err(|reason| {
            SettingsError::Invalid {
                key: "region".into(),
                reason,
            }
        })?;
        waas_protocol::regions::RegionsDocument {
            regions: self.regions.clone(),
        }
        .validate()
        .map_err(|e| SettingsError::Invalid {
            key: "regions".into(),
            reason: e.to_string(),
        })?;
        self.app_seeds().map(|_| ())
    }

    /// A required key, or an error naming it.
    pub fn require<'a>(
        &self,
        key: &str,
        value: &'a Option<String>,
    ) -> Result<&'a str, SettingsError> {
        value.as_deref().ok_or_else(|| SettingsError::Invalid {
            key: key.into(),
            reason: "is required by this command".into(),
        })
    }
}

fn read_pem(key: &str, path: &Option<String>) -> Result<Option<String>, SettingsError> {
    path.as_ref()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| SettingsError::Invalid {
                key: key.into(),
                reason: format!("cannot read {p}: {e}"),
            })
        })
        .transpose()
}

fn app_seed(s: &AppSettings, outbound: &Policy) -> Result<AppSeed, SettingsError> {
    let id = AppId::parse(&s.id).map_err(|e| SettingsError::Invalid {
        key: "app id".into(),
        reason: format!("{:?}: {e}", s.id),
    })?;
    if s.api_keys.iter().any(String::is_empty) {
        return Err(SettingsError::Invalid {
            key: format!("apps.{id}.api_keys"),
            reason: "API keys must not be empty".into(),
        });
    }
    if s.pusher.as_ref().is_some_and(|p| p.secret.is_empty()) {
        return Err(SettingsError::Invalid {
            key: format!("apps.{id}.pusher.secret"),
            reason: "must not be empty".into(),
        });
    }
    if let Some(routes) = &s.routes {
        validate_routes(routes, outbound).map_err(|e| SettingsError::Invalid {
            key: format!("apps.{id}.routes"),
            reason: e.to_string(),
        })?;
    }
    Ok(AppSeed {
        routes: s.routes.clone(),
        api_keys: s.api_keys.clone(),
        jwt_secret: s.jwt_secret.clone().filter(|s| !s.is_empty()),
        jwt_rsa_public_key: read_pem("jwt_rsa_public_key_file", &s.jwt_rsa_public_key_file)?,
        jwt_ec_public_key: read_pem("jwt_ec_public_key_file", &s.jwt_ec_public_key_file)?,
        limits: s.limits.clone(),
        pusher: s.pusher.as_ref().map(|p| PusherSettings {
            secret: p.secret.clone(),
            client_events: p.client_events,
        }),
        id,
    })
}

#[cfg(test)]
mod tests;
