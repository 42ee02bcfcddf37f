//! What the WaaS fronts share: the gateway (WebSockets and the REST API for apps' servers) and
//! the control-plane (the admin API, the stores) are two fronts over this crate. It holds the
//! seams and the vocabulary both speak; neither front depends on the other.
//!
//! # Layout
//! - [`bus`]: the **Bus seam** (`Bus` trait) and its implementations: `memory` (one process)
//!   and NATS (cluster).
//! - [`history`]: the **History seam** (`History` trait): offsets, epochs, stored messages
//!   for recovery and the history API; `memory` (one process) and `jetstream` (cluster).
//! - [`publisher`]: offsets and encoding of published messages, shared by socket, REST and
//!   replays.
//! - [`time`]: the wall clock, [`time::now_ms`].
//! - [`app`]: the app model: an app's definition ([`app::AppConfig`]) and the compiled
//!   [`app::App`].
//! - [`auth`]: API keys and JWT verification (`auth::jwt`), the [`auth::Identity`] of a caller.
//! - [`directory`]: how gateways learn apps from the control-plane, over the bus.
//! - [`route`]: an app's request routes (`docs/rpc.md`).
//! - [`keys`]: the key directory of end-to-end encryption as gateways reach it over the bus.
//! - [`recordings`]: recording calls forwarded by gateways to the control-plane.
//! - [`webhooks`]: what gateways report so the control-plane can send webhooks.
//! - [`nodes`]: what gateways report about themselves and their tenants' server connections.
//! - [`http`]: what the HTTP fronts share: the error answer and bearer credential
//!   ([`http::error`]), the JSON error layer, OpenAPI helpers, the accept loop and its bounds.
//! - [`subjects`]: the bus subject layout, and why no app reaches internal traffic.
//! - [`metrics`]: Prometheus metrics of the process, `GET /metrics`.
//! - [`egress`]: outbound HTTP (webhooks, upstreams): which addresses may be reached (SSRF
//!   rules checked on literal IPs and on resolved addresses), bounded reads of responses.
//! - [`origin`]: apps' `Origin` allow-lists for WebSocket handshakes.
//! - [`redact`]: keeping secrets out of logs ([`redact::Secret`], URLs without userinfo).
//! - [`usage`]: per-app usage counters and the report gateways send the control-plane.
//! - [`trace`]: W3C trace context carried over the bus, so traces cross gateways; off unless
//!   the process exports traces.

pub mod app;
pub mod auth;
pub mod bus;
pub mod directory;
pub mod egress;
pub mod history;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod nodes;
pub mod origin;
pub mod publisher;
pub mod recordings;
pub mod redact;
pub mod route;
pub mod subjects;
pub mod time;
pub mod trace;
pub mod usage;
pub mod webhooks;
