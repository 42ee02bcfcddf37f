//! Test harness: real servers on port 0 and raw WebSocket clients over loopback.
//!
//! # Layout
//! - [`server`]: an in-process `waas dev` on a free port, shut down on drop, and the real
//!   `waas` binary as a child process for signal tests.
//! - [`raw`]: a WebSocket client that sends any bytes, to test what SDKs would never send.
//! - [`receiver`]: a scripted HTTP server that records webhook requests.
//! - [`flood`]: an HTTP server answering with a huge streamed body, counting what it sent.
//! - [`tokens`]: JWTs for tests.
//! - [`upstream`]: an HTTP backend (an axum `Router`) counting its connections, for RPC upstreams.
//! - [`cluster`]: a control-plane and gateways as processes over NATS and PostgreSQL.
//! - [`jetstream`]: deleting the JetStream streams a test cluster made, when it is dropped.
//! - [`pg`]: a PostgreSQL schema per test.
//! - [`nats`]: the shared NATS URL, per-test subject prefixes, and a private `nats-server` that
//!   tests may stop and restart.
//! - [`delay_proxy`]: a TCP proxy delaying each direction, like a link between regions.
//! - [`proxy`]: a TCP proxy a test can cut, to take one gateway off NATS.
//! - [`sdk`]: waiting on and unwrapping what the Rust SDK's client reports.
//! - [`poll`]: waiting, with a deadline, for state a test can only see by asking.

pub mod cluster;
pub mod delay_proxy;
pub mod flood;
pub mod jetstream;
pub mod nats;
pub mod pg;
pub mod poll;
pub mod proxy;
pub mod raw;
pub mod receiver;
pub mod sdk;
pub mod server;
pub mod tokens;
pub mod upstream;

pub use raw::RawClient;
pub use server::TestServer;
