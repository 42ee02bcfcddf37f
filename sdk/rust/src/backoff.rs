//! How long to wait before each reconnect attempt.
//!
//! When a gateway restarts, every client it served loses its connection at the same moment; if
//! they all came back after the same delay they would hit the next gateway as one wave, again on
//! every retry. The delay therefore grows exponentially (so a long outage costs few attempts) and
//! is jittered: each attempt waits a random time between half and all of the current ceiling
//! ("equal jitter"). Half, not zero, so that a client never hammers a server that just refused it.

use rand::Rng;
use std::time::Duration;

/// Reconnect delay policy. Defaults: 100 ms initial ceiling, doubling, capped at 5 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first attempt's delay. Default 100 ms.
    pub initial: Duration,
    /// Largest ceiling, reached after a few attempts. Default 5 s.
    pub max: Duration,
    /// Growth of the ceiling per attempt. Default 2.
    pub multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The ceiling for `attempt` (1-based): `initial * multiplier^(attempt-1)`, at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The jittered delay before `attempt` (1-based), drawn from `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, rand::thread_rng().gen::<f64>())
    }

    /// [`Backoff::delay`] with the random draw `unit` in `[0, 1]` given, for tests.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(100));
        assert_eq!(b.ceiling(2), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(400));
        assert_eq!(b.ceiling(6), Duration::from_millis(3200));
        assert_eq!(b.ceiling(7), Duration::from_secs(5));
        assert_eq!(b.ceiling(1000), Duration::from_secs(5));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn attempt_zero_is_treated_as_first() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), b.ceiling(1));
    }

    #[test]
    fn jitter_stays_between_half_and_full_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(3, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay_with(3, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay_with(3, 7.0), Duration::from_millis(400));
        for attempt in 1..20 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                let c = b.ceiling(attempt);
                assert!(
                    d >= c / 2 && d <= c,
                    "attempt {attempt}: {d:?} outside [{:?}, {c:?}]",
                    c / 2
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_clients() {
        let b = Backoff::default();
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| b.delay(5)).collect();
        assert!(draws.len() > 10, "delays should differ between clients");
    }

    #[test]
    fn multiplier_below_one_does_not_shrink() {
        let b = Backoff {
            multiplier: 0.5,
            ..Backoff::default()
        };
        assert_eq!(b.ceiling(5), b.initial);
    }
}
