//! The usage store contract (per-app usage by minute and hour, `docs/dashboard.md#usage`), run
//! once against SQLite (a file) and once against PostgreSQL (a schema of its own on the test
//! database, `WAAS_TEST_DATABASE_URL`).

use waas_control_plane::store::usage::{UsageBatch, UsagePoint, UsageStore, HOUR, MINUTE};
use waas_control_plane::store::Store;
use waas_core::usage::AppUsage;

trait Both: Store + UsageStore {}
impl<T: Store + UsageStore> Both for T {}

mod common;

use common::{app_id, store_suite};

store_suite!(
    counts_add_up_across_reports_and_nodes,
    connections_of_silent_nodes_are_forgotten,
    unknown_apps_are_ignored_and_usage_goes_with_its_app,
    old_usage_is_pruned,
);

/// An hour boundary, plus ten seconds.
const T: i64 = 1_800_000_000 - 1_800_000_000 % HOUR + 10;

fn usage(app: &str, connections: i64, peak: i64, published: u64) -> AppUsage {
    AppUsage {
        connections,
        peak,
        published,
        ..AppUsage::new(app_id(app))
    }
}

fn batch(node: &str, at: i64, apps: Vec<AppUsage>) -> UsageBatch {
    UsageBatch {
        node: node.into(),
        at,
        stale_before: at - 30,
        apps,
    }
}

async fn counts_add_up_across_reports_and_nodes(store: &dyn Both) {
    common::create_app(store, "chat").await;
    common::create_app(store, "other").await;
    let a = AppUsage {
        delivered: 7,
        webhooks: 2,
        webhook_errors: 1,
        requests: 3,
        request_errors: 2,
        ..usage("chat", 2, 3, 5)
    };
    store
        .record_usage(batch("a", T, vec![a, usage("other", 0, 0, 100)]))
        .await
        .unwrap();
    store
        .record_usage(batch("b", T + 20, vec![usage("chat", 1, 1, 2)]))
        .await
        .unwrap();
    // A later minute of the same hour.
    store
        .record_usage(batch("a", T + MINUTE, vec![usage("chat", 2, 2, 1)]))
        .await
        .unwrap();

    let chat = app_id("chat");
    let minutes = store.usage(&chat, MINUTE, T - 10, T + HOUR).await.unwrap();
    assert_eq!(
        minutes,
        vec![
            UsagePoint {
                start: T - 10,
                // a's peak 3 with b's 0, then b's 1 with a's 2: at most 3 at once.
                connections: 3,
                published: 7,
                delivered: 7,
                webhooks: 2,
                webhook_errors: 1,
                requests: 3,
                request_errors: 2,
            },
            UsagePoint {
                start: T - 10 + MINUTE,
                // b's last report (T + 20) is older than this one's `stale_before`.
                connections: 2,
                published: 1,
                ..UsagePoint::default()
            },
        ]
    );
    let hours = store.usage(&chat, HOUR, T - 10, T + HOUR).await.unwrap();
    assert_eq!(hours.len(), 1);
    assert_eq!((hours[0].start, hours[0].published), (T - 10, 8));
    assert_eq!(hours[0].connections, 3);
    // The range is [from, to): a bucket starting at `to` is left out.
    assert!(store
        .usage(&chat, MINUTE, T - 10 + MINUTE, T - 10 + MINUTE)
        .await
        .unwrap()
        .is_empty());
    // Apps apart.
    let other = store
        .usage(&app_id("other"), MINUTE, 0, T + HOUR)
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].published, 100);
    // Connections now: a's 2 and b's 1.
    assert_eq!(store.usage_connections(&chat, T).await.unwrap(), 3);
    assert_eq!(store.usage_connections(&chat, T + 21).await.unwrap(), 2);
}

async fn connections_of_silent_nodes_are_forgotten(store: &dyn Both) {
    common::create_app(store, "chat").await;
    store
        .record_usage(batch("a", T, vec![usage("chat", 5, 5, 0)]))
        .await
        .unwrap();
    // b reports 100 s later: a's 5 are older than `stale_before` and not added.
    store
        .record_usage(batch("b", T + 100, vec![usage("chat", 1, 1, 0)]))
        .await
        .unwrap();
    let points = store
        .usage(&app_id("chat"), MINUTE, T, T + 180)
        .await
        .unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].connections, 1);
    // A node whose connections closed reports 0, replacing its count.
    store
        .record_usage(batch("b", T + 101, vec![usage("chat", 0, 1, 0)]))
        .await
        .unwrap();
    assert_eq!(
        store
            .usage_connections(&app_id("chat"), T + 90)
            .await
            .unwrap(),
        0
    );
}

async fn unknown_apps_are_ignored_and_usage_goes_with_its_app(store: &dyn Both) {
    store
        .record_usage(batch("a", T, vec![usage("ghost", 1, 1, 9)]))
        .await
        .unwrap();
    assert!(store
        .usage(&app_id("ghost"), MINUTE, 0, T + HOUR)
        .await
        .unwrap()
        .is_empty());
    common::create_app(store, "chat").await;
    store
        .record_usage(batch("a", T, vec![usage("chat", 1, 1, 9)]))
        .await
        .unwrap();
    store.delete_app(&app_id("chat")).await.unwrap();
    // Created again (by another tenant, say): none of the old usage.
    common::create_app(store, "chat").await;
    assert!(store
        .usage(&app_id("chat"), MINUTE, 0, T + HOUR)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.usage_connections(&app_id("chat"), 0).await.unwrap(),
        0
    );
}

async fn old_usage_is_pruned(store: &dyn Both) {
    common::create_app(store, "chat").await;
    let chat = app_id("chat");
    for at in [T, T + HOUR, T + 2 * HOUR] {
        store
            .record_usage(batch("a", at, vec![usage("chat", 1, 1, 1)]))
            .await
            .unwrap();
    }
    // Minutes before T + 2 h, hours before T + 1 h, node counts before T + 2 h go.
    let deleted = store
        .prune_usage(T + 2 * HOUR - 10, T + HOUR - 10, T + 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(deleted, 2 + 1);
    let minutes = store.usage(&chat, MINUTE, 0, T + 3 * HOUR).await.unwrap();
    assert_eq!(
        minutes.iter().map(|p| p.start).collect::<Vec<_>>(),
        vec![T + 2 * HOUR - 10]
    );
    let hours = store.usage(&chat, HOUR, 0, T + 3 * HOUR).await.unwrap();
    assert_eq!(
        hours.iter().map(|p| p.start).collect::<Vec<_>>(),
        vec![T + HOUR - 10, T + 2 * HOUR - 10]
    );
    // The node's count was seen at T + 2 h: kept.
    assert_eq!(store.usage_connections(&chat, 0).await.unwrap(), 1);
    assert_eq!(store.prune_usage(0, 0, T + 2 * HOUR + 1).await.unwrap(), 1);
    assert_eq!(store.usage_connections(&chat, 0).await.unwrap(), 0);
}
