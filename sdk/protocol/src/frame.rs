//! Frames of protocol v1. Every frame is a JSON object with a string `op`; client requests carry
//! a numeric `id` that the server echoes in the `ack` or `error` answering it.
//!
//! Layout: `client` holds [`ClientFrame`] and its parser, `server` [`ServerFrame`] and its
//! parser, `borrowed` the [`MessageRef`], [`RequestRef`] and [`ResponseRef`] encoders.

mod borrowed;
mod client;
mod server;

pub use borrowed::{MessageRef, RequestRef, ResponseRef};
pub use client::{ClientFrame, FrameError};
pub use server::{ServerFrame, ServerFrameError};

use serde::Deserialize;
use serde_json::value::RawValue;

/// Keeps `"data": null` apart from a missing `data`: null is a valid payload.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// The JSON `null`, for an absent body.
pub fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

#[cfg(test)]
mod tests;
