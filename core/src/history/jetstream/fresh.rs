//! JetStream requests shared by the callers that want the same answer at the same time, each
//! caller answered by a request *sent after it asked*.
//!
//! After a gateway restarts, thousands of clients resubscribe at once. Each needs its app's
//! stream state (the epoch tells it whether its offsets still mean anything, the first and last
//! sequences whether anything it missed was dropped), and the ten subscribers of a channel ask
//! for the same missed messages. One request each, and the JSON of each answer, were most of a
//! reconnect storm's work.
//!
//! Sharing an answer must not make it older than the caller: a recovering subscriber is already
//! held on the live subscription, and relies on the read holding every message stored before
//! it asked. So while a request for a key is in flight, new callers wait for the next one,
//! which starts when it returns: one request per round trip per key instead of one per caller,
//! and every answer as new as a request of the caller's own.
//!
//! A request that takes far longer than a round trip (JetStream's own timeout is 5 s) would
//! make everyone who arrives meanwhile wait for it and then for the next: a caller that finds
//! the one in flight older than [`PATIENCE`] sends its own instead.

use super::unavailable;
use crate::history::HistoryError;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a request may be in flight before new callers stop queuing behind it: far above a
/// JetStream round trip, even between regions.
const PATIENCE: Duration = Duration::from_secs(1);

type Answer<V> = Result<V, HistoryError>;
type Request<V> = Pin<Box<dyn Future<Output = Answer<V>> + Send>>;

struct Waiting<V> {
    callers: Vec<oneshot::Sender<Answer<V>>>,
    /// The request to send next: made by the round's first caller (every caller of a key asks
    /// the same).
    request: Option<Request<V>>,
    /// When the request in flight was sent.
    sent: Instant,
}

/// Callers waiting for a key's next request; a key is present while its driver runs.
pub(super) struct Fresh<K, V> {
    waiting: Mutex<HashMap<K, Waiting<V>>>,
    patience: Duration,
}

impl<K, V> Default for Fresh<K, V> {
    fn default() -> Self {
        Fresh {
            waiting: Mutex::default(),
            patience: PATIENCE,
        }
    }
}

impl<K, V> Fresh<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The answer of the request `make` makes, or of an identical request for `key` sent after
    /// this call. `make` is called only when this caller's request is the one to send (the
    /// first of a round, or past a stuck one): a caller that joins a round costs no request.
    pub(super) async fn get<F>(self: &Arc<Self>, key: K, make: impl FnOnce() -> F) -> Answer<V>
    where
        F: Future<Output = Answer<V>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let mut make = Some(make);
        let mut request = || -> Request<V> { Box::pin(make.take().expect("made once")()) };
        let start = {
            let mut waiting = self.waiting.lock().expect("fresh poisoned");
            match waiting.get_mut(&key) {
                // The one in flight is stuck: do not wait for it and then for the next.
                Some(w) if w.sent.elapsed() > self.patience => None,
                Some(w) => {
                    w.callers.push(tx);
                    if w.request.is_none() {
                        w.request = Some(request());
                    }
                    Some(false)
                }
                None => {
                    waiting.insert(
                        key.clone(),
                        Waiting {
                            callers: vec![tx],
                            request: Some(request()),
                            sent: Instant::now(),
                        },
                    );
                    Some(true)
                }
            }
        };
        let Some(start) = start else {
            return request().await;
        };
        if start {
            // A task of its own: the driver must outlive a caller that gives up waiting.
            tokio::spawn(Arc::clone(self).drive(key));
        }
        Self::answer(rx).await
    }

    async fn answer(rx: oneshot::Receiver<Answer<V>>) -> Answer<V> {
        rx.await
            .unwrap_or_else(|_| Err(unavailable("a shared history request was dropped")))
    }

    /// Sends `key`'s request as long as callers wait, each answering everyone who asked before
    /// it was sent.
    async fn drive(self: Arc<Self>, key: K) {
        loop {
            let (callers, request) = {
                let mut waiting = self.waiting.lock().expect("fresh poisoned");
                let w = waiting.get_mut(&key).expect("a driven key is present");
                match w.request.take() {
                    None => {
                        waiting.remove(&key);
                        return;
                    }
                    Some(request) => {
                        w.sent = Instant::now();
                        (std::mem::take(&mut w.callers), request)
                    }
                }
            };
            let answer = request.await;
            for tx in callers {
                let _ = tx.send(answer.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::Notify;

    /// A request counter: each request answers how many requests had been *sent* when it was.
    struct Server {
        sent: AtomicU64,
        release: Notify,
    }

    fn request(server: &Arc<Server>) -> impl Future<Output = Answer<u64>> + Send + 'static {
        let server = Arc::clone(server);
        async move {
            let n = server.sent.fetch_add(1, Ordering::SeqCst) + 1;
            server.release.notified().await;
            Ok(n)
        }
    }

    #[tokio::test]
    async fn callers_share_the_next_request_never_one_sent_before_they_asked() {
        let server = Arc::new(Server {
            sent: AtomicU64::new(0),
            release: Notify::new(),
        });
        let fresh: Arc<Fresh<&str, u64>> = Arc::default();
        let first = tokio::spawn({
            let (f, r) = (Arc::clone(&fresh), request(&server));
            async move { f.get("k", || r).await }
        });
        // The first request is in flight before the others ask.
        while server.sent.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let later: Vec<_> = (0..5)
            .map(|_| {
                let (f, r) = (Arc::clone(&fresh), request(&server));
                tokio::spawn(async move { f.get("k", || r).await })
            })
            .collect();
        while fresh.waiting.lock().unwrap()["k"].callers.len() < 5 {
            tokio::task::yield_now().await;
        }
        server.release.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        while server.sent.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        server.release.notify_one();
        for caller in later {
            // All five asked while request 1 was in flight: they share request 2.
            assert_eq!(caller.await.unwrap(), Ok(2));
        }
        assert_eq!(server.sent.load(Ordering::SeqCst), 2);
        assert!(
            fresh.waiting.lock().unwrap().is_empty(),
            "the key is let go"
        );
    }

    #[tokio::test]
    async fn keys_do_not_share() {
        let fresh: Arc<Fresh<u32, u32>> = Arc::default();
        let (a, b) = tokio::join!(
            fresh.get(1, || async { Ok(10) }),
            fresh.get(2, || async { Ok(20) })
        );
        assert_eq!((a, b), (Ok(10), Ok(20)));
    }

    #[tokio::test]
    async fn a_caller_does_not_queue_behind_a_stuck_request() {
        let fresh: Arc<Fresh<u32, u32>> = Arc::new(Fresh {
            waiting: Mutex::default(),
            patience: Duration::from_millis(20),
        });
        let stuck = tokio::spawn({
            let f = Arc::clone(&fresh);
            async move { f.get(1, std::future::pending).await }
        });
        while fresh.waiting.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Time passing is what is tested: the request in flight outlives the patience.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let own = tokio::time::timeout(Duration::from_secs(5), fresh.get(1, || async { Ok(7) }))
            .await
            .expect("answered by its own request");
        assert_eq!(own, Ok(7));
        assert!(!stuck.is_finished());
        stuck.abort();
    }
}
