//! `--workers` / `WAAS_WORKERS`: how many threads serve connections.

use std::time::Duration;
use waas_test_support::poll::eventually;
use waas_test_support::server::ChildServer;

#[tokio::test]
async fn workers_sets_the_runtime_threads() {
    for (flag, expected) in [("1", 1), ("3", 3)] {
        let args = [
            "--log-format",
            "json",
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--store",
            ":memory:",
            "--workers",
            flag,
        ];
        let (_server, output) =
            ChildServer::spawn_logged(env!("CARGO_BIN_EXE_waas"), &args, &[("WAAS_LOG", "info")]);
        // Logged before the server binds, read from its stderr by another thread.
        let line = eventually(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || format!("no runtime line in {}", output.lock().unwrap()),
            || {
                let output = output.lock().unwrap().clone();
                async move {
                    output
                        .lines()
                        .find(|l| l.contains("runtime started"))
                        .map(str::to_owned)
                }
            },
        )
        .await;
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            line["fields"]["workers"], expected,
            "--workers {flag}: {line}"
        );
    }
}

#[test]
fn workers_out_of_range_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_waas"))
        .args(["dev", "--listen", "127.0.0.1:0", "--workers", "5000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--workers"), "{err}");
}
