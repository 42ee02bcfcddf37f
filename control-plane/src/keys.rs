//! Answers gateways' [`KeyCommand`]s: the key directory of end-to-end encryption
//! (`docs/e2ee.md`) lives in the store, and gateways, which have no database, ask here over the
//! bus. Gateways check callers and shapes; this side stores and reads.

use crate::store::keys::{KeyStore, RoomKeyPut};
use crate::store::StoreError;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusError};
use waas_core::directory::RESPONDERS;
use waas_core::keys::{subject, KeyCommand, KeyReply};
use waas_core::time::now_ms;
use waas_protocol::ErrorCode;

/// Serves key directory calls until the returned task is aborted. Subscribed before this
/// returns; several control-planes share the calls through a queue group.
pub async fn serve(
    store: Arc<dyn KeyStore>,
    bus: Arc<dyn Bus>,
    prefix: &str,
) -> Result<JoinHandle<()>, BusError> {
    let mut requests = bus.serve(&subject(prefix), Some(RESPONDERS)).await?;
    Ok(tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply_to) = request.reply else {
                continue;
            };
            let (store, bus) = (Arc::clone(&store), Arc::clone(&bus));
            tokio::spawn(async move {
                let reply = answer(store.as_ref(), &request.payload).await;
                let payload = Bytes::from(serde_json::to_vec(&reply).expect("replies serialise"));
                if let Err(e) = bus.publish(&reply_to, payload).await {
                    tracing::warn!(error = %e, "could not answer a key directory call");
                }
            });
        }
    }))
}

fn failure(e: StoreError) -> KeyReply {
    let code = match e {
        StoreError::NotFound(_) => ErrorCode::AppNotFound,
        StoreError::Backend(_) => ErrorCode::Unavailable,
        StoreError::Conflict(_) | StoreError::Invalid(_) => ErrorCode::Internal,
    };
    KeyReply::failure(code, e.to_string())
}

/// The answer to one call.
pub async fn answer(store: &dyn KeyStore, payload: &[u8]) -> KeyReply {
    let command: KeyCommand = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return KeyReply::failure(
                ErrorCode::BadRequest,
                format!("unreadable key directory call: {e}"),
            )
        }
    };
    let at = now_ms() as i64;
    let result = match command {
        KeyCommand::Publish {
            app,
            sub,
            device,
            public_key,
            max_devices,
        } => store
            .publish_device_key(&app, &sub, &device, &public_key, at, max_devices)
            .await
            .map(|key| KeyReply {
                keys: Some(vec![key]),
                ..Default::default()
            }),
        KeyCommand::List { app, sub } => store.device_keys(&app, &sub).await.map(|keys| KeyReply {
            keys: Some(keys),
            ..Default::default()
        }),
        KeyCommand::Put {
            app,
            channel,
            key_id,
            version,
            wrapped,
            keep_versions,
        } => {
            let put = RoomKeyPut {
                channel,
                key_id,
                version,
                wrapped,
                at,
                keep_versions,
            };
            store
                .put_room_keys(&app, &put)
                .await
                .map(|()| KeyReply::default())
        }
        KeyCommand::Get { app, channel, sub } => {
            store
                .room_keys(&app, &channel, &sub)
                .await
                .map(|keys| KeyReply {
                    room_keys: Some(keys),
                    ..Default::default()
                })
        }
    };
    result.unwrap_or_else(failure)
}
