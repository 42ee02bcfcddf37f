//! What every subscriber task records: deliveries, their latency, and errors.
//!
//! One `Arc<Stats>` is shared by all tasks. Counters are atomics; the latency histogram sits
//! behind a `std::sync::Mutex` locked for one `record` (tens of nanoseconds, never across an
//! `.await`): with a couple of runtime threads contention is negligible, and one shared histogram
//! costs ~200 KiB where one per subscriber would cost that much per connection.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Highest latency the histogram tracks exactly, in nanoseconds (60 s); larger values saturate.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

pub struct Stats {
    epoch: Instant,
    delivered: AtomicU64,
    last_delivery_ns: AtomicU64,
    latency_ns: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            latency_ns: Mutex::new(
                Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds"),
            ),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Nanoseconds since this `Stats` was made: the clock of the `t` field in every message.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Records one delivered message whose text carries `"t":<ns>`. Returns false (and records
    /// nothing) when it carries none.
    pub fn record_delivery(&self, text: &[u8]) -> bool {
        let Some(t) = extract_t(text) else {
            return false;
        };
        let now = self.now_ns();
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        let latency = now.saturating_sub(t).max(1);
        self.latency_ns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(latency);
        true
    }

    /// Counts one error of the given kind (kinds are short, stable strings, e.g. `closed 4000`).
    pub fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.into())
            .or_default() += 1;
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// When the last delivery arrived, on the [`Stats::now_ns`] clock (0 before any).
    pub fn last_delivery_ns(&self) -> u64 {
        self.last_delivery_ns.load(Ordering::Relaxed)
    }

    pub fn latency(&self) -> Histogram<u64> {
        self.latency_ns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The number after the first `"t":` in a message (the publisher puts `t` first in `data`, and
/// no protocol has another key named `t`), or after `\"t\":` where `data` is a JSON string
/// (Pusher).
pub fn extract_t(text: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"t\":";
    const ESCAPED: &[u8] = b"\\\"t\\\":";
    let find = |key: &[u8]| Some(text.windows(key.len()).position(|w| w == key)? + key.len());
    let at = find(KEY).or_else(|| find(ESCAPED))?;
    let rest = &text[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = &rest[start..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_t_from_both_protocols() {
        let waas = br#"{"op":"message","channel":"bench","event":"tick","data":{"t":123456789,"pad":"xx"},"offset":3,"ts":1700000000000}"#;
        assert_eq!(extract_t(waas), Some(123456789));
        let sio = br#"42["tick",{"t": 42,"pad":"xx"}]"#;
        assert_eq!(extract_t(sio), Some(42));
        let pusher = br#"{"event":"tick","channel":"bench","data":"{\"t\":77,\"pad\":\"xx\"}"}"#;
        assert_eq!(extract_t(pusher), Some(77));
    }

    #[test]
    fn no_t_is_none() {
        assert_eq!(extract_t(br#"{"op":"ack","id":1}"#), None);
        assert_eq!(extract_t(br#"{"ts":5}"#), None);
        assert_eq!(extract_t(br#"{"t":"x"}"#), None);
        assert_eq!(extract_t(br#"{"t":99999999999999999999}"#), None);
    }

    #[test]
    fn records_deliveries_and_errors() {
        let stats = Stats::new();
        let t = stats.now_ns();
        assert!(stats.record_delivery(format!(r#"{{"t":{t}}}"#).as_bytes()));
        assert!(!stats.record_delivery(b"{}"));
        stats.error("closed 4000");
        stats.error("closed 4000");
        assert_eq!(stats.delivered(), 1);
        assert_eq!(stats.latency().len(), 1);
        assert_eq!(stats.errors()["closed 4000"], 2);
        assert!(stats.last_delivery_ns() >= t);
    }
}
