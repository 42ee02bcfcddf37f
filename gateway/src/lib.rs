//! The WaaS gateway: an edge node that terminates WebSockets and moves pub/sub traffic through
//! the bus. It keeps no state that cannot be lost; any node can serve any client.
//!
//! # Layout
//! - [`bus`]: the **Bus seam** (`Bus` trait) and its implementations: `memory` (one process)
//!   and NATS (cluster).
//! - [`history`]: the **History seam** (`History` trait): offsets, epochs, stored messages
//!   for recovery and the history API; `memory` (one process) and `jetstream` (cluster).
//! - [`app`]: apps as the gateway sees them.
//! - [`registry`]: the cache of apps, filled from the control-plane's [`directory`].
//! - [`auth`]: API keys and JWT verification (`auth::jwt`), the [`auth::Identity`] of a caller.
//! - [`hub`]: local subscriptions, one bus subscription per live subject, the fan-out.
//! - [`resync`]: catching a channel's subscribers up from history after the bus reconnects.
//! - [`outbound`]: a connection's bounded outbound queue and slow-consumer policy.
//! - [`connection`]: the per-connection task speaking protocol v1.
//! - [`connections`]: every open connection, for heartbeats, timeouts and shutdown.
//! - [`presence`]: presence members and channel occupancy across the cluster, kept by
//!   announcements between gateways (no database); the REST channel endpoints.
//! - [`publisher`]: offsets and encoding of published messages, shared by socket and REST.
//! - [`rest`]: the REST API for servers (publish, batch, tokens).
//! - [`history_api`]: reading history and subscribing with recovery, for sockets and REST.
//! - [`recordings_api`]: recordings for apps' servers over REST, forwarded to the control-plane.
//! - [`keys`]: the key directory of end-to-end encryption (device keys, wrapped room keys),
//!   kept by the control-plane and reached over the bus; its four socket ops.
//! - [`rpc`]: request/response over the socket: routes, services served by SDK servers over
//!   the bus, HTTP upstreams.
//! - [`server`]: routes, the WebSocket upgrade, health, and graceful shutdown.
//! - [`service`]: the one entry point, [`Node::build`] then [`service::run`], used by
//!   `waas dev` and `waas gateway` alike.
//! - [`accept`]: the accept loop's bounds: header and keep-alive timeouts, connections per
//!   source address.
//! - [`subjects`]: the bus subject layout, and why no app reaches internal traffic.
//! - [`socket`], [`wsframe`], [`ratelimit`]: writing frames, encoding them once, publish rate.
//! - [`webhooks`]: reports to the control-plane, which sends the webhooks.
//! - [`egress`]: outbound HTTP (webhooks, upstreams): which addresses may be reached (SSRF
//!   rules checked on literal IPs and on resolved addresses), bounded reads of responses.
//! - [`config`]: every limit with its default.
//! - [`json_errors`]: the layer that gives every error answer the JSON error body.
//! - [`metrics`]: Prometheus metrics, `GET /metrics`.
//! - [`origin`]: apps' `Origin` allow-lists for WebSocket handshakes.
//! - [`redact`]: keeping secrets out of logs ([`redact::Secret`], URLs without userinfo).
//! - [`openapi`]: the OpenAPI 3.1 document of the REST API, `GET /openapi.json`.

pub mod accept;
pub mod app;
pub mod auth;
pub mod bus;
pub mod config;
pub mod connection;
pub mod connections;
pub mod directory;
pub mod egress;
pub mod fragments;
pub mod gateway;
pub mod history;
pub mod history_api;
pub mod hub;
pub mod json_errors;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod outbound;
pub mod presence;
pub mod publisher;
pub mod ratelimit;
pub mod recordings_api;
pub mod redact;
pub mod registry;
pub mod rest;
pub mod resync;
pub mod rpc;
pub mod server;
pub mod service;
pub mod socket;
pub mod subjects;
pub mod webhooks;
pub mod wsframe;

pub use app::AppConfig;
pub use config::{GatewayConfig, Limits};
pub use gateway::Gateway;
pub use registry::AppRegistry;
pub use service::{run, DirectoryTimings, Node};
