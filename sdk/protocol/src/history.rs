//! Channel history on the wire: the position a client recovers from, and a page of history as
//! the `history` op and `GET .../history` return it (`docs/history.md`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Where a client is in a channel: the last offset it received and the epoch that offset
/// belongs to. Offsets are only comparable within one epoch; a new epoch means the channel's
/// history was lost (the server restarted, the stream was recreated) and numbering restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    pub offset: u64,
    pub epoch: String,
}

/// `since` as a client frame may carry it: an object for `subscribe`, a bare offset for
/// `history`. Each op checks it got the form it expects.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SinceField {
    Offset(u64),
    Position(Since),
}

/// A page of a channel's history: the answer to the `history` op (as a `history` frame, with
/// `op` and `id`) and the body of `GET /v1/apps/{app}/channels/{channel}/history`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryPage {
    pub channel: String,
    /// The channel's epoch; offsets in `messages` belong to it.
    pub epoch: String,
    /// The channel's latest offset when the page was read (0: nothing published in this epoch).
    pub offset: u64,
    /// Each item is the `message` frame a subscriber received, byte for byte; oldest first, or
    /// newest first when the request asked for `reverse`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<serde_json::Value>))]
    pub messages: Vec<Box<RawValue>>,
}
