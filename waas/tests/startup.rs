//! `listening on` means ready: a server that cannot reach what it needs (NATS, its database,
//! its store) exits non-zero without ever printing it, so whatever waits for the line sees the
//! failure instead of a server that is about to die.

use std::process::{Command, Output, Stdio};
use std::time::Duration;
use waas_test_support::nats::shared_url;
use waas_test_support::pg::{base_url, PgSchema};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// Runs `waas <args>` to its exit; fails the test if it is still running after a minute.
fn run(args: &[&str]) -> Output {
    let child = Command::new(WAAS)
        .args(args)
        .env("WAAS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn waas");
    let pid = child.id();
    let (done, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match out.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("waas output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("waas {args:?} still running after 60 s: it should have failed to start");
        }
    }
}

fn assert_failed_without_listening(out: &Output, cause: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "exited with success\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("listening on"),
        "printed `listening on` before failing:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains(cause), "no {cause:?} in:\n{stderr}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn a_gateway_that_cannot_reach_nats_never_says_listening() {
    let nats = format!("nats://127.0.0.1:{}", closed_port());
    let out = run(&["gateway", "--listen", "127.0.0.1:0", "--nats", &nats]);
    assert_failed_without_listening(&out, &nats["nats://".len()..]);
}

#[test]
fn a_control_plane_without_its_database_never_says_listening() {
    // The machine's PostgreSQL, a database that does not exist on it.
    let base = base_url();
    let (server, _) = base.rsplit_once('/').expect("a database URL");
    let url = format!("{server}/waas_startup_no_such_database");
    let nats = shared_url();
    let out = run(&[
        "control-plane",
        "--listen",
        "127.0.0.1:0",
        "--nats",
        &nats,
        "--database-url",
        &url,
        "--operator-token",
        "startup-test-operator",
    ]);
    assert_failed_without_listening(&out, "does not exist");
}

#[tokio::test]
async fn a_control_plane_that_cannot_reach_nats_never_says_listening() {
    let nats = format!("nats://127.0.0.1:{}", closed_port());
    // A schema of its own: the control-plane migrates before it connects to NATS.
    let schema = PgSchema::create().await;
    let schema_url = schema.url();
    let out = run(&[
        "control-plane",
        "--listen",
        "127.0.0.1:0",
        "--nats",
        &nats,
        "--database-url",
        &schema_url,
        "--operator-token",
        "startup-test-operator",
        "--subject-prefix",
        "startup_test",
    ]);
    assert_failed_without_listening(&out, &nats["nats://".len()..]);
}

#[test]
fn dev_with_an_unusable_store_never_says_listening() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A store "directory" that is a file: it cannot be created.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").expect("write");
    let store = blocker.join("dev.db");
    let out = run(&[
        "dev",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store.to_str().expect("utf-8 path"),
    ]);
    assert_failed_without_listening(&out, "Error");
}
