//! The Store contract, written once and run against both stores.
//!
//! Each case is an `async fn(&dyn Store)`; `store_suite!` turns it into one test per store. SQLite
//! tests get a file in a temporary directory. Postgres tests get a schema each, with a random name,
//! on `postgres://postgres@127.0.0.1:5432/postgres` (`WAAS_TEST_DATABASE_URL` overrides), dropped
//! at the end even when the case fails, so tests run in parallel and leave nothing behind.

use std::time::{SystemTime, UNIX_EPOCH};

use waas_control_plane::store::dashboard::{
    AdminToken, DashboardInvitation, DashboardSession, NewDashboardUser, Role,
};
use waas_control_plane::store::{
    AppPatch, DashboardStore, NewApiKey, NewApp, NewTenant, PostgresStore, SqliteStore, Store,
    StoreError,
};
use waas_core::app::{AppLimits, PusherSettings};
use waas_core::history::policy::{Namespace, NamespaceHistory};
use waas_core::route::Route;
use waas_protocol::AppId;

mod common;

use common::{app_id, store_suite, TestSchema};

store_suite!(
    tenants_crud,
    generated_tenant_ids,
    lists_are_in_byte_order,
    create_and_get_app,
    duplicate_app_is_a_conflict,
    unknown_tenant_is_not_found,
    list_apps_by_tenant,
    update_app_patches,
    delete_app,
    api_keys_add_and_revoke,
    delete_tenant_cascades,
    versions_increase_across_delete_and_create,
    concurrent_changes_get_distinct_versions,
    allowed_origins_are_stored_and_replaced,
    pusher_credentials_at_creation,
    pusher_secret_rotated_and_removed,
    pusher_client_events_toggle,
    dashboard_users,
    dashboard_sessions,
    dashboard_users_go_with_their_tenant,
    dashboard_invitations_are_single_use_and_expire,
    admin_tokens_by_hash_owner_and_tenant,
);

// ---- the cases ----

async fn tenants_crud(store: &dyn Store) {
    let acme = store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    assert_eq!(acme.id, "acme");
    assert_eq!(acme.name, "Acme");
    assert_recent(acme.created_at);
    assert_eq!(store.get_tenant("acme").await.unwrap(), acme);

    assert_eq!(
        store.create_tenant(tenant("acme", "Other")).await,
        Err(StoreError::Conflict("tenant acme".into()))
    );

    let renamed = store.rename_tenant("acme", "Acme Corp").await.unwrap();
    assert_eq!(renamed.name, "Acme Corp");
    assert_eq!(renamed.created_at, acme.created_at);
    assert_eq!(store.get_tenant("acme").await.unwrap(), renamed);

    let missing = Err(StoreError::NotFound("tenant nope".into()));
    assert_eq!(store.get_tenant("nope").await, missing);
    assert_eq!(store.rename_tenant("nope", "x").await, missing);
    assert_eq!(
        store.delete_tenant("nope").await.map(|_| ()),
        missing.map(|_| ())
    );

    assert_eq!(store.list_tenants().await.unwrap(), vec![renamed]);
    assert_eq!(
        store.delete_tenant("acme").await.unwrap(),
        Vec::<AppId>::new()
    );
    assert_eq!(
        store.get_tenant("acme").await,
        Err(StoreError::NotFound("tenant acme".into()))
    );
    assert!(store.list_tenants().await.unwrap().is_empty());
}

async fn generated_tenant_ids(store: &dyn Store) {
    let new = || NewTenant {
        id: None,
        name: "Anonymous".into(),
    };
    let a = store.create_tenant(new()).await.unwrap();
    let b = store.create_tenant(new()).await.unwrap();
    for t in [&a, &b] {
        assert!(t.id.starts_with("t_") && t.id.len() == 18, "{}", t.id);
    }
    assert_ne!(a.id, b.id);
    assert_eq!(store.get_tenant(&a.id).await.unwrap(), a);
}

