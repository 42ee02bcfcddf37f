//! What the store contract suites share: each case run against both stores, the PostgreSQL
//! schema a case gets to itself, and an app to hang rows on.

#![allow(dead_code)] // each suite uses its own part of this

use std::future::Future;
use waas_control_plane::store::{NewApp, NewTenant, PostgresStore, SqliteStore, Store};
use waas_protocol::AppId;

/// Runs each named case (an `async fn(&S)` of the including file) once against SQLite (a file in
/// a temporary directory) and once against PostgreSQL (a schema of its own, dropped after).
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::common::sqlite_store();
                    super::$case(&store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    super::common::with_postgres(|store| async move { super::$case(&store).await })
                        .await;
                }
            )*
        }
    };
}
pub(crate) use store_suite;

pub fn app_id(id: &str) -> AppId {
    AppId::parse(id).unwrap()
}

/// Creates the app `id` (in the tenant `t`, made when missing) with no keys and default limits.
pub async fn create_app(store: &dyn Store, id: &str) {
    let _ = store
        .create_tenant(NewTenant {
            id: Some("t".into()),
            name: "T".into(),
        })
        .await;
    store
        .create_app(NewApp {
            id: app_id(id),
            tenant_id: "t".into(),
            name: id.into(),
            jwt_secret: None,
            jwt_rsa_public_key: None,
            jwt_ec_public_key: None,
            limits: Default::default(),
            pusher_secret: None,
            pusher_client_events: false,
        })
        .await
        .unwrap();
}

pub fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("waas.db")).unwrap();
    (store, dir)
}

/// Runs `case` against a migrated store in a schema of its own, then drops the schema, also when
/// the case panics (the case runs in a task so the panic can be caught and re-raised after).
pub async fn with_postgres<F, Fut>(case: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let schema = TestSchema::create().await;
    let store = PostgresStore::connect(&schema.url()).await.unwrap();
    store.migrate().await.unwrap();
    let outcome = tokio::spawn(case(store)).await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A schema with a random name on the test database, and an admin connection to drop it with.
pub struct TestSchema {
    base_url: String,
    name: String,
    admin: tokio_postgres::Client,
}

impl TestSchema {
    pub async fn create() -> Self {
        let base_url = std::env::var("WAAS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let (admin, connection) = tokio_postgres::connect(&base_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test database at {base_url}: {e}"));
        tokio::spawn(connection);
        let name = format!("waas_test_{:016x}", rand::random::<u64>());
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        Self {
            base_url,
            name,
            admin,
        }
    }

    /// The base URL with `search_path` set to this schema.
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base_url, self.name
        )
    }

    pub async fn applied_migrations(&self) -> i64 {
        let sql = format!("SELECT count(*) FROM {}.schema_migrations", self.name);
        self.admin.query_one(&sql, &[]).await.unwrap().get(0)
    }

    pub async fn drop(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}
