//! Where the Pusher front tells webhooks what happened. Channel occupancy and presence members
//! are reported by the gateway's presence for every front alike ([`crate::webhooks`]); these
//! are the Pusher-only events.

use crate::gateway::Gateway;
use serde_json::value::RawValue;
use waas_core::app::App;
use waas_core::webhooks::report::Publisher;
use waas_protocol::ChannelName;

/// A client event was published: reported as a client publish (the `publish` report with its
/// `client`), which the app's webhook endpoints receive when they ask for client publishes
/// (`docs/webhooks.md`); `user_id` is the presence member, else empty.
#[allow(clippy::too_many_arguments)]
pub fn client_event(
    gw: &Gateway,
    app: &App,
    channel: &ChannelName,
    event: &str,
    data: &RawValue,
    offset: u64,
    socket_id: &str,
    user_id: Option<&str>,
) {
    let client = Publisher {
        user_id: user_id.unwrap_or_default().to_owned(),
        connection_id: socket_id.to_owned(),
    };
    gw.reporter
        .published(app, channel, event, data, offset, Some(client));
}

/// A Pusher client subscribed to a cache channel with nothing to replay. No webhook report
/// kind carries this yet (Pusher's `cache_miss` webhook comes with the Pusher webhooks), so it
/// is counted in the logs only.
pub fn cache_miss(_gw: &Gateway, app: &App, channel: &ChannelName) {
    tracing::debug!(app = %app.id(), %channel, "pusher cache miss");
}