async fn lists_are_in_byte_order(store: &dyn Store) {
    // Upper case before lower, '-' before '_': byte order, whatever the database's collation.
    let ids = ["b", "a_1", "B", "a-1", "a", "A9"];
    for id in ids {
        store.create_tenant(tenant(id, id)).await.unwrap();
        store.create_app(new_app(id, id)).await.unwrap();
    }
    let mut sorted = ids.map(String::from).to_vec();
    sorted.sort();

    let tenants: Vec<_> = store.list_tenants().await.unwrap();
    assert_eq!(
        tenants.into_iter().map(|t| t.id).collect::<Vec<_>>(),
        sorted
    );

    let apps = store.list_apps(None).await.unwrap();
    let app_ids: Vec<_> = apps.iter().map(|a| a.id.as_str().to_owned()).collect();
    assert_eq!(app_ids, sorted);
    // The order of the ids themselves, as Rust compares them.
    let mut by_ord: Vec<_> = apps.iter().map(|a| a.id.clone()).collect();
    by_ord.sort();
    assert_eq!(
        apps.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        by_ord
    );
}

async fn create_and_get_app(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let new = NewApp {
        id: app_id("chat"),
        tenant_id: "acme".into(),
        name: "Chat".into(),
        jwt_secret: Some("s3cret".into()),
        jwt_rsa_public_key: None,
        jwt_ec_public_key: Some("-----BEGIN PUBLIC KEY-----\n…".into()),
        limits: AppLimits {
            max_connections: Some(100),
            max_channels_per_connection: None,
            publish_rate: Some(50),
            publish_burst: Some(0),
            history_size: Some(500),
            history_ttl_secs: None,
            // Stored and read back whole, like every limit.
            history_namespaces: [(
                Namespace::parse("cursor").unwrap(),
                NamespaceHistory {
                    history_size: Some(0),
                    history_ttl_secs: Some(60),
                },
            )]
            .into(),
        },
        pusher_secret: None,
        pusher_client_events: false,
    };
    let app = store.create_app(new.clone()).await.unwrap();
    assert_eq!(app.id, new.id);
    assert_eq!(app.tenant_id, new.tenant_id);
    assert_eq!(app.name, new.name);
    assert_eq!(app.jwt_secret, new.jwt_secret);
    assert_eq!(app.jwt_rsa_public_key, None);
    assert_eq!(app.jwt_ec_public_key, new.jwt_ec_public_key);
    assert_eq!(app.limits, new.limits);
    assert!(app.api_keys.is_empty());
    assert!(app.version > 0);
    assert_recent(app.created_at);
    assert_eq!(app.updated_at, app.created_at);

    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), app);
    assert_eq!(
        store.get_app(&app_id("nope")).await,
        Err(StoreError::NotFound("app nope".into()))
    );

    let config = app.gateway_config();
    assert_eq!(config.version, app.version);
    assert_eq!(config.limits, new.limits);
    // Gateways tell tenants apart by it (a tenant's apps together are still one tenant).
    assert_eq!(config.tenant.as_deref(), Some(app.tenant_id.as_str()));
}

async fn duplicate_app_is_a_conflict(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store.create_tenant(tenant("other", "Other")).await.unwrap();
    let first = store.create_app(new_app("chat", "acme")).await.unwrap();
    // App ids are global, not per tenant: gateways know apps by id alone.
    assert_eq!(
        store.create_app(new_app("chat", "other")).await,
        Err(StoreError::Conflict("app chat".into()))
    );
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), first);
}

async fn unknown_tenant_is_not_found(store: &dyn Store) {
    assert_eq!(
        store.create_app(new_app("chat", "ghost")).await,
        Err(StoreError::NotFound("tenant ghost".into()))
    );
    assert!(store.list_apps(None).await.unwrap().is_empty());
}

async fn list_apps_by_tenant(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store.create_tenant(tenant("zeta", "Zeta")).await.unwrap();
    for (app, owner) in [("c", "acme"), ("b", "zeta"), ("a", "acme")] {
        store.create_app(new_app(app, owner)).await.unwrap();
    }
    store.add_api_key(&app_id("a"), key("k1")).await.unwrap();
    store.add_api_key(&app_id("b"), key("k2")).await.unwrap();

    let ids = |apps: Vec<waas_control_plane::store::AppRecord>| {
        apps.into_iter()
            .map(|a| a.id.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.list_apps(Some("acme")).await.unwrap()),
        ["a", "c"]
    );
    assert_eq!(ids(store.list_apps(Some("zeta")).await.unwrap()), ["b"]);
    assert!(store.list_apps(Some("ghost")).await.unwrap().is_empty());

    // Listed apps are whole, keys included: the same records get_app returns.
    let all = store.list_apps(None).await.unwrap();
    assert_eq!(all.len(), 3);
    for app in all {
        assert_eq!(store.get_app(&app.id).await.unwrap(), app);
    }
}

