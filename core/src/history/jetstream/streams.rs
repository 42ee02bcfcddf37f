//! Where a channel's history is kept in JetStream: which stream (its app's, or its
//! namespace's), what the stream captures and keeps, and making sure it exists as the app's
//! policy says. Split from the reads and the live path (`mod.rs`), which use it on every publish.

use super::{unavailable, AppStream, JetStreamHistory, RECORD_MAX_AGE};
use crate::history::stream_names;
use crate::history::{HistoryError, Policy};
use async_nats::jetstream::stream::{self, DiscardPolicy, Republish, RetentionPolicy, StorageType};
use std::sync::Arc;

/// Where a channel's history is kept: its app's stream, or its namespace's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place<'a> {
    pub(super) app: &'a str,
    pub(super) namespace: Option<&'a str>,
}

impl Place<'_> {
    /// The subject token that tells an app's history subjects from a namespace's.
    fn token(&self) -> &'static str {
        if self.namespace.is_some() {
            "~hn"
        } else {
            "~h"
        }
    }

    /// The place's key among the streams this gateway knows: the app id, or `app.namespace`
    /// (app ids have no dots). Cheap, since it is looked up on every publish; the stream's name
    /// (hashed for namespaces) is made only when the stream is created.
    pub(super) fn cache_key(&self) -> std::borrow::Cow<'_, str> {
        match self.namespace {
            None => std::borrow::Cow::Borrowed(self.app),
            Some(ns) => std::borrow::Cow::Owned(format!("{}.{ns}", self.app)),
        }
    }
}

impl JetStreamHistory {
    pub(super) fn stream_name(&self, place: Place<'_>) -> String {
        match place.namespace {
            None => stream_names::history(&self.prefix, place.app),
            Some(ns) => stream_names::namespace(&self.prefix, place.app, ns),
        }
    }

    /// `{prefix}.~h.{app}` or `{prefix}.~hn.{app}`: where the place's history subjects start.
    pub(super) fn history_base(&self, place: Place<'_>) -> String {
        format!("{}.{}.{}", self.prefix, place.token(), place.app)
    }

    /// The subjects a stream captures, without the trailing `.>`.
    pub(super) fn ingest_root(&self, place: Place<'_>) -> String {
        match place.namespace {
            None => self.history_base(place),
            Some(ns) => format!("{}.{ns}", self.history_base(place)),
        }
    }

    /// Where a channel's messages go to be stored: under the ingest root, since a namespaced
    /// channel starts with its namespace. Made on every publish, so in one piece.
    pub(super) fn history_subject(&self, place: Place<'_>, channel: &str) -> String {
        format!("{}.{}.{}.{channel}", self.prefix, place.token(), place.app)
    }

    pub(super) fn config(&self, place: Place<'_>, policy: Policy) -> stream::Config {
        let root = self.ingest_root(place);
        let (destination, description) = match place.namespace {
            None => (
                format!("{}.{}.>", self.prefix, place.app),
                format!("WaaS channel history of app {}", place.app),
            ),
            Some(ns) => (
                format!("{}.{}.{ns}.>", self.prefix, place.app),
                format!(
                    "WaaS channel history of namespace {ns} of app {}",
                    place.app
                ),
            ),
        };
        stream::Config {
            name: self.stream_name(place),
            subjects: vec![format!("{root}.>")],
            max_messages_per_subject: policy.size as i64,
            max_age: policy.ttl,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            allow_direct: true,
            republish: Some(Republish {
                source: format!("{root}.>"),
                destination,
                headers_only: false,
            }),
            description: Some(description),
            ..Default::default()
        }
    }

    /// The place's stream, created or brought to `policy` when needed. Fails at once while NATS
    /// is disconnected, rather than waiting out JetStream's timeouts.
    pub(super) async fn ensure(
        &self,
        place: Place<'_>,
        policy: Policy,
    ) -> Result<Arc<AppStream>, HistoryError> {
        self.nats.check_connected()?;
        let key = place.cache_key();
        if let Some(s) = self.known(&key, policy) {
            return Ok(s);
        }
        // One caller at a time per place: the others wait for its answer and find it cached.
        let gate = Arc::clone(
            self.ensuring
                .lock()
                .expect("ensuring poisoned")
                .entry(key.clone().into_owned())
                .or_default(),
        );
        let result = {
            let _turn = gate.lock().await;
            match self.known(&key, policy) {
                Some(s) => Ok(s),
                None => self.make(place, policy).await,
            }
        };
        let mut ensuring = self.ensuring.lock().expect("ensuring poisoned");
        if ensuring
            .get(key.as_ref())
            .is_some_and(|g| Arc::ptr_eq(g, &gate))
            && Arc::strong_count(&gate) == 2
        {
            ensuring.remove(key.as_ref());
        }
        result
    }

