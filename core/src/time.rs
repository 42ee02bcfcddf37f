//! The wall clock every part reads: message timestamps, token expiry, key and presence times.
//! One function, so both fronts agree on the unit (milliseconds since the Unix epoch) and on
//! what a clock set before 1970 gives (0).

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
