//! The Pusher-protocol front (`docs/pusher.md`): Pusher's client libraries (pusher-js,
//! Laravel Echo, the mobile SDKs) connect to `GET /app/{key}` and speak Pusher protocol 7 over
//! the same core as native clients — the hub, history, presence, the app registry, limits and
//! outbound queues. A Pusher channel is the native channel of the same name, so Pusher and
//! native clients on one channel see each other's messages.
//!
//! # Layout
//! - [`upgrade`]: the endpoint, and the checks of the handshake (protocol, app, origin).
//! - [`connection`]: the per-connection task; its ops in [`subscribe`], [`events`] (client
//!   events) and [`signin`].
//! - [`wire`]: Pusher frames in and out; [`codes`]: Pusher's error and close codes.
//! - [`data`]: the one rule between Pusher's string `data` and native JSON `data`.
//! - [`message`]: native messages as Pusher frames (once per message, in the hub's fan-out),
//!   and messages sent from the Pusher side.
//! - [`channel`]: channel types by prefix; [`auth`]: signatures, in [`hex`]; [`presence`]:
//!   members.
//! - [`users`]: signed-in users and `terminate_connections` across gateways.
//! - [`hooks`]: what the front reports for webhooks.

pub mod auth;
pub mod channel;
pub mod codes;
pub mod connection;
pub mod data;
mod events;
pub mod hex;
pub mod hooks;
pub mod message;
pub mod presence;
mod signin;
mod subscribe;
pub mod upgrade;
pub mod users;
pub mod wire;
