//! Webhooks as gateways and control-plane both see them: gateways report what happened on their
//! node, the control-plane turns reports into deliveries.
//!
//! # Layout
//! - [`report`]: the messages and subject of that exchange, and [`report::WebhookInterest`].

pub mod report;
