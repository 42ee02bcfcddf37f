//! The key store contract (the E2EE key directory, `docs/e2ee.md`), run once against SQLite (a
//! file) and once against PostgreSQL (a schema of its own on the test database,
//! `WAAS_TEST_DATABASE_URL`).

use waas_control_plane::store::keys::{KeyStore, RoomKeyPut};
use waas_control_plane::store::{Store, StoreError};
use waas_protocol::e2ee::{RoomKey, WrappedKey};

trait Both: Store + KeyStore {}
impl<T: Store + KeyStore> Both for T {}

mod common;

use common::store_suite;

store_suite!(
    device_keys_are_capped_and_refreshed,
    room_keys_are_per_sub_and_pruned,
    deleting_the_app_deletes_its_keys,
    unknown_app_is_not_found,
);

use common::app_id as app;

async fn with_app(store: &dyn Both, id: &str) {
    common::create_app(store, id).await;
}

fn dev(n: u8) -> String {
    format!("{:032x}", n)
}

fn put(channel: &str, version: u32, wrapped: &[(&str, u8)], keep: u32) -> RoomKeyPut {
    RoomKeyPut {
        channel: channel.into(),
        key_id: "ab".repeat(16),
        version,
        wrapped: wrapped
            .iter()
            .map(|(sub, d)| WrappedKey {
                sub: (*sub).into(),
                device: dev(*d),
                key: format!("key-{sub}-{d}-v{version}"),
            })
            .collect(),
        at: 1000 + i64::from(version),
        keep_versions: keep,
    }
}

async fn device_keys_are_capped_and_refreshed(store: &dyn Both) {
    with_app(store, "a").await;
    let a = app("a");
    for (i, at) in [(1u8, 10), (2, 20), (3, 30)] {
        let key = store
            .publish_device_key(&a, "bob", &dev(i), &format!("pk{i}"), at, 3)
            .await
            .unwrap();
        assert_eq!((key.device, key.ts), (dev(i), at as u64));
    }
    let keys = store.device_keys(&a, "bob").await.unwrap();
    let devices: Vec<_> = keys.iter().map(|k| k.device.clone()).collect();
    assert_eq!(devices, [dev(3), dev(2), dev(1)], "newest first");
    // Refreshing 1 makes it the newest; a fourth device then evicts 2, the oldest.
    store
        .publish_device_key(&a, "bob", &dev(1), "pk1-new", 40, 3)
        .await
        .unwrap();
    store
        .publish_device_key(&a, "bob", &dev(4), "pk4", 50, 3)
        .await
        .unwrap();
    let keys = store.device_keys(&a, "bob").await.unwrap();
    let got: Vec<_> = keys
        .iter()
        .map(|k| (k.device.clone(), k.public_key.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (dev(4), "pk4".to_owned()),
            (dev(1), "pk1-new".to_owned()),
            (dev(3), "pk3".to_owned())
        ]
    );
    // The key just published stays even when its clock is behind the others'.
    store
        .publish_device_key(&a, "bob", &dev(5), "pk5", 1, 1)
        .await
        .unwrap();
    let keys = store.device_keys(&a, "bob").await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].device, dev(5));
    assert!(store.device_keys(&a, "carol").await.unwrap().is_empty());
}

async fn room_keys_are_per_sub_and_pruned(store: &dyn Both) {
    with_app(store, "a").await;
    let a = app("a");
    let kid = "ab".repeat(16);
    store
        .put_room_keys(
            &a,
            &put("c.1", 1, &[("bob", 1), ("bob", 2), ("carol", 3)], 2),
        )
        .await
        .unwrap();
    store
        .put_room_keys(&a, &put("c.2", 1, &[("bob", 1)], 2))
        .await
        .unwrap();
    let bob = store.room_keys(&a, "c.1", "bob").await.unwrap();
    assert_eq!(
        bob,
        [
            RoomKey {
                kid: kid.clone(),
                v: 1,
                device: dev(1),
                key: "key-bob-1-v1".into()
            },
            RoomKey {
                kid: kid.clone(),
                v: 1,
                device: dev(2),
                key: "key-bob-2-v1".into()
            },
        ]
    );
    // Rotation without carol: she keeps v1 and never gets v2.
    store
        .put_room_keys(&a, &put("c.1", 2, &[("bob", 1)], 2))
        .await
        .unwrap();
    let carol = store.room_keys(&a, "c.1", "carol").await.unwrap();
    assert_eq!(carol.iter().map(|k| k.v).collect::<Vec<_>>(), [1]);
    let versions = |keys: Vec<RoomKey>| keys.iter().map(|k| k.v).collect::<Vec<_>>();
    assert_eq!(
        versions(store.room_keys(&a, "c.1", "bob").await.unwrap()),
        [1, 1, 2]
    );
    // Putting the same entry again replaces it; a repeated entry in one put keeps the last.
    let mut again = put("c.1", 2, &[("bob", 1), ("bob", 1)], 2);
    again.wrapped[1].key = "replaced".into();
    store.put_room_keys(&a, &again).await.unwrap();
    let bob = store.room_keys(&a, "c.1", "bob").await.unwrap();
    assert_eq!(bob.last().unwrap().key, "replaced");
    assert_eq!(bob.len(), 3);
    // Keeping 2 versions: v3 drops v1, for everyone.
    store
        .put_room_keys(&a, &put("c.1", 3, &[("bob", 1)], 2))
        .await
        .unwrap();
    assert_eq!(
        versions(store.room_keys(&a, "c.1", "bob").await.unwrap()),
        [2, 3]
    );
    assert!(store
        .room_keys(&a, "c.1", "carol")
        .await
        .unwrap()
        .is_empty());
    // Other channels are untouched.
    assert_eq!(
        versions(store.room_keys(&a, "c.2", "bob").await.unwrap()),
        [1]
    );
}

async fn deleting_the_app_deletes_its_keys(store: &dyn Both) {
    with_app(store, "gone").await;
    let a = app("gone");
    store
        .publish_device_key(&a, "bob", &dev(1), "pk", 1, 10)
        .await
        .unwrap();
    store
        .put_room_keys(&a, &put("c", 1, &[("bob", 1)], 10))
        .await
        .unwrap();
    store.delete_app(&a).await.unwrap();
    with_app(store, "gone").await;
    assert!(store.device_keys(&a, "bob").await.unwrap().is_empty());
    assert!(store.room_keys(&a, "c", "bob").await.unwrap().is_empty());
}

async fn unknown_app_is_not_found(store: &dyn Both) {
    let ghost = app("ghost");
    assert!(matches!(
        store
            .publish_device_key(&ghost, "bob", &dev(1), "pk", 1, 10)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .put_room_keys(&ghost, &put("c", 1, &[("bob", 1)], 10))
            .await,
        Err(StoreError::NotFound(_))
    ));
}
