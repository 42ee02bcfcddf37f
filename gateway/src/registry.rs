//! The apps this gateway serves: a cache in front of the control-plane's directory.
//!
//! Lookups are a read-lock and an `Arc` clone. An unknown app is fetched once over the bus; a
//! change notice has a cached app read again, or removed, at once (key rotation, deletion: the
//! notice names the app, its secrets travel only in answers to this gateway); entries older than
//! `refresh_after` are refreshed in the background while the cached copy keeps serving — so a
//! gateway keeps serving known apps while the control-plane is down.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use waas_core::app::{App, AppConfig};
use waas_core::auth::AuthError;
use waas_core::bus::Bus;
use waas_core::directory::{query_subject, AppAnswer, AppChanged, AppQuery};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("app directory unavailable: {0}")]
    Unavailable(String),
}

enum Known {
    App(Arc<App>),
    Missing,
}

struct Entry {
    known: Known,
    fetched: Instant,
    refreshing: bool,
    /// A change notice named this app and its new definition is being read: lookups read it
    /// too rather than serve the old one, so a revoked key or secret stops working as soon as
    /// the notice has arrived, not one directory round trip later.
    stale: bool,
}

/// Where unknown apps are fetched from.
pub struct Directory {
    pub bus: Arc<dyn Bus>,
    pub prefix: String,
    pub timeout: Duration,
}

/// Entries beyond which "no such app" answers are no longer cached.
const MAX_ENTRIES: usize = 100_000;

pub struct AppRegistry {
    /// Keyed by the id's string so a lookup from a URL path needs no allocation.
    entries: RwLock<HashMap<String, Entry>>,
    directory: Option<Directory>,
    refresh_after: Duration,
    /// How long "no such app" is believed before asking again.
    missing_ttl: Duration,
    /// This gateway's usage counters; each app is built with its own.
    usage: Arc<waas_core::usage::Usage>,
}

impl AppRegistry {
    /// A registry that knows only what is put into it.
    pub fn fixed() -> Self {
        Self::new(None, Duration::MAX, Duration::MAX)
    }

    pub fn new(
        directory: Option<Directory>,
        refresh_after: Duration,
        missing_ttl: Duration,
    ) -> Self {
        AppRegistry {
            entries: RwLock::default(),
            directory,
            refresh_after,
            missing_ttl,
            usage: Arc::default(),
        }
    }

    /// The usage counters of every app this gateway serves (`crate::usage_report`).
    pub fn usage(&self) -> &Arc<waas_core::usage::Usage> {
        &self.usage
    }

    /// The cached app, without asking anyone.
    pub fn cached(&self, id: &str) -> Option<Arc<App>> {
        match self.entries.read().expect("registry poisoned").get(id) {
            Some(Entry {
                known: Known::App(app),
                ..
            }) => Some(Arc::clone(app)),
            _ => None,
        }
    }

    /// The app `id`, fetched from the directory when not cached. `Ok(None)`: no such app.
    pub async fn resolve(self: &Arc<Self>, id: &str) -> Result<Option<Arc<App>>, RegistryError> {
        // Ids that cannot exist are refused here: asking the directory about them, or caching
        // "missing" for every string a client puts in a URL, would let anyone grow the cache.
        if waas_protocol::AppId::parse(id).is_err() {
            return Ok(None);
        }
        let mut refresh = false;
        let mut stale = None;
        {
            let mut entries = self.entries.write().expect("registry poisoned");
            if let Some(entry) = entries.get_mut(id) {
                let age = entry.fetched.elapsed();
                match &entry.known {
                    Known::App(app) if entry.stale => stale = Some(Arc::clone(app)),
                    Known::App(app) => {
                        let app = Arc::clone(app);
                        if age >= self.refresh_after
                            && !entry.refreshing
                            && self.directory.is_some()
                        {
                            entry.refreshing = true;
                            refresh = true;
                        }
                        if refresh {
                            let me = Arc::clone(self);
                            let id = id.to_owned();
                            tokio::spawn(async move { me.refresh(&id).await });
                        }
                        return Ok(Some(app));
                    }
                    Known::Missing if age < self.missing_ttl => return Ok(None),
                    Known::Missing => {}
                }
            }
        }
        match (self.fetch(id).await, stale) {
            // The directory is away: the cached copy keeps serving, as it does for refreshes.
            (Err(_), Some(cached)) => Ok(Some(cached)),
            (answer, _) => answer,
        }
    }

    async fn refresh(&self, id: &str) {
        if let Err(e) = self.fetch(id).await {
            tracing::warn!(app = id, error = %e, "refreshing app failed; keeping the cached copy");
            if let Some(entry) = self.entries.write().expect("registry poisoned").get_mut(id) {
                entry.refreshing = false;
                entry.fetched = Instant::now();
            }
        }
    }

