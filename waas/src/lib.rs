//! The `waas` binary's library: configuration and the commands that compose gateway and
//! control-plane into processes.
//!
//! # Layout
//! - [`cli`]: the command line: flags, commands, and what each one calls.
//! - [`settings`]: configuration from file, environment and flags, validated at start-up.
//! - [`nats_settings`]: credentials and TLS for NATS (`[nats_auth]`, `[nats_tls]`).
//! - [`dev`]: `waas dev`, everything in one process on the embedded bus and store.
//! - [`first_operator`]: the dashboard's first operator, from the environment or `waas dev`.
//! - [`listen`]: the listening socket, with a configurable backlog.
//! - [`cluster`]: `waas gateway`, `waas control-plane`, `waas migrate` on NATS and PostgreSQL.
//! - [`telemetry`]: OpenTelemetry traces over OTLP/HTTP, with `--otel-endpoint`.

pub mod cli;
pub mod cluster;
pub mod dev;
pub mod first_operator;
pub mod listen;
pub mod nats_settings;
pub mod settings;
pub mod telemetry;
