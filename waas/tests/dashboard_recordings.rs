//! The dashboard's recordings and webhooks pages over HTTP (docs/dashboard.md#recordings,
//! #webhooks), against an in-process `waas dev`: start, inspect a page at a time, export, stop
//! and replay a recording into a subscribed WebSocket client; the delivery log, one delivery's
//! attempts, and retrying a dead letter; and a tenant user guessing another tenant's recording,
//! replay and delivery ids gets "not found" and changes nothing. Redirects are not followed, so
//! each answer's status and `Location` can be checked.

#[path = "support/tenants.rs"]
mod tenants;

#[path = "support/browser.rs"]
mod browser;

use browser::Browser;
use serde_json::{json, Value};
use std::time::Duration;
use waas::first_operator::{DEV_EMAIL, DEV_PASSWORD};
use waas_control_plane::dashboard::accounts::create_user;
use waas_control_plane::store::dashboard::Role;
use waas_test_support::poll::eventually;
use waas_test_support::raw::RawClient;
use waas_test_support::receiver::Receiver;
use waas_test_support::{tokens, TestServer};

const WITHIN: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_millis(20);

async fn publish(server: &TestServer, app: &str, key: &str, channel: &str, data: Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/v1/apps/{app}/publish", server.http_url()))
        .bearer_auth(key)
        .json(&json!({"channel": channel, "event": "e", "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Waits until the recording holds `n` events (the recorder stores them as they come).
async fn recorded(server: &TestServer, app: &str, rid: &str, n: i64) {
    let path = format!("/v1/admin/apps/{app}/recordings/{rid}");
    eventually(
        WITHIN,
        EVERY,
        || format!("{n} events recorded in {rid}"),
        || async {
            let (_, r) = server.admin("GET", &path, None).await;
            (r["event_count"] == n).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn record_page_export_stop_and_replay_into_a_subscriber() {
    let server = TestServer::start().await;
    let mut b = Browser::new(&server);
    b.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    let csrf = b.csrf().await;

    let list = b.get("/dashboard/apps/demo/recordings").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("No recordings yet."), "{}", list.body);

    // Bad input is answered on the form, with the recordings logic's message.
    let bad = b
        .post(
            "/dashboard/apps/demo/recordings",
            &[("csrf", &csrf), ("name", "x"), ("channels", "orders..eu")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("invalid channel pattern"), "{}", bad.body);
    let bad = b
        .post(
            "/dashboard/apps/demo/recordings",
            &[
                ("csrf", &csrf),
                ("name", "x"),
                ("channels", "a"),
                ("max_events", "many"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Max events must be a whole number"));
    // Without the CSRF token nothing starts.
    let forged = b
        .post(
            "/dashboard/apps/demo/recordings",
            &[("name", "x"), ("channels", "orders.*")],
        )
        .await;
    assert_eq!(forged.status, 403);

    let started = b
        .post(
            "/dashboard/apps/demo/recordings",
            &[
                ("csrf", &csrf),
                ("name", "checkout <bug>"),
                ("channels", "orders.*, chat.support"),
            ],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let location = started.location.unwrap();
    let rid = location
        .strip_prefix("/dashboard/apps/demo/recordings/")
        .unwrap()
        .to_owned();
    assert!(rid.starts_with("rec_"), "{rid}");
    let (_, r) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/demo/recordings/{rid}"),
            None,
        )
        .await;
    assert_eq!(r["channels"], json!(["orders.*", "chat.support"]));
    assert_eq!(r["status"], "recording");

    const N: i64 = 55;
    for i in 1..=N {
        publish(&server, "demo", "demo-key", "orders.eu", json!({"n": i})).await;
    }
    publish(&server, "demo", "demo-key", "elsewhere", json!({"n": 0})).await;
    recorded(&server, "demo", &rid, N).await;

    // Events a page at a time: 50, then the rest after the last position.
    let page = b.get(&location).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("checkout &lt;bug&gt;"), "escaped");
    assert_eq!(
        page.body.matches("<td><code>orders.eu</code></td>").count(),
        50
    );
    assert!(page.body.contains("{&quot;n&quot;:1}"), "{}", page.body);
    assert!(!page.body.contains("{&quot;n&quot;:51}"));
    let next = format!("{location}?after=50");
    assert!(
        page.body.contains(&format!("href=\"{next}\"")),
        "{}",
        page.body
    );
    let page2 = b.get(&next).await;
    assert_eq!(
        page2
            .body
            .matches("<td><code>orders.eu</code></td>")
            .count(),
        5
    );
    assert!(page2.body.contains("{&quot;n&quot;:55}"));
    assert!(!page2.body.contains("rel=\"next\""), "the last page");
    assert_eq!(b.get(&format!("{location}?after=x")).await.status, 400);

    // Export: every event, one JSON object a line, as a download.
    let export = b.get(&format!("{location}/export")).await;
    assert_eq!(export.status, 200);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    assert_eq!(
        export.headers["content-disposition"],
        format!("attachment; filename=\"{rid}.jsonl\"").as_str()
    );
    let lines: Vec<Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), N as usize);
    assert_eq!(lines[54]["message"]["data"], json!({"n": 55}));

    let stopped = b
        .post(&format!("{location}/stop"), &[("csrf", &csrf)])
        .await;
    assert_eq!(stopped.status, 303);
    let (_, r) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/demo/recordings/{rid}"),
            None,
        )
        .await;
    assert_eq!(r["status"], "stopped");
    assert_eq!(r["stop_reason"], "stopped");

    // Replay all at once into a channel a real WebSocket client subscribes to.
    let token = tokens::demo("watcher", &["replayed.>"], &[]);
    let mut client = RawClient::ready(server.addr, "demo", &token).await;
    let ack = client
        .request(json!({"op": "subscribe", "id": 1, "channel": "replayed.here"}))
        .await;
    assert_eq!(ack["op"], "ack", "{ack}");
    let bad = b
        .post(
            &format!("{location}/replays"),
            &[("csrf", &csrf), ("pace", "faster"), ("factor", "-3")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let too_fast = b
        .post(
            &format!("{location}/replays"),
            &[("csrf", &csrf), ("pace", "faster"), ("factor", "5000")],
        )
        .await;
    assert_eq!(too_fast.status, 400, "the recordings logic's limit");
    let replay = b
        .post(
            &format!("{location}/replays"),
            &[
                ("csrf", &csrf),
                ("channel", "replayed.here"),
                ("pace", "instant"),
            ],
        )
        .await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    let replay_page = replay.location.unwrap();
    assert!(replay_page.starts_with("/dashboard/apps/demo/replays/rpl_"));
    for i in 1..=N {
        let m = client.next_op("message").await;
        assert_eq!(m["channel"], "replayed.here");
        assert_eq!(m["replayed"], true);
        assert_eq!(m["data"], json!({"n": i}));
    }
    let progress: Value = eventually(
        WITHIN,
        EVERY,
        || "the replay finishes",
        || {
            let url = format!("{}{replay_page}/progress", server.http_url());
            let cookie = format!("waas_session={}", b.cookies["waas_session"]);
            async move {
                let p: Value = reqwest::Client::new()
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (p["state"] == "finished").then_some(p)
            }
        },
    )
    .await;
    assert_eq!(progress["published"], N);
    assert_eq!(progress["total"], N);
    assert_eq!(progress["live"], false);
    let page = b.get(&replay_page).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("id=\"replay-published\">55<"),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-progress=\""));

    let list = b.get("/dashboard/apps/demo/recordings").await;
    assert!(
        list.body.contains(&rid) && list.body.contains(">55<"),
        "{}",
        list.body
    );
}

#[tokio::test]
async fn delivery_log_shows_attempts_and_retries_a_dead_letter() {
    let server = TestServer::with(|s| {
        s.webhooks.max_attempts = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.respond_next(&[500]);
    let (s, created) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/webhooks",
            Some(json!({"url": receiver.url("/hook"), "events": ["message"], "channels": ["orders.>"]})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let endpoint = created["webhook"]["id"].as_str().unwrap().to_owned();

    let mut b = Browser::new(&server);
    b.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    let empty = b.get("/dashboard/apps/demo/webhooks").await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains(&endpoint), "endpoints listed");
    assert!(empty.body.contains("No deliveries."), "{}", empty.body);

    publish(&server, "demo", "demo-key", "orders.eu", json!({"id": 7})).await;
    receiver
        .wait_until("the first attempt", WITHIN, |r| !r.is_empty())
        .await;
    let (did, _) = eventually(
        WITHIN,
        EVERY,
        || "the delivery is dead after its one attempt",
        || async {
            let (_, list) = server
                .admin("GET", "/v1/admin/apps/demo/deliveries?status=dead", None)
                .await;
            let d = list.as_array()?.first()?.clone();
            Some((d["id"].as_str()?.to_owned(), d))
        },
    )
    .await;

    let log = b.get("/dashboard/apps/demo/webhooks").await;
    assert_eq!(log.status, 200);
    let row = &log.body[log.body.find(&format!("data-delivery=\"{did}\"")).unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">dead<"), "{row}");
    assert!(row.contains(">500"), "last status: {row}");
    assert!(row.contains("HTTP 500"), "last error: {row}");
    let dead_only = b.get("/dashboard/apps/demo/webhooks?status=dead").await;
    assert!(dead_only.body.contains(&did));
    let delivered_only = b
        .get("/dashboard/apps/demo/webhooks?status=delivered")
        .await;
    assert!(!delivered_only.body.contains(&did));
    assert_eq!(
        b.get("/dashboard/apps/demo/webhooks?status=lost")
            .await
            .status,
        400
    );

    let path = format!("/dashboard/apps/demo/deliveries/{did}");
    let page = b.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Retry this dead letter"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<pre class=\"excerpt\">ok</pre>"),
        "the answer's start"
    );
    assert!(page.body.contains("&quot;id&quot;:7"), "the body sent");

    let csrf = page.csrf();
    assert_eq!(
        b.post(&format!("{path}/retry"), &[]).await.status,
        403,
        "no CSRF token"
    );
    let retried = b.post(&format!("{path}/retry"), &[("csrf", &csrf)]).await;
    assert_eq!(retried.status, 303);
    assert_eq!(retried.location.as_deref(), Some(path.as_str()));
    receiver
        .wait_until("the retry", WITHIN, |r| r.len() == 2)
        .await;
    eventually(
        WITHIN,
        EVERY,
        || "the retried delivery is delivered",
        || async {
            let (_, d) = server
                .admin(
                    "GET",
                    &format!("/v1/admin/apps/demo/deliveries/{did}"),
                    None,
                )
                .await;
            (d["status"] == "delivered").then_some(())
        },
    )
    .await;
    let page = b.get(&path).await;
    assert!(page
        .body
        .contains("id=\"delivery-status\" class=\"status delivered\""));
    assert!(!page.body.contains("Retry"), "nothing to retry");
    assert_eq!(
        page.body.matches("<pre class=\"excerpt\">ok</pre>").count(),
        2
    );
}

#[tokio::test]
async fn tenant_users_cannot_reach_another_tenants_recordings_replays_or_deliveries() {
    let server = TestServer::with(|s| {
        s.webhooks.max_attempts = 1;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.respond_always(500);
    let keys = tenants::acme_and_globex(&server).await;
    // globex has a recording with an event, a replay of it, and a dead delivery.
    let (s, rec) = server
        .admin(
            "POST",
            "/v1/admin/apps/globex-app/recordings",
            Some(json!({"name": "secret plans", "channels": ["plans.>"]})),
        )
        .await;
    assert_eq!(s, 201);
    let rid = rec["id"].as_str().unwrap().to_owned();
    let (s, _) = server
        .admin(
            "POST",
            "/v1/admin/apps/globex-app/webhooks",
            Some(json!({"url": receiver.url("/"), "events": ["message"], "channels": ["plans.>"]})),
        )
        .await;
    assert_eq!(s, 201);
    publish(
        &server,
        "globex-app",
        &keys["globex"],
        "plans.world",
        json!({"secret": "globex-eyes-only"}),
    )
    .await;
    recorded(&server, "globex-app", &rid, 1).await;
    let (s, replay) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/globex-app/recordings/{rid}/replays"),
            Some(json!({"speed": 0, "channel": "plans.again"})),
        )
        .await;
    assert_eq!(s, 201);
    let pid = replay["id"].as_str().unwrap().to_owned();
    let did: String = eventually(
        WITHIN,
        EVERY,
        || "globex's delivery is dead",
        || async {
            let (_, list) = server
                .admin(
                    "GET",
                    "/v1/admin/apps/globex-app/deliveries?status=dead",
                    None,
                )
                .await;
            Some(list.as_array()?.first()?["id"].as_str()?.to_owned())
        },
    )
    .await;

    create_user(
        server.accounts.as_ref(),
        "ann@acme.test",
        "ann-password-1",
        Role::Tenant("acme".into()),
    )
    .await
    .unwrap();
    let mut b = Browser::new(&server);
    b.sign_in("ann@acme.test", "ann-password-1").await;
    let csrf = b.csrf().await;
    assert_eq!(
        b.get("/dashboard/apps/acme-app/recordings").await.status,
        200
    );
    assert_eq!(b.get("/dashboard/apps/acme-app/webhooks").await.status, 200);
    let missing = b.get("/dashboard/apps/no-such-app/recordings").await;
    assert_eq!(missing.status, 404);

    // Under globex's app, and under ann's own app with globex's ids: all "not found", the
    // same page as an app that does not exist.
    for app in ["globex-app", "acme-app"] {
        for path in [
            format!("/dashboard/apps/{app}/recordings"),
            format!("/dashboard/apps/{app}/recordings/{rid}"),
            format!("/dashboard/apps/{app}/recordings/{rid}?after=0"),
            format!("/dashboard/apps/{app}/recordings/{rid}/export"),
            format!("/dashboard/apps/{app}/replays/{pid}"),
            format!("/dashboard/apps/{app}/replays/{pid}/progress"),
            format!("/dashboard/apps/{app}/webhooks"),
            format!("/dashboard/apps/{app}/deliveries/{did}"),
        ] {
            if app == "acme-app" && (path.ends_with("/recordings") || path.ends_with("/webhooks")) {
                continue; // ann's own lists
            }
            let page = b.get(&path).await;
            assert_eq!(page.status, 404, "GET {path}: {}", page.body);
            assert_eq!(page.body, missing.body, "GET {path} reads as missing");
            assert!(!page.body.contains("globex-eyes-only"));
        }
        for path in [
            format!("/dashboard/apps/{app}/recordings/{rid}/stop"),
            format!("/dashboard/apps/{app}/recordings/{rid}/replays"),
            format!("/dashboard/apps/{app}/replays/{pid}/pause"),
            format!("/dashboard/apps/{app}/replays/{pid}/stop"),
            format!("/dashboard/apps/{app}/deliveries/{did}/retry"),
        ] {
            let page = b.post(&path, &[("csrf", &csrf), ("pace", "instant")]).await;
            assert_eq!(page.status, 404, "POST {path}: {}", page.body);
        }
    }
    let started = b
        .post(
            "/dashboard/apps/globex-app/recordings",
            &[("csrf", &csrf), ("name", "spy"), ("channels", "plans.>")],
        )
        .await;
    assert_eq!(started.status, 404, "no recording into globex's app");
    let own = b.get("/dashboard/apps/acme-app/recordings").await;
    assert!(!own.body.contains(&rid) && !own.body.contains("secret plans"));
    let own_log = b.get("/dashboard/apps/acme-app/webhooks").await;
    assert!(!own_log.body.contains(&did));

    // Nothing of globex's changed.
    let (_, r) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/globex-app/recordings/{rid}"),
            None,
        )
        .await;
    assert_eq!(r["status"], "recording", "not stopped by ann");
    let (_, list) = server
        .admin("GET", "/v1/admin/apps/globex-app/recordings", None)
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "no recording started by ann"
    );
    let (_, d) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/globex-app/deliveries/{did}"),
            None,
        )
        .await;
    assert_eq!(d["status"], "dead", "not retried by ann");
    assert_eq!(d["attempts"], 1);
    assert_eq!(receiver.received().len(), 1);
}
