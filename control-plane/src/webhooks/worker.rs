//! The delivery worker: leases due deliveries from the outbox, POSTs them signed, and settles
//! each attempt.
//!
//! Slow endpoints cannot hold up the others: at most `per_endpoint_concurrency` deliveries of
//! one endpoint are in flight (an endpoint at its limit is left out of the next claims), every
//! attempt has a timeout, and the worker keeps claiming for other endpoints meanwhile, up to
//! `concurrency` in flight in all. A lease outlasts the timeout, so a row is never sent twice at
//! once by two workers; it is sent again only after a failure or a crash.
//!
//! Endpoints are reached only at addresses the outbound [`Policy`] allows: a literal IP is
//! checked before sending, a host name on what it resolves to (the client's resolver), and no
//! redirect is followed. Of an answer, only the status decides; at most `response_log_bytes`
//! of its body are read, for the log, and a longer body's connection is closed unread.

use super::pusher;
use super::{now_ms, WebhookConfig};
use crate::store::webhooks::{Attempt, Claimed, Outcome, WebhookFormat, WebhookStore};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use waas_core::egress::{self, body::read_at_most, Policy};
use waas_protocol::webhook::{self, ATTEMPT_HEADER, EVENT_HEADER, ID_HEADER, SIGNATURE_HEADER};

/// Longest error text kept in the log per attempt.
const MAX_ERROR: usize = 300;

/// The error of a Pusher-format attempt when the app has no Pusher secret (it was removed):
/// nothing to sign with, so the delivery is dead at once rather than retried
/// (`docs/pusher.md`); `POST .../deliveries/{id}/retry` sends it again once the app has one.
pub const NO_PUSHER_SECRET: &str =
    "the app has no Pusher secret: Pusher-format webhooks are signed with it";

pub struct Worker {
    store: Arc<dyn WebhookStore>,
    config: WebhookConfig,
    http: reqwest::Client,
    outbound: Policy,
    wake: Notify,
    /// Deliveries in flight, per endpoint.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Webhook requests and failures per app, for the usage figures (`crate::usage`).
    pub usage: Arc<waas_core::usage::Usage>,
}

impl Worker {
    pub fn new(store: Arc<dyn WebhookStore>, config: WebhookConfig, outbound: Policy) -> Arc<Self> {
        let http = outbound
            .client_builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            // A receiver answers; it does not send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waas-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with these settings");
        Arc::new(Worker {
            store,
            config,
            http,
            outbound,
            wake: Notify::new(),
            in_flight: Mutex::default(),
            usage: Arc::default(),
        })
    }

