//! Publishing: encode a message's `message` frame once and hand it to the history, which gives
//! it its channel offset and delivers it. Shared by WebSocket `publish` and the REST API so both
//! behave the same.
//!
//! [`Publisher::publish`] returns once the message is stored. [`Publisher::start`] is for
//! pipelines (a batch, or a connection's publishes back to back): it returns once the message is
//! handed to storage, in call order, with a [`Pending`] that resolves when it is stored, so that
//! many can be in flight and each is still acknowledged only after storage.

use crate::app::App;
use crate::bus::{Bus, BusError};
use crate::history::{Head, History, Policy};
use crate::time::now_ms;
use futures_util::future::BoxFuture;
use serde_json::value::RawValue;
use std::sync::Arc;
use waas_protocol::names::channel_subject;
use waas_protocol::{AppId, ChannelName};

/// Longest event name accepted, in bytes.
pub const MAX_EVENT_LEN: usize = 200;

/// Why an event name was refused.
pub fn check_event(event: &str) -> Result<(), String> {
    if event.is_empty() {
        Err("\"event\" must not be empty".into())
    } else if event.len() > MAX_EVENT_LEN {
        Err(format!("\"event\" is longer than {MAX_EVENT_LEN} bytes"))
    } else {
        Ok(())
    }
}

/// A publish handed to storage: resolves with the message's offset once it is stored.
pub type Pending = BoxFuture<'static, Result<u64, BusError>>;

pub struct Publisher {
    history: Arc<dyn History>,
    prefix: String,
    /// History kept for apps that set no policy of their own.
    default_policy: Policy,
}

impl Publisher {
    pub fn new(history: Arc<dyn History>, prefix: String, default_policy: Policy) -> Self {
        Publisher {
            history,
            prefix,
            default_policy,
        }
    }

    pub fn subject(&self, app: &AppId, channel: &ChannelName) -> String {
        channel_subject(&self.prefix, app, channel)
    }

    /// The history `channel` of `app` keeps: its namespace's rule, else the app's limits, else
    /// the gateway's.
    pub fn policy(&self, app: &App, channel: &ChannelName) -> Policy {
        Policy::resolve(self.default_policy, &app.config.limits, Some(channel))
    }

    /// Publishes one message and returns its offset in the channel.
    pub async fn publish(
        &self,
        app: &App,
        channel: &ChannelName,
        event: &str,
        data: &RawValue,
    ) -> Result<u64, BusError> {
        self.publish_head(
            app,
            channel,
            &Head::new(channel.as_str(), event, data, now_ms(), false),
        )
        .await
    }

    /// Publishes a message whose frame is already encoded (replays keep their original `ts`).
    pub async fn publish_head(
        &self,
        app: &App,
        channel: &ChannelName,
        head: &Head,
    ) -> Result<u64, BusError> {
        use tracing::Instrument;
        let subject = self.subject(app.id(), channel);
        let offset = self
            .history
            .publish(self.policy(app, channel), &subject, head)
            .instrument(crate::span!("history.publish", channel = channel.as_str()))
            .await?;
        counted(app);
        Ok(offset)
    }

    /// Starts publishing one message: returns once it is handed to storage, after every
    /// message started before it on this gateway's connection to storage; the [`Pending`]
    /// resolves with its offset once it is stored (`History::start_publish`). Awaiting one
    /// `start` before calling the next keeps a pipeline's messages in order.
    pub async fn start(
        &self,
        app: &Arc<App>,
        channel: &ChannelName,
        event: &str,
        data: &RawValue,
    ) -> Result<Pending, BusError> {
        use tracing::Instrument;
        let head = Head::new(channel.as_str(), event, data, now_ms(), false);
        let subject = self.subject(app.id(), channel);
        let stored = self
            .history
            .start_publish(self.policy(app, channel), &subject, &head)
            .instrument(crate::span!("history.publish", channel = channel.as_str()))
            .await?;
        let app = Arc::clone(app);
        Ok(Box::pin(async move {
            let offset = stored.await?;
            counted(&app);
            Ok(offset)
        }))
    }

    pub fn history(&self) -> &Arc<dyn History> {
        &self.history
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        self.history.bus()
    }
}

/// A stored publish, in the gateway's and the app's counters.
fn counted(app: &App) {
    crate::metrics::METRICS.published.inc();
    app.metrics().published.inc();
    if let Some(usage) = app.usage() {
        usage.published();
    }
}
