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
    Ingest(Box<crate::ingest::IngestArgs>),
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

impl RunArgs {
    /// `--connect-concurrency`, or its default for the scenario.
    pub fn connect_concurrency(&self) -> usize {
        match (self.connect_concurrency, self.scenario) {
            (Some(n), _) => n,
            (None, Scenario::Storm) => self.subscribers,
            (None, _) => 100,
        }
    }
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

/// What a run measures (see `loadtest/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Subscribe, then publish `--rate` msg/s for `--duration` s (one channel, or `--channels`
    /// of them): deliveries/s, latency, server CPU per delivery.
    Fanout,
    /// Connect and subscribe every subscriber at once (`--connect-concurrency` defaults to
    /// `--subscribers`), nothing published: time until all are subscribed, server CPU per
    /// connection.
    Storm,
    /// Connect and subscribe, then publish nothing for `--idle-secs`: server RSS per connection
    /// and CPU % while only heartbeats flow.
    Idle,
    /// WaaS only: subscribe, publish through `--publish-addr` at `--rate`, and when the
    /// subscribers' gateway goes away (killed by the caller, see `--ready-file`) reconnect each
    /// after a random `--reconnect-jitter-ms` and resubscribe with `since`: time until all are
    /// back and caught up, messages lost.
    Reconnect,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Storm => "storm",
            Scenario::Idle => "idle",
            Scenario::Reconnect => "reconnect",
        }
    }
}

/// How WaaS subscribers authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Auth {
    /// `--api-key` as bearer (every subscriber the same key).
    ApiKey,
    /// A distinct HS256 JWT per subscriber, signed with `--jwt-secret`.
    Hs256,
    /// A distinct RS256 JWT per subscriber, signed with the private key `--jwt-rsa-key`.
    Rs256,
}

impl Auth {
    pub fn name(self) -> &'static str {
        match self {
            Auth::ApiKey => "api-key",
            Auth::Hs256 => "hs256",
            Auth::Rs256 => "rs256",
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

    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,

    /// Channel (Socket.IO: room) every subscriber joins; with `--channels` above 1, the base of
    /// the names `{channel}-0`, `{channel}-1`, ...
    #[arg(long, default_value = "bench")]
    pub channel: String,

    /// Channels the subscribers are spread over; message `n` goes to channel `n mod channels`.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,

    /// Channels each subscriber subscribes to: subscriber `i` takes channels
    /// `(i·K + k) mod channels`, so with `subscribers × K` a multiple of `channels` every
    /// channel has the same number of subscribers.
    #[arg(long, default_value_t = 1)]
    pub channels_per_subscriber: usize,

    /// How WaaS subscribers authenticate (`--target waas`): the API key, or a distinct JWT each.
    #[arg(long, value_enum, default_value_t = Auth::ApiKey)]
    pub auth: Auth,

    /// HS256 secret for `--auth hs256` (`waas dev`'s demo app: `demo-secret`).
    #[arg(
        long,
        env = "LOADTEST_JWT_SECRET",
        default_value = "demo-secret",
        hide_env_values = true
    )]
    pub jwt_secret: String,

    /// RSA private key (PEM) for `--auth rs256`; the app holds its public half.
    #[arg(long)]
    pub jwt_rsa_key: Option<PathBuf>,

    /// `--scenario idle`: seconds the connections stay idle while the server's CPU is measured.
    #[arg(long, default_value_t = 30.0)]
    pub idle_secs: f64,

    /// `--scenario reconnect`: each subscriber waits a random time up to this before
    /// reconnecting (the SDKs' backoff jitter), and as long again between failed attempts.
    #[arg(long, default_value_t = 1000)]
    pub reconnect_jitter_ms: u64,

    /// `--scenario reconnect`: seconds allowed, after the first disconnect, for every subscriber
    /// to be back and caught up.
    #[arg(long, default_value_t = 60.0)]
    pub reconnect_timeout: f64,

    /// `--scenario reconnect`: file written once every subscriber is subscribed and publishing
    /// has started, so that a script knows when to kill the gateway.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,

    /// `--scenario reconnect`: file holding the pid of the restarted gateway (written by the
    /// script that restarts it), whose CPU time is reported per reconnected subscriber.
    #[arg(long)]
    pub restarted_pid_file: Option<PathBuf>,

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

    /// Network namespace (`ip netns` name, or a path such as `/proc/PID/ns/net`) the subscribers'
    /// sockets are opened in; the publisher stays in the process's. With `--addr` a gateway of
    /// another region, this places the subscribers in that region while publisher and
    /// subscribers share one clock (`loadtest/regions-bench.sh`). Needs root. Default: none.
    #[arg(long)]
    pub subscriber_netns: Option<String>,

    /// Connections being opened at once (default 100; `--scenario storm`: all of them). Keep it
    /// under the server's listen backlog (tokio's `TcpListener::bind` gives 128) to measure
    /// anything but the storm: an overflowing accept queue drops SYNs, which the kernel retries
    /// after a second.
    #[arg(long)]
    pub connect_concurrency: Option<usize>,

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
