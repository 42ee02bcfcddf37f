//! The recording store contract, run once against SQLite (a file) and once against PostgreSQL
//! (a schema of its own on the test database, `WAAS_TEST_DATABASE_URL`).

use waas_control_plane::store::recordings::{
    NewRecording, RecordedEvent, RecordingStatus, RecordingStore,
};
use waas_control_plane::store::{Store, StoreError};

trait Both: Store + RecordingStore {}
impl<T: Store + RecordingStore> Both for T {}

mod common;

use common::store_suite;

store_suite!(lifecycle, append_is_idempotent_and_paged, unknown_things);

use common::app_id as app;

async fn with_app(store: &dyn Both, id: &str) {
    common::create_app(store, id).await;
}

fn new(id: &str, app_id: &str, at: i64) -> NewRecording {
    NewRecording {
        id: id.into(),
        app_id: app(app_id),
        name: format!("recording {id}"),
        channels: vec!["a.*".into(), "b.>".into()],
        max_events: Some(10),
        max_duration_ms: None,
        started_at: at,
    }
}

fn event(position: i64) -> RecordedEvent {
    RecordedEvent {
        position,
        channel: "a.x".into(),
        ts: 1_000 + position,
        offset: position * 2,
        frame: format!(
            r#"{{"op":"message","data": {{"n" : {position}}},"offset":{}}}"#,
            position * 2
        ),
    }
}

async fn lifecycle(store: &dyn Both) {
    with_app(store, "one").await;
    let r = store.create_recording(new("r1", "one", 5)).await.unwrap();
    assert_eq!(r.status, RecordingStatus::Recording);
    assert_eq!(r.channels, ["a.*", "b.>"]);
    assert_eq!(
        (r.event_count, r.max_events, r.started_at),
        (0, Some(10), 5)
    );
    store.create_recording(new("r2", "one", 9)).await.unwrap();
    assert!(matches!(
        store.create_recording(new("r1", "one", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    let list = store.list_recordings(&app("one")).await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r2", "r1"],
        "newest first"
    );
    let stopped = store
        .stop_recording(&app("one"), "r1", 50, "stopped")
        .await
        .unwrap();
    assert_eq!(stopped.status, RecordingStatus::Stopped);
    assert_eq!(
        (stopped.stopped_at, stopped.stop_reason.as_deref()),
        (Some(50), Some("stopped"))
    );
    // Stopping again changes nothing.
    let again = store
        .stop_recording(&app("one"), "r1", 99, "max_events")
        .await
        .unwrap();
    assert_eq!(again, stopped);
    let active = store.active_recordings().await.unwrap();
    assert_eq!(
        active.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["r2"]
    );
    store.delete_recording(&app("one"), "r2").await.unwrap();
    assert!(matches!(
        store.get_recording(&app("one"), "r2").await,
        Err(StoreError::NotFound(_))
    ));
    // Deleting the app deletes its recordings.
    store.delete_app(&app("one")).await.unwrap();
    assert!(store.active_recordings().await.unwrap().is_empty());
}

async fn append_is_idempotent_and_paged(store: &dyn Both) {
    with_app(store, "two").await;
    store.create_recording(new("r", "two", 1)).await.unwrap();
    let n = store
        .append_events("r", vec![event(3), event(1), event(2)])
        .await
        .unwrap();
    assert_eq!(n, 3);
    // A batch delivered again after a restart, with one new event.
    let n = store
        .append_events("r", vec![event(2), event(3), event(7)])
        .await
        .unwrap();
    assert_eq!(n, 4);
    assert_eq!(
        store
            .get_recording(&app("two"), "r")
            .await
            .unwrap()
            .event_count,
        4
    );
    let page = store.list_events("r", 0, 2).await.unwrap();
    assert_eq!(
        page,
        vec![event(1), event(2)],
        "by position, frames byte for byte"
    );
    let rest = store.list_events("r", 2, 10).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.position).collect::<Vec<_>>(), [3, 7]);
}

async fn unknown_things(store: &dyn Both) {
    with_app(store, "three").await;
    assert!(matches!(
        store.create_recording(new("x", "nope", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.append_events("missing", vec![event(1)]).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .create_recording(new("mine", "three", 1))
        .await
        .unwrap();
    with_app(store, "four").await;
    // Another app's id does not reach it.
    assert!(matches!(
        store.get_recording(&app("four"), "mine").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_recording(&app("four"), "mine").await,
        Err(StoreError::NotFound(_))
    ));
}
