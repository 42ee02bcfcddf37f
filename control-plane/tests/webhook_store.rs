//! The WebhookStore contract, written once and run against both stores (SQLite in a temporary
//! directory, Postgres in a schema of its own on the test server, dropped afterwards).

use waas_control_plane::store::webhooks::{
    Attempt, DeliveryFilter, DeliveryStatus, EndpointPatch, NewEndpoint, Outcome, PresenceRules,
    WebhookFormat, WebhookStore,
};
use waas_control_plane::store::{AppPatch, Store, StoreError};
use waas_core::webhooks::report::Report;
use waas_protocol::presence::Member;
use waas_protocol::webhook::EventType;
use waas_protocol::{AppId, ChannelName};

trait Both: Store + WebhookStore {}
impl<T: Store + WebhookStore> Both for T {}

mod common;

use common::store_suite;

store_suite!(
    endpoints_crud,
    occupancy_is_announced_once_across_nodes_and_debounced,
    nodes_leaving_together_vacate_once,
    leaving_what_was_never_announced_fires_nothing,
    members_leave_with_a_dead_node,
    publish_reports_are_idempotent,
    claims_lease_and_settle,
    claims_carry_the_apps_current_pusher_secret,
);

const NOW: i64 = 1_800_000_000_000;

fn rules(now: i64) -> PresenceRules {
    PresenceRules {
        now,
        debounce_ms: 1000,
    }
}

fn app() -> AppId {
    AppId::parse("hooks").unwrap()
}

async fn setup(store: &dyn Both, events: &[EventType]) -> String {
    common::create_app(store, "hooks").await;
    store
        .create_endpoint(
            NewEndpoint {
                id: "we_1".into(),
                app_id: app(),
                url: "http://127.0.0.1:9/h".into(),
                secret: "s".repeat(16),
                events: events.to_vec(),
                channels: vec![],
                enabled: true,
                format: WebhookFormat::Waas,
            },
            NOW,
        )
        .await
        .unwrap();
    "we_1".into()
}

fn presence(channel: &str, member: Option<&str>, present: bool) -> Report {
    Report::Presence {
        app: app(),
        channel: ChannelName::parse(channel).unwrap(),
        member: member.map(|id| Member {
            id: id.into(),
            info: None,
        }),
        present,
    }
}