async fn update_app_patches(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let mut new = new_app("chat", "acme");
    new.jwt_secret = Some("one".into());
    new.jwt_rsa_public_key = Some("rsa".into());
    let created = store.create_app(new).await.unwrap();

    // A name alone: everything else stays.
    let renamed = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                name: Some("Chat 2".into()),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Chat 2");
    assert_eq!(renamed.jwt_secret.as_deref(), Some("one"));
    assert_eq!(renamed.jwt_rsa_public_key.as_deref(), Some("rsa"));
    assert_eq!(renamed.limits, created.limits);
    assert_eq!(renamed.created_at, created.created_at);
    assert!(renamed.updated_at >= created.updated_at);
    assert!(renamed.version > created.version);

    // Some(None) clears, Some(Some) sets, None leaves alone; limits are replaced whole.
    let limits = AppLimits {
        max_connections: Some(5),
        ..AppLimits::default()
    };
    assert!(renamed.routes.is_empty());
    let routes: Vec<Route> = serde_json::from_str(
        r#"[{"prefix":"/weather","service":"weather"},
            {"prefix":"/api","upstream":"http://10.0.0.1:8000","timeout_ms":500,
             "allow_headers":["etag"],"max_response_bytes":1024}]"#,
    )
    .unwrap();
    let patched = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                name: None,
                jwt_secret: Some(None),
                jwt_rsa_public_key: None,
                jwt_ec_public_key: Some(Some("ec".into())),
                limits: Some(limits.clone()),
                routes: Some(routes.clone()),
                allowed_origins: None,
                pusher_secret: None,
                pusher_client_events: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.name, "Chat 2");
    assert_eq!(patched.jwt_secret, None);
    assert_eq!(patched.jwt_rsa_public_key.as_deref(), Some("rsa"));
    assert_eq!(patched.jwt_ec_public_key.as_deref(), Some("ec"));
    assert_eq!(patched.limits, limits);
    assert_eq!(patched.routes, routes);
    assert!(patched.version > renamed.version);
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), patched);

    // An empty patch changes nothing but the version.
    let touched = store
        .update_app(&app_id("chat"), AppPatch::default())
        .await
        .unwrap();
    assert!(touched.version > patched.version);
    assert_eq!(
        (touched.name, touched.jwt_ec_public_key, touched.limits),
        (patched.name, patched.jwt_ec_public_key, patched.limits)
    );
    assert_eq!(touched.routes, routes, "routes stay unless given");

    assert_eq!(
        store.update_app(&app_id("nope"), AppPatch::default()).await,
        Err(StoreError::NotFound("app nope".into()))
    );
}

async fn delete_app(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store.create_app(new_app("chat", "acme")).await.unwrap();
    store.create_app(new_app("feed", "acme")).await.unwrap();
    store.add_api_key(&app_id("chat"), key("k1")).await.unwrap();

    store.delete_app(&app_id("chat")).await.unwrap();
    let gone = Err(StoreError::NotFound("app chat".into()));
    assert_eq!(store.get_app(&app_id("chat")).await, gone);
    assert_eq!(store.delete_app(&app_id("chat")).await, gone.map(|_| ()));
    let left: Vec<_> = store.list_apps(Some("acme")).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, app_id("feed"));

    // Its keys went with it: the same id, created again, starts with none.
    let again = store.create_app(new_app("chat", "acme")).await.unwrap();
    assert!(again.api_keys.is_empty());
    assert_eq!(store.get_tenant("acme").await.unwrap().name, "Acme");
}

