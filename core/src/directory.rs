//! How gateways learn apps from the control-plane without a database of their own: a request
//! over the bus for an app they do not know, and change events that keep what they cached fresh.
//! These are the messages and subjects of that exchange; both sides use them.

use crate::app::AppConfig;
use serde::{Deserialize, Serialize};
use waas_protocol::AppId;

/// Subject on which the control-plane answers [`AppQuery`] with [`AppAnswer`].
pub fn query_subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "apps.get")
}

/// Subject on which the control-plane announces every change as an [`AppChanged`] notice.
pub fn changes_subject(prefix: &str) -> String {
    crate::subjects::control(prefix, "apps.changed")
}

/// Queue group of control-plane responders, so each query is answered once.
pub const RESPONDERS: &str = "control-plane";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppQuery {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppAnswer {
    /// `None`: no such app.
    pub app: Option<AppConfig>,
    /// Set when the control-plane could not answer (its store is down, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A change notice: which app changed, never how. Apps carry secrets (the HS256 secret, API
/// key hashes) and change notices go to every subscriber of the subject, so a gateway that
/// caches the app reads it again with an [`AppQuery`], whose answer comes back to its own
/// inbox alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppChanged {
    pub id: AppId,
    /// The app was deleted: nothing to read again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}
