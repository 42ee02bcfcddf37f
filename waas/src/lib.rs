//! The `waas` binary's library: configuration and the commands that compose gateway and
//! control-plane into processes.
//!
//! # Layout
//! - [`settings`]: configuration from file, environment and flags, validated at start-up.
//! - [`dev`]: `waas dev`, everything in one process on the embedded bus and store.

pub mod dev;
pub mod settings;
