//! [`StoreError`], shared by both stores so that callers match one set of kinds.

use waas_protocol::AppId;

/// What went wrong, in kinds a caller can act on (over HTTP: `NotFound` 404, `Conflict` 409,
/// `Backend` 503). The strings name the thing
/// concerned ("app chat", "tenant acme") or carry the backend's message; they are for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    /// Configuration the store refuses (a database URL that does not parse), or stored data it
    /// cannot read back (an app id that no longer parses, limits that no longer deserialize).
    #[error("invalid data: {0}")]
    Invalid(String),
    /// The database could not be reached or failed; retrying later may help.
    #[error("store unavailable: {0}")]
    Backend(String),
}

/// The errors both stores build, worded once so that they read the same whichever store is used.
impl StoreError {
    pub(crate) fn tenant_not_found(id: &str) -> Self {
        Self::NotFound(format!("tenant {id}"))
    }

    pub(crate) fn app_not_found(id: &AppId) -> Self {
        Self::NotFound(format!("app {id}"))
    }

    pub(crate) fn key_not_found(app: &AppId, key_id: &str) -> Self {
        Self::NotFound(format!("api key {key_id} of app {app}"))
    }

    pub(crate) fn tenant_exists(id: &str) -> Self {
        Self::Conflict(format!("tenant {id}"))
    }

    pub(crate) fn app_exists(id: &AppId) -> Self {
        Self::Conflict(format!("app {id}"))
    }

    pub(crate) fn key_id_exists(app: &AppId, key_id: &str) -> Self {
        Self::Conflict(format!("api key {key_id} of app {app}"))
    }

    pub(crate) fn key_hash_exists(app: &AppId) -> Self {
        Self::Conflict(format!("an api key with the same hash in app {app}"))
    }

    /// `Backend` with the whole chain of causes: drivers put the useful part there
    /// (tokio-postgres's "error connecting to server" has "Connection refused" or
    /// `database "x" does not exist` as its source, and deadpool wraps that again).
    pub(crate) fn backend(e: impl std::error::Error) -> Self {
        Self::Backend(chain(&e))
    }
}

/// `e`'s message followed by each cause's, `: `-separated; a cause whose text the message already
/// shows (wrappers often print their source) is not repeated.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
