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
    /// PostgreSQL URL.
    #[arg(long, env = "WAAS_DATABASE_URL")]
    database_url: Option<String>,
    /// Bearer token of the admin API.
    #[arg(long, env = "WAAS_OPERATOR_TOKEN")]
    operator_token: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
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
    #[arg(long, env = "WAAS_API_KEY")]
    api_key: Option<String>,
    /// HS256 secret of the default app [default: demo-secret].
    #[arg(long, env = "WAAS_JWT_SECRET")]
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
        #[arg(long, env = "WAAS_OPERATOR_TOKEN")]
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
        #[arg(long, env = "WAAS_JWT_SECRET")]
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
    #[arg(long, env = "WAAS_RESYNC_TIMEOUT_MS")]
    resync_timeout_ms: Option<u64>,
    #[arg(long, env = "WAAS_RESYNC_CONCURRENCY")]
    resync_concurrency: Option<usize>,
    #[arg(long, env = "WAAS_HISTORY_SWEEP_MS")]
    history_sweep_ms: Option<u64>,
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
            poll_ms
        );
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

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
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
    println!("listening on {addr}");
    waas::dev::run(settings, listener, shutdown_signal()).await?;
    Ok(())
}

async fn gateway(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let run = waas::cluster::run_gateway(settings, listener, shutdown_signal());
    println!("listening on {addr}");
    run.await?;
    Ok(())
}

async fn control_plane(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let run = waas::cluster::run_control_plane(settings, listener, shutdown_signal());
    println!("listening on {addr}");
    run.await?;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
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