async fn api_keys_add_and_revoke(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let created = store.create_app(new_app("chat", "acme")).await.unwrap();
    let chat = app_id("chat");

    let one = store.add_api_key(&chat, key("k2")).await.unwrap();
    assert!(one.version > created.version);
    assert!(one.updated_at >= created.updated_at);
    assert_eq!(one.api_keys.len(), 1);
    let k2 = &one.api_keys[0];
    assert_eq!(
        (&*k2.id, &*k2.prefix, &*k2.hash, k2.label.as_deref()),
        ("k2", "wk_k2", "hash-of-k2", Some("label of k2"))
    );
    assert_recent(k2.created_at);

    let two = store
        .add_api_key(
            &chat,
            NewApiKey {
                label: None,
                ..key("k1")
            },
        )
        .await
        .unwrap();
    assert!(two.version > one.version);
    // Oldest first; keys added within one second are in id order.
    let mut expected = two.api_keys.clone();
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    assert_eq!(two.api_keys, expected);
    assert_eq!(two.api_keys.len(), 2);
    assert_eq!(store.get_app(&chat).await.unwrap(), two);
    let mut hashes = two.gateway_config().api_key_hashes;
    hashes.sort();
    assert_eq!(hashes, ["hash-of-k1", "hash-of-k2"]);

    // Refusals change nothing, version included.
    assert_eq!(
        store.add_api_key(&chat, key("k1")).await,
        Err(StoreError::Conflict("api key k1 of app chat".into()))
    );
    let same_hash = NewApiKey {
        id: "k3".into(),
        ..key("k1")
    };
    assert_eq!(
        store.add_api_key(&chat, same_hash).await,
        Err(StoreError::Conflict(
            "an api key with the same hash in app chat".into()
        ))
    );
    assert_eq!(
        store.add_api_key(&app_id("nope"), key("k1")).await,
        Err(StoreError::NotFound("app nope".into()))
    );
    assert_eq!(
        store.revoke_api_key(&chat, "k9").await,
        Err(StoreError::NotFound("api key k9 of app chat".into()))
    );
    assert_eq!(
        store.revoke_api_key(&app_id("nope"), "k1").await,
        Err(StoreError::NotFound("app nope".into()))
    );
    assert_eq!(store.get_app(&chat).await.unwrap(), two);

    let revoked = store.revoke_api_key(&chat, "k2").await.unwrap();
    assert!(revoked.version > two.version);
    let ids: Vec<_> = revoked.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["k1"]);
    assert_eq!(store.get_app(&chat).await.unwrap(), revoked);

    // A key id is per app: another app may use the same one.
    store.create_app(new_app("feed", "acme")).await.unwrap();
    store.add_api_key(&app_id("feed"), key("k1")).await.unwrap();
}

async fn delete_tenant_cascades(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store.create_tenant(tenant("zeta", "Zeta")).await.unwrap();
    for (app, owner) in [("chat", "acme"), ("b-feed", "acme"), ("other", "zeta")] {
        store.create_app(new_app(app, owner)).await.unwrap();
        store.add_api_key(&app_id(app), key("k1")).await.unwrap();
    }

    let deleted = store.delete_tenant("acme").await.unwrap();
    assert_eq!(deleted, [app_id("b-feed"), app_id("chat")]);
    for app in ["chat", "b-feed"] {
        assert_eq!(
            store.get_app(&app_id(app)).await,
            Err(StoreError::NotFound(format!("app {app}")))
        );
    }
    let left = store.list_apps(None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, app_id("other"));
    assert_eq!(left[0].api_keys.len(), 1);
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);

    // Nothing of the old tenant survives in a new one of the same id.
    store
        .create_tenant(tenant("acme", "Acme again"))
        .await
        .unwrap();
    assert!(store.list_apps(Some("acme")).await.unwrap().is_empty());
    let chat = store.create_app(new_app("chat", "acme")).await.unwrap();
    assert!(chat.api_keys.is_empty());
}

async fn versions_increase_across_delete_and_create(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let chat = app_id("chat");
    let mut versions = vec![
        store
            .create_app(new_app("chat", "acme"))
            .await
            .unwrap()
            .version,
    ];
    let mut note = |version: i64| versions.push(version);
    note(store.add_api_key(&chat, key("k1")).await.unwrap().version);
    note(
        store
            .update_app(&chat, AppPatch::default())
            .await
            .unwrap()
            .version,
    );
    note(store.revoke_api_key(&chat, "k1").await.unwrap().version);
    store.delete_app(&chat).await.unwrap();
    // A gateway that still holds the old app must take the new one for newer.
    note(
        store
            .create_app(new_app("chat", "acme"))
            .await
            .unwrap()
            .version,
    );
    store.delete_tenant("acme").await.unwrap();
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    note(
        store
            .create_app(new_app("chat", "acme"))
            .await
            .unwrap()
            .version,
    );

    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions must increase: {versions:?}"
    );
}

async fn concurrent_changes_get_distinct_versions(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let created = store.create_app(new_app("chat", "acme")).await.unwrap();
    let chat = app_id("chat");
    let rename = |name: &str| AppPatch {
        name: Some(name.into()),
        ..AppPatch::default()
    };
    let (a, b, c, d, e, f) = tokio::join!(
        store.add_api_key(&chat, key("k1")),
        store.update_app(&chat, rename("one")),
        store.add_api_key(&chat, key("k2")),
        store.update_app(&chat, rename("two")),
        store.add_api_key(&chat, key("k3")),
        store.update_app(&chat, AppPatch::default()),
    );
    let mut versions: Vec<i64> = [a, b, c, d, e, f]
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 6, "each change gets its own version");
    assert!(versions[0] > created.version);

    let now = store.get_app(&chat).await.unwrap();
    assert_eq!(now.version, versions[5], "the last change is the one kept");
    assert_eq!(now.api_keys.len(), 3);
}

