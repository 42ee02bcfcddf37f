//! A history stream's epoch, first and last sequence, asked of JetStream once for many callers.
//!
//! Every subscribe and every history read needs the state of its app's stream, fresh: the
//! epoch tells a recovering client whether its offsets still mean anything, and the first and
//! last sequences whether anything it missed was dropped. After a gateway restarts, thousands
//! of clients resubscribe at once, each asking JetStream for the same stream's info; those
//! requests, and the JSON of each answer, were most of the work of a reconnect storm.
//!
//! Callers of one stream therefore share requests, but only a request *sent after they asked*:
//! while one is in flight, new callers wait for the next, which starts when it returns. So
//! every caller gets a state at least as new as its call, exactly what a request of its own
//! would give (a message stored before the call is counted), at one request per round trip
//! per stream instead of one per caller.

use super::unavailable;
use crate::history::HistoryError;
use async_nats::jetstream::stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// A stream's epoch (its creation time, hex nanoseconds), first and last sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StreamState {
    pub epoch: String,
    pub first: u64,
    pub last: u64,
}

type Answer = Result<StreamState, HistoryError>;

/// Callers waiting for a stream's next state request, by stream name; a name is present while
/// its driver runs.
#[derive(Default)]
pub(super) struct FreshStates {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<Answer>>>>,
}

impl FreshStates {
    /// The state of `stream` as JetStream reports it in a request sent after this call.
    pub(super) async fn get(self: &Arc<Self>, stream: &stream::Stream) -> Answer {
        let name = stream.cached_info().config.name.clone();
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut waiting = self.waiting.lock().expect("states poisoned");
            match waiting.get_mut(&name) {
                Some(queue) => {
                    queue.push(tx);
                    false
                }
                None => {
                    waiting.insert(name.clone(), vec![tx]);
                    true
                }
            }
        };
        if start {
            // A task of its own: the driver must outlive a caller that gives up waiting.
            tokio::spawn(Arc::clone(self).drive(name, stream.clone()));
        }
        rx.await
            .unwrap_or_else(|_| Err(unavailable("the stream state request was dropped")))
    }

    /// Asks for the state as long as callers wait, each request answering everyone who asked
    /// before it was sent.
    async fn drive(self: Arc<Self>, name: String, stream: stream::Stream) {
        loop {
            let batch = {
                let mut waiting = self.waiting.lock().expect("states poisoned");
                let queue = waiting.get_mut(&name).expect("a driven stream is present");
                if queue.is_empty() {
                    waiting.remove(&name);
                    return;
                }
                std::mem::take(queue)
            };
            let answer = fetch(&stream).await;
            for tx in batch {
                let _ = tx.send(answer.clone());
            }
        }
    }
}

async fn fetch(stream: &stream::Stream) -> Answer {
    let info = stream.get_info().await.map_err(unavailable)?;
    Ok(StreamState {
        epoch: format!("{:x}", info.created.unix_timestamp_nanos()),
        first: info.state.first_sequence,
        last: info.state.last_sequence,
    })
}
