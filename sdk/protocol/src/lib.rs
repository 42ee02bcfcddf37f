//! The WaaS wire protocol, version 1, shared by the gateway and every SDK.
//!
//! # Layout
//! - [`frame`]: the JSON frames exchanged over the WebSocket (`op` + `id` envelope).
//! - [`codes`]: error codes carried in `error` frames and REST bodies, and WebSocket close codes
//!   with their reconnect policy.
//! - [`history`]: recovery positions (`since`) and pages of channel history.
//! - [`names`]: validated identifiers (`AppId`, `ChannelName`) and the bus subject they map to.
//! - [`pattern`]: capability patterns with NATS-style `*` / `>` wildcards.
//! - [`presence`]: presence channels and their members.
//! - [`e2ee`]: end-to-end encryption on the wire: the envelope, key directory entries, device
//!   ids and associated data (`docs/e2ee.md`).
//! - [`claims`]: the JWT claims a tenant's backend signs for its end users.
//! - [`webhook`]: webhook event types and their HMAC-SHA256 signatures.
//! - [`recording`]: starting a recording and describing one, for REST and the SDK.
//! - [`regions`]: the regions document of `GET /v1/regions` (each region's gateway URL), read
//!   by the SDKs' discovery option.
//! - [`rest`]: request and response bodies of the REST API.
//! - [`rpc`]: request/response over the socket: service names, paths, `caps.call` prefixes.
//! - [`server_name`]: the name a tenant's server gives its connection (`server_name`).
//!
//! `docs/protocol.md`, `docs/auth.md` and `docs/rest.md` are the normative description; this
//! crate is the executable one, and the two must agree.

pub mod claims;
pub mod codes;
pub mod e2ee;
pub mod frame;
pub mod history;
pub mod names;
pub mod pattern;
pub mod presence;
pub mod recording;
pub mod regions;
pub mod rest;
pub mod rpc;
pub mod server_name;
pub mod webhook;

pub use claims::{Caps, Claims};
pub use codes::{CloseCode, ErrorCode};
pub use frame::{ClientFrame, ServerFrame};
pub use names::{AppId, ChannelName, NameError, RESERVED_APP_IDS};
pub use pattern::{ChannelPattern, PatternSet};
pub use rpc::{CallSet, PathPrefix, ServiceName};
pub use server_name::ServerName;

/// Protocol version spoken by this crate; sent in `ready`.
pub const PROTOCOL_VERSION: u32 = 1;
