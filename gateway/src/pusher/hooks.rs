//! Where the Pusher front tells webhooks what happened. Channel occupancy and presence members
//! are reported by the gateway's presence for every front alike ([`crate::webhooks`]); these
//! are the Pusher-only events.

use crate::gateway::Gateway;
use serde_json::value::RawValue;
use waas_core::app::App;
use waas_protocol::ChannelName;

/// A client event was published: reported as a client publish (the `publish` report with its
/// `client`), which the app's webhook endpoints receive when they ask for client publishes, and
/// as Pusher's `client_event` to Pusher-format endpoints (`docs/webhooks.md`); `user_id` is the
/// presence member, else empty.
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
    gw.reporter.client_event(
        app,
        channel,
        event,
        data,
        offset,
        user_id.unwrap_or_default(),
        socket_id,
    );
}

/// A Pusher client subscribed to a cache channel with nothing to replay: Pusher's `cache_miss`
/// webhook.
pub fn cache_miss(gw: &Gateway, app: &App, channel: &ChannelName) {
    gw.reporter.cache_miss(app, channel);
}
