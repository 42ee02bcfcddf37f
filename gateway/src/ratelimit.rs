//! Per-connection publish rate: a token bucket owned by the connection task, so it needs no
//! synchronisation.

use std::time::Instant;

pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` per second sustained, `burst` on top; a rate of 0 means unlimited.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    pub fn try_take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(10, 3);
        let t0 = b.last;
        assert!(b.take_at(t0) && b.take_at(t0) && b.take_at(t0));
        assert!(!b.take_at(t0));
        assert!(b.take_at(t0 + Duration::from_millis(100)));
        assert!(!b.take_at(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new(0, 1);
        assert!((0..1000).all(|_| b.try_take()));
    }
}
