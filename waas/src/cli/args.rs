//! The settings flags and `WAAS_*` variables of the server commands, laid over the TOML file
//! (`docs/configuration.md`). The limits' flags come from [`super::limits`].

use super::limits::LimitArgs;
use crate::settings::Settings;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings every server command shares.
#[derive(Args)]
pub struct CommonArgs {
    /// TOML configuration file; flags and WAAS_* variables override it.
    #[arg(long, env = "WAAS_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "WAAS_LISTEN")]
    listen: Option<SocketAddr>,
    /// First token of bus subjects [default: waas].
    #[arg(long, env = "WAAS_SUBJECT_PREFIX")]
    subject_prefix: Option<String>,
    /// NATS URL(s), comma-separated.
    #[arg(long, env = "WAAS_NATS")]
    nats: Option<String>,
    #[command(flatten)]
    nats_client: NatsArgs,
    /// PostgreSQL URL.
    #[arg(long, env = "WAAS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Bearer token of the admin API.
    #[arg(long, env = "WAAS_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
    /// Let webhooks and HTTP upstreams reach loopback addresses (true/false) [default: true
    /// for dev, false otherwise].
    #[arg(long, env = "WAAS_OUTBOUND_ALLOW_LOOPBACK")]
    outbound_allow_loopback: Option<bool>,
    /// Let webhooks and HTTP upstreams reach private addresses (true/false) [default: false].
    #[arg(long, env = "WAAS_OUTBOUND_ALLOW_PRIVATE")]
    outbound_allow_private: Option<bool>,
    /// The `region` label on every metric [default: none].
    #[arg(long, env = "WAAS_REGION")]
    region: Option<String>,
    /// Every region's public gateway URL, served at GET /v1/regions for the SDKs' discovery:
    /// `name=url,name=url` (ws:// or wss://) [default: none].
    #[arg(long, env = "WAAS_REGIONS")]
    regions: Option<String>,
}

#[derive(Args)]
pub struct DevArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// SQLite file for apps and keys; `:memory:` keeps nothing [default: .waas/dev.db].
    #[arg(long, env = "WAAS_STORE")]
    store: Option<PathBuf>,
    /// Id of the default app [default: demo].
    #[arg(long, env = "WAAS_APP_ID")]
    app_id: Option<String>,
    /// API key of the default app [default: demo-key].
    #[arg(long, env = "WAAS_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// HS256 secret of the default app [default: demo-secret].
    #[arg(long, env = "WAAS_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Pusher secret of the default app, whose Pusher key is its id [default: demo-pusher-secret].
    #[arg(long, env = "WAAS_PUSHER_SECRET", hide_env_values = true)]
    pusher_secret: Option<String>,
}

/// NATS credentials and TLS (`[nats_auth]`, `[nats_tls]`). Secrets are best given as files or
/// variables: flags show in `ps`. `--help` never prints the variables' values.
#[derive(Args)]
pub struct NatsArgs {
    #[arg(long, env = "WAAS_NATS_USER")]
    nats_user: Option<String>,
    #[arg(long, env = "WAAS_NATS_PASSWORD", hide_env_values = true)]
    nats_password: Option<String>,
    #[arg(long, env = "WAAS_NATS_PASSWORD_FILE")]
    nats_password_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_TOKEN", hide_env_values = true)]
    nats_token: Option<String>,
    #[arg(long, env = "WAAS_NATS_TOKEN_FILE")]
    nats_token_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_NKEY_SEED_FILE")]
    nats_nkey_seed_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_CREDS_FILE")]
    nats_creds_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_TLS_CA_FILE")]
    nats_tls_ca_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_TLS_CERT_FILE")]
    nats_tls_cert_file: Option<PathBuf>,
    #[arg(long, env = "WAAS_NATS_TLS_KEY_FILE")]
    nats_tls_key_file: Option<PathBuf>,
    /// Refuse a NATS server that does not offer TLS.
    #[arg(long, env = "WAAS_NATS_TLS_REQUIRED")]
    nats_tls_required: bool,
}