// ---- store-specific tests ----

#[tokio::test]
async fn sqlite_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet, as on the first `waas dev`.
    let path = dir.path().join("data").join("waas.db");

    let (before, version) = {
        let store = SqliteStore::open(&path).unwrap();
        store.create_tenant(tenant("acme", "Acme")).await.unwrap();
        store.create_app(new_app("chat", "acme")).await.unwrap();
        let app = store.add_api_key(&app_id("chat"), key("k1")).await.unwrap();
        (app.clone(), app.version)
    };

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), before);
    assert_eq!(store.get_tenant("acme").await.unwrap().name, "Acme");
    // The version counter survives too: the first change after a restart is still newer.
    let after = store
        .update_app(&app_id("chat"), AppPatch::default())
        .await
        .unwrap();
    assert!(after.version > version);

    // Reopening did not apply the migrations again.
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(applied, migration_files("sqlite"));
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

/// How many migrations `store` has: its `.sql` files (the store's list matches them, a unit
/// test in `store/migrations.rs` makes sure).
fn migration_files(store: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(store);
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let store = SqliteStore::open_in_memory().unwrap();
    tenants_crud(&store).await;
}

#[tokio::test]
async fn postgres_migrate_is_idempotent_and_safe_to_race() {
    let schema = TestSchema::create().await;
    let url = schema.url();
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let outcome = ra.and(rb).and(a.migrate().await);
    let applied = schema.applied_migrations().await;
    schema.drop().await;
    outcome.unwrap();
    assert_eq!(applied, migration_files("postgres"));
}

#[tokio::test]
async fn postgres_connect_errors() {
    assert!(matches!(
        PostgresStore::connect("not a url=").await,
        Err(StoreError::Invalid(_))
    ));
    // Nothing listens on port 1.
    assert!(matches!(
        PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres").await,
        Err(StoreError::Backend(_))
    ));
}

// ---- helpers ----

fn tenant(id: &str, name: &str) -> NewTenant {
    NewTenant {
        id: Some(id.into()),
        name: name.into(),
    }
}

fn new_app(id: &str, tenant_id: &str) -> NewApp {
    NewApp {
        id: app_id(id),
        tenant_id: tenant_id.into(),
        name: format!("App {id}"),
        jwt_secret: None,
        jwt_rsa_public_key: None,
        jwt_ec_public_key: None,
        limits: AppLimits::default(),
        pusher_secret: None,
        pusher_client_events: false,
    }
}

fn key(id: &str) -> NewApiKey {
    NewApiKey {
        id: id.into(),
        prefix: format!("wk_{id}"),
        hash: format!("hash-of-{id}"),
        label: Some(format!("label of {id}")),
    }
}

/// `t` is a time the store set just now, by a clock that agrees with this one within a minute.
fn assert_recent(t: i64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - t).abs() < 60, "{t} is not now ({now})");
}

async fn allowed_origins_are_stored_and_replaced(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let created = store.create_app(new_app("chat", "acme")).await.unwrap();
    assert!(
        created.allowed_origins.is_empty(),
        "new apps allow any origin"
    );
    let origins = vec![
        "https://app.example.com".to_string(),
        "https://*.example.org".to_string(),
    ];
    let set = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                allowed_origins: Some(origins.clone()),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(set.allowed_origins, origins);
    assert!(set.version > created.version);
    assert_eq!(
        set.gateway_config().allowed_origins,
        origins,
        "shipped to gateways"
    );
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), set);
    // Other patches leave the list alone; an empty list replaces it.
    let renamed = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                name: Some("Chat 2".into()),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.allowed_origins, origins);
    let cleared = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                allowed_origins: Some(vec![]),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.allowed_origins.is_empty());
    assert_eq!(store.list_apps(None).await.unwrap(), vec![cleared]);
}

