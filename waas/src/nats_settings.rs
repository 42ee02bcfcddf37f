//! How cluster commands authenticate to NATS and secure the link: the `[nats_auth]` and
//! `[nats_tls]` tables (and their `--nats-*` flags and `WAAS_NATS_*` variables), turned into the
//! gateway library's [`NatsAuth`] and [`NatsTls`] at start-up.
//!
//! Secrets are best read from files (`password_file`, `token_file`, `nkey_seed_file`,
//! `creds_file`) or the environment: a flag's value is visible to every user of the machine in
//! `ps`.

use crate::settings::SettingsError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use waas_core::bus::nats_auth::{NatsAuth, NatsTls};
use waas_core::redact::Secret;

/// `[nats_auth]`: at most one kind of credentials. Credentials may instead be given in the NATS
/// URL (`nats://user:pass@host`, `nats://token@host`), but not in both places.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsAuthSettings {
    /// User name; needs `password` or `password_file`.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// File holding the password (one trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    pub token: Option<Secret>,
    /// File holding the token (one trailing newline is ignored).
    pub token_file: Option<PathBuf>,
    /// File holding an NKey user seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and seed) for servers in operator mode.
    pub creds_file: Option<PathBuf>,
}

/// `[nats_tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsTlsSettings {
    /// PEM CA file to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Refuse a server that does not offer TLS. Default false (TLS when the server asks for it
    /// or the URL is `tls://`).
    pub required: bool,
}

fn invalid(key: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: format!("nats_auth.{key}"),
        reason: reason.into(),
    }
}

/// A secret given inline or in a file, not both; the file's one trailing newline is dropped.
fn secret(
    key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, SettingsError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(key, format!("give {key} or {key}_file, not both"))),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => read_secret(&format!("{key}_file"), path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_secret(key: &str, path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
}

impl NatsAuthSettings {
    /// The credentials, with their files read. Refuses two kinds at once, or half of a pair.
    pub fn resolve(&self) -> Result<NatsAuth, SettingsError> {
        let password = secret("password", &self.password, &self.password_file)?;
        let token = secret("token", &self.token, &self.token_file)?;
        let mut kinds = Vec::new();
        let user_password = match (&self.user, password) {
            (Some(user), Some(password)) => {
                kinds.push("user");
                Some(NatsAuth::UserPassword {
                    user: user.clone(),
                    password,
                })
            }
            (None, None) => None,
            (Some(_), None) => return Err(invalid("password", "user needs a password")),
            (None, Some(_)) => return Err(invalid("user", "a password needs a user")),
        };
        if token.is_some() {
            kinds.push("token");
        }
        if self.nkey_seed_file.is_some() {
            kinds.push("nkey_seed_file");
        }
        if self.creds_file.is_some() {
            kinds.push("creds_file");
        }
        if kinds.len() > 1 {
            return Err(invalid(
                kinds[1],
                format!(
                    "give one kind of NATS credentials, not {}",
                    kinds.join(" and ")
                ),
            ));
        }
        if let Some(auth) = user_password {
            return Ok(auth);
        }
        if let Some(token) = token {
            return Ok(NatsAuth::Token(token));
        }
        if let Some(path) = &self.nkey_seed_file {
            return read_secret("nkey_seed_file", path).map(NatsAuth::NKeySeed);
        }
        if let Some(path) = &self.creds_file {
            return Ok(NatsAuth::CredsFile(path.clone()));
        }
        Ok(NatsAuth::None)
    }
}

impl NatsTlsSettings {
    pub fn resolve(&self) -> Result<NatsTls, SettingsError> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(SettingsError::Invalid {
                key: "nats_tls.cert_file".into(),
                reason: "a client certificate needs both cert_file and key_file".into(),
            });
        }
        Ok(NatsTls {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            required: self.required,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_kind_of_credentials_with_files_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret\n").expect("write");
        let s = NatsAuthSettings {
            user: Some("waas".into()),
            password_file: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(
            s.resolve().expect("valid"),
            NatsAuth::UserPassword {
                user: "waas".into(),
                password: Secret::new("s3cret")
            }
        );
        assert!(!format!("{s:?}").contains("s3cret"));
        let both = NatsAuthSettings {
            token: Some(Secret::new("t")),
            ..s.clone()
        };
        let e = both.resolve().unwrap_err().to_string();
        assert!(e.contains("nats_auth.token"), "{e}");
        let half = NatsAuthSettings {
            user: Some("waas".into()),
            ..Default::default()
        };
        assert!(half.resolve().is_err());
        let missing = NatsAuthSettings {
            token_file: Some(dir.path().join("none")),
            ..Default::default()
        };
        let e = missing.resolve().unwrap_err().to_string();
        assert!(
            e.contains("nats_auth.token_file") && e.contains("none"),
            "{e}"
        );
    }
}
