//! The WaaS gateway: an edge node that terminates WebSockets and moves pub/sub traffic through
//! the bus. It keeps no state that cannot be lost; any node can serve any client. What it shares
//! with the control-plane (the bus, history, apps, wire types, HTTP plumbing) is in `waas_core`.
//!
//! # Layout
//! - [`registry`]: the cache of apps, filled from the control-plane's directory
//!   (`waas_core::directory`).
//! - [`hub`]: local subscriptions, one bus subscription per live subject, the fan-out.
//! - [`resync`]: catching a channel's subscribers up from history after the bus reconnects.
//! - [`outbound`]: a connection's bounded outbound queue and slow-consumer policy.
//! - [`connection`]: the per-connection task speaking protocol v1; [`op_error`], why an op
//!   failed, as the client is told.
//! - [`connections`]: every open connection, for heartbeats, timeouts and shutdown.
//! - [`presence`]: presence members and channel occupancy across the cluster, kept by
//!   announcements between gateways (no database).
//! - [`history_api`]: reading history and subscribing with recovery, for sockets and REST.
//! - [`keys`]: the four socket ops of the key directory of end-to-end encryption (device keys,
//!   wrapped room keys), kept by the control-plane and reached over the bus.
//! - [`rpc`]: request/response over the socket: routes, services served by SDK servers over
//!   the bus, HTTP upstreams.
//! - [`http`]: every route and its handler: the REST API for servers (publish, batch, tokens,
//!   channels and presence, history, recordings), the WebSocket upgrade, health, and the
//!   OpenAPI 3.1 document of the REST API, `GET /openapi.json` ([`openapi`]).
//! - [`server`]: a node's life: its background tasks, serving, and graceful shutdown.
//! - [`service`]: the one entry point, [`Node::build`] then [`service::run`], used by
//!   `waas dev` and `waas gateway` alike.
//! - [`socket`], [`wsframe`], [`ratelimit`]: writing frames, encoding them once, publish rate.
//! - [`webhooks`]: reports to the control-plane, which sends the webhooks.
//! - [`servers`]: this node's server connections (API key), their ping latency, and the node's
//!   reports to the control-plane (the dashboard's Servers page).
//! - [`usage_report`]: per-app usage counters sent to the control-plane.
//! - [`pusher`]: the Pusher-protocol front (`GET /app/{key}`), over the same hub, history and
//!   presence as the native protocol.
//! - [`config`]: every limit with its default.

pub mod config;
pub mod connection;
pub mod connections;
pub mod fragments;
pub mod gateway;
pub mod history_api;
pub mod http;
pub mod hub;
pub mod keys;
pub mod op_error;
pub mod outbound;
pub mod presence;
pub mod pusher;
pub mod ratelimit;
pub mod registry;
pub mod resync;
pub mod rpc;
pub mod server;
pub mod servers;
pub mod service;
pub mod socket;
pub mod usage_report;
pub mod webhooks;
pub mod wsframe;

/// At the crate's root too, where the binaries that serve the document look for it.
pub use http::openapi;

pub use config::{GatewayConfig, Limits};
pub use gateway::Gateway;
pub use registry::AppRegistry;
pub use service::{run, DirectoryTimings, Node};