async fn pusher_credentials_at_creation(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let without = store.create_app(new_app("plain", "acme")).await.unwrap();
    assert_eq!(without.pusher_secret, None);
    assert!(!without.pusher_client_events);
    assert_eq!(without.gateway_config().pusher, None, "Pusher front off");

    let with = store
        .create_app(NewApp {
            pusher_secret: Some("pusher-s3cret".into()),
            pusher_client_events: true,
            ..new_app("pushy", "acme")
        })
        .await
        .unwrap();
    assert_eq!(with.pusher_secret.as_deref(), Some("pusher-s3cret"));
    assert!(with.pusher_client_events);
    assert_eq!(
        with.gateway_config().pusher,
        Some(PusherSettings {
            secret: "pusher-s3cret".into(),
            client_events: true,
        }),
        "shipped to gateways"
    );
    assert_eq!(store.get_app(&app_id("pushy")).await.unwrap(), with);
    assert_eq!(
        store.list_apps(Some("acme")).await.unwrap(),
        vec![without, with]
    );
    let debug = format!("{:?}", store.get_app(&app_id("pushy")).await.unwrap());
    assert!(!debug.contains("pusher-s3cret"), "{debug}");
}

async fn pusher_secret_rotated_and_removed(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let created = store
        .create_app(NewApp {
            pusher_secret: Some("old".into()),
            ..new_app("chat", "acme")
        })
        .await
        .unwrap();
    let secret = |s: &str| AppPatch {
        pusher_secret: Some(Some(s.into())),
        ..AppPatch::default()
    };
    let rotated = store
        .update_app(&app_id("chat"), secret("new"))
        .await
        .unwrap();
    assert_eq!(rotated.pusher_secret.as_deref(), Some("new"));
    assert!(rotated.version > created.version, "gateways reload it");
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), rotated);

    // Other patches leave it alone.
    let renamed = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                name: Some("Chat 2".into()),
                jwt_secret: Some(Some("jwt".into())),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.pusher_secret.as_deref(), Some("new"));

    let removed = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                pusher_secret: Some(None),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(removed.pusher_secret, None);
    assert_eq!(removed.gateway_config().pusher, None);
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), removed);

    // An app without one gets its first.
    let again = store
        .update_app(&app_id("chat"), secret("third"))
        .await
        .unwrap();
    assert_eq!(again.pusher_secret.as_deref(), Some("third"));
    assert_eq!(
        store.update_app(&app_id("nope"), secret("x")).await,
        Err(StoreError::NotFound("app nope".into()))
    );
}

