//! `waas`: parses flags and hands over to the library. See `waas --help`.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jsonwebtoken::{encode, EncodingKey, Header};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;
use waas::settings::Settings;
use waas_gateway::Limits;
use waas_protocol::{Caps, ChannelPattern, Claims, PatternSet};

#[derive(Parser)]
#[command(name = "waas", version, about = "WaaS: WebSocket as a Service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process on an in-process bus and in-memory apps.
    Dev(DevArgs),
}

#[derive(Args)]
struct DevArgs {
    /// TOML configuration file; flags and WAAS_* variables override it.
    #[arg(long, env = "WAAS_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "WAAS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Id of the default app [default: demo].
    #[arg(long, env = "WAAS_APP_ID")]
    app_id: Option<String>,
    /// API key of the default app [default: demo-key].
    #[arg(long, env = "WAAS_API_KEY")]
    api_key: Option<String>,
    /// HS256 secret of the default app [default: demo-secret].
    #[arg(long, env = "WAAS_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// First token of bus subjects [default: waas].
    #[arg(long, env = "WAAS_SUBJECT_PREFIX")]
    subject_prefix: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
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
            bus_channel_capacity
        );
    }
}

impl DevArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = match &self.config {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        overlay!(s, self, listen, app_id, api_key, jwt_secret, subject_prefix);
        self.limits.apply(&mut s.limits);
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
            publish: all,
        },
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

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let app = &settings.app_id;
    let token = demo_token(&settings)?;
    println!("WaaS dev server: in-process bus, apps in memory");
    println!("  app id      {app}");
    println!("  API key     {}", settings.api_key);
    println!("  JWT secret  {}", settings.jwt_secret);
    println!("  WebSocket   ws://{addr}/v1/apps/{app}/ws?token=<jwt>");
    println!(
        "  REST        http://{addr}/v1/apps/{app}/publish  (Authorization: Bearer <API key>)"
    );
    println!("  demo token  {token}");
    println!("              (sub demo-user, may subscribe and publish everywhere, valid 24 h)");
    println!("listening on {addr}");
    waas::dev::run(settings, listener, shutdown_signal()).await?;
    Ok(())
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
    }
}
