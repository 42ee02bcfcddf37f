//! Servers serving on this gateway, so that a request can go straight to one of them: no bus
//! round trip, no envelope to encode and decode, two fewer task hand-offs. A request goes through
//! the bus only when no server on this gateway serves its service or all those that do are at
//! `max_inflight_per_responder`: a busy local server does not hold requests the bus could give
//! to an idle one elsewhere.
//!
//! The map is read once per request and written when a connection starts or stops serving; a
//! plain mutex held for a lookup (never across an await) is enough.

use super::service::Shared;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedSemaphorePermit;
use waas_protocol::{AppId, ServiceName};

/// Serving connections by app and service.
#[derive(Default)]
pub struct LocalServices {
    /// `"{app}.{service}"` (both are single bus tokens, so the key is unambiguous).
    map: Mutex<HashMap<String, Vec<(u64, Shared)>>>,
    /// Spreads requests over a service's local servers.
    turn: AtomicUsize,
}

fn key(app: &AppId, service: &ServiceName) -> String {
    format!("{app}.{service}")
}

impl LocalServices {
    pub(crate) fn add(&self, app: &AppId, service: &ServiceName, conn: u64, shared: Shared) {
        self.map
            .lock()
            .expect("local services poisoned")
            .entry(key(app, service))
            .or_default()
            .push((conn, shared));
    }

    pub(crate) fn remove(&self, app: &AppId, service: &ServiceName, conn: u64) {
        let mut map = self.map.lock().expect("local services poisoned");
        let k = key(app, service);
        if let Some(list) = map.get_mut(&k) {
            list.retain(|(c, _)| *c != conn);
            if list.is_empty() {
                map.remove(&k);
            }
        }
    }

    /// A server on this gateway serving `service` with a free slot, taken; round robin.
    pub(crate) fn pick(
        &self,
        app: &AppId,
        service: &ServiceName,
    ) -> Option<(Shared, OwnedSemaphorePermit)> {
        let map = self.map.lock().expect("local services poisoned");
        let list = map.get(&key(app, service))?;
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        (0..list.len()).find_map(|i| {
            let (_, shared) = &list[(start + i) % list.len()];
            let permit = Arc::clone(&shared.permits).try_acquire_owned().ok()?;
            Some((shared.clone(), permit))
        })
    }
}