async fn pusher_client_events_toggle(store: &dyn Store) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store
        .create_app(NewApp {
            pusher_secret: Some("s".into()),
            ..new_app("chat", "acme")
        })
        .await
        .unwrap();
    let toggle = |on: bool| AppPatch {
        pusher_client_events: Some(on),
        ..AppPatch::default()
    };
    let on = store
        .update_app(&app_id("chat"), toggle(true))
        .await
        .unwrap();
    assert!(on.pusher_client_events);
    assert_eq!(on.pusher_secret.as_deref(), Some("s"), "secret untouched");
    assert!(on.gateway_config().pusher.unwrap().client_events);
    assert_eq!(store.get_app(&app_id("chat")).await.unwrap(), on);
    // A rotation keeps the switch.
    let rotated = store
        .update_app(
            &app_id("chat"),
            AppPatch {
                pusher_secret: Some(Some("s2".into())),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(rotated.pusher_client_events);
    let off = store
        .update_app(&app_id("chat"), toggle(false))
        .await
        .unwrap();
    assert!(!off.pusher_client_events);
    assert_eq!(store.list_apps(None).await.unwrap(), vec![off]);
}

// ---- dashboard accounts and sessions ----

fn dashboard_user(email: &str, role: Role) -> NewDashboardUser {
    NewDashboardUser {
        email: email.into(),
        password_hash: "$argon2id$hash".into(),
        role,
        now: 1_700_000_000,
    }
}

async fn dashboard_users<S: Store + DashboardStore>(store: &S) {
    let op = store
        .create_dashboard_user(dashboard_user("Op@Example.COM", Role::Operator))
        .await
        .unwrap();
    assert_eq!(op.email, "op@example.com", "kept lower-case");
    assert_eq!(op.role, Role::Operator);
    assert_eq!(op.created_at, 1_700_000_000);
    assert_eq!(
        store
            .dashboard_user_by_email("OP@example.com")
            .await
            .unwrap(),
        Some(op.clone())
    );
    assert_eq!(store.dashboard_user_by_email("x@y").await.unwrap(), None);
    assert_eq!(
        store
            .create_dashboard_user(dashboard_user("op@example.com", Role::Operator))
            .await,
        Err(StoreError::Conflict("dashboard user op@example.com".into()))
    );
    assert_eq!(
        store
            .create_dashboard_user(dashboard_user("t@x", Role::Tenant("nope".into())))
            .await,
        Err(StoreError::NotFound("tenant nope".into()))
    );
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let ann = store
        .create_dashboard_user(dashboard_user("ann@acme", Role::Tenant("acme".into())))
        .await
        .unwrap();
    assert_eq!(ann.role, Role::Tenant("acme".into()));
    assert!(
        !format!("{ann:?}").contains("argon2"),
        "Debug leaves the hash out"
    );
}

async fn dashboard_sessions<S: Store + DashboardStore>(store: &S) {
    let user = store
        .create_dashboard_user(dashboard_user("op@x", Role::Operator))
        .await
        .unwrap();
    let session = |hash: &str, expires_at| DashboardSession {
        token_hash: hash.into(),
        user_id: user.id.clone(),
        csrf_token: format!("csrf-{hash}"),
        created_at: 100,
        expires_at,
    };
    store
        .create_dashboard_session(session("live", 200))
        .await
        .unwrap();
    store
        .create_dashboard_session(session("old", 150))
        .await
        .unwrap();
    let (s, u) = store.dashboard_session("live", 199).await.unwrap().unwrap();
    assert_eq!(s, session("live", 200));
    assert_eq!(u, user);
    assert_eq!(
        store.dashboard_session("live", 200).await.unwrap(),
        None,
        "expired at 200"
    );
    assert_eq!(
        store.dashboard_session("live", 199).await.unwrap(),
        None,
        "and deleted"
    );
    assert_eq!(store.dashboard_session("nope", 0).await.unwrap(), None);

    assert_eq!(
        store.delete_expired_dashboard_sessions(160).await.unwrap(),
        1
    );
    store
        .create_dashboard_session(session("a", 1000))
        .await
        .unwrap();
    store.delete_dashboard_session("a").await.unwrap();
    store.delete_dashboard_session("a").await.unwrap();
    assert_eq!(store.dashboard_session("a", 0).await.unwrap(), None);

    // A new password ends every session of the user.
    store
        .create_dashboard_session(session("b", 1000))
        .await
        .unwrap();
    store
        .set_dashboard_password("OP@x", "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(store.dashboard_session("b", 0).await.unwrap(), None);
    assert_eq!(
        store
            .dashboard_user_by_email("op@x")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert_eq!(
        store.set_dashboard_password("no@x", "h").await,
        Err(StoreError::NotFound("dashboard user no@x".into()))
    );
}

async fn dashboard_users_go_with_their_tenant<S: Store + DashboardStore>(store: &S) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    let ann = store
        .create_dashboard_user(dashboard_user("ann@acme", Role::Tenant("acme".into())))
        .await
        .unwrap();
    store
        .create_dashboard_session(DashboardSession {
            token_hash: "t".into(),
            user_id: ann.id,
            csrf_token: "c".into(),
            created_at: 0,
            expires_at: i64::MAX,
        })
        .await
        .unwrap();
    store.delete_tenant("acme").await.unwrap();
    assert_eq!(
        store.dashboard_user_by_email("ann@acme").await.unwrap(),
        None
    );
    assert_eq!(store.dashboard_session("t", 0).await.unwrap(), None);
}

// ---- dashboard invitations and tenants' admin tokens ----

fn invitation(hash: &str, email: &str, tenant: &str, expires_at: i64) -> DashboardInvitation {
    DashboardInvitation {
        token_hash: hash.into(),
        email: email.into(),
        tenant_id: tenant.into(),
        created_at: 100,
        expires_at,
    }
}

async fn dashboard_invitations_are_single_use_and_expire<S: Store + DashboardStore>(store: &S) {
    assert_eq!(
        store
            .create_dashboard_invitation(invitation("h0", "x@y", "nope", 200))
            .await,
        Err(StoreError::NotFound("tenant nope".into()))
    );
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store
        .create_dashboard_invitation(invitation("h1", "Ann@Acme", "acme", 200))
        .await
        .unwrap();
    assert_eq!(
        store.dashboard_invitation("h1", 150).await.unwrap(),
        Some(invitation("h1", "ann@acme", "acme", 200)),
        "email kept lower-case"
    );
    let ann = store
        .accept_dashboard_invitation("h1", "$argon2id$ann", 150)
        .await
        .unwrap();
    assert_eq!(ann.email, "ann@acme");
    assert_eq!(ann.role, Role::Tenant("acme".into()));
    assert_eq!(ann.password_hash, "$argon2id$ann");
    assert_eq!(
        store
            .accept_dashboard_invitation("h1", "$argon2id$x", 150)
            .await,
        Err(StoreError::NotFound("dashboard invitation".into())),
        "used once"
    );
    assert_eq!(store.dashboard_invitation("h1", 150).await.unwrap(), None);

    // Expired: refused.
    store
        .create_dashboard_invitation(invitation("h2", "bob@acme", "acme", 200))
        .await
        .unwrap();
    assert_eq!(
        store
            .accept_dashboard_invitation("h2", "$argon2id$x", 200)
            .await,
        Err(StoreError::NotFound("dashboard invitation".into()))
    );
    assert_eq!(store.dashboard_invitation("h2", 200).await.unwrap(), None);
    assert_eq!(
        store.dashboard_invitation("h2", 0).await.unwrap(),
        None,
        "and deleted once read expired"
    );

    // An email with an account meanwhile: a conflict, and the invitation is kept.
    store
        .create_dashboard_invitation(invitation("h3", "ann@acme", "acme", 200))
        .await
        .unwrap();
    assert_eq!(
        store
            .accept_dashboard_invitation("h3", "$argon2id$x", 150)
            .await,
        Err(StoreError::Conflict("dashboard user ann@acme".into()))
    );
    assert!(store
        .dashboard_invitation("h3", 150)
        .await
        .unwrap()
        .is_some());

    // Deleting the tenant deletes its invitations.
    store.delete_tenant("acme").await.unwrap();
    assert_eq!(store.dashboard_invitation("h3", 150).await.unwrap(), None);
    assert_eq!(store.list_dashboard_users(None).await.unwrap(), vec![]);
}

async fn admin_tokens_by_hash_owner_and_tenant<S: Store + DashboardStore>(store: &S) {
    store.create_tenant(tenant("acme", "Acme")).await.unwrap();
    store
        .create_tenant(tenant("globex", "Globex"))
        .await
        .unwrap();
    let ann = store
        .create_dashboard_user(dashboard_user("ann@acme", Role::Tenant("acme".into())))
        .await
        .unwrap();
    let gus = store
        .create_dashboard_user(dashboard_user("gus@globex", Role::Tenant("globex".into())))
        .await
        .unwrap();
    assert_eq!(
        store.list_dashboard_users(Some("acme")).await.unwrap(),
        vec![ann.clone()]
    );
    assert_eq!(store.list_dashboard_users(None).await.unwrap().len(), 2);
    let token = |id: &str, user: &str, tenant: &str, at| AdminToken {
        id: id.into(),
        token_hash: format!("hash-{id}"),
        prefix: "wat_abcd".into(),
        label: Some(format!("label {id}")),
        user_id: user.into(),
        tenant_id: tenant.into(),
        created_at: at,
    };
    store
        .create_admin_token(token("a2", &ann.id, "acme", 20))
        .await
        .unwrap();
    store
        .create_admin_token(token("a1", &ann.id, "acme", 10))
        .await
        .unwrap();
    store
        .create_admin_token(token("g1", &gus.id, "globex", 10))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_admin_token(token("a1", &ann.id, "acme", 10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_admin_token(token("x", "no-user", "acme", 10))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.admin_token_by_hash("hash-a1").await.unwrap(),
        Some(token("a1", &ann.id, "acme", 10))
    );
    assert_eq!(store.admin_token_by_hash("hash-none").await.unwrap(), None);
    let ids = |v: Vec<AdminToken>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_admin_tokens(&ann.id).await.unwrap()),
        ["a1", "a2"],
        "oldest first"
    );
    // Only the owner deletes a token.
    assert_eq!(
        store.delete_admin_token(&gus.id, "a1").await,
        Err(StoreError::NotFound("admin token a1".into()))
    );
    store.delete_admin_token(&ann.id, "a1").await.unwrap();
    assert_eq!(store.admin_token_by_hash("hash-a1").await.unwrap(), None);
    // Tokens go with their tenant.
    store.delete_tenant("acme").await.unwrap();
    assert_eq!(store.admin_token_by_hash("hash-a2").await.unwrap(), None);
    assert!(store
        .admin_token_by_hash("hash-g1")
        .await
        .unwrap()
        .is_some());
}
