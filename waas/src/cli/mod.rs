//! The `waas` command line: what each command accepts and which library call it makes.
//! `main.rs` only sets up logging and hands the parsed command to [`run`].
//!
//! - [`args`]: the settings flags of the server commands, over the TOML file.
//! - [`limits`]: the limits' flags and variables, made from `Limits::SPECS`.
//! - [`serve`]: `dev`, `gateway`, `control-plane`, `migrate`.
//! - [`admin`]: `admin create-user`, dashboard accounts written to the store.
//! - [`app`]: `app create`, `app rotate-pusher-secret`, `app pusher-client-events`, through the
//!   Rust SDK's admin client.
//! - [`healthcheck`]: `healthcheck`, a container's HEALTHCHECK without curl.
//! - [`token`]: `token issue`, signed locally.

mod admin;
mod app;
mod args;
mod healthcheck;
mod limits;
mod serve;
mod token;

use args::{CommonArgs, DevArgs};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "waas", version, about = "WaaS: WebSocket as a Service")]
pub struct Cli {
    /// Log lines on stderr: `text` for people, `json` for log collectors (one object a line).
    #[arg(
        long,
        env = "WAAS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,
    /// Export traces as OTLP over HTTP/protobuf to this collector (`http://host:4318`); none:
    /// no traces.
    #[arg(long, env = "WAAS_OTEL_ENDPOINT", global = true)]
    pub otel_endpoint: Option<String>,
    /// Threads that serve connections (the async runtime's workers); 0: one per CPU this
    /// process may use. Fewer workers wake each other less: at moderate load one worker spends
    /// about a fifth less CPU per delivery than two. Set it where a gateway sees more CPUs than
    /// it is meant to use, as a pod with only a CPU request sees its whole node
    /// (`docs/configuration.md#worker-threads`).
    #[arg(
        long,
        env = "WAAS_WORKERS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u16).range(0..=1024),
        global = true
    )]
    pub workers: u16,
    #[command(subcommand)]
    command: Command,
}

impl Cli {
    /// Whether the command runs a server (as opposed to a one-shot command like `token`).
    pub fn serves(&self) -> bool {
        matches!(
            self.command,
            Command::Dev(_) | Command::Gateway(_) | Command::ControlPlane(_)
        )
    }

    /// The `service.name` of this process's traces.
    pub fn service_name(&self) -> &'static str {
        match self.command {
            Command::Dev(_) => "waas-dev",
            Command::Gateway(_) => "waas-gateway",
            Command::ControlPlane(_) => "waas-control-plane",
            _ => "waas",
        }
    }
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Dashboard accounts, written to the store.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Manage apps through a control-plane's admin API.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Tokens for end users.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Ask a local server's /healthz (or --path) and exit 0 only on a 2xx: a container's
    /// HEALTHCHECK.
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Runs one parsed command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => serve::dev(args).await,
        Command::Gateway(args) => serve::gateway(args).await,
        Command::ControlPlane(args) => serve::control_plane(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Admin(cmd) => admin::run(cmd).await,
        Command::App(cmd) => app::run(cmd).await,
        Command::Token(cmd) => token::run(cmd),
        Command::Healthcheck(args) => healthcheck::run(args).await,
    }
}

/// Libraries whose verbose levels print secrets are held below them, whatever `WAAS_LOG` says:
/// tokio-postgres logs every query's parameters at debug (app secrets, webhook URLs and
/// secrets), async-nats its CONNECT line at trace (NATS password, token, JWT). A filter of its
/// own, so it only ever lowers what `WAAS_LOG` enables, never raises it.
pub fn secret_safe_caps() -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::LevelFilter;
    tracing_subscriber::filter::Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("tokio_postgres", LevelFilter::INFO)
        .with_target("async_nats", LevelFilter::DEBUG)
}
