//! The WaaS control-plane: owns tenants, apps, API keys and JWT keys, and tells gateways about
//! them.
//!
//! # Layout
//! - [`store`]: the **Store seam** (`Store` trait) with its two implementations, SQLite
//!   (embedded) and PostgreSQL (cluster), and the records they keep.
//! - [`directory`]: answers gateways' app queries over the bus and announces changes.
//! - [`keys`]: answers gateways' key directory calls (end-to-end encryption), kept through
//!   `store::keys`.
//! - [`admin`]: the operator's REST API, `/v1/admin/...`, and its OpenAPI document
//!   (`admin::openapi`, `GET /openapi.json`).
//! - [`dashboard`]: the browser dashboard, `/dashboard` (accounts, sessions, pages).
//! - [`secrets`]: generation of API keys and HS256 secrets.
//! - [`recordings`]: recordings of channel traffic (the recorder tasks, replays, their admin
//!   API); stored through `store::recordings`.
//! - [`webhooks`]: webhooks from gateways' reports: presence transitions with debounce, the
//!   delivery worker over the durable outbox (`store::webhooks`), signing and retries.
//! - [`servers`]: gateways and tenants' server connections from the gateways' reports (the
//!   dashboard's Servers page, `GET /v1/admin/nodes`, `GET /v1/admin/apps/{id}/servers`).
//! - [`usage`]: per-app usage from gateways' reports, kept per minute and hour, and its ranges.
//! - [`seed`]: apps declared in configuration, made to exist in the store.
//! - [`metrics`]: webhook, recording and replay counters for `/metrics`.
//! - [`service`]: the one entry point, [`ControlPlane::start`], used by `waas dev` and
//!   `waas control-plane` alike.

pub mod admin;
pub mod dashboard;
pub mod directory;
pub mod keys;
pub mod metrics;
pub mod recordings;
pub mod secrets;
pub mod seed;
pub mod servers;
pub mod service;
pub mod store;
pub mod usage;
pub mod webhooks;

pub use service::{Backends, Config, ControlPlane, StartError};
