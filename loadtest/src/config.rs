//! The command line. Every flag's default is stated in its help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "N subscribers on one channel, one publisher at a fixed rate: delivered/s, \
             publish→deliver latency, server CPU per delivery and RSS per connection",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the markdown table of several JSON reports, with ratios of each peer to WaaS and of
    /// each labelled WaaS setup (a cluster) to the single server. Repeated runs of one set-up and
    /// scenario are shown by their median run (server CPU per delivery), then their spread.
    Table {
        /// JSON reports written with `--json FILE`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Publishes as fast as one gateway accepts them (REST, batch or WebSocket), without
    /// subscribers: accepted publishes/s and server CPU per publish (`loadtest/README.md#ingest`).
    Ingest(crate::ingest::IngestArgs),
    /// Print the markdown table of several `loadtest ingest --json` reports.
    IngestTable {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Delete the JetStream streams whose subjects fall under `{prefix}.>` (what a cluster
    /// started by `loadtest/ingest.sh` leaves behind).
    IngestCleanup {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        #[arg(long)]
        prefix: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// WaaS protocol v1: `GET /v1/apps/{app}/ws`, API key as bearer.
    Waas,
    /// Socket.IO v5 over Engine.IO v4 WebSocket transport (`loadtest/peers/socketio`).
    Socketio,
    /// Pusher protocol 7: `GET /app/{key}?protocol=7`, `pusher:subscribe` to a public channel
    /// (WaaS's Pusher front, Sockudo, Soketi).
    Pusher,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Waas => "waas",
            Target::Socketio => "socketio",
            Target::Pusher => "pusher",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishVia {
    /// A publisher WebSocket connection (the target's own protocol).
    Ws,
    /// `POST /v1/apps/{app}/publish` (WaaS only; with `--target pusher`, into the channel the
    /// Pusher subscribers of WaaS's Pusher front listen on).
    Rest,
    /// Pusher's HTTP API, `POST /apps/{app}/events`, signed with `--pusher-key` and
    /// `--pusher-secret` (`--target pusher` only).
    PusherHttp,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server to load.
    #[arg(long, value_enum, default_value_t = Target::Waas)]
    pub target: Target,

    /// Server address(es) the subscribers connect to, HOST:PORT; several, comma-separated (e.g.
    /// the gateways of a cluster), are used round robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub addr: Vec<String>,

    /// Server address the publisher connects to. Default: the first `--addr`. Give another
    /// gateway of a cluster to measure cross-node fan-out.
    #[arg(long)]
    pub publish_addr: Option<String>,

    /// How the servers are set up, shown in the tables (e.g. "2 gateways, publisher on A,
    /// subscribers on B"). Runs with a label are compared with the unlabelled run of the same
    /// target and scenario. Default: none, a single server.
    #[arg(long)]
    pub label: Option<String>,

    /// WaaS app id.
    #[arg(long, env = "WAAS_APP_ID", default_value = "demo")]
    pub app: String,

    /// WaaS API key, sent as `Authorization: Bearer` (gives every capability).
    #[arg(
        long,
        env = "WAAS_API_KEY",
        default_value = "demo-key",
        hide_env_values = true
    )]
    pub api_key: String,

    /// Pusher key the subscribers connect with (`/app/{key}`) and the HTTP API is signed with.
    /// Default: the app id (WaaS's Pusher key); the peers in `/work/shared/peers.md` use
    /// `demo-key`.
    #[arg(long)]
    pub pusher_key: Option<String>,

    /// Pusher secret the HTTP API is signed with (`waas dev`'s demo app: `demo-pusher-secret`;
    /// the peers: `demo-secret`).
    #[arg(
        long,
        env = "LOADTEST_PUSHER_SECRET",
        default_value = "demo-pusher-secret",
        hide_env_values = true
    )]
    pub pusher_secret: String,

    /// Name of the server in the report and tables (e.g. `sockudo`, `soketi`, `waas-pusher`).
    /// Default: the target's (`waas`, `socketio`, `pusher`). Runs named `waas`, published to over
    /// WebSocket without a label, are the reference the ratios compare against.
    #[arg(long)]
    pub name: Option<String>,

    /// Channel (Socket.IO: room) every subscriber joins.
    #[arg(long, default_value = "bench")]
    pub channel: String,

    /// Subscriber connections.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub subscribers: usize,

    /// Messages published per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,

    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Bytes of padding in each message's data.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,

    /// How the publisher publishes.
    #[arg(long, value_enum, default_value_t = PublishVia::Ws)]
    pub publish_via: PublishVia,

    /// Server process(es) to measure (CPU time per delivery, RSS per connection), repeated or
    /// comma-separated: figures are summed over them (e.g. every gateway of a cluster). Without
    /// it only the client side is measured.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Message-bus process(es) (e.g. nats-server) whose CPU time is measured over the same
    /// window and reported apart from the servers', per delivery; repeated or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub bus_pid: Vec<u32>,

    /// Write the report as JSON to FILE (`-` for stdout, in place of the table).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Comma-separated local addresses to bind subscriber sockets to, round robin (e.g.
    /// 127.0.0.1,127.0.0.2), for more than ~28k connections from one host. Default: the kernel's
    /// choice.
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,

    /// Connections being opened at once. Keep it under the server's listen backlog (tokio's
    /// `TcpListener::bind` gives 128): an overflowing accept queue drops SYNs, which the kernel
    /// retries after a second.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,

    /// Seconds allowed for connecting and subscribing every subscriber.
    #[arg(long, default_value_t = 180.0)]
    pub connect_timeout: f64,

    /// Seconds to wait after publishing for in-flight deliveries (stops early when all arrived,
    /// or when none arrived for 2 s).
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,

    /// Seconds to wait after the last subscription before sampling the server's RSS.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,

    /// Worker threads of the client's tokio runtime. Default: one per core.
    #[arg(long)]
    pub threads: Option<usize>,
}
