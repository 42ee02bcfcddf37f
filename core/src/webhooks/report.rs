//! What gateways tell the control-plane so it can send webhooks, and what they need to know
//! from it. Both sides use these types; the subject is answered by a queue group of
//! control-planes, which reply only once the reports are in the store.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use waas_protocol::presence::Member;
use waas_protocol::{AppId, ChannelName, PatternSet};

/// Subject of [`ReportBatch`] requests, answered with [`ReportAnswer`].
pub fn report_subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "webhooks.report")
}

/// Which publishes an app's webhook endpoints want, so gateways forward only those. Filled by
/// the control-plane from the app's endpoints; the default asks for nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInterest {
    /// Channels whose client publishes go to a `client_event` endpoint.
    #[serde(default)]
    pub client_events: PatternSet,
    /// Channels whose every publish goes to a `message` endpoint.
    #[serde(default)]
    pub messages: PatternSet,
}

impl WebhookInterest {
    pub fn is_empty(&self) -> bool {
        self.client_events.patterns().is_empty() && self.messages.patterns().is_empty()
    }

    /// Whether a publish to `channel` (from a client connection when `from_client`) is wanted.
    pub fn wants(&self, channel: &ChannelName, from_client: bool) -> bool {
        (from_client && self.client_events.allows(channel)) || self.messages.allows(channel)
    }
}

/// The connection a client publish came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// The token's `sub`.
    pub user_id: String,
    pub connection_id: String,
}

/// One thing that happened on a gateway. Externally tagged (`{"publish": {...}}`): serde
/// cannot carry a raw JSON `data` through an internally tagged enum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// On this node, `channel` got its first subscriber (`present`) or lost its last one; with
    /// `member`, that member's first connection joined the presence channel or its last left.
    Presence {
        app: AppId,
        channel: ChannelName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<Member>,
        present: bool,
    },
    /// A message was published (by a client connection when `client` is set).
    Publish {
        /// Unique per gateway process and report (`{node}-{n}`), so a batch sent twice yields
        /// each delivery once.
        id: String,
        app: AppId,
        channel: ChannelName,
        event: String,
        data: Box<RawValue>,
        offset: u64,
        time_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<Publisher>,
    },
    /// A client subscribed to a Pusher cache channel that holds no cached event
    /// (`cache_miss` webhooks). Client events (`client_event`) are [`Report::Publish`] with
    /// `client` set.
    CacheMiss {
        app: AppId,
        channel: ChannelName,
        time_ms: u64,
    },
}

/// A request on [`report_subject`]: what `node` has to say since its last acknowledged batch.
/// An empty batch is a heartbeat: it tells the control-plane the node is alive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportBatch {
    pub node: String,
    pub reports: Vec<Report>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportAnswer {
    /// Set when the reports could not be stored; the gateway sends them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