async fn types(store: &dyn Both) -> Vec<String> {
    let mut all = store
        .list_deliveries(
            &app(),
            DeliveryFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    all.reverse();
    all.into_iter().map(|d| d.event_type).collect()
}

async fn endpoints_crud(store: &dyn Both) {
    setup(store, &[EventType::Message]).await;
    let e = store.get_endpoint(&app(), "we_1").await.unwrap();
    assert_eq!(e.events, [EventType::Message]);
    assert_eq!(e.created_at, NOW);
    assert_eq!(e.format, WebhookFormat::Waas, "the default");
    let dup = NewEndpoint {
        id: "we_1".into(),
        app_id: app(),
        url: "http://x/".into(),
        secret: "s".repeat(16),
        events: vec![EventType::ClientEvent],
        channels: vec![],
        enabled: true,
        format: WebhookFormat::Pusher,
    };
    assert!(matches!(
        store.create_endpoint(dup.clone(), NOW).await,
        Err(StoreError::Conflict(_))
    ));
    let other = NewEndpoint {
        app_id: AppId::parse("nope").unwrap(),
        id: "we_2".into(),
        ..dup
    };
    assert!(matches!(
        store.create_endpoint(other, NOW).await,
        Err(StoreError::NotFound(_))
    ));
    let patched = store
        .update_endpoint(
            &app(),
            "we_1",
            EndpointPatch {
                channels: Some(vec!["a.>".into()]),
                enabled: Some(false),
                ..Default::default()
            },
            NOW + 1,
        )
        .await
        .unwrap();
    assert_eq!(patched.channels, ["a.>"]);
    assert!(!patched.enabled);
    assert_eq!(patched.url, e.url);
    assert_eq!(patched.updated_at, NOW + 1);
    assert_eq!(patched.format, WebhookFormat::Waas, "left alone");
    assert_eq!(store.list_endpoints(&app()).await.unwrap(), vec![patched]);
    let pusher = store
        .update_endpoint(
            &app(),
            "we_1",
            EndpointPatch {
                format: Some(WebhookFormat::Pusher),
                ..Default::default()
            },
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(pusher.format, WebhookFormat::Pusher);
    assert_eq!(
        store.get_endpoint(&app(), "we_1").await.unwrap().format,
        WebhookFormat::Pusher
    );
    let back = store
        .update_endpoint(
            &app(),
            "we_1",
            EndpointPatch {
                format: Some(WebhookFormat::Waas),
                enabled: Some(false),
                ..Default::default()
            },
            NOW + 1,
        )
        .await
        .unwrap();
    assert_eq!(back.format, WebhookFormat::Waas);
    store.delete_endpoint(&app(), "we_1").await.unwrap();
    assert!(matches!(
        store.delete_endpoint(&app(), "we_1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_endpoints(&app()).await.unwrap().is_empty());
}

async fn occupancy_is_announced_once_across_nodes_and_debounced(store: &dyn Both) {
    setup(
        store,
        &[EventType::ChannelOccupied, EventType::ChannelVacated],
    )
    .await;
    let r = rules(NOW);
    assert_eq!(
        store.ingest("n1", vec![presence("c", None, true)], r).await,
        Ok(1)
    );
    assert_eq!(
        store.ingest("n2", vec![presence("c", None, true)], r).await,
        Ok(0)
    );
    // The same report again changes nothing.
    assert_eq!(
        store.ingest("n2", vec![presence("c", None, true)], r).await,
        Ok(0)
    );
    store
        .ingest("n1", vec![presence("c", None, false)], r)
        .await
        .unwrap();
    store
        .ingest("n2", vec![presence("c", None, false)], r)
        .await
        .unwrap();
    // Empty everywhere, but within the debounce: nothing yet.
    assert_eq!(store.flush_vacated(rules(NOW + 999)).await, Ok(0));
    // Back within the window: the vacate is called off, and no second occupied.
    assert_eq!(
        store
            .ingest("n2", vec![presence("c", None, true)], rules(NOW + 500))
            .await,
        Ok(0)
    );
    assert_eq!(store.flush_vacated(rules(NOW + 5000)).await, Ok(0));
    store
        .ingest("n2", vec![presence("c", None, false)], rules(NOW + 6000))
        .await
        .unwrap();
    assert_eq!(store.flush_vacated(rules(NOW + 7000)).await, Ok(1));
    assert_eq!(store.flush_vacated(rules(NOW + 8000)).await, Ok(0));
    assert_eq!(types(store).await, ["channel_occupied", "channel_vacated"]);
    let vacated = &store
        .list_deliveries(
            &app(),
            DeliveryFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap()[0];
    let body: serde_json::Value = serde_json::from_str(&vacated.body).unwrap();
    assert_eq!(
        body["time_ms"],
        NOW + 6000,
        "vacated when the last node left"
    );
    assert_eq!(body["id"], vacated.id.as_str());
}

/// Pins the presence debounce both stores share: the last node to let go schedules the vacate
/// even when several let go at the same moment (on PostgreSQL each leave locks the channel's
/// announcement first, so no two see each other still there), and it fires once.
async fn nodes_leaving_together_vacate_once(store: &dyn Both) {
    setup(store, &[EventType::ChannelVacated]).await;
    const CHANNELS: usize = 8;
    for i in 0..CHANNELS {
        let channel = format!("c{i}");
        for node in ["n1", "n2", "n3"] {
            store
                .ingest(node, vec![presence(&channel, None, true)], rules(NOW))
                .await
                .unwrap();
        }
        let leave = |node: &'static str| {
            store.ingest(node, vec![presence(&channel, None, false)], rules(NOW + 10))
        };
        let (a, b, c) = tokio::join!(leave("n1"), leave("n2"), leave("n3"));
        assert_eq!((a, b, c), (Ok(0), Ok(0), Ok(0)));
    }
    assert_eq!(store.flush_vacated(rules(NOW + 10 + 999)).await, Ok(0));
    assert_eq!(
        store.flush_vacated(rules(NOW + 10 + 1000)).await,
        Ok(CHANNELS)
    );
    assert_eq!(store.flush_vacated(rules(NOW + 60_000)).await, Ok(0));
    assert_eq!(types(store).await, vec!["channel_vacated"; CHANNELS]);
}

/// A leave for a channel with no announcement (a node's late report after the vacate fired, or
/// one for a channel it never reported) schedules and fires nothing; the next join announces.
async fn leaving_what_was_never_announced_fires_nothing(store: &dyn Both) {
    setup(
        store,
        &[EventType::ChannelOccupied, EventType::ChannelVacated],
    )
    .await;
    assert_eq!(
        store
            .ingest("n1", vec![presence("c", None, false)], rules(NOW))
            .await,
        Ok(0)
    );
    assert_eq!(store.flush_vacated(rules(NOW + 60_000)).await, Ok(0));
    assert!(types(store).await.is_empty());
    assert_eq!(
        store
            .ingest("n1", vec![presence("c", None, true)], rules(NOW + 60_000))
            .await,
        Ok(1)
    );
    assert_eq!(types(store).await, ["channel_occupied"]);
}

async fn members_leave_with_a_dead_node(store: &dyn Both) {
    setup(store, &[EventType::MemberAdded, EventType::MemberRemoved]).await;
    store
        .ingest(
            "n1",
            vec![
                presence("presence.r", None, true),
                presence("presence.r", Some("al"), true),
            ],
            rules(NOW),
        )
        .await
        .unwrap();
    store.ingest("n2", vec![], rules(NOW + 5000)).await.unwrap();
    // n1 silent since NOW, n2 reported at NOW + 5000: only n1 is forgotten.
    let gone = store
        .expire_nodes(NOW + 1000, rules(NOW + 6000))
        .await
        .unwrap();
    assert_eq!(gone, ["n1"]);
    assert_eq!(store.flush_vacated(rules(NOW + 7000)).await, Ok(1));
    assert_eq!(types(store).await, ["member_added", "member_removed"]);
    assert_eq!(
        store.expire_nodes(NOW + 1000, rules(NOW + 8000)).await,
        Ok(vec![])
    );
}

async fn publish_reports_are_idempotent(store: &dyn Both) {
    setup(store, &[EventType::ClientEvent, EventType::Message]).await;
    let report: Report = serde_json::from_str(
        r#"{"publish":{"id":"n1-7","app":"hooks","channel":"c","event":"e","data":{"a": 1},
            "offset":1,"time_ms":5,"client":{"user_id":"u","connection_id":"hooks-1"}}}"#,
    )
    .unwrap();
    assert_eq!(
        store.ingest("n1", vec![report.clone()], rules(NOW)).await,
        Ok(2)
    );
    assert_eq!(store.ingest("n1", vec![report], rules(NOW)).await, Ok(0));
    assert_eq!(types(store).await, ["client_event", "message"]);
}

async fn claims_lease_and_settle(store: &dyn Both) {
    setup(store, &[EventType::Message]).await;
    let reports = (0..5)
        .map(|i| {
            serde_json::from_value(serde_json::json!({"publish": {
                "id": format!("n-{i}"), "app": "hooks", "channel": "c", "event": "e",
                "data": i, "offset": i, "time_ms": 1}}))
            .unwrap()
        })
        .collect();
    assert_eq!(store.ingest("n", reports, rules(NOW)).await, Ok(5));
    // At most 2 of one endpoint per claim; leased rows are not claimed again.
    let first = store.claim(NOW, 10, 2, 1000, &[]).await.unwrap();
    assert_eq!(first.len(), 2);
    let second = store.claim(NOW, 10, 2, 1000, &[]).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(first.iter().all(|c| !second.iter().any(|d| d.id == c.id)));
    assert!(store
        .claim(NOW, 10, 2, 1000, &["we_1".into()])
        .await
        .unwrap()
        .is_empty());
    store.release(&[second[0].id.clone()]).await.unwrap();
    let third = store.claim(NOW, 10, 5, 1000, &[]).await.unwrap();
    assert_eq!(third.len(), 2, "the released one and the fifth");
    // Leases end: everything not settled comes back.
    assert_eq!(
        store
            .claim(NOW + 1000, 10, 10, 1000, &[])
            .await
            .unwrap()
            .len(),
        5
    );

    let c = &first[0];
    assert_eq!((c.url.as_str(), c.attempts), ("http://127.0.0.1:9/h", 0));
    assert_eq!(
        (c.format, c.app_id.as_str()),
        (WebhookFormat::Waas, "hooks")
    );
    let attempt = |n: i32, code: Option<i32>| Attempt {
        attempt: n,
        at: NOW + n as i64,
        status_code: code,
        error: code.filter(|c| *c >= 300).map(|c| format!("HTTP {c}")),
        duration_ms: 3,
        response_body: code.map(|c| format!("answer {c}")),
    };
    store
        .settle(&c.id, attempt(1, Some(500)), Outcome::Retry(NOW + 100))
        .await
        .unwrap();
    assert!(store
        .claim(NOW + 50, 10, 10, 1000, &[])
        .await
        .unwrap()
        .iter()
        .all(|d| d.id != c.id));
    let again = store.claim(NOW + 5000, 10, 10, 1000, &[]).await.unwrap();
    let c2 = again.iter().find(|d| d.id == c.id).unwrap();
    assert_eq!(c2.attempts, 1);
    store
        .settle(&c.id, attempt(2, Some(200)), Outcome::Delivered)
        .await
        .unwrap();
    let (d, attempts) = store.get_delivery(&app(), &c.id).await.unwrap();
    assert_eq!(
        (d.status, d.attempts, d.delivered_at),
        (DeliveryStatus::Delivered, 2, Some(NOW + 2))
    );
    assert_eq!(
        attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
        [Some(500), Some(200)]
    );
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.response_body.as_deref())
            .collect::<Vec<_>>(),
        [Some("answer 500"), Some("answer 200")]
    );

    let dead = &first[1];
    store
        .settle(&dead.id, attempt(1, None), Outcome::Dead)
        .await
        .unwrap();
    let list = store
        .list_deliveries(
            &app(),
            DeliveryFilter {
                status: Some(DeliveryStatus::Dead),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let retried = store
        .retry_delivery(&app(), &dead.id, NOW + 9000)
        .await
        .unwrap();
    assert_eq!(
        (retried.status, retried.next_attempt_at),
        (DeliveryStatus::Pending, NOW + 9000)
    );
    assert!(matches!(
        store.get_delivery(&app(), "whd_nope").await,
        Err(StoreError::NotFound(_))
    ));
    // Paging: newest first, `before` continues.
    let page = store
        .list_deliveries(
            &app(),
            DeliveryFilter {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rest = store
        .list_deliveries(
            &app(),
            DeliveryFilter {
                limit: 10,
                before: Some(page[1].seq),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len() + rest.len(), 5);
    assert!(page[0].seq > page[1].seq && page[1].seq > rest[0].seq);
}

/// Pusher-format requests are signed with the app's Pusher secret as it is when a delivery is
/// claimed: each claim reads it again, and `None` once the app has none.
async fn claims_carry_the_apps_current_pusher_secret(store: &dyn Both) {
    setup(store, &[EventType::Message]).await;
    let set = |secret: Option<&str>| AppPatch {
        pusher_secret: Some(secret.map(str::to_owned)),
        ..AppPatch::default()
    };
    store.update_app(&app(), set(Some("first"))).await.unwrap();
    let report: Report = serde_json::from_value(serde_json::json!({"publish": {
        "id": "n-1", "app": "hooks", "channel": "c", "event": "e", "data": 1, "offset": 1,
        "time_ms": 1}}))
    .unwrap();
    assert_eq!(store.ingest("n", vec![report], rules(NOW)).await, Ok(1));
    let claimed = store.claim(NOW, 10, 10, 1000, &[]).await.unwrap();
    assert_eq!(claimed[0].pusher_secret.as_deref(), Some("first"));
    assert_eq!(claimed[0].secret, "s".repeat(16), "the endpoint's own");
    store.update_app(&app(), set(Some("second"))).await.unwrap();
    let claimed = store.claim(NOW + 1000, 10, 10, 1000, &[]).await.unwrap();
    assert_eq!(claimed[0].pusher_secret.as_deref(), Some("second"));
    store.update_app(&app(), set(None)).await.unwrap();
    let claimed = store.claim(NOW + 2000, 10, 10, 1000, &[]).await.unwrap();
    assert_eq!(claimed[0].pusher_secret, None);
}
