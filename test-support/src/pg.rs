//! A PostgreSQL schema of its own for each test, dropped afterwards, so tests run in parallel
//! against the machine's one server.

use tokio_postgres::NoTls;

/// The server tests use; `WAAS_TEST_DATABASE_URL` overrides.
pub fn base_url() -> String {
    std::env::var("WAAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct PgSchema {
    pub name: String,
    base: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let base = base_url();
        let name = format!("waas_t_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(&base, NoTls)
            .await
            .expect("connect to the test PostgreSQL (127.0.0.1:5432, trust auth)");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        drop(client);
        let _ = task.await;
        PgSchema { name, base }
    }

    /// A URL whose connections use this schema.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee; a short blocking thread does the cleanup.
        let base = self.base.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&base, NoTls).await {
                    let task = tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                    drop(client);
                    let _ = task.await;
                }
            });
        })
        .join();
    }
}