impl NatsArgs {
    fn apply(&self, s: &mut Settings) {
        let auth = &mut s.nats_auth;
        if self.nats_user.is_some() {
            auth.user = self.nats_user.clone();
        }
        if let Some(p) = &self.nats_password {
            auth.password = Some(p.clone().into());
        }
        if let Some(t) = &self.nats_token {
            auth.token = Some(t.clone().into());
        }
        for (dst, src) in [
            (&mut auth.password_file, &self.nats_password_file),
            (&mut auth.token_file, &self.nats_token_file),
            (&mut auth.nkey_seed_file, &self.nats_nkey_seed_file),
            (&mut auth.creds_file, &self.nats_creds_file),
            (&mut s.nats_tls.ca_file, &self.nats_tls_ca_file),
            (&mut s.nats_tls.cert_file, &self.nats_tls_cert_file),
            (&mut s.nats_tls.key_file, &self.nats_tls_key_file),
        ] {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        if self.nats_tls_required {
            s.nats_tls.required = true;
        }
    }
}

/// One flag and one variable per webhook setting (`[webhooks]` in the config file).
#[derive(Args)]
struct WebhookArgs {
    #[arg(long = "webhook-debounce-ms", env = "WAAS_WEBHOOK_DEBOUNCE_MS")]
    debounce_ms: Option<u64>,
    #[arg(long = "webhook-node-ttl-ms", env = "WAAS_WEBHOOK_NODE_TTL_MS")]
    node_ttl_ms: Option<u64>,
    #[arg(long = "webhook-max-attempts", env = "WAAS_WEBHOOK_MAX_ATTEMPTS")]
    max_attempts: Option<u32>,
    #[arg(long = "webhook-retry-base-ms", env = "WAAS_WEBHOOK_RETRY_BASE_MS")]
    retry_base_ms: Option<u64>,
    #[arg(long = "webhook-retry-max-ms", env = "WAAS_WEBHOOK_RETRY_MAX_MS")]
    retry_max_ms: Option<u64>,
    #[arg(long = "webhook-timeout-ms", env = "WAAS_WEBHOOK_TIMEOUT_MS")]
    timeout_ms: Option<u64>,
    #[arg(long = "webhook-concurrency", env = "WAAS_WEBHOOK_CONCURRENCY")]
    concurrency: Option<usize>,
    #[arg(
        long = "webhook-per-endpoint-concurrency",
        env = "WAAS_WEBHOOK_PER_ENDPOINT_CONCURRENCY"
    )]
    per_endpoint_concurrency: Option<usize>,
    #[arg(long = "webhook-poll-ms", env = "WAAS_WEBHOOK_POLL_MS")]
    poll_ms: Option<u64>,
    #[arg(
        long = "webhook-response-log-bytes",
        env = "WAAS_WEBHOOK_RESPONSE_LOG_BYTES"
    )]
    response_log_bytes: Option<usize>,
}

macro_rules! overlay {
    ($dst:expr, $src:expr, $($field:ident),+) => {
        $( if let Some(v) = $src.$field.clone() { $dst.$field = v; } )+
    };
}

impl CommonArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        overlay!(s, self, listen, subject_prefix);
        if self.nats.is_some() {
            s.nats = self.nats.clone();
        }
        self.nats_client.apply(&mut s);
        if self.database_url.is_some() {
            s.database_url = self.database_url.clone();
        }
        if self.operator_token.is_some() {
            s.operator_token = self.operator_token.clone();
        }
        self.limits.apply(&mut s.limits)?;
        let w = &self.webhooks;
        overlay!(
            s.webhooks,
            w,
            debounce_ms,
            node_ttl_ms,
            max_attempts,
            retry_base_ms,
            retry_max_ms,
            timeout_ms,
            concurrency,
            per_endpoint_concurrency,
            poll_ms,
            response_log_bytes
        );
        if self.outbound_allow_loopback.is_some() {
            s.outbound_allow_loopback = self.outbound_allow_loopback;
        }
        overlay!(s, self, outbound_allow_private, region);
        if let Some(list) = &self.regions {
            s.regions = parse_regions(list)?;
        }
        s.validate()?;
        Ok(s)
    }
}

impl DevArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = self.common.settings()?;
        overlay!(s, self, store, app_id, api_key, jwt_secret, pusher_secret);
        s.validate()?;
        Ok(s)
    }
}

/// `--regions name=url,name=url`; the names and URLs are checked with the rest of the settings.
fn parse_regions(list: &str) -> anyhow::Result<Vec<waas_protocol::regions::Region>> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (name, url) = item.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("invalid setting regions: {item:?} is not name=url")
            })?;
            Ok(waas_protocol::regions::Region {
                name: name.trim().into(),
                url: url.trim().into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_flag_is_a_list_of_name_equals_url() {
        let r = parse_regions("eu=wss://eu.example.com, us=ws://10.0.0.1:8080/rt").unwrap();
        assert_eq!(
            r.iter()
                .map(|r| (r.name.as_str(), r.url.as_str()))
                .collect::<Vec<_>>(),
            [
                ("eu", "wss://eu.example.com"),
                ("us", "ws://10.0.0.1:8080/rt")
            ]
        );
        assert!(parse_regions("").unwrap().is_empty());
        let e = parse_regions("eu").unwrap_err().to_string();
        assert!(e.contains("name=url"), "{e}");
    }
}
