//! Helpers around the Rust SDK's client, for tests that drive the service the way an
//! application would.

use futures_util::StreamExt;
use std::time::Duration;
use waas_sdk::{ConnectionEvent, Error, ErrorCode, Events};

/// Waits (at most 20 s) until the client reports being connected to a URL starting with
/// `want`; panics on any other end.
pub async fn wait_connected_to(events: &mut Events, want: &str) {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
            Ok(Some(ConnectionEvent::Connected { url, .. })) if url.starts_with(want) => return,
            Ok(Some(_)) => continue,
            other => panic!("no reconnect to {want}: {other:?}"),
        }
    }
}

/// The code and message of an RPC the service refused; panics on anything else.
pub fn rejected(result: Result<waas_sdk::rpc::Response, Error>) -> (ErrorCode, String) {
    match result {
        Err(Error::Rejected { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
