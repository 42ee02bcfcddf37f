//! `waas`: parses flags and hands over to the library. See `waas --help`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jsonwebtoken::{encode, EncodingKey, Header};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use waas::settings::Settings;
use waas_gateway::Limits;
use waas_protocol::{CallSet, Caps, ChannelPattern, Claims, PathPrefix, PatternSet};

#[derive(Parser)]
#[command(name = "waas", version, about = "WaaS: WebSocket as a Service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: in-process bus, apps in an embedded SQLite file.
    Dev(DevArgs),
    /// Run a gateway node of a cluster (needs --nats).
    Gateway(CommonArgs),
    /// Run the control-plane of a cluster (needs --nats, --database-url, --operator-token).
    ControlPlane(CommonArgs),
    /// Apply PostgreSQL migrations (needs --database-url) and exit.
    Migrate(CommonArgs),
    /// Manage apps through a control-plane's admin API.
    #[command(subcommand)]
    App(AppCommand),
    /// Tokens for end users.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Settings every server command shares.
#[derive(Args)]
struct CommonArgs {
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
}

#[derive(Args)]
struct DevArgs {
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
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app (and its tenant when missing); prints the app with its first API key.
    Create {
        /// Base URL of the control-plane (or of `waas dev`).
        #[arg(
            long,
            env = "WAAS_CONTROL_PLANE",
            default_value = "http://127.0.0.1:8080"
        )]
        control_plane: String,
        #[arg(long, env = "WAAS_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: String,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Sign an HS256 token locally with an app's secret (no call to WaaS).
    Issue {
        #[arg(long, env = "WAAS_JWT_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long)]
        sub: String,
        /// App id, written to `aud`.
        #[arg(long)]
        app: Option<String>,
        /// Channel pattern the holder may subscribe to; repeat for more.
        #[arg(long)]
        subscribe: Vec<String>,
        /// Channel pattern the holder may publish to; repeat for more.
        #[arg(long)]
        publish: Vec<String>,
        /// Path prefix the holder may send requests to (docs/rpc.md); repeat for more.
        #[arg(long)]
        call: Vec<String>,
        /// Channel pattern the holder may share end-to-end encryption keys for (docs/e2ee.md);
        /// repeat for more.
        #[arg(long)]
        share: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// One flag and one variable per limit; `docs/configuration.md` gives defaults and meaning.
#[derive(Args)]
struct LimitArgs {
    #[arg(long, env = "WAAS_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    #[arg(long, env = "WAAS_MAX_CHANNELS_PER_CONNECTION")]
    max_channels_per_connection: Option<usize>,
    #[arg(long, env = "WAAS_MAX_CONNECTIONS_PER_APP")]
    max_connections_per_app: Option<usize>,
    #[arg(long, env = "WAAS_PUBLISH_RATE")]
    publish_rate: Option<u32>,
    #[arg(long, env = "WAAS_PUBLISH_BURST")]
    publish_burst: Option<u32>,
    #[arg(long, env = "WAAS_MAX_QUEUED_MESSAGES")]
    max_queued_messages: Option<usize>,
    #[arg(long, env = "WAAS_MAX_QUEUED_BYTES")]
    max_queued_bytes: Option<usize>,
    #[arg(long, env = "WAAS_HEARTBEAT_INTERVAL_MS")]
    heartbeat_interval_ms: Option<u64>,
    #[arg(long, env = "WAAS_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_CONNECT_TIMEOUT_MS")]
    connect_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_SHUTDOWN_GRACE_MS")]
    shutdown_grace_ms: Option<u64>,
    #[arg(long, env = "WAAS_MAX_BATCH_SIZE")]
    max_batch_size: Option<usize>,
    #[arg(long, env = "WAAS_MAX_CHANNELS_PER_PUBLISH")]
    max_channels_per_publish: Option<usize>,
    #[arg(long, env = "WAAS_DEFAULT_TOKEN_TTL_SECS")]
    default_token_ttl_secs: Option<u64>,
    #[arg(long, env = "WAAS_MAX_TOKEN_TTL_SECS")]
    max_token_ttl_secs: Option<u64>,
    #[arg(long, env = "WAAS_BUS_CHANNEL_CAPACITY")]
    bus_channel_capacity: Option<usize>,
    #[arg(long, env = "WAAS_LISTEN_BACKLOG")]
    listen_backlog: Option<u32>,
    #[arg(long, env = "WAAS_PRESENCE_HEARTBEAT_MS")]
    presence_heartbeat_ms: Option<u64>,
    #[arg(long, env = "WAAS_PRESENCE_TTL_MS")]
    presence_ttl_ms: Option<u64>,
    #[arg(long, env = "WAAS_MAX_MEMBER_INFO_BYTES")]
    max_member_info_bytes: Option<usize>,
    #[arg(long, env = "WAAS_MAX_PRESENCE_MEMBERS")]
    max_presence_members: Option<usize>,
    #[arg(long, env = "WAAS_WEBHOOK_REPORT_QUEUE")]
    webhook_report_queue: Option<usize>,
    #[arg(long, env = "WAAS_MAX_INFLIGHT_REQUESTS_PER_CONNECTION")]
    max_inflight_requests_per_connection: Option<usize>,
    #[arg(long, env = "WAAS_MAX_INFLIGHT_PER_RESPONDER")]
    max_inflight_per_responder: Option<usize>,
    #[arg(long, env = "WAAS_RPC_TIMEOUT_MS")]
    rpc_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_RPC_MAX_RESPONSE_BYTES")]
    rpc_max_response_bytes: Option<usize>,
    #[arg(long, env = "WAAS_MAX_DEVICES_PER_USER")]
    max_devices_per_user: Option<usize>,
    #[arg(long, env = "WAAS_MAX_ROOM_KEY_RECIPIENTS")]
    max_room_key_recipients: Option<usize>,
    #[arg(long, env = "WAAS_MAX_ROOM_KEY_VERSIONS")]
    max_room_key_versions: Option<u32>,
    #[arg(long, env = "WAAS_KEY_DIRECTORY_TIMEOUT_MS")]
    key_directory_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_HISTORY_SIZE")]
    history_size: Option<usize>,
    #[arg(long, env = "WAAS_HISTORY_TTL_SECS")]
    history_ttl_secs: Option<u64>,
    #[arg(long, env = "WAAS_HISTORY_PAGE_LIMIT")]
    history_page_limit: Option<usize>,
    #[arg(long, env = "WAAS_HTTP_HEADER_TIMEOUT_MS")]
    http_header_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_HTTP_KEEPALIVE_TIMEOUT_MS")]
    http_keepalive_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    #[arg(long, env = "WAAS_RESYNC_TIMEOUT_MS")]
    resync_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_RESYNC_CONCURRENCY")]
    resync_concurrency: Option<usize>,
    #[arg(long, env = "WAAS_HISTORY_SWEEP_MS")]
    history_sweep_ms: Option<u64>,
}

/// NATS credentials and TLS (`[nats_auth]`, `[nats_tls]`). Secrets are best given as files or
/// variables: flags show in `ps`. `--help` never prints the variables' values.
#[derive(Args)]
struct NatsArgs {
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

impl LimitArgs {
    fn apply(&self, limits: &mut Limits) {
        overlay!(
            limits,
            self,
            max_frame_bytes,
            max_channels_per_connection,
            max_connections_per_app,
            publish_rate,
            publish_burst,
            max_queued_messages,
            max_queued_bytes,
            heartbeat_interval_ms,
            idle_timeout_ms,
            connect_timeout_ms,
            shutdown_grace_ms,
            max_batch_size,
            max_channels_per_publish,
            default_token_ttl_secs,
            max_token_ttl_secs,
            bus_channel_capacity,
            listen_backlog
        );
        overlay!(
            limits,
            self,
            presence_heartbeat_ms,
            presence_ttl_ms,
            max_member_info_bytes,
            max_presence_members,
            webhook_report_queue
        );
        overlay!(
            limits,
            self,
            max_inflight_requests_per_connection,
            max_inflight_per_responder,
            rpc_timeout_ms,
            rpc_max_response_bytes
        );
        overlay!(
            limits,
            self,
            history_size,
            history_ttl_secs,
            history_page_limit
        );
        overlay!(
            limits,
            self,
            resync_timeout_ms,
            resync_concurrency,
            history_sweep_ms
        );
        overlay!(
            limits,
            self,
            max_devices_per_user,
            max_room_key_recipients,
            max_room_key_versions,
            key_directory_timeout_ms
        );
        overlay!(
            limits,
            self,
            http_header_timeout_ms,
            http_keepalive_timeout_ms,
            max_connections_per_address
        );
    }
}

impl CommonArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
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
        self.limits.apply(&mut s.limits);
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
        overlay!(s, self, outbound_allow_private);
        s.validate()?;
        Ok(s)
    }
}

