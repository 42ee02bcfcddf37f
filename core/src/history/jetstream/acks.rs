//! Storing a message in a history stream and learning its sequence: a plain publish with a
//! reply subject, answered on one subscription per gateway.
//!
//! Why not `jetstream::Context::publish`: for every message it makes a fresh inbox subject, an
//! entry keyed by that string in the client's reply map, a timer around handing the message to
//! the connection and another around waiting for the answer, a boxed future, and it parses the
//! whole answer into a struct that owns the stream's name. In a cluster taking batches that
//! was a large part of a gateway's CPU per stored message (`loadtest/RESULTS.md`). Here a
//! message goes out with the reply subject `{inbox}.{n}`; one task reads every answer of this
//! gateway from `{inbox}.*` and hands each to its waiter, and one sweep a second fails the
//! messages not answered in time.
//!
//! JetStream answers a publish on its reply subject whether it stored the message
//! (`{"stream":…,"seq":n}`) or not (`{"error":{…}}`); NATS answers with a no-responders status
//! when no stream captures the subject. How many messages may wait for an answer is bounded,
//! as the JetStream context bounds it, and below the subscription's capacity, beyond which the
//! client would drop answers.

use async_nats::{Client, HeaderMap, Message, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Messages waiting for their answer at once, at most (the JetStream context's default).
const MAX_PENDING: usize = 5_000;

/// How often answers overdue are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// Why a message was not (known to be) stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    #[error("no stream captures the subject")]
    NoStream,
    #[error("not stored: {0}")]
    Refused(String),
    #[error("no acknowledgement within {0:?}")]
    TimedOut(Duration),
    #[error("unreadable acknowledgement: {0}")]
    Unreadable(String),
    #[error("publish failed: {0}")]
    Send(String),
    #[error("the acknowledgement subscription ended")]
    Stopped,
}

/// The answer to one message: its stream sequence.
pub type Answer = oneshot::Receiver<Result<u64, AckError>>;

pub struct Acks {
    client: Client,
    inner: Arc<Inner>,
    /// The task reading answers, started with the first publish; aborted with this.
    reader: tokio::sync::OnceCell<tokio::task::AbortHandle>,
}

struct Inner {
    /// `{inbox}.`: what every reply subject of this gateway starts with.
    prefix: String,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    /// The subscription ended (the connection was closed for good): nothing will answer.
    stopped: AtomicBool,
}

struct Pending {
    answer: oneshot::Sender<Result<u64, AckError>>,
    deadline: Instant,
    /// Given back when the answer arrives or the wait is given up.
    _permit: OwnedSemaphorePermit,
}

impl Acks {
    /// Answers on `client`, each awaited at most `timeout`; `capacity` is the client's
    /// subscription capacity.
    pub fn new(client: Client, capacity: usize, timeout: Duration) -> Self {
        let prefix = format!("{}.", client.new_inbox());
        Acks {
            client,
            inner: Arc::new(Inner {
                prefix,
                next: AtomicU64::new(0),
                pending: Mutex::default(),
                permits: Arc::new(Semaphore::new(MAX_PENDING.min(capacity).max(1))),
                timeout,
                stopped: AtomicBool::new(false),
            }),
            reader: tokio::sync::OnceCell::new(),
        }
    }

    /// Publishes `payload` to `subject` for a stream to store; waits only for room among the
    /// messages awaiting an answer, and returns the answer to come.
    pub async fn publish(
        &self,
        subject: String,
        headers: Option<HeaderMap>,
        payload: Bytes,
    ) -> Result<Answer, AckError> {
        self.start().await?;
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| AckError::Stopped)?;
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        // Waiting before it is sent: the answer may come before `publish` returns.
        self.inner.lock().insert(
            n,
            Pending {
                answer: tx,
                deadline: Instant::now() + self.inner.timeout,
                _permit: permit,
            },
        );
        // After the reader's last drain nobody would answer, nor give up waiting.
        if self.inner.stopped.load(Ordering::Acquire) {
            self.inner.lock().remove(&n);
            return Err(AckError::Stopped);
        }
        let reply = format!("{}{n}", self.inner.prefix);
        let sent = match headers {
            None => {
                self.client
                    .publish_with_reply(subject, reply, payload)
                    .await
            }
            Some(headers) => {
                self.client
                    .publish_with_reply_and_headers(subject, reply, headers, payload)
                    .await
            }
        };
        if let Err(e) = sent {
            self.inner.lock().remove(&n);
            return Err(AckError::Send(e.to_string()));
        }
        Ok(rx)
    }

    /// Subscribes to the answers once. No confirmation is awaited: the subscription goes to
    /// the server on the same connection before any message that is answered on it.
    async fn start(&self) -> Result<(), AckError> {
        self.reader
            .get_or_try_init(|| async {
                let subscriber = self
                    .client
                    .subscribe(format!("{}*", self.inner.prefix))
                    .await
                    .map_err(|e| AckError::Send(format!("cannot subscribe to answers: {e}")))?;
                let inner = Arc::clone(&self.inner);
                Ok(tokio::spawn(read(inner, subscriber)).abort_handle())
            })
            .await
            .map(|_| ())
    }
}

impl Drop for Acks {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.get() {
            reader.abort();
        }
    }
}

