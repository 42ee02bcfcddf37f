//! Load generator for WaaS and its peers: N subscriber connections on one channel or spread over
//! many, one publisher at a fixed rate, and what it cost the server; or connect storms, idle
//! connections and a reconnect storm (`--scenario`).
//!
//! # Layout
//! - [`config`]: the command line, every flag with its default.
//! - [`run`]: one scenario end to end: sample the server, connect and subscribe N clients,
//!   publish for the duration, drain in-flight deliveries, sample again, build the report.
//! - [`target`]: what differs per server: [`target::waas`] (protocol v1 over WebSocket, REST
//!   publish), [`target::socketio`] (Engine.IO v4 / Socket.IO v5 over WebSocket) and
//!   [`target::pusher`] (Pusher protocol 7, publishing through Pusher's signed HTTP API).
//! - [`spread`]: which channels each subscriber joins and each message goes to (many channels).
//! - [`tokens`]: one JWT per WaaS subscriber (HS256 or RS256), for the connect storm.
//! - [`reconnect`]: the reconnect storm: subscribers that resubscribe with `since` after their
//!   gateway is killed, and count what they missed.
//! - [`tables`]: one table per scenario with every server's ratio to WaaS.
//! - [`ingest`]: `loadtest ingest`, publishes/s one gateway accepts over REST, batch or
//!   WebSocket, and the server CPU each costs.
//! - [`ws`]: the client WebSocket handshake (fastwebsockets over a tokio `TcpStream`, optionally
//!   bound to one of several loopback source addresses).
//! - [`netns`]: sockets opened in another network namespace (`--subscriber-netns`: subscribers
//!   in one region, the publisher in another, one clock).
//! - [`stats`]: delivery counters and the publish→deliver latency histogram shared by every
//!   subscriber task.
//! - [`procfs`]: CPU time and RSS of a process from `/proc/PID/stat` and `/proc/PID/status`.
//! - [`report`]: the result of a run as JSON, and markdown tables (one run, or several with ratios).
//!
//! Latency is measured on one clock: the publisher writes `t`, nanoseconds since this process
//! started, into each message, and the subscriber that receives it subtracts it from its own
//! reading of the same clock.

pub mod config;
pub mod ingest;
pub mod netns;
pub mod pipeline;
pub mod procfs;
pub mod reconnect;
pub mod repeats;
pub mod report;
pub mod run;
pub mod spread;
pub mod stats;
pub mod tables;
pub mod target;
pub mod tokens;
pub mod ws;

pub use config::{Cli, Command, RunArgs};
pub use report::Report;
pub use run::run;
