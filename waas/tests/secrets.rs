//! No secret reaches the logs, even at debug: a cluster of real processes on an authenticated
//! NATS and a PostgreSQL URL with a password, an app used with its API key and a JWT, a webhook
//! endpoint whose URL carries credentials; then every line the processes wrote is searched for
//! every secret. The gateway logs as JSON (`--log-format json`), the control-plane as text: both
//! formats are searched.

use serde_json::json;
use std::time::{Duration, Instant};
use waas_test_support::cluster::reqwest_like::Client;
use waas_test_support::nats::{unique_prefix, NatsServer};
use waas_test_support::pg::PgSchema;
use waas_test_support::receiver::Receiver;
use waas_test_support::server::ChildServer;
use waas_test_support::{tokens, RawClient};

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

/// A value no log line could contain by chance.
fn secret(what: &str) -> String {
    format!("{what}-{}", unique_prefix())
}

#[tokio::test]
async fn no_secret_is_logged_at_debug() {
    let cp_password = secret("natscppw");
    let gw_password = secret("natsgwpw");
    let pg_password = secret("pgpw");
    let operator = secret("optoken");
    let hook_password = secret("hookpw");
    let nats = NatsServer::start_with_config(&format!(
        "authorization {{ users = [ {{ user: cp, password: \"{cp_password}\" }}, \
         {{ user: gw, password: \"{gw_password}\" }} ] }}\n"
    ));
    let nats_host = nats.url()["nats://".len()..].to_owned();
    let schema = PgSchema::create().await;
    // Trust authentication ignores the password, but it is in the URL the process holds.
    let pg_url = schema.url().replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{pg_password}@"),
        1,
    );
    assert!(
        pg_url.contains(&pg_password),
        "unexpected base URL {pg_url}"
    );
    let prefix = unique_prefix();
    let debug = [("WAAS_LOG", "debug"), ("RUST_LOG", "debug")];

    // The control-plane gets its NATS password in the URL.
    let cp_nats = format!("nats://cp:{cp_password}@{nats_host}");
    let (mut cp, cp_log) = ChildServer::spawn_logged(
        WAAS,
        &[
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &cp_nats,
            "--database-url",
            &pg_url,
            "--operator-token",
            &operator,
            "--subject-prefix",
            &prefix,
            "--webhook-max-attempts",
            "1",
            // The webhook receiver is on loopback.
            "--outbound-allow-loopback",
            "true",
        ],
        &debug,
    );
    let admin = format!("http://{}", cp.addr);
    let http = Client::new();
    let (s, _) = http
        .call(
            "POST",
            &format!("{admin}/v1/admin/tenants"),
            &operator,
            Some(json!({"id": "t", "name": "T"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, app) = http
        .call(
            "POST",
            &format!("{admin}/v1/admin/apps"),
            &operator,
            Some(json!({"id": "sec", "tenant_id": "t", "pusher": true})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let api_key = app["api_key"].as_str().expect("api_key").to_owned();
    let jwt_secret = app["jwt_secret"].as_str().expect("jwt_secret").to_owned();
    let pusher_secret = app["pusher_secret"]
        .as_str()
        .expect("pusher_secret")
        .to_owned();

    // An endpoint whose URL carries a user and password; it fails, so the delivery goes dead
    // (and is logged as such) after its one attempt.
    let receiver = Receiver::start().await;
    receiver.respond_always(500);
    let hook_url =
        receiver
            .url("/hook")
            .replacen("http://", &format!("http://hook:{hook_password}@"), 1);
    let (s, hook) = http
        .call(
            "POST",
            &format!("{admin}/v1/admin/apps/sec/webhooks"),
            &operator,
            Some(json!({"url": hook_url, "events": ["channel_occupied"]})),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    let hook_secret = hook["secret"].as_str().expect("secret").to_owned();

    // The gateway gets its NATS user and password from the environment and a file.
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("nats-password");
    std::fs::write(&password_file, format!("{gw_password}\n")).expect("write");
    let mut gw_env = debug.to_vec();
    gw_env.push(("WAAS_NATS_USER", "gw"));
    gw_env.push((
        "WAAS_NATS_PASSWORD_FILE",
        password_file.to_str().expect("utf-8"),
    ));
    let nats_url = nats.url();
    let (mut gw, gw_log) = ChildServer::spawn_logged(
        WAAS,
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &nats_url,
            "--subject-prefix",
            &prefix,
            "--log-format",
            "json",
        ],
        &gw_env,
    );

    // A client with a JWT subscribes (the channel becomes occupied: a webhook), a server
    // publishes with the API key.
    let token = tokens::hs256(
        &jwt_secret,
        "user-1",
        Some("sec"),
        tokens::caps(&[">"], &[">"]),
        600,
    );
    let mut client = RawClient::ready(gw.addr, "sec", &token).await;
    let reply = client
        .request(json!({"op": "subscribe", "id": 1, "channel": "room"}))
        .await;
    assert_eq!(reply["op"], "ack", "{reply}");
    let (s, body) = http
        .call(
            "POST",
            &format!("http://{}/v1/apps/sec/publish", gw.addr),
            &api_key,
            Some(json!({"channel": "room", "event": "e", "data": 1})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let frame = client.json().await;
    assert_eq!(frame["op"], "message", "{frame}");
    // A rotated Pusher secret travels to the gateway, which holds the app: neither is logged.
    let (s, rotated) = http
        .call(
            "POST",
            &format!("{admin}/v1/admin/apps/sec/pusher-secret"),
            &operator,
            None,
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new_pusher_secret = rotated["pusher_secret"]
        .as_str()
        .expect("pusher_secret")
        .to_owned();
    receiver
        .wait_until("the webhook", Duration::from_secs(20), |r| !r.is_empty())
        .await;
    // Dead only once its failure is logged and recorded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, dead) = http
            .call(
                "GET",
                &format!("{admin}/v1/admin/apps/sec/deliveries?status=dead"),
                &operator,
                None,
            )
            .await;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no dead delivery: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(client);
    // SIGTERM: each process logs its shutdown and exits, so its output is complete.
    let (gw_status, cp_status) = tokio::task::spawn_blocking(move || {
        let gw_status = gw.terminate();
        (gw_status, cp.terminate())
    })
    .await
    .expect("terminate");
    assert!(gw_status.success() && cp_status.success());

    let logs = [
        ("control-plane", cp_log.lock().expect("log").clone()),
        ("gateway", gw_log.lock().expect("log").clone()),
    ];
    // Every line of the gateway's but its stdout's `listening on` is one JSON object.
    let mut json_lines = 0;
    for line in logs[1].1.lines() {
        if line.starts_with("listening on ") {
            continue;
        }
        let entry: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(entry["timestamp"].is_string(), "{line}");
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["target"].is_string(), "{line}");
        assert!(entry["fields"]["message"].is_string(), "{line}");
        json_lines += 1;
    }
    assert!(json_lines > 5, "{}", logs[1].1);
    assert!(logs[1].1.contains("\"level\":\"DEBUG\""), "{}", logs[1].1);
    for (name, log) in &logs {
        // The logs are there and at debug: the search below means something.
        assert!(log.contains("connected to NATS"), "{name}:\n{log}");
        assert!(log.contains("DEBUG"), "{name} did not log at debug:\n{log}");
        for (what, value) in [
            ("control-plane NATS password", &cp_password),
            ("gateway NATS password", &gw_password),
            ("PostgreSQL password", &pg_password),
            ("operator token", &operator),
            ("API key", &api_key),
            ("JWT secret", &jwt_secret),
            ("Pusher secret", &pusher_secret),
            ("rotated Pusher secret", &new_pusher_secret),
            ("JWT", &token),
            ("webhook URL password", &hook_password),
            ("webhook signing secret", &hook_secret),
        ] {
            if let Some(at) = log.find(value.as_str()) {
                let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
                panic!(
                    "the {name} logged the {what}:\n{}",
                    &log[line_start..line_end]
                );
            }
        }
    }
}
