//! Rust client SDK for WaaS, the self-hostable realtime pub/sub service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), waas_sdk::Error> {
//! use futures_util::StreamExt;
//!
//! let client = waas_sdk::Client::builder()
//!     .url("ws://127.0.0.1:8080")
//!     .app("demo")
//!     .token("demo-key")
//!     .connect()
//!     .await?;
//! let mut sub = client.subscribe("chat.room-1").await?;
//! client.publish("chat.room-1", "say", &serde_json::json!({"text": "hi"})).await?;
//! while let Some(message) = sub.next().await {
//!     println!("{}: {}", message.event, message.raw_data());
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`client`]: [`Client`], the cloneable handle: subscribe, publish, ping, close, events.
//! - [`options`]: [`ClientBuilder`], every connection option with its default.
//! - `actor`: the task that owns the socket, runs the heartbeat, reconnects and resubscribes.
//! - `session`: the protocol state kept across connections (pending requests, channels), free of
//!   I/O so it is tested frame by frame.
//! - `nearest`: probing several gateways (one per region) and ranking them by round trip.
//! - `discovery`: the gateways' URLs from a regions document (`GET /v1/regions`).
//! - `transport`: dialing, the WebSocket upgrade and the reader task.
//! - [`subscription`]: [`Subscription`], a `Stream` of [`Message`]s with its overflow policy.
//! - [`message`]: [`Message`], a delivered message with its raw JSON payload.
//! - [`events`]: [`ConnectionEvent`]s (connected, disconnected, reconnecting, closed) and [`State`].
//! - [`backoff`]: [`Backoff`], the jittered exponential reconnect delay.
//! - [`presence`]: [`PresenceEvent`]s, members of presence channels.
//! - [`rpc`]: [`Client::request`] / [`Client::call`]: requests over the socket, [`rpc::Response`].
//! - [`server`]: [`Client::serve`]: answering a service's requests with handlers and a
//!   [`server::Router`].
//! - [`rest`]: [`ServerClient`], the REST API for tenants' servers (publish, batch, mint tokens).
//! - [`webhook`]: verifying the signature of webhooks a tenant's backend receives.
//! - [`e2ee`]: end-to-end encryption: device keys, room keys, envelopes, the key directory
//!   ops, the owner's share-and-rotate loop (`docs/e2ee.md`).
//! - [`admin`]: [`AdminClient`], the admin API for an operator's tooling (tenants, apps).
//! - [`token`]: signing end-user tokens locally (HS256, RS256, ES256).
//! - [`error`]: [`Error`], with the server's error and close codes kept as data.
//!
//! The wire types come from [`waas_protocol`], re-exported as [`protocol`].

pub mod admin;
pub mod backoff;
pub mod client;
pub mod e2ee;
pub mod error;
pub mod events;
pub mod message;
pub mod options;
pub mod presence;
pub mod rest;
pub mod rpc;
pub mod server;
pub mod subscription;
pub mod token;
pub mod webhook;

mod actor;
mod discovery;
mod nearest;
mod session;
mod transport;

pub use admin::AdminClient;
pub use backoff::Backoff;
pub use client::Client;
pub use error::{Error, Result};
pub use events::{ConnectionEvent, Events, State};
pub use message::Message;
pub use options::ClientBuilder;
pub use presence::{Member, PresenceEvent, PresenceEvents};
pub use rest::ServerClient;
pub use subscription::Subscription;
pub use waas_protocol as protocol;
pub use waas_protocol::rest::{PublishRequest, PublishResponse, TokenRequest, TokenResponse};
pub use waas_protocol::{Caps, Claims, CloseCode, ErrorCode};
