//! A batch's messages handed to storage one after another without waiting for each to be
//! stored, then answered once storage has answered them all.
//!
//! Each message is started in order (`Publisher::start`), which is the order storage gives them
//! their offsets in; their acknowledgements are awaited together, so a batch costs about one
//! storage round trip instead of one per message. A message whose start fails (the bus is
//! unreachable) stops the batch: nothing after it is sent. A message whose acknowledgement fails
//! fails alone; those after it were already sent and say for themselves whether they were stored.

use crate::gateway::Gateway;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::Instrument;
use waas_core::app::App;
use waas_core::bus::BusError;
use waas_protocol::rest::{BatchItem, ErrorDetail, PublishRequest};
use waas_protocol::{ChannelName, ErrorCode};

/// A message of the batch on its way to storage: item, channel, and the offset to come.
type Sent = (usize, ChannelName, Result<u64, BusError>);

/// Publishes every item (already validated: `channels[i]` are the channels of `items[i]`) and
/// returns what became of each, in order.
pub async fn publish(
    gw: &Gateway,
    app: &Arc<App>,
    items: &[PublishRequest],
    channels: &[Vec<ChannelName>],
) -> Vec<BatchItem> {
    let mut out: Vec<BatchItem> = items
        .iter()
        .map(|_| BatchItem {
            offsets: BTreeMap::new(),
            error: None,
        })
        .collect();
    let mut in_flight = FuturesOrdered::new();
    let mut stopped: Option<(usize, String)> = None;
    'items: for (i, (item, channels)) in items.iter().zip(channels).enumerate() {
        let span = waas_core::span!("rest.publish", app = %app.id());
        for channel in channels {
            let start = gw
                .publisher
                .start(app, channel, &item.event, &item.data)
                .instrument(span.clone());
            tokio::pin!(start);
            // While storage is busy (at most 5,000 publishes of a gateway await acknowledgement
            // at once; an answer frees room), the ones already sent are collected meanwhile.
            let started = loop {
                tokio::select! {
                    biased;
                    started = &mut start => break started,
                    Some(sent) = in_flight.next(), if !in_flight.is_empty() => settle(&mut out, gw, app, items, sent),
                }
            };
            match started {
                Ok(stored) => {
                    let channel = channel.clone();
                    in_flight.push_back(async move { (i, channel, stored.await) });
                }
                Err(e) => {
                    stopped = Some((i, e.to_string()));
                    break 'items;
                }
            }
        }
    }
    while let Some(sent) = in_flight.next().await {
        settle(&mut out, gw, app, items, sent);
    }
    if let Some((first, reason)) = stopped {
        for (i, item) in out.iter_mut().enumerate().skip(first) {
            let message = if i == first {
                reason.clone()
            } else {
                format!("not published: batch[{first}] failed")
            };
            item.error.get_or_insert(ErrorDetail {
                code: ErrorCode::Unavailable,
                message,
            });
        }
    }
    out
}

/// Records a message storage has answered.
fn settle(
    out: &mut [BatchItem],
    gw: &Gateway,
    app: &App,
    items: &[PublishRequest],
    (i, channel, result): Sent,
) {
    match result {
        Ok(offset) => {
            let item = &items[i];
            gw.reporter
                .published(app, &channel, &item.event, &item.data, offset, None);
            out[i].offsets.insert(channel.to_string(), offset);
        }
        Err(e) => {
            out[i].error.get_or_insert(ErrorDetail {
                code: ErrorCode::Unavailable,
                message: e.to_string(),
            });
        }
    }
}
