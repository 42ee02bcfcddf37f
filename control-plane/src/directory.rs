//! The control-plane's side of the app directory: answers gateways' queries and announces every
//! change, so gateways need no database connection of their own.

use crate::store::{Store, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use waas_core::app::AppConfig;
use waas_core::bus::{Bus, BusError};
use waas_core::directory::{
    changes_subject, query_subject, AppAnswer, AppChanged, AppQuery, RESPONDERS,
};
use waas_protocol::AppId;

pub struct Directory {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    prefix: String,
    /// Where apps' webhook interest comes from.
    webhooks: Arc<crate::webhooks::Webhooks>,
}

impl Directory {
    /// Apps are shipped with the webhook interest of their endpoints in `webhooks`.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        prefix: String,
        webhooks: Arc<crate::webhooks::Webhooks>,
    ) -> Arc<Self> {
        Arc::new(Directory {
            store,
            bus,
            prefix,
            webhooks,
        })
    }

    /// `config` with its app's webhook interest filled in. Without it gateways forward no
    /// publishes, so a store failure here is reported rather than shipping an empty interest.
    async fn with_interest(&self, mut config: AppConfig) -> Result<AppConfig, StoreError> {
        config.webhooks = self.webhooks.interest(&config.id).await?;
        Ok(config)
    }

    /// Starts answering queries; several control-planes share them through a queue group.
    pub async fn serve(self: &Arc<Self>) -> Result<JoinHandle<()>, BusError> {
        let mut requests = self
            .bus
            .serve(&query_subject(&self.prefix), Some(RESPONDERS))
            .await?;
        let me = Arc::clone(self);
        Ok(tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let Some(reply) = req.reply else { continue };
                let me = Arc::clone(&me);
                tokio::spawn(async move {
                    let answer = me.answer(&req.payload).await;
                    let body = serde_json::to_vec(&answer).expect("answers serialise");
                    if let Err(e) = me.bus.publish(&reply, Bytes::from(body)).await {
                        tracing::warn!(error = %e, "cannot answer app query");
                    }
                });
            }
        }))
    }

    async fn answer(&self, payload: &[u8]) -> AppAnswer {
        let query: AppQuery = match serde_json::from_slice(payload) {
            Ok(q) => q,
            Err(e) => {
                return AppAnswer {
                    app: None,
                    error: Some(format!("bad query: {e}")),
                }
            }
        };
        let Ok(id) = AppId::parse(&query.id) else {
            return AppAnswer {
                app: None,
                error: None,
            };
        };
        match self.store.get_app(&id).await {
            Ok(app) => match self.with_interest(app.gateway_config()).await {
                Ok(config) => AppAnswer {
                    app: Some(config),
                    error: None,
                },
                Err(e) => AppAnswer {
                    app: None,
                    error: Some(e.to_string()),
                },
            },
            Err(StoreError::NotFound(_)) => AppAnswer {
                app: None,
                error: None,
            },
            Err(e) => AppAnswer {
                app: None,
                error: Some(e.to_string()),
            },
        }
    }

    /// Tells every gateway that `id` changed; those that cache it read it again with a query.
    /// The notice carries no part of the app: its secrets go only to the gateway that asks, in
    /// the answer to its own inbox. Best effort: a gateway that misses it catches up at its next
    /// refresh.
    pub async fn changed(&self, id: &AppId) {
        self.notify(AppChanged {
            id: id.clone(),
            deleted: false,
        })
        .await
    }

    /// Tells every gateway that `id` was deleted, so they close its connections.
    pub async fn deleted(&self, id: &AppId) {
        self.notify(AppChanged {
            id: id.clone(),
            deleted: true,
        })
        .await
    }

    async fn notify(&self, change: AppChanged) {
        let body = serde_json::to_vec(&change).expect("changes serialise");
        if let Err(e) = self
            .bus
            .publish(&changes_subject(&self.prefix), Bytes::from(body))
            .await
        {
            tracing::warn!(app = %change.id, error = %e, "cannot announce app change");
        }
    }
}
