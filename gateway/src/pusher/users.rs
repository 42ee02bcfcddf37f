//! Signed-in users (`pusher:signin`) and `terminate_connections`.
//!
//! A signed-in connection is subscribed to the native channel `#server-to-user-{user_id}`,
//! where the Pusher HTTP API's `sendToUser` publishes. Every gateway listens on
//! `waas_core::subjects::pusher_terminate`; [`terminate`] publishes there, and each gateway
//! closes its connections signed in as that user with `pusher:error` 4009.

use super::codes::PusherCode;
use super::wire;
use crate::outbound::Outbound;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_protocol::CloseCode;

/// What [`terminate`] publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminate {
    pub app: String,
    pub user_id: String,
}

/// Asks every gateway to close the Pusher connections of `app` signed in as `user_id`: for the
/// HTTP API's `POST /apps/{app_id}/users/{user_id}/terminate_connections`.
pub async fn terminate(
    bus: &dyn Bus,
    prefix: &str,
    app: &str,
    user_id: &str,
) -> Result<(), BusError> {
    let body = serde_json::to_vec(&Terminate {
        app: app.to_owned(),
        user_id: user_id.to_owned(),
    })
    .expect("terminate serialises");
    bus.publish(&waas_core::subjects::pusher_terminate(prefix), body.into())
        .await
}

type UserKey = (String, String);

/// This gateway's signed-in connections, by app and user.
#[derive(Default)]
pub struct Users {
    /// Locked briefly to add, remove or list; never across an `await`.
    map: Mutex<HashMap<UserKey, Vec<Arc<Outbound>>>>,
}

/// Keeps a connection listed as signed in until dropped.
pub struct SignedIn {
    users: Arc<Users>,
    key: UserKey,
    id: u64,
    pub user_id: String,
}

impl Drop for SignedIn {
    fn drop(&mut self) {
        let mut map = self.users.map.lock().expect("users poisoned");
        if let Some(conns) = map.get_mut(&self.key) {
            conns.retain(|c| c.id != self.id);
            if conns.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

impl Users {
    pub fn sign_in(self: &Arc<Self>, app: &str, user_id: &str, out: Arc<Outbound>) -> SignedIn {
        let key = (app.to_owned(), user_id.to_owned());
        let id = out.id;
        self.map
            .lock()
            .expect("users poisoned")
            .entry(key.clone())
            .or_default()
            .push(out);
        SignedIn {
            users: Arc::clone(self),
            key,
            id,
            user_id: user_id.to_owned(),
        }
    }

    /// Closes this gateway's connections of `app` signed in as `user_id`; returns how many.
    pub fn close(&self, app: &str, user_id: &str) -> usize {
        let conns = self
            .map
            .lock()
            .expect("users poisoned")
            .get(&(app.to_owned(), user_id.to_owned()))
            .cloned()
            .unwrap_or_default();
        let frame = wire::error(
            Some(PusherCode::UNAUTHORIZED),
            "the user's connections were terminated",
        );
        for out in &conns {
            out.push(frame.clone());
            out.close(CloseCode(PusherCode::UNAUTHORIZED.0));
        }
        conns.len()
    }
}

/// Listens on the terminate subject and closes this gateway's connections of the named users.
/// Subscribed before it returns.
pub async fn start(
    bus: Arc<dyn Bus>,
    prefix: &str,
    users: Arc<Users>,
) -> Result<JoinHandle<()>, BusError> {
    let mut requests = bus
        .subscribe(&waas_core::subjects::pusher_terminate(prefix))
        .await?;
    Ok(tokio::spawn(async move {
        while let Some(payload) = requests.next().await {
            match serde_json::from_slice::<Terminate>(&payload) {
                Ok(t) => {
                    let n = users.close(&t.app, &t.user_id);
                    tracing::debug!(app = %t.app, closed = n, "terminated a user's connections");
                }
                Err(e) => tracing::warn!(error = %e, "unreadable pusher terminate request"),
            }
        }
    }))
}