impl DevArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = self.common.settings()?;
        overlay!(s, self, store, app_id, api_key, jwt_secret);
        s.validate()?;
        Ok(s)
    }
}

fn demo_token(s: &Settings) -> anyhow::Result<String> {
    let now = waas_gateway::publisher::now_ms() / 1000;
    let all = PatternSet::new(vec![ChannelPattern::parse(">").context("pattern")?]);
    let claims = Claims {
        sub: "demo-user".into(),
        exp: now + 86400,
        iat: Some(now),
        aud: Some(s.app_id.clone()),
        caps: Caps {
            subscribe: all.clone(),
            publish: all.clone(),
            call: CallSet::all(),
            share: all,
        },
        info: None,
    };
    Ok(encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(s.jwt_secret.as_bytes()),
    )?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn bind(settings: &Settings) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = waas::listen::bind(settings.listen, settings.limits.listen_backlog)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Every server command prints `listening on <addr>` only once it is ready to serve: socket
/// bound and everything it needs (store, bus) open. A command that fails to start never prints
/// it, so whatever waits for the line (a test harness, a script) sees the failure.
async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let started = waas::dev::start(&settings).await?;
    let app = &settings.app_id;
    let token = demo_token(&settings)?;
    println!(
        "WaaS dev server: in-process bus, apps in {}",
        settings.store.display()
    );
    println!("  app id      {app}");
    println!("  API key     {}", settings.api_key);
    println!("  JWT secret  {}", settings.jwt_secret);
    println!("  WebSocket   ws://{addr}/v1/apps/{app}/ws?token=<jwt>");
    println!(
        "  REST        http://{addr}/v1/apps/{app}/publish  (Authorization: Bearer <API key>)"
    );
    println!("  demo token  {token}");
    println!("              (sub demo-user, may subscribe and publish everywhere, valid 24 h)");
    println!(
        "  admin API   http://{addr}/v1/admin/apps  (Authorization: Bearer {})",
        settings
            .operator_token
            .as_deref()
            .unwrap_or(waas::settings::DEV_OPERATOR_TOKEN)
    );
    let outbound = settings.outbound(true);
    let loopback = match (outbound.allow_loopback, settings.outbound_allow_loopback) {
        (true, None) => "loopback allowed (dev default)",
        (true, Some(_)) => "loopback allowed",
        (false, _) => "loopback refused",
    };
    let private = if outbound.allow_private {
        "private networks allowed"
    } else {
        "private networks refused"
    };
    println!("  outbound    webhooks and upstreams: {loopback}, {private}");
    println!("listening on {addr}");
    started.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn gateway(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let node = waas::cluster::start_gateway(&settings).await?;
    println!("listening on {addr}");
    node.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn control_plane(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let started = waas::cluster::start_control_plane(&settings).await?;
    println!("listening on {addr}");
    started.serve(listener, shutdown_signal()).await?;
    Ok(())
}

async fn app_command(cmd: AppCommand) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Create {
            control_plane,
            operator_token,
            id,
            tenant,
            name,
        } => {
            let http = reqwest::Client::new();
            let base = control_plane.trim_end_matches('/');
            let r = http
                .post(format!("{base}/v1/admin/tenants"))
                .bearer_auth(&operator_token)
                .json(&serde_json::json!({"id": tenant, "name": tenant}))
                .send()
                .await?;
            if !(r.status().is_success() || r.status() == reqwest::StatusCode::CONFLICT) {
                anyhow::bail!(
                    "creating tenant {tenant}: {} {}",
                    r.status(),
                    r.text().await?
                );
            }
            let r = http
                .post(format!("{base}/v1/admin/apps"))
                .bearer_auth(&operator_token)
                .json(&serde_json::json!({"id": id, "tenant_id": tenant, "name": name}))
                .send()
                .await?;
            let status = r.status();
            let body = r.text().await?;
            if !status.is_success() {
                anyhow::bail!("creating app {id}: {status} {body}");
            }
            println!("{body}");
            Ok(())
        }
    }
}

