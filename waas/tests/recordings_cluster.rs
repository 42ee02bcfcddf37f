//! Recordings in cluster mode: the control-plane records through durable JetStream taps into
//! PostgreSQL, and replays through JetStream history, with real processes.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use waas_test_support::cluster::{Cluster, TestApp};
use waas_test_support::nats::shared_url;

const WAAS: &str = env!("CARGO_BIN_EXE_waas");

async fn publish_raw(http: &reqwest::Client, base: &str, app: &TestApp, channel: &str, data: &str) {
    let body = format!(r#"{{"channel":"{channel}","event":"e","data":{data}}}"#);
    let r = http
        .post(format!("{base}/v1/apps/{}/publish", app.id))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
}

async fn recording(cluster: &Cluster, app: &TestApp, id: &str) -> Value {
    let (s, rec) = cluster
        .admin(
            "GET",
            &format!("/v1/admin/apps/{}/recordings/{id}", app.id),
            None,
        )
        .await;
    assert_eq!(s, 200, "{rec}");
    rec
}

async fn wait_for_count(cluster: &Cluster, app: &TestApp, id: &str, n: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, rec) = cluster
            .admin(
                "GET",
                &format!("/v1/admin/apps/{}/recordings/{id}", app.id),
                None,
            )
            .await;
        if s == 200 && rec["event_count"].as_i64() >= Some(n) {
            return rec;
        }
        assert!(Instant::now() < deadline, "recording stuck at {rec}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event of a recording, through the paged events API.
async fn all_events(cluster: &Cluster, app: &TestApp, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let (s, page) = cluster
            .admin(
                "GET",
                &format!(
                    "/v1/admin/apps/{}/recordings/{id}/events?after={after}&limit=1000",
                    app.id
                ),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_i64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}

fn payload(n: usize) -> String {
    // Spacing and key order a re-encoder would change.
    format!(r#"{{"n": {n},  "z":1, "a" : "x{n}"}}"#)
}

/// Replays `id` into `channel` at `speed` and checks what a subscriber gets: every event, in
/// order, byte-identical, marked, and paced: the last event cannot arrive before the recording's
/// span divided by `speed` has passed since the replay was asked for, however loaded the machine
/// (a late event only lengthens it). Returns that time, for the caller to compare speeds; how
/// close to the schedule each event lands is printed, not asserted (timing on a shared 2-core
/// box is for benchmarks, not tests).
async fn check_replay(
    cluster: &Cluster,
    app: &TestApp,
    id: &str,
    channel: &str,
    speed: f64,
    recorded_ts: &[i64],
) -> Duration {
    let client = waas_sdk::Client::builder()
        .url(format!("ws://{}", cluster.gateways[1].addr))
        .app(&app.id)
        .token(app.api_key.clone())
        .subscription_capacity(4096)
        .connect()
        .await
        .unwrap();
    let mut sub = client.subscribe(channel).await.unwrap();
    let asked = Instant::now();
    let (s, replay) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/recordings/{id}/replays", app.id),
            Some(json!({"channel": channel, "speed": speed})),
        )
        .await;
    assert_eq!(s, 201, "{replay}");
    let mut arrivals = Vec::with_capacity(recorded_ts.len());
    for (n, recorded) in recorded_ts.iter().enumerate() {
        let m = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .unwrap_or_else(|_| panic!("replay stalled at {n}"))
            .unwrap();
        arrivals.push(Instant::now());
        assert!(m.replayed, "replayed flag");
        assert_eq!(m.raw_data(), payload(n), "payload byte for byte, in order");
        assert_eq!(m.ts as i64, *recorded, "original ts");
    }
    let mut worst = Duration::ZERO;
    for n in 0..arrivals.len() {
        let want =
            Duration::from_secs_f64((recorded_ts[n] - recorded_ts[0]) as f64 / 1000.0 / speed);
        let got = arrivals[n] - arrivals[0];
        worst = worst.max(got.abs_diff(want));
    }
    let span = Duration::from_secs_f64(
        (recorded_ts[recorded_ts.len() - 1] - recorded_ts[0]) as f64 / 1000.0 / speed,
    );
    let took = arrivals[arrivals.len() - 1] - asked;
    println!("replay at {speed}x: span {span:?}, took {took:?}, worst deviation {worst:?}");
    assert!(
        took >= span.mul_f64(0.95),
        "replay at {speed}x finished in {took:?}, faster than the recording's {span:?}: not paced"
    );
    took
}

/// The issue's test: 1,000 events over 5 s, replayed at 1x and 10x.
#[tokio::test]
async fn a_thousand_events_replay_in_order_and_on_time_at_1x_and_10x() {
    let cluster = Cluster::start(WAAS, &shared_url(), 2).await;
    let app = cluster.create_app("recorder").await;
    let (s, rec) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/recordings", app.id),
            Some(json!({"name": "five seconds", "channels": ["live.>"]})),
        )
        .await;
    assert_eq!(s, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_owned();

    let http = reqwest::Client::new();
    let base = cluster.gateway_http(0);
    let start = tokio::time::Instant::now();
    for n in 0..1000usize {
        tokio::time::sleep_until(start + Duration::from_millis(5 * n as u64)).await;
        publish_raw(&http, &base, &app, "live.game", &payload(n)).await;
    }
    wait_for_count(&cluster, &app, &id, 1000).await;
    let (s, _) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/recordings/{id}/stop", app.id),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let events = all_events(&cluster, &app, &id).await;
    assert_eq!(events.len(), 1000);
    let ts: Vec<i64> = events.iter().map(|e| e["ts"].as_i64().unwrap()).collect();
    assert!(ts[999] - ts[0] >= 4500, "recorded over about 5 s");

    let at_1x = check_replay(&cluster, &app, &id, "replay.1x", 1.0, &ts).await;
    let at_10x = check_replay(&cluster, &app, &id, "replay.10x", 10.0, &ts).await;
    // 10x is paced too (checked above), and goes faster than 1x: a replay ignoring `speed`
    // would take the 1x time again.
    assert!(
        at_10x < at_1x / 2,
        "10x took {at_10x:?}, 1x took {at_1x:?}: speed not applied"
    );
}

/// A control-plane killed and started again mid-recording resumes its durable tap: every event
/// published meanwhile ends up recorded, once.
#[tokio::test]
async fn restarting_the_control_plane_loses_no_recorded_event() {
    const TOTAL: usize = 600;
    let mut cluster = Cluster::start(WAAS, &shared_url(), 1).await;
    let app = cluster.create_app("durable").await;
    // A short history: the recording must not depend on it (recorders read a stream of their
    // own, which keeps what they have not stored yet).
    let (s, body) = cluster
        .admin(
            "PATCH",
            &format!("/v1/admin/apps/{}", app.id),
            Some(json!({"limits": {"history_size": 20}})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, rec) = cluster
        .admin(
            "POST",
            &format!("/v1/admin/apps/{}/recordings", app.id),
            Some(json!({"name": "through a restart", "channels": ["evt"]})),
        )
        .await;
    assert_eq!(s, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_owned();

    let base = cluster.gateway_http(0);
    let publisher_app = TestApp {
        id: app.id.clone(),
        api_key: app.api_key.clone(),
        jwt_secret: app.jwt_secret.clone(),
    };
    let (progress, mut published) = tokio::sync::watch::channel(0usize);
    let publisher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for n in 0..TOTAL {
            publish_raw(&http, &base, &publisher_app, "evt", &payload(n)).await;
            progress.send_replace(n + 1);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    published.wait_for(|n| *n >= 150).await.unwrap();
    // Kill it without a goodbye while events keep coming, then start a new one.
    drop(cluster.control_plane.take());
    published.wait_for(|n| *n >= 300).await.unwrap();
    cluster.start_control_plane();
    publisher.await.unwrap();

    let rec = wait_for_count(&cluster, &app, &id, TOTAL as i64).await;
    assert_eq!(rec["status"], "recording");
    let events = all_events(&cluster, &app, &id).await;
    let ns: Vec<u64> = events
        .iter()
        .map(|e| e["message"]["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ns,
        (0..TOTAL as u64).collect::<Vec<_>>(),
        "all, in order, once"
    );
    assert!(events
        .windows(2)
        .all(|w| w[0]["position"].as_i64() < w[1]["position"].as_i64()));
    assert_eq!(
        recording(&cluster, &app, &id).await["event_count"],
        TOTAL as i64
    );

    // Deleting it removes the durable tap with the events.
    let (s, _) = cluster
        .admin(
            "DELETE",
            &format!("/v1/admin/apps/{}/recordings/{id}", app.id),
            None,
        )
        .await;
    assert_eq!(s, 204);
}