    /// The place's stream as last ensured, if with `policy`.
    fn known(&self, key: &str, policy: Policy) -> Option<Arc<AppStream>> {
        self.streams
            .lock()
            .expect("streams poisoned")
            .get(key)
            .filter(|s| s.policy == policy)
            .cloned()
    }

    /// Creates the place's stream or brings it to `policy`, and caches it.
    async fn make(&self, place: Place<'_>, policy: Policy) -> Result<Arc<AppStream>, HistoryError> {
        let key = place.cache_key();
        let mut config = self.config(place, policy);
        let mut stream = match self.js.get_or_create_stream(config.clone()).await {
            Ok(stream) => stream,
            Err(e) => self
                .legacy(place, &config)
                .await
                .ok_or_else(|| unavailable(e))?,
        };
        let current = &stream.cached_info().config;
        // A stream of this name capturing other subjects is another place's: never use it,
        // let alone update it to ours (`stream_names.rs` keeps this from happening but for
        // streams named the old way).
        if current.subjects != config.subjects {
            return Err(HistoryError::Unavailable(format!(
                "JetStream stream {} captures {:?}, not {:?}",
                current.name, current.subjects, config.subjects
            )));
        }
        config.name = current.name.clone();
        if current.max_messages_per_subject != config.max_messages_per_subject
            || current.max_age != config.max_age
        {
            // Another gateway may run with older limits meanwhile; the last update wins, and
            // every gateway converges as the app's change reaches it.
            self.js
                .update_stream(config.clone())
                .await
                .map_err(unavailable)?;
            stream = self
                .js
                .get_stream(&config.name)
                .await
                .map_err(unavailable)?;
        }
        let entry = Arc::new(AppStream { policy, stream });
        self.streams
            .lock()
            .expect("streams poisoned")
            .insert(key.into_owned(), Arc::clone(&entry));
        Ok(entry)
    }

    /// The namespace's stream under its former name, when one exists capturing exactly the
    /// namespace's subjects (`stream_names.rs`): creating the stream under its new name fails
    /// then, since a subject belongs to one stream only.
    pub(super) async fn legacy(
        &self,
        place: Place<'_>,
        config: &stream::Config,
    ) -> Option<stream::Stream> {
        let ns = place.namespace?;
        let name = stream_names::legacy_namespace(&self.prefix, place.app, ns);
        let stream = self.js.get_stream(&name).await.ok()?;
        (stream.cached_info().config.subjects == config.subjects).then_some(stream)
    }

    /// The app's recording stream: it captures the channels' subjects, where the history stream
    /// republishes every message as it stores it, so each message is in it before anyone
    /// receives it, whether or not a recorder runs; it keeps each (interest retention) until every
    /// recorder's consumer has acknowledged it, whatever the history limits drop meanwhile.
    pub(super) async fn record_stream(&self, app: &str) -> Result<stream::Stream, HistoryError> {
        let name = stream_names::record(&self.prefix, app);
        if let Ok(stream) = self.js.get_stream(&name).await {
            return Ok(stream);
        }
        self.js
            .get_or_create_stream(stream::Config {
                name,
                subjects: vec![format!("{}.{app}.>", self.prefix)],
                retention: RetentionPolicy::Interest,
                storage: StorageType::File,
                discard: DiscardPolicy::Old,
                max_age: RECORD_MAX_AGE,
                description: Some(format!("WaaS recordings of app {app}")),
                ..Default::default()
            })
            .await
            .map_err(unavailable)
    }

    pub(super) fn forget(&self, place: Place<'_>) {
        let key = place.cache_key();
        self.streams
            .lock()
            .expect("streams poisoned")
            .remove(key.as_ref());
    }
}