    /// Something was enqueued or finished: look for due deliveries now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delay before attempt `attempts + 1`, after `attempts` failed ones: exponential with
    /// "equal jitter" (between half and all of the exponential delay), capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .config
            .retry_base_ms
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(40))
            .min(self.config.retry_max_ms);
        let half = exp / 2;
        Duration::from_millis(half + rand::thread_rng().gen_range(0..=exp - half))
    }

    pub fn start(self: Arc<Self>) -> JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self: Arc<Self>) {
        let poll = Duration::from_millis(self.config.poll_ms);
        // Outlasts an attempt (the timeout) and its settling; after a crash, rows come back
        // this long after they were claimed.
        let lease = (self.config.timeout_ms * 2 + 5000) as i64;
        loop {
            let (busy, total) = {
                let in_flight = self.in_flight.lock().expect("worker poisoned");
                let busy: Vec<String> = in_flight
                    .iter()
                    .filter(|(_, n)| **n >= self.config.per_endpoint_concurrency)
                    .map(|(e, _)| e.clone())
                    .collect();
                (busy, in_flight.values().sum::<usize>())
            };
            let room = self.config.concurrency.saturating_sub(total);
            let mut started = 0;
            if room > 0 {
                match self
                    .store
                    .claim(
                        now_ms(),
                        room,
                        self.config.per_endpoint_concurrency,
                        lease,
                        &busy,
                    )
                    .await
                {
                    Ok(claimed) => {
                        let mut extra = Vec::new();
                        for batch in batches(claimed) {
                            let endpoint = batch[0].endpoint_id.clone();
                            let admitted = {
                                let mut in_flight = self.in_flight.lock().expect("worker poisoned");
                                let n = in_flight.entry(endpoint).or_default();
                                if *n < self.config.per_endpoint_concurrency {
                                    *n += 1;
                                    true
                                } else {
                                    false
                                }
                            };
                            if admitted {
                                started += 1;
                                let me = Arc::clone(&self);
                                tokio::spawn(async move { me.deliver(batch).await });
                            } else {
                                extra.extend(batch.into_iter().map(|c| c.id));
                            }
                        }
                        if !extra.is_empty() {
                            if let Err(e) = self.store.release(&extra).await {
                                tracing::warn!(error = %e, "cannot release deliveries; their lease will end");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot claim webhook deliveries"),
                }
            }
            if started > 0 && started == room {
                // There may be more due: claim again once this round is started.
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One attempt: the answer's status and the start of its body, or why there was none.
    /// A batch (Pusher format) is one request carrying every delivery's event.
    async fn send(
        &self,
        batch: &[Claimed],
        at: i64,
    ) -> Result<(reqwest::StatusCode, String), String> {
        let c = &batch[0];
        let url = reqwest::Url::parse(&c.url).map_err(|e| format!("invalid url: {e}"))?;
        // A literal IP is never resolved, so the resolver's check would not see it.
        self.outbound
            .check_url(&url)
            .map_err(|e| truncate(format!("refused: {e}")))?;
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let request = match c.format {
            WebhookFormat::Waas => {
                let signature = webhook::sign(&c.secret, (at / 1000) as u64, c.body.as_bytes());
                request
                    .header(SIGNATURE_HEADER, signature)
                    .header(ID_HEADER, &c.id)
                    .header(EVENT_HEADER, &c.event_type)
                    .header(ATTEMPT_HEADER, (c.attempts + 1).to_string())
                    .body(c.body.clone())
            }
            WebhookFormat::Pusher => {
                // Signed with the app's Pusher secret as it is now, as Pusher signs webhooks
                // with the app secret: what the libraries' validators check.
                let secret = c.pusher_secret.as_deref().ok_or(NO_PUSHER_SECRET)?;
                let body = pusher::body(at, batch.iter().map(|c| c.body.as_str()));
                request
                    .header(pusher::KEY_HEADER, &c.app_id)
                    .header(pusher::SIGNATURE_HEADER, pusher::sign(secret, &body))
                    .body(body)
            }
        };
        let sent = request.send().await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => {
                return Err(format!("timed out after {} ms", self.config.timeout_ms))
            }
            Err(e) => {
                return Err(truncate(match egress::resolve::refusal(&e) {
                    Some(r) => format!("refused: {r}"),
                    None => egress::error_chain(&e),
                }))
            }
        };
        let status = resp.status();
        // The status is the answer; the body is only logged. A failure reading it (the
        // receiver closing early, the timeout) changes nothing but the log: no body.
        let body = match read_at_most(&mut resp, self.config.response_log_bytes).await {
            Ok(b) => b.bytes,
            Err(_) => Vec::new(),
        };
        // Dropped before its end, a longer body's connection is closed, not drained.
        drop(resp);
        Ok((status, log_text(&body, self.config.response_log_bytes)))
    }

    async fn deliver(self: Arc<Self>, batch: Vec<Claimed>) {
        let at = now_ms();
        let started = Instant::now();
        let (status_code, error, response_body) = match self.send(&batch, at).await {
            Ok((status, body)) if status.is_success() => {
                (Some(status.as_u16() as i32), None, Some(body))
            }
            Ok((status, body)) => (
                Some(status.as_u16() as i32),
                Some(format!("HTTP {status}")),
                Some(body),
            ),
            Err(text) => (None, Some(text), None),
        };
        if let Some(usage) = self.usage.app_str(&batch[0].app_id) {
            usage.webhook(error.is_some());
        }
        // Retrying cannot sign without a secret: dead now, with why.
        let dead_now = error.as_deref() == Some(NO_PUSHER_SECRET);
        let answer = Attempt {
            attempt: 0,
            at,
            status_code,
            error,
            duration_ms: started.elapsed().as_millis() as i64,
            response_body,
        };
        for c in &batch {
            self.settle(c, &answer, dead_now).await;
        }
        {
            let mut in_flight = self.in_flight.lock().expect("worker poisoned");
            if let Some(n) = in_flight.get_mut(&batch[0].endpoint_id) {
                *n -= 1;
                if *n == 0 {
                    in_flight.remove(&batch[0].endpoint_id);
                }
            }
        }
        self.wake();
    }

    /// Records one delivery's attempt (`answer`, numbered here) and decides what comes next
    /// for it: `dead_now` when retrying cannot help.
    async fn settle(&self, c: &Claimed, answer: &Attempt, dead_now: bool) {
        let attempt = c.attempts + 1;
        let error = &answer.error;
        let outcome = if error.is_none() {
            Outcome::Delivered
        } else if dead_now || attempt as u32 >= self.config.max_attempts {
            Outcome::Dead
        } else {
            Outcome::Retry(now_ms() + self.backoff(attempt as u32).as_millis() as i64)
        };
        let label = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retry",
            Outcome::Dead => "dead",
        };
        let metrics = &crate::metrics::CP_METRICS;
        metrics.webhook_attempts.with_label_values(&[label]).inc();
        metrics
            .webhook_latency
            .with_label_values(&[label])
            .observe(answer.duration_ms as f64 / 1000.0);
        match outcome {
            Outcome::Dead => {
                // The endpoint's id, not its URL: a URL may carry credentials.
                tracing::warn!(id = %c.id, endpoint = %c.endpoint_id, attempt, ?error, "webhook delivery dead")
            }
            Outcome::Retry(_) => {
                tracing::debug!(id = %c.id, attempt, ?error, "webhook attempt failed")
            }
            Outcome::Delivered => tracing::debug!(id = %c.id, attempt, "webhook delivered"),
        }
        let record = Attempt {
            attempt,
            ..answer.clone()
        };
        if let Err(e) = self.store.settle(&c.id, record, outcome).await {
            // The lease ends and the delivery is sent again: at least once.
            tracing::warn!(id = %c.id, error = %e, "cannot record a webhook attempt");
        }
    }
}

/// Claimed deliveries as requests: one per WaaS-format delivery; the Pusher-format
/// deliveries of one endpoint together, in claim order (Pusher batches events).
fn batches(claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut out: Vec<Vec<Claimed>> = Vec::new();
    let mut pusher: HashMap<String, usize> = HashMap::new();
    for c in claimed {
        if c.format == WebhookFormat::Pusher {
            if let Some(&i) = pusher.get(&c.endpoint_id) {
                out[i].push(c);
                continue;
            }
            pusher.insert(c.endpoint_id.clone(), out.len());
        }
        out.push(vec![c]);
    }
    out
}

/// At most `MAX_ERROR` bytes, cut on a character boundary.
fn truncate(mut text: String) -> String {
    text.truncate(floor_char_boundary(&text, MAX_ERROR));
    text
}

/// Body bytes as log text: invalid UTF-8 replaced, at most `max` bytes, cut on a character
/// boundary.
fn log_text(body: &[u8], max: usize) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    text.truncate(floor_char_boundary(&text, max));
    text
}

/// The largest character boundary of `s` at or below `index` (`str::floor_char_boundary` is
/// newer than the workspace's minimum Rust).
fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    (0..=index)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_cap() {
        let store: Arc<dyn WebhookStore> =
            Arc::new(crate::store::SqliteStore::open_in_memory().unwrap());
        let w = Worker::new(
            store,
            WebhookConfig {
                retry_base_ms: 100,
                retry_max_ms: 1000,
                ..WebhookConfig::default()
            },
            Policy::default(),
        );
        for _ in 0..50 {
            let d1 = w.backoff(1).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = w.backoff(3).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d10 = w.backoff(10).as_millis();
            assert!((500..=1000).contains(&d10), "{d10}");
        }
    }

    #[test]
    fn pusher_deliveries_of_one_endpoint_go_together() {
        let c = |id: &str, endpoint: &str, format: WebhookFormat| Claimed {
            id: id.into(),
            endpoint_id: endpoint.into(),
            url: String::new(),
            secret: String::new(),
            event_type: "channel_occupied".into(),
            body: "{}".into(),
            attempts: 0,
            format,
            app_id: "demo".into(),
            pusher_secret: None,
        };
        let ids = |b: Vec<Vec<Claimed>>| -> Vec<Vec<String>> {
            b.into_iter()
                .map(|v| v.into_iter().map(|c| c.id).collect())
                .collect()
        };
        let got = ids(batches(vec![
            c("1", "p", WebhookFormat::Pusher),
            c("2", "w", WebhookFormat::Waas),
            c("3", "p", WebhookFormat::Pusher),
            c("4", "w", WebhookFormat::Waas),
            c("5", "q", WebhookFormat::Pusher),
        ]));
        assert_eq!(got, [vec!["1", "3"], vec!["2"], vec!["4"], vec!["5"]]);
    }

    #[test]
    fn log_text_is_bounded_and_cut_on_characters() {
        assert_eq!(log_text(b"ok", 1024), "ok");
        assert_eq!(log_text(b"abcdef", 3), "abc");
        assert_eq!(log_text("zoë".as_bytes(), 3), "zo");
        assert_eq!(log_text(&[b'a', 0xff, b'b'], 1024), "a\u{fffd}b");
        assert_eq!(log_text(b"abc", 0), "");
        assert_eq!(truncate("é".repeat(200)).len(), MAX_ERROR);
    }
}
