//! Failed sign-ins counted per account and per source address over a sliding window, in
//! memory: each control-plane counts its own (documented in `docs/dashboard.md`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys ever seen are dropped once their window is empty, so the map stays as large as the
/// number of recently failing accounts and addresses.
pub struct Limiter {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Limiter {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has used up its failures within the window.
    pub fn blocked(&self, key: &str) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some(times) = map.get_mut(key) else {
            return false;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.is_empty() {
            map.remove(key);
            return false;
        }
        times.len() >= self.max as usize
    }

    pub fn fail(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = map.entry(key.to_owned()).or_default();
        times.push_back(Instant::now());
        while times.len() > self.max as usize {
            times.pop_front();
        }
    }

    /// A successful sign-in forgets the account's failures.
    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_and_forgets_after_window() {
        let l = Limiter::new(2, Duration::from_millis(50));
        l.fail("a");
        assert!(!l.blocked("a"));
        l.fail("a");
        assert!(l.blocked("a"));
        assert!(!l.blocked("b"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.blocked("a"));
    }
}
