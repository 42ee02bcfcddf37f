//! The `waas app` commands against a real server (and `waas token issue`, offline): `app create` goes through the Rust SDK's
//! admin client and prints the admin API's answer unchanged, on one line, as scripts read it
//! (`loadtest/run-benchmarks.sh` takes the API key out of it with `sed`).

use std::process::Command;
use waas_test_support::server::TestServer;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

fn app_create(server: &TestServer, token: &str, id: &str) -> std::process::Output {
    app_create_with(server, token, id, &[])
}

fn app_create_with(
    server: &TestServer,
    token: &str,
    id: &str,
    extra: &[&str],
) -> std::process::Output {
    let url = server.http_url();
    let args = [
        "app",
        "create",
        "--control-plane",
        url.as_str(),
        "--operator-token",
        token,
        "--tenant",
        "cli",
        "--id",
        id,
    ];
    let run = || {
        Command::new(WAAS)
            .args(args)
            .args(extra)
            .env_remove("WAAS_OPERATOR_TOKEN")
            .env_remove("WAAS_CONTROL_PLANE")
            .output()
            .expect("run waas app create")
    };
    // The child blocks this thread; the server runs on the test's other worker thread.
    tokio::task::block_in_place(run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_create_makes_the_tenant_and_prints_the_app() {
    let server = TestServer::start().await;
    let token = waas::settings::DEV_OPERATOR_TOKEN;
    let out = app_create(&server, token, "cli-one");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    assert!(stdout.contains("\"api_key\":\""), "{stdout}");
    let app: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(app["app"]["id"], "cli-one");
    assert_eq!(app["app"]["tenant_id"], "cli");
    assert_eq!(app["app"]["pusher_enabled"], false, "Pusher is opt-in");
    assert!(app.get("pusher_secret").is_none(), "{stdout}");
    // The tenant exists now: a second app in it is created all the same, this one with Pusher.
    let out = app_create_with(&server, token, "cli-two", &["--pusher"]);
    assert!(out.status.success(), "{out:?}");
    let two: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        two["pusher_secret"].as_str().map(str::len),
        Some(40),
        "{two}"
    );
    let (status, shown) = server.admin("GET", "/v1/admin/apps/cli-two", None).await;
    assert_eq!(
        (status, &shown["pusher_enabled"]),
        (200, &serde_json::json!(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_create_with_a_wrong_token_fails_naming_the_step() {
    let server = TestServer::start().await;
    let out = app_create(&server, "not-the-operator-token", "cli-three");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("creating tenant cli") && stderr.contains("401"),
        "{stderr}"
    );
}

/// Runs `waas app <args> --control-plane <server> --operator-token <token>`.
fn app_command(server: &TestServer, token: &str, args: &[&str]) -> std::process::Output {
    let url = server.http_url();
    let mut all = vec!["app"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--control-plane", url.as_str(), "--operator-token", token]);
    tokio::task::block_in_place(|| {
        Command::new(WAAS)
            .args(&all)
            .env_remove("WAAS_OPERATOR_TOKEN")
            .env_remove("WAAS_CONTROL_PLANE")
            .output()
            .expect("run waas app")
    })
}

/// `waas app rotate-pusher-secret` prints the new secret once, and the gateway checks with it
/// from then on; `waas app pusher-client-events` flips the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_rotate_pusher_secret_and_client_events() {
    let server = TestServer::start().await;
    let token = waas::settings::DEV_OPERATOR_TOKEN;
    let out = app_command(&server, token, &["rotate-pusher-secret", "--id", "demo"]);
    assert!(out.status.success(), "{out:?}");
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let secret = rotated["pusher_secret"].as_str().expect("pusher_secret");
    assert_ne!(secret, "demo-pusher-secret");
    // The gateway's copy of the app (asked for on first use, then kept up to date).
    let held = || async {
        let app = server.gateway.apps.resolve("demo").await.unwrap().unwrap();
        app.config.pusher.clone()
    };
    waas_test_support::poll::eventually(
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(10),
        || "the gateway kept the old Pusher secret",
        || async { held().await.filter(|p| p.secret == secret).map(|_| ()) },
    )
    .await;

    let out = app_command(
        &server,
        token,
        &[
            "rotate-pusher-secret",
            "--id",
            "demo",
            "--secret",
            "chosen-one",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"pusher_secret\":\"chosen-one\""));

    let out = app_command(
        &server,
        token,
        &["pusher-client-events", "--id", "demo", "true"],
    );
    assert!(out.status.success(), "{out:?}");
    let app: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(app["pusher_client_events"], true);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("chosen-one"));

    // Errors name the step; a bad id is refused before any request.
    let out = app_command(&server, token, &["rotate-pusher-secret", "--id", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rotating the Pusher secret of app nope") && err.contains("404"),
        "{err}"
    );
    let out = app_command(
        &server,
        "wrong",
        &["pusher-client-events", "--id", "demo", "false"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = app_command(&server, token, &["rotate-pusher-secret", "--id", "a/b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("app id"));
}

/// `waas token issue` refuses what every gateway would refuse (`sub` "server" or empty,
/// docs/auth.md) instead of printing a token that cannot connect; an ordinary `sub` signs.
#[test]
fn token_issue_refuses_a_sub_the_server_refuses() {
    let issue = |sub: &str| {
        Command::new(WAAS)
            .args([
                "token", "issue", "--secret", "s3cret", "--app", "demo", "--sub", sub,
            ])
            .output()
            .expect("run waas token issue")
    };
    for sub in ["server", ""] {
        let out = issue(sub);
        assert!(!out.status.success(), "{sub:?} was signed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refused by the server"), "{sub:?}: {err}");
        assert!(out.stdout.is_empty(), "{sub:?}: a token was printed");
    }
    let out = issue("alice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
}

/// `waas healthcheck` (the container image's HEALTHCHECK) succeeds only on a 2xx from the
/// server it is pointed at; a wildcard listen address is asked on loopback, as in a container
/// whose `WAAS_LISTEN` is `0.0.0.0:8080`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_passes_only_on_a_2xx() {
    let server = TestServer::start().await;
    let wildcard = format!("0.0.0.0:{}", server.addr.port());
    let check = |listen: &str, path: &str| {
        let run = || {
            Command::new(WAAS)
                .args(["healthcheck", "--listen", listen, "--path", path])
                .output()
                .expect("run waas healthcheck")
        };
        tokio::task::block_in_place(run)
    };
    for path in ["/healthz", "/readyz"] {
        let out = check(&wildcard, path);
        assert!(out.status.success(), "{path}: {out:?}");
    }
    let out = check(&wildcard, "/no-such-page");
    assert!(!out.status.success(), "a 404 passed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    let out = check(&wildcard, "healthz");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--path must start with '/'"));
    // Nothing listens there any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let out = check(&format!("127.0.0.1:{port}"), "/healthz");
    assert!(!out.status.success(), "a closed port passed");
}
