//! Channel history as clients see it: subscribing with recovery, the `history` op, and the
//! page that `GET /v1/apps/{app}/channels/{channel}/history` ([`crate::http::history`]) answers
//! with (`docs/history.md`).

use crate::gateway::Gateway;
use crate::op_error::OpError;
use crate::outbound::Outbound;
use crate::wsframe;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use waas_core::app::App;
use waas_core::history::{Query, Recovery};
use waas_protocol::history::Since;
use waas_protocol::{ChannelName, ErrorCode, ServerFrame};

/// Subscribes `conn` to `channel`, first sending what it missed since `since` when given, then
/// the `ack` carrying the channel's epoch and offset (and `recovered` with `since`). Live
/// messages published meanwhile are held and sent after history, each exactly once.
pub async fn subscribe(
    gw: &Gateway,
    app: &App,
    conn: &Arc<Outbound>,
    channel: &ChannelName,
    subject: &str,
    id: u64,
    since: Option<&Since>,
) -> Result<(), OpError> {
    let unavailable = |e: String| OpError::new(ErrorCode::Unavailable, e);
    // Timed for the debug log: a subscribe waiting on the bus or on history is what a client
    // stuck between gateways shows.
    let started = std::time::Instant::now();
    gw.hub
        .subscribe_held(app.into(), subject, conn.id)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let policy = gw.publisher.policy(app, channel);
    let recovery = match gw.publisher.history().recover(policy, subject, since).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(
                conn = conn.id,
                subject,
                error = %e,
                ms = started.elapsed().as_millis() as u64,
                "subscribe: history unavailable"
            );
            gw.hub.unsubscribe(subject, conn.id).await;
            return Err(unavailable(e.to_string()));
        }
    };
    tracing::debug!(
        conn = conn.id,
        subject,
        since = since.map(|s| s.offset),
        missed = recovery.messages.len(),
        recovered = recovery.recovered,
        ms = started.elapsed().as_millis() as u64,
        "subscribe: history read"
    );
    let Recovery {
        epoch,
        offset,
        messages,
        recovered,
    } = recovery;
    let covered = messages
        .last()
        .and_then(|m| waas_core::history::offset_of(m))
        .unwrap_or(0)
        .max(offset);
    let frames = messages.iter().map(|m| wsframe::text(m)).collect();
    let at = crate::hub::Joined {
        channel: channel.as_str(),
        policy,
        epoch: &epoch,
    };
    let ack = |top| {
        Some(wsframe::json(&ServerFrame::Ack {
            id,
            offset: Some(top),
            epoch: Some(epoch.clone()),
            recovered,
        }))
    };
    gw.hub
        .join(subject, Arc::clone(conn), frames, covered, at, ack);
    Ok(())
}

#[derive(Serialize)]
struct PageHead<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    channel: &'a str,
    epoch: &'a str,
    offset: u64,
}

/// A page as JSON, with the stored frames spliced in as they are (no re-encoding): the body of
/// the REST answer, or with `id` the `history` frame.
fn page_json(id: Option<u64>, channel: &str, page: &waas_core::history::Page) -> Vec<u8> {
    let head = PageHead {
        op: id.map(|_| "history"),
        id,
        channel,
        epoch: &page.epoch,
        offset: page.offset,
    };
    let mut json = serde_json::to_vec(&head).expect("pages always serialise");
    json.pop();
    json.extend_from_slice(b",\"messages\":[");
    for (i, m) in page.messages.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(m);
    }
    json.extend_from_slice(b"]}");
    json
}

/// Reads a page of `channel`'s history; `limit` is capped by `history_page_limit`, which is
/// also the default.
pub async fn read(
    gw: &Gateway,
    app: &App,
    channel: &ChannelName,
    since: Option<u64>,
    limit: Option<usize>,
    reverse: bool,
    id: Option<u64>,
) -> Result<Vec<u8>, OpError> {
    let max = gw.config.limits.history_page_limit;
    let limit = limit.unwrap_or(max);
    if limit == 0 || limit > max {
        return Err(OpError::new(
            ErrorCode::BadRequest,
            format!("\"limit\" must be 1 to {max}"),
        ));
    }
    let subject = gw.publisher.subject(app.id(), channel);
    let page = gw
        .publisher
        .history()
        .read(
            gw.publisher.policy(app, channel),
            &subject,
            Query {
                since,
                limit,
                reverse,
            },
        )
        .await
        .map_err(|e| OpError::new(ErrorCode::Unavailable, e.to_string()))?;
    Ok(page_json(id, channel.as_str(), &page))
}

/// The `history` frame answering request `id`, ready to queue.
pub fn frame(json: &[u8]) -> Bytes {
    wsframe::text(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waas_core::history::Page;

    #[test]
    fn pages_splice_stored_frames() {
        let page = Page {
            epoch: "e1".into(),
            offset: 9,
            messages: vec![Bytes::from_static(b"{\"op\":\"message\",\"offset\":8}")],
        };
        let json = page_json(Some(3), "c", &page);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["op"], "history");
        assert_eq!(v["id"], 3);
        assert_eq!(v["messages"][0]["offset"], 8);
        let rest: waas_protocol::history::HistoryPage =
            serde_json::from_slice(&page_json(None, "c", &page)).unwrap();
        assert_eq!(
            (rest.epoch.as_str(), rest.offset, rest.messages.len()),
            ("e1", 9, 1)
        );
    }
}
