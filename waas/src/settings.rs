//! Configuration read in one place: a TOML file (`--config`), then `WAAS_*` environment
//! variables and flags on top. Every key has its default beside it; invalid configuration stops
//! the process at start-up with a message naming the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use waas_gateway::app::hash_api_key;
use waas_gateway::{AppConfig, Limits};
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
/// own file) and hashed on load.
#[derive(Debug, Clone, Deserialize)]
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
    pub max_connections: Option<usize>,
}

/// The whole configuration of `waas dev`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// First token of bus subjects. Default `waas`.
    pub subject_prefix: String,
    /// The default app created at start-up.
    pub app_id: String,
    pub api_key: String,
    pub jwt_secret: String,
    /// Further apps.
    pub apps: Vec<AppSettings>,
    pub limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            subject_prefix: "waas".into(),
            app_id: "demo".into(),
            api_key: "demo-key".into(),
            jwt_secret: "demo-secret".into(),
            apps: Vec::new(),
            limits: Limits::default(),
        }
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

    /// Every app to serve, the default one first, validated and with keys hashed.
    pub fn app_configs(&self) -> Result<Vec<AppConfig>, SettingsError> {
        let default = AppSettings {
            id: self.app_id.clone(),
            api_keys: vec![self.api_key.clone()],
            jwt_secret: Some(self.jwt_secret.clone()),
            jwt_rsa_public_key_file: None,
            jwt_ec_public_key_file: None,
            max_connections: None,
        };
        std::iter::once(&default)
            .chain(self.apps.iter())
            .map(app_config)
            .collect()
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        self.limits.validate().map_err(|e| SettingsError::Invalid {
            key: format!("limits.{}", e.key),
            reason: e.reason.into(),
        })?;
        if self.subject_prefix.is_empty() || self.subject_prefix.contains(['*', '>', ' ']) {
            return Err(SettingsError::Invalid {
                key: "subject_prefix".into(),
                reason: "must be a non-empty NATS subject without wildcards".into(),
            });
        }
        self.app_configs().map(|_| ())
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

fn app_config(s: &AppSettings) -> Result<AppConfig, SettingsError> {
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
    Ok(AppConfig {
        api_key_hashes: s.api_keys.iter().map(|k| hash_api_key(k)).collect(),
        jwt_secret: s.jwt_secret.clone().filter(|s| !s.is_empty()),
        jwt_rsa_public_key: read_pem("jwt_rsa_public_key_file", &s.jwt_rsa_public_key_file)?,
        jwt_ec_public_key: read_pem("jwt_ec_public_key_file", &s.jwt_ec_public_key_file)?,
        limits: waas_gateway::app::AppLimits {
            max_connections: s.max_connections,
            ..Default::default()
        },
        version: 0,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let s: Settings = toml::from_str(
            "listen = \"127.0.0.1:9000\"\n[limits]\nmax_frame_bytes = 1024\n[[apps]]\nid = \"two\"\napi_keys = [\"k2\"]\n",
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.limits.max_frame_bytes, 1024);
        assert_eq!(s.limits.max_channels_per_connection, 100);
        let apps = s.app_configs().unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[1].api_key_hashes, vec![hash_api_key("k2")]);
        assert!(toml::from_str::<Settings>("lissen = \"x\"").is_err());
    }

    #[test]
    fn invalid_limits_name_the_key() {
        let mut s = Settings::default();
        s.limits.max_queued_messages = 0;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("limits.max_queued_messages"), "{e}");
    }
}
