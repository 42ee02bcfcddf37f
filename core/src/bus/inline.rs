//! Taking a subscription's messages inside the publisher's call ([`super::Bus::subscribe_inline`]).
//!
//! Why: in one process a message handed to a subscriber's queue wakes the subscriber's task,
//! and when one read brings several publishes the runtime unparks another worker thread to run
//! the second. For a channel with a few subscribers per gateway that wake-up, and the other
//! thread's park and unpark, cost about as much as the socket writes themselves. A subscriber
//! that can pass a message on at once does it in the publisher's call instead.

use super::BusMessage;

/// A subscriber that may take messages in the publisher's call.
///
/// Order: a subscriber that gives a message back must not take a later one in the
/// publisher's call until the given-back one has come out of its stream and been handled;
/// only it knows when that is, so it counts what it gave back and [`Inline::lost`] says when one
/// never reached the stream.
pub trait Inline: Send + Sync + 'static {
    /// Handles `message` now, or gives it back to be queued on the subscription's stream.
    fn offer(&self, message: BusMessage) -> Result<(), BusMessage>;

    /// A message [`Inline::offer`] gave back was dropped instead of queued (the subscriber was
    /// `capacity` messages behind): it will not come out of the stream.
    fn lost(&self);
}
