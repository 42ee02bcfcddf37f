//! Recordings and replays on `waas dev` (events in SQLite), through the admin API.

use serde_json::{json, Value};
use std::time::Duration;
use waas_test_support::{tokens, RawClient, TestServer};

const OPERATOR: &str = "dev-operator-token";

async fn publish_raw(server: &TestServer, channel: &str, data: &str) {
    let body = format!(r#"{{"channel":"{channel}","event":"e","data":{data}}}"#);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/apps/demo/publish", server.http_url()))
        .bearer_auth("demo-key")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn until_count(server: &TestServer, id: &str, n: i64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, rec) = server
            .admin("GET", &format!("/v1/admin/apps/demo/recordings/{id}"), None)
            .await;
        if rec["event_count"].as_i64() >= Some(n) {
            return rec;
        }
        assert!(tokio::time::Instant::now() < deadline, "recorded {rec}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn record_inspect_export_replay_and_delete() {
    let server = TestServer::start().await;
    let (s, rec) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/recordings",
            Some(json!({"name": "session 1", "channels": ["game.*", "chat.lobby"]})),
        )
        .await;
    assert_eq!(s, 201, "{rec}");
    assert_eq!(rec["status"], "recording");
    let id = rec["id"].as_str().unwrap().to_owned();

    // Payloads with odd spacing and an encrypted-looking envelope: stored byte for byte.
    let payloads = [
        r#"{"n": 1,  "spaced" : true}"#,
        r#"{"enc":"AES256-GCM","iv":"q83vEjRWeJA=","ct":"3q2+7w=="}"#,
        r#"[1,2,3]"#,
    ];
    for p in payloads {
        publish_raw(&server, "game.1", p).await;
    }
    publish_raw(&server, "other.x", "0").await;
    publish_raw(&server, "chat.lobby", "\"hi\"").await;
    until_count(&server, &id, 4).await;

    let (s, stopped) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(
        (s, stopped["status"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    assert_eq!(stopped["stop_reason"], "stopped");
    publish_raw(&server, "game.1", "99").await;

    let (_, page) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/demo/recordings/{id}/events?limit=2"),
            None,
        )
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next"].as_i64().expect("a next page");
    // The page's text holds each frame byte for byte, fields in their documented order.
    let text = reqwest::Client::new()
        .get(format!(
            "{}/v1/admin/apps/demo/recordings/{id}/events?limit=2",
            server.http_url()
        ))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with(r#"{"events":[{"position":"#), "{text}");
    assert!(
        text.contains(r#""message":{"op":"message","channel":"game.1","event":"#),
        "{text}"
    );
    assert!(text.contains(payloads[0]), "{text}");
    let (_, rest) = server
        .admin(
            "GET",
            &format!("/v1/admin/apps/demo/recordings/{id}/events?after={next}"),
            None,
        )
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert!(rest["next"].is_null());
    assert_eq!(rest["events"][1]["channel"], "chat.lobby");

    // Export: JSON Lines, the recorded frames untouched.
    let export = reqwest::Client::new()
        .get(format!(
            "{}/v1/admin/apps/demo/recordings/{id}/export",
            server.http_url()
        ))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap();
    assert_eq!(
        export.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = export.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, p) in lines.iter().zip(payloads) {
        assert!(line.contains(&format!(r#""data":{p}"#)), "{line} lacks {p}");
    }
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["message"]["channel"], "game.1");
    assert!(first["ts"].as_i64().unwrap() > 1_600_000_000_000);

    // Replay all at once into another channel: marked, same payloads, original ts.
    let token = tokens::demo("viewer", &["replay.>"], &[]);
    let mut viewer = RawClient::ready(server.addr, "demo", &token).await;
    let ack = viewer
        .request(json!({"op": "subscribe", "id": 1, "channel": "replay.1"}))
        .await;
    assert_eq!(ack["op"], "ack");
    let (s, replay) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{id}/replays"),
            Some(json!({"channel": "replay.1", "speed": 0})),
        )
        .await;
    assert_eq!(s, 201, "{replay}");
    for p in payloads.iter().copied().chain(["\"hi\""]) {
        let m = viewer.recv().await;
        let waas_test_support::raw::Received::Json(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m["channel"], "replay.1");
        assert_eq!(m["replayed"], true);
        assert_eq!(m["data"], serde_json::from_str::<Value>(p).unwrap());
    }
    let pid = replay["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, r) = server
            .admin("GET", &format!("/v1/admin/apps/demo/replays/{pid}"), None)
            .await;
        if r["state"] == "finished" {
            assert_eq!(r["published"], 4);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (s, list) = server
        .admin("GET", "/v1/admin/apps/demo/recordings", None)
        .await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 1));
    let (s, _) = server
        .admin(
            "DELETE",
            &format!("/v1/admin/apps/demo/recordings/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, e) = server
        .admin("GET", &format!("/v1/admin/apps/demo/recordings/{id}"), None)
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn limits_stop_a_recording_and_bad_requests_are_refused() {
    let server = TestServer::start().await;
    let (_, rec) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/recordings",
            Some(json!({"name": "capped", "channels": [">"], "max_events": 3})),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_owned();
    for n in 0..5 {
        publish_raw(&server, "a.b", &n.to_string()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let rec = loop {
        let (_, rec) = server
            .admin("GET", &format!("/v1/admin/apps/demo/recordings/{id}"), None)
            .await;
        if rec["status"] == "stopped" {
            break rec;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rec}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (rec["event_count"].as_i64(), rec["stop_reason"].as_str()),
        (Some(3), Some("max_events"))
    );

    for (body, code) in [
        (json!({"name": "", "channels": ["a"]}), "bad_request"),
        (json!({"name": "x", "channels": []}), "bad_request"),
        (
            json!({"name": "x", "channels": ["a..b"]}),
            "invalid_channel",
        ),
        (
            json!({"name": "x", "channels": ["a"], "max_events": 0}),
            "bad_request",
        ),
        (
            json!({"name": "x", "channels": ["a"], "colour": "red"}),
            "bad_request",
        ),
    ] {
        let (s, e) = server
            .admin("POST", "/v1/admin/apps/demo/recordings", Some(body.clone()))
            .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    let (s, _) = server
        .admin(
            "POST",
            "/v1/admin/apps/nope/recordings",
            Some(json!({"name": "x", "channels": ["a"]})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, e) = server
        .admin("GET", "/v1/admin/apps/nope/recordings", None)
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, e) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{id}/replays"),
            Some(json!({"speed": -1})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")));
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v1/admin/apps/demo/recordings",
            server.http_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// Pause holds a paced replay; stop ends it early.
#[tokio::test]
async fn a_replay_can_be_paused_resumed_and_stopped() {
    let server = TestServer::start().await;
    let (_, rec) = server
        .admin(
            "POST",
            "/v1/admin/apps/demo/recordings",
            Some(json!({"name": "paced", "channels": ["tick"]})),
        )
        .await;
    let id = rec["id"].as_str().unwrap().to_owned();
    // Ten events 100 ms apart: the replay at 1x takes about a second.
    for n in 0..10 {
        publish_raw(&server, "tick", &n.to_string()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_count(&server, &id, 10).await;
    server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{id}/stop"),
            None,
        )
        .await;
    let (_, replay) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/recordings/{id}/replays"),
            Some(json!({"channel": "tock"})),
        )
        .await;
    let pid = replay["id"].as_str().unwrap().to_owned();
    let (_, paused) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/replays/{pid}/pause"),
            None,
        )
        .await;
    assert_eq!(paused["state"], "paused");
    let before = paused["published"].as_i64().unwrap();
    // Paused means nothing moves for a while (the point of the wait).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, still) = server
        .admin("GET", &format!("/v1/admin/apps/demo/replays/{pid}"), None)
        .await;
    assert!(
        still["published"].as_i64().unwrap() <= before + 1,
        "{still}"
    );
    let (_, resumed) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/replays/{pid}/resume"),
            None,
        )
        .await;
    assert_eq!(resumed["state"], "running");
    let (_, stopped) = server
        .admin(
            "POST",
            &format!("/v1/admin/apps/demo/replays/{pid}/stop"),
            None,
        )
        .await;
    assert_eq!(stopped["state"], "stopped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, after) = server
        .admin("GET", &format!("/v1/admin/apps/demo/replays/{pid}"), None)
        .await;
    assert_eq!(after["state"], "stopped");
    assert!(after["published"].as_i64().unwrap() < 10, "{after}");
}

/// An app's own servers start and stop recordings with their API key (REST, through the SDK).
#[tokio::test]
async fn servers_record_with_their_api_key_through_the_sdk() {
    use waas_sdk::protocol::recording::StartRecording;
    let server = TestServer::start().await;
    let client = waas_sdk::ServerClient::new(server.http_url(), "demo", "demo-key").unwrap();
    let rec = client
        .start_recording(&StartRecording {
            name: "from the backend".into(),
            channels: vec!["orders.*".into()],
            max_events: None,
            max_duration_secs: Some(3600),
        })
        .await
        .unwrap();
    assert_eq!(
        (rec.status.as_str(), rec.app_id.as_str()),
        ("recording", "demo")
    );
    assert_eq!(rec.max_duration_ms, Some(3_600_000));
    client
        .publish("orders.eu", "paid", &json!({"id": 1}))
        .await
        .unwrap();
    client.publish("users.x", "seen", &json!(1)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while client.recording(&rec.id).await.unwrap().event_count < 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = client.stop_recording(&rec.id).await.unwrap();
    assert_eq!(
        (stopped.status.as_str(), stopped.event_count),
        ("stopped", 1)
    );

    let bad = client
        .start_recording(&StartRecording {
            name: "x".into(),
            channels: vec!["orders..x".into()],
            max_events: None,
            max_duration_secs: None,
        })
        .await;
    match bad {
        Err(waas_sdk::Error::Http { status, code, .. }) => {
            assert_eq!(
                (status, code),
                (400, waas_protocol::ErrorCode::InvalidChannel)
            )
        }
        other => panic!("{other:?}"),
    }
    match client.recording("rec_missing").await {
        Err(waas_sdk::Error::Http { status, code, .. }) => {
            assert_eq!((status, code), (404, waas_protocol::ErrorCode::NotFound))
        }
        other => panic!("{other:?}"),
    }
    let wrong_key = waas_sdk::ServerClient::new(server.http_url(), "demo", "nope").unwrap();
    assert!(matches!(
        wrong_key.recording(&rec.id).await,
        Err(waas_sdk::Error::Http { status: 401, .. })
    ));
}