fn token_command(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue {
            secret,
            sub,
            app,
            subscribe,
            publish,
            call,
            share,
            ttl,
        } => {
            let patterns = |list: &[String]| -> anyhow::Result<PatternSet> {
                Ok(PatternSet::new(
                    list.iter()
                        .map(|p| ChannelPattern::parse(p).with_context(|| format!("pattern {p:?}")))
                        .collect::<anyhow::Result<_>>()?,
                ))
            };
            let now = waas_gateway::publisher::now_ms() / 1000;
            let claims = Claims {
                sub,
                exp: now + ttl,
                iat: Some(now),
                aud: app,
                caps: Caps {
                    subscribe: patterns(&subscribe)?,
                    publish: patterns(&publish)?,
                    call: call
                        .iter()
                        .map(|p| PathPrefix::parse(p).with_context(|| format!("--call {p:?}")))
                        .collect::<anyhow::Result<Vec<_>>>()
                        .map(CallSet::new)?,
                    share: patterns(&share)?,
                },
                info: None,
            };
            let token = encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Libraries whose verbose levels print secrets are held below them, whatever `WAAS_LOG` says:
/// tokio-postgres logs every query's parameters at debug (app secrets, webhook URLs and
/// secrets), async-nats its CONNECT line at trace (NATS password, token, JWT). A filter of its
/// own, so it only ever lowers what `WAAS_LOG` enables, never raises it.
fn secret_safe_caps() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tokio_postgres", LevelFilter::INFO)
        .with_target("async_nats", LevelFilter::DEBUG)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with(secret_safe_caps())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    match Cli::parse().command {
        Command::Dev(args) => dev(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::ControlPlane(args) => control_plane(args).await,
        Command::Migrate(args) => {
            waas::cluster::migrate(&args.settings()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::App(cmd) => app_command(cmd).await,
        Command::Token(cmd) => token_command(cmd),
    }
}
