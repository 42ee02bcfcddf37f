//! Waiting for state a test can only see by asking (readiness, counters, delivery logs, a
//! publish accepted again after an outage). Where an event can be awaited, await it instead.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// Asks `probe` every `every` until it answers `Some`, for at most `within`; then panics with
/// `what()`, evaluated only then so it can show the last state.
pub async fn eventually<T, D, F, Fut>(
    within: Duration,
    every: Duration,
    what: impl Fn() -> D,
    mut probe: F,
) -> T
where
    D: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{}", what());
        sleep(every).await;
    }
}