    async fn fetch(&self, id: &str) -> Result<Option<Arc<App>>, RegistryError> {
        let Some(dir) = &self.directory else {
            return Ok(None);
        };
        let query = serde_json::to_vec(&AppQuery { id: id.to_owned() }).expect("query serialises");
        let reply = dir
            .bus
            .request(&query_subject(&dir.prefix), Bytes::from(query), dir.timeout)
            .await
            .map_err(|e| RegistryError::Unavailable(e.to_string()))?;
        let answer: AppAnswer = serde_json::from_slice(&reply)
            .map_err(|e| RegistryError::Unavailable(format!("bad directory answer: {e}")))?;
        if let Some(error) = answer.error {
            return Err(RegistryError::Unavailable(error));
        }
        match answer.app {
            Some(config) => self
                .upsert(config)
                .map(Some)
                .map_err(|e| RegistryError::Unavailable(e.to_string())),
            None => {
                let mut entries = self.entries.write().expect("registry poisoned");
                if entries.len() >= MAX_ENTRIES {
                    // Unknown ids pile up only if clients try many of them: forget the stale
                    // ones, and stop remembering new ones while the cache is this large.
                    let ttl = self.missing_ttl;
                    entries.retain(|_, e| {
                        !matches!(e.known, Known::Missing) || e.fetched.elapsed() < ttl
                    });
                }
                if entries.len() < MAX_ENTRIES {
                    entries.insert(
                        id.to_owned(),
                        Entry {
                            known: Known::Missing,
                            fetched: Instant::now(),
                            refreshing: false,
                            stale: false,
                        },
                    );
                }
                Ok(None)
            }
        }
    }

    /// Adds or replaces an app, keeping its connection count. An update older than the cached
    /// version is ignored, so a late reply cannot undo a newer change event.
    pub fn upsert(&self, config: AppConfig) -> Result<Arc<App>, AuthError> {
        let mut entries = self.entries.write().expect("registry poisoned");
        let previous = match entries.get(config.id.as_str()) {
            Some(Entry {
                known: Known::App(app),
                ..
            }) => Some(Arc::clone(app)),
            _ => None,
        };
        if let Some(prev) = &previous {
            if prev.config.version > config.version {
                return Ok(Arc::clone(prev));
            }
        }
        let counters = self.usage.app(&config.id);
        let app = Arc::new(App::new(config, previous.as_deref())?.with_usage(counters));
        entries.insert(
            app.config.id.as_str().to_owned(),
            Entry {
                known: Known::App(Arc::clone(&app)),
                fetched: Instant::now(),
                refreshing: false,
                stale: false,
            },
        );
        Ok(app)
    }

    /// Follows a change notice; returns true when the app is gone (deleted, or no longer known
    /// to the directory), so its connections are to be closed.
    ///
    /// A cached app is read again from the directory now (the notice says nothing of what
    /// changed); if that fails the cached copy keeps serving until the next refresh. A cached
    /// "no such app" is dropped, so the next lookup asks. Apps this gateway never looked up are
    /// not fetched: a gateway caches only the apps its clients use.
    pub async fn follow(&self, change: &AppChanged) -> bool {
        let id = change.id.as_str();
        if change.deleted {
            self.forget(id);
            return true;
        }
        let cached = {
            let mut entries = self.entries.write().expect("registry poisoned");
            match entries.get_mut(id) {
                Some(
                    entry @ Entry {
                        known: Known::App(_),
                        ..
                    },
                ) => {
                    entry.stale = true;
                    true
                }
                Some(Entry {
                    known: Known::Missing,
                    ..
                }) => {
                    entries.remove(id);
                    false
                }
                None => false,
            }
        };
        if !cached {
            return false;
        }
        match self.fetch(id).await {
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(app = id, error = %e, "reading a changed app failed; keeping the cached copy");
                if let Some(entry) = self.entries.write().expect("registry poisoned").get_mut(id) {
                    entry.stale = false;
                }
                false
            }
        }
    }

    /// Marks `id` as missing (deleted), so lookups answer "no such app" at once.
    fn forget(&self, id: &str) {
        self.entries.write().expect("registry poisoned").insert(
            id.to_owned(),
            Entry {
                known: Known::Missing,
                fetched: Instant::now(),
                refreshing: false,
                stale: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use waas_core::bus::memory::MemoryBus;

    /// A directory that knows no app and counts the questions it gets.
    async fn empty_directory(bus: Arc<MemoryBus>) -> Arc<AtomicUsize> {
        let asked = Arc::new(AtomicUsize::new(0));
        let mut requests = bus.serve(&query_subject("t"), None).await.unwrap();
        let counter = Arc::clone(&asked);
        tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_vec(&AppAnswer {
                    app: None,
                    error: None,
                })
                .unwrap();
                bus.publish(&req.reply.unwrap(), Bytes::from(body))
                    .await
                    .unwrap();
            }
        });
        asked
    }

    #[tokio::test]
    async fn impossible_ids_are_not_asked_and_missing_ones_are_cached() {
        let bus = Arc::new(MemoryBus::new(16));
        let asked = empty_directory(Arc::clone(&bus)).await;
        let registry = Arc::new(AppRegistry::new(
            Some(Directory {
                bus: bus as Arc<dyn Bus>,
                prefix: "t".into(),
                timeout: Duration::from_secs(2),
            }),
            Duration::from_secs(30),
            Duration::from_secs(60),
        ));
        assert!(registry.resolve("not a valid id!").await.unwrap().is_none());
        assert!(registry.resolve(&"x".repeat(500)).await.unwrap().is_none());
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        assert!(registry.resolve("ghost").await.unwrap().is_none());
        assert!(registry.resolve("ghost").await.unwrap().is_none());
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "second lookup served from the cache"
        );
    }
}