async fn read(inner: Arc<Inner>, mut answers: async_nats::Subscriber) {
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            answer = answers.next() => match answer {
                Some(message) => inner.answer(&message),
                None => {
                    inner.stopped.store(true, Ordering::Release);
                    inner.fail_all(AckError::Stopped);
                    return;
                }
            },
            _ = sweep.tick() => inner.expire(Instant::now()),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().expect("pending acks poisoned")
    }

    fn answer(&self, message: &Message) {
        let Some(n) = message
            .subject
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return;
        };
        // None: given up on already (timed out).
        let Some(pending) = self.lock().remove(&n) else {
            return;
        };
        let result = match message.status {
            Some(StatusCode::NO_RESPONDERS) => Err(AckError::NoStream),
            _ => parse(&message.payload),
        };
        let _ = pending.answer.send(result);
    }

    fn expire(&self, now: Instant) {
        let overdue: Vec<Pending> = self
            .lock()
            .extract_if(|_, p| p.deadline <= now)
            .map(|(_, p)| p)
            .collect();
        for pending in overdue {
            let _ = pending.answer.send(Err(AckError::TimedOut(self.timeout)));
        }
    }

    fn fail_all(&self, error: AckError) {
        let all: Vec<Pending> = self.lock().drain().map(|(_, p)| p).collect();
        for pending in all {
            let _ = pending.answer.send(Err(error.clone()));
        }
    }
}

/// JetStream's answer to a publish: the sequence, or why it was not stored. Borrowed, so that
/// the stream's name and the rest cost nothing.
#[derive(Deserialize)]
struct PubAck<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    error: Option<Refusal<'a>>,
}

#[derive(Deserialize)]
struct Refusal<'a> {
    #[serde(default)]
    code: u16,
    #[serde(borrow, default)]
    description: Cow<'a, str>,
}

fn parse(payload: &[u8]) -> Result<u64, AckError> {
    let ack: PubAck<'_> =
        serde_json::from_slice(payload).map_err(|e| AckError::Unreadable(e.to_string()))?;
    match (ack.error, ack.seq) {
        (Some(r), _) => Err(AckError::Refused(format!("{} ({})", r.description, r.code))),
        (None, Some(seq)) => Ok(seq),
        (None, None) => Err(AckError::Unreadable(
            String::from_utf8_lossy(&payload[..payload.len().min(200)]).into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_jetstream_writes_them() {
        assert_eq!(parse(br#"{"stream":"s","seq":42}"#).unwrap(), 42);
        assert_eq!(
            parse(br#"{"stream":"s","domain":"d","seq":7,"duplicate":true}"#).unwrap(),
            7
        );
        let refused = parse(
            br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not stored: maximum messages exceeded (503)"
        );
        assert!(matches!(parse(b"{}"), Err(AckError::Unreadable(_))));
        assert!(matches!(parse(b"not json"), Err(AckError::Unreadable(_))));
    }

    fn inner(permits: usize) -> Inner {
        Inner {
            prefix: "_INBOX.x.".into(),
            next: AtomicU64::new(0),
            pending: Mutex::default(),
            permits: Arc::new(Semaphore::new(permits)),
            timeout: Duration::from_millis(10),
            stopped: AtomicBool::new(false),
        }
    }

    /// Waits for the answer to message `n`, as `Acks::publish` does.
    fn wait(inner: &Inner, n: u64, now: Instant) -> Answer {
        let permit = Arc::clone(&inner.permits).try_acquire_owned().unwrap();
        let (tx, rx) = oneshot::channel();
        inner.lock().insert(
            n,
            Pending {
                answer: tx,
                deadline: now + inner.timeout,
                _permit: permit,
            },
        );
        rx
    }

    fn message(subject: &str, status: Option<StatusCode>, payload: &'static [u8]) -> Message {
        Message {
            subject: subject.into(),
            reply: None,
            payload: Bytes::from_static(payload),
            headers: None,
            status,
            description: None,
            length: 0,
        }
    }

    /// Each answer reaches the message its subject names, whatever the order; answers to
    /// nothing waiting (another prefix, given up on) change nothing.
    #[tokio::test]
    async fn answers_reach_their_message_and_no_other() {
        let inner = inner(3);
        let now = Instant::now();
        let (first, second, third) = (
            wait(&inner, 0, now),
            wait(&inner, 1, now),
            wait(&inner, 2, now),
        );
        inner.answer(&message("_INBOX.y.0", None, br#"{"stream":"s","seq":9}"#));
        inner.answer(&message("_INBOX.x.1", None, br#"{"stream":"s","seq":5}"#));
        inner.answer(&message("_INBOX.x.2", Some(StatusCode::NO_RESPONDERS), b""));
        inner.answer(&message("_INBOX.x.0", None, br#"{"stream":"s","seq":4}"#));
        inner.answer(&message("_INBOX.x.0", None, br#"{"stream":"s","seq":6}"#));
        assert_eq!(first.await.unwrap().unwrap(), 4);
        assert_eq!(second.await.unwrap().unwrap(), 5);
        assert!(matches!(third.await.unwrap(), Err(AckError::NoStream)));
        assert!(inner.lock().is_empty());
        assert_eq!(
            inner.permits.available_permits(),
            3,
            "every answer gave its room back"
        );
    }

    /// A message not answered in time fails, and gives its room back.
    #[tokio::test]
    async fn overdue_messages_fail_and_free_their_room() {
        let inner = inner(1);
        let now = Instant::now();
        let answer = wait(&inner, 0, now);
        inner.expire(now);
        assert_eq!(inner.lock().len(), 1, "not due yet");
        assert_eq!(inner.permits.available_permits(), 0);
        inner.expire(now + inner.timeout);
        assert!(matches!(answer.await.unwrap(), Err(AckError::TimedOut(_))));
        assert_eq!(inner.permits.available_permits(), 1);
        // Its answer, late, is dropped.
        inner.answer(&message("_INBOX.x.0", None, br#"{"stream":"s","seq":1}"#));
        assert!(inner.lock().is_empty());
    }
}
