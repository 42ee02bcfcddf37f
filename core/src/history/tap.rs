//! Reading every message of an app, as a recorder does: [`History::tap`](super::History::tap).
//!
//! A tapped message may carry a position (the JetStream stream sequence) and an acknowledgement:
//! the reader acknowledges each message once it has stored it. A message not acknowledged in
//! time (the reader died) is delivered again, with the same position, possibly after later ones,
//! so the reader must store by position and skip what it already has.

use super::HistoryError;
use crate::bus::TracedSubscription;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;

/// One message of the tapped app.
pub struct Tapped {
    /// Strictly increasing along the tap; `None` for live-only taps (the reader numbers them).
    pub position: Option<u64>,
    /// The complete `message` frame.
    pub frame: Bytes,
    pub(crate) ack: Option<async_nats::jetstream::Message>,
}

impl Tapped {
    /// Acknowledges this message: it will not be delivered again.
    pub async fn ack(self) -> Result<(), HistoryError> {
        match self.ack {
            Some(message) => message
                .ack()
                .await
                .map_err(|e| HistoryError::Unavailable(format!("JetStream ack: {e}"))),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Tapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tapped")
            .field("position", &self.position)
            .field("durable", &self.ack.is_some())
            .finish()
    }
}

pub type TapStream = Pin<Box<dyn Stream<Item = Result<Tapped, HistoryError>> + Send>>;

/// A tap on a live subscription: no positions, nothing to acknowledge, nothing kept across a
/// restart of the reader.
pub fn live(subscription: TracedSubscription) -> Result<TapStream, HistoryError> {
    Ok(Box::pin(subscription.map(|message| {
        Ok(Tapped {
            position: None,
            frame: message.payload,
            ack: None,
        })
    })))
}
