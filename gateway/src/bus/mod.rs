//! The bus seam: how gateways exchange messages. Two implementations: [`memory::MemoryBus`]
//! (one process, `waas dev`) and NATS (cluster mode).
//!
//! Guarantees every implementation gives, and no more: at-most-once delivery; messages from one
//! publisher on one subject arrive in the order published; a subscription receives only what is
//! published after `subscribe` returns. Subjects follow NATS syntax: `.`-separated tokens, `*`
//! matches one token and `>` the rest in subscriptions.

pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::pin::Pin;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
}

/// A live subscription; dropping it unsubscribes.
pub type BusSubscription = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;
    async fn subscribe(&self, subject: &str) -> Result<BusSubscription, BusError>;
    /// Whether the bus can take publishes now (drives `/readyz`).
    fn is_ready(&self) -> bool;
}
