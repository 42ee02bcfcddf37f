//! A connection's publishes handed to storage and not yet acknowledged, oldest first.
//!
//! A client that publishes back to back should not wait a storage round trip (a JetStream
//! acknowledgement, in a cluster) per message: the connection starts each publish in the order
//! the frames arrive, which is the order they are stored in (`Publisher::start`), keeps reading,
//! and acknowledges each once it is stored, in order. At most `max_publishes_in_flight` wait at
//! once; beyond that the connection reads no further frames until the oldest is stored.
//!
//! A `VecDeque` polled at its front, not a `FuturesOrdered`: acknowledgements come back in order
//! anyway, and an empty `VecDeque` allocates nothing, which matters on idle connections.

use futures_util::future::BoxFuture;
use std::collections::VecDeque;
use std::task::Poll;
use waas_core::bus::BusError;

/// A publish that has been answered by storage.
pub struct Done {
    /// The client's request id.
    pub id: u64,
    /// The message's offset, or why it was not stored.
    pub result: Result<u64, BusError>,
}

#[derive(Default)]
pub struct Pipeline {
    queue: VecDeque<BoxFuture<'static, Done>>,
}

impl Pipeline {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn push(&mut self, publish: BoxFuture<'static, Done>) {
        self.queue.push_back(publish);
    }

    /// The oldest publish, once storage answered it; never resolves while the pipeline is
    /// empty. Cancel-safe: a publish leaves the queue only in the poll that returns it.
    pub async fn next(&mut self) -> Done {
        std::future::poll_fn(|cx| match self.queue.front_mut() {
            Some(publish) => publish.as_mut().poll(cx).map(|done| {
                self.queue.pop_front();
                done
            }),
            None => Poll::Pending,
        })
        .await
    }
}
