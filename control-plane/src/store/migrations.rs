//! Schema migrations, embedded in the binary so that a single `waas` executable can create or
//! upgrade its database without shipping SQL files beside it.
//!
//! Each store applies its list in order, one transaction per migration, and records each applied
//! `version` in a `schema_migrations` table. Migrations are never edited once released: a change
//! is a new file with the next number. Files live in `migrations/<store>/NNNN_name.sql` at the
//! workspace root; a unit test below fails when a file is there but not listed here.

/// One SQL file from `migrations/<store>/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `NNNN` of the file name; strictly increasing along a list.
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Migrations of [`super::postgres::PostgresStore`], in order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "webhooks",
        sql: include_str!("../../../migrations/postgres/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        name: "recordings",
        sql: include_str!("../../../migrations/postgres/0003_recordings.sql"),
    },
    Migration {
        version: 4,
        name: "routes",
        sql: include_str!("../../../migrations/postgres/0004_routes.sql"),
    },
    Migration {
        version: 5,
        name: "e2ee",
        sql: include_str!("../../../migrations/postgres/0005_e2ee.sql"),
    },
    Migration {
        version: 6,
        name: "origins",
        sql: include_str!("../../../migrations/postgres/0006_origins.sql"),
    },
    Migration {
        version: 7,
        name: "webhook_response_body",
        sql: include_str!("../../../migrations/postgres/0007_webhook_response_body.sql"),
    },
    Migration {
        version: 8,
        name: "webhook_format",
        sql: include_str!("../../../migrations/postgres/0008_webhook_format.sql"),
    },
    Migration {
        version: 9,
        name: "pusher",
        sql: include_str!("../../../migrations/postgres/0009_pusher.sql"),
    },
    Migration {
        version: 10,
        name: "dashboard",
        sql: include_str!("../../../migrations/postgres/0010_dashboard.sql"),
    },
    Migration {
        version: 11,
        name: "usage",
        sql: include_str!("../../../migrations/postgres/0011_usage.sql"),
    },
    Migration {
        version: 12,
        name: "dashboard_access",
        sql: include_str!("../../../migrations/postgres/0012_dashboard_access.sql"),
    },
];

/// Migrations of [`super::sqlite::SqliteStore`], in order.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "webhooks",
        sql: include_str!("../../../migrations/sqlite/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        name: "recordings",
        sql: include_str!("../../../migrations/sqlite/0003_recordings.sql"),
    },
    Migration {
        version: 4,
        name: "routes",
        sql: include_str!("../../../migrations/sqlite/0004_routes.sql"),
    },
    Migration {
        version: 5,
        name: "e2ee",
        sql: include_str!("../../../migrations/sqlite/0005_e2ee.sql"),
    },
    Migration {
        version: 6,
        name: "origins",
        sql: include_str!("../../../migrations/sqlite/0006_origins.sql"),
    },
    Migration {
        version: 7,
        name: "webhook_response_body",
        sql: include_str!("../../../migrations/sqlite/0007_webhook_response_body.sql"),
    },
    Migration {
        version: 8,
        name: "webhook_format",
        sql: include_str!("../../../migrations/sqlite/0008_webhook_format.sql"),
    },
    Migration {
        version: 9,
        name: "pusher",
        sql: include_str!("../../../migrations/sqlite/0009_pusher.sql"),
    },
    Migration {
        version: 10,
        name: "dashboard",
        sql: include_str!("../../../migrations/sqlite/0010_dashboard.sql"),
    },
    Migration {
        version: 11,
        name: "usage",
        sql: include_str!("../../../migrations/sqlite/0011_usage.sql"),
    },
    Migration {
        version: 12,
        name: "dashboard_access",
        sql: include_str!("../../../migrations/sqlite/0012_dashboard_access.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Every `NNNN_name.sql` in `migrations/<store>/`, in file-name order, as (version, name, sql).
    fn on_disk(store: &str) -> Vec<(i32, String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(store);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let stem = path.file_stem().unwrap().to_str().unwrap();
                let (version, name) = stem
                    .split_once('_')
                    .unwrap_or_else(|| panic!("{stem}: expected NNNN_name.sql"));
                assert_eq!(version.len(), 4, "{stem}: expected a four-digit version");
                let sql = std::fs::read_to_string(path).unwrap();
                (version.parse().unwrap(), name.to_owned(), sql)
            })
            .collect()
    }

    fn check(store: &str, listed: &[Migration]) {
        let listed: Vec<_> = listed
            .iter()
            .map(|m| (m.version, m.name.to_owned(), m.sql.to_owned()))
            .collect();
        assert_eq!(
            listed,
            on_disk(store),
            "migrations/{store} and its list differ"
        );
        // Strictly increasing, not necessarily contiguous: numbers are reserved per feature
        // (0002 webhooks, 0003 history, 0004 routes) and may land in any order. Each is applied
        // by its own version, so a gap filled later is still applied.
        assert_eq!(
            listed.first().map(|m| m.0),
            Some(1),
            "the first version is 1"
        );
        for pair in listed.windows(2) {
            assert!(pair[0].0 < pair[1].0, "versions must increase: {pair:?}");
        }
    }

    #[test]
    fn postgres_list_matches_files() {
        check("postgres", POSTGRES);
    }

    #[test]
    fn sqlite_list_matches_files() {
        check("sqlite", SQLITE);
    }
}
