//! SIGTERM drains: every client gets close 1001 "going away", then the process exits cleanly.

use waas_test_support::raw::Received;
use waas_test_support::server::ChildServer;
use waas_test_support::{tokens, RawClient};

#[tokio::test]
async fn sigterm_closes_sockets_with_going_away_and_exits() {
    let mut server =
        ChildServer::start(env!("CARGO_BIN_EXE_waas"), &["--shutdown-grace-ms", "5000"]);
    let token = tokens::demo("t", &[">"], &[]);
    let mut a = RawClient::ready(server.addr, "demo", &token).await;
    let mut b = RawClient::ready(server.addr, "demo", &token).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    for c in [&mut a, &mut b] {
        match c.recv().await {
            Received::Close(code, reason) => {
                assert_eq!(code, 1001);
                assert_eq!(reason, "going away");
            }
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    assert!(status.success(), "waas exited with {status}");
}

#[test]
fn bad_config_exits_with_a_clear_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_waas"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--max-queued-messages",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.max_queued_messages"), "{err}");
}
