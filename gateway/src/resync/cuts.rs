//! Cuts this gateway's forwarders found, and which forwarders must then look for what they
//! missed.
//!
//! A cut is a channel whose next message said it had missed some (a
//! [`waas_core::history::previous_marker`]) although the bus connection stayed up. That happens
//! when the NATS gateway connection between two regions was down and is back
//! (docs/regions.md); then every channel with traffic across the link missed messages, and a
//! quiet one has no next message to say so: forwarders that hear of a cut ask history for their
//! channel's newest offset ([`super::behind`]), one JetStream read each.
//!
//! It also happens when this gateway's own bus subscription for a channel falls behind and
//! drops messages, which one tenant can cause by flooding its own channels. So a cut found on a
//! tenant's channel makes only that tenant's live channels (of all its apps) look; only when
//! channels of two tenants or more find cuts within [`CUT_WINDOW`] is it taken for the
//! network's doing, and every live channel looks. A tenant alone, however many apps it floods,
//! thus costs the gateway reads of its own channels, not one per live channel of every tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Shortest time between two cuts that wake the same forwarders: after a heal, many channels
/// find what they missed at about the same time, and one check of each channel is enough.
const CUT_DEBOUNCE: Duration = Duration::from_secs(1);

/// Cuts of two tenants this close together are the network's: every channel looks.
const CUT_WINDOW: Duration = Duration::from_secs(10);

/// How long a tenant's last cut is remembered.
const FORGET_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct Cuts {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Moves on every cut that wakes anyone; watchers then check whether it concerns them.
    wake: watch::Sender<u64>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Cuts taken for the network's: every channel looks.
    everyone: u64,
    everyone_last: Option<Instant>,
    tenants: HashMap<String, TenantCuts>,
}

struct TenantCuts {
    found: u64,
    last: Instant,
}

impl Cuts {
    /// The watch of a forwarder of a channel of `tenant` (`waas_core::app::App::tenant`), with
    /// the cuts found so far seen.
    pub fn watch(&self, tenant: &str) -> CutWatch {
        let mut watch = CutWatch {
            cuts: self.clone(),
            tenant: tenant.to_owned(),
            wake: self.inner.wake.subscribe(),
            seen: (0, 0),
        };
        watch.seen = watch.current();
        watch
    }

    /// A forwarder of `tenant`'s channel found a cut: wake `tenant`'s forwarders (at most once
    /// per [`CUT_DEBOUNCE`]), and everyone's when another tenant found one within
    /// [`CUT_WINDOW`].
    pub fn found(&self, tenant: &str) {
        let now = Instant::now();
        {
            let mut state = self.inner.state.lock().expect("cuts poisoned");
            state
                .tenants
                .retain(|_, c| now.duration_since(c.last) < FORGET_AFTER);
            if let Some(c) = state.tenants.get(tenant) {
                if now.duration_since(c.last) < CUT_DEBOUNCE {
                    return;
                }
            }
            let others = state
                .tenants
                .iter()
                .any(|(t, c)| t != tenant && now.duration_since(c.last) < CUT_WINDOW);
            let entry = state
                .tenants
                .entry(tenant.to_owned())
                .or_insert(TenantCuts {
                    found: 0,
                    last: now,
                });
            entry.found += 1;
            entry.last = now;
            let quiet = state
                .everyone_last
                .is_none_or(|t| now.duration_since(t) >= CUT_DEBOUNCE);
            if others && quiet {
                state.everyone += 1;
                state.everyone_last = Some(now);
            }
        }
        self.inner.wake.send_modify(|n| *n += 1);
    }
}

/// One forwarder's view of [`Cuts`].
pub struct CutWatch {
    cuts: Cuts,
    tenant: String,
    wake: watch::Receiver<u64>,
    /// The network's cuts and the tenant's, as last seen.
    seen: (u64, u64),
}

impl CutWatch {
    /// Until a cut is found somewhere on this gateway (whether it concerns this channel is
    /// [`CutWatch::concerns`]).
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.wake.changed().await
    }

    /// Whether a cut found since last asked is this forwarder's business; marks it seen.
    pub fn concerns(&mut self) -> bool {
        self.wake.borrow_and_update();
        let now = self.current();
        std::mem::replace(&mut self.seen, now) != now
    }

    /// This forwarder found a cut and caught up already: tells its tenant's other channels
    /// ([`Cuts::found`]) and marks every cut so far seen.
    pub fn found(&mut self) {
        self.cuts.found(&self.tenant);
        self.concerns();
    }

    fn current(&self) -> (u64, u64) {
        let state = self.cuts.inner.state.lock().expect("cuts poisoned");
        let tenant = state.tenants.get(&self.tenant).map_or(0, |c| c.found);
        (state.everyone, tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tenants_cut_concerns_its_own_channels_only() {
        let cuts = Cuts::default();
        let (mut a, mut b) = (cuts.watch("a"), cuts.watch("b"));
        cuts.found("a");
        assert!(a.concerns());
        assert!(!b.concerns(), "another tenant's flood costs b nothing");
        assert!(!a.concerns(), "seen");
    }

    #[test]
    fn cuts_of_two_tenants_together_concern_every_channel() {
        let cuts = Cuts::default();
        let mut c = cuts.watch("c");
        cuts.found("a");
        assert!(!c.concerns());
        cuts.found("b");
        assert!(
            c.concerns(),
            "two tenants: the link between regions, not a tenant"
        );
    }

    #[test]
    fn a_tenant_wakes_its_channels_at_most_once_a_second() {
        let cuts = Cuts::default();
        let mut a = cuts.watch("a");
        cuts.found("a");
        assert!(a.concerns());
        cuts.found("a");
        assert!(!a.concerns(), "debounced");
    }

    #[test]
    fn the_finder_marks_its_own_cut_seen() {
        let cuts = Cuts::default();
        let mut a = cuts.watch("a");
        a.found();
        assert!(!a.concerns());
    }

    #[tokio::test]
    async fn a_cut_wakes_watchers() {
        let cuts = Cuts::default();
        let mut b = cuts.watch("b");
        cuts.found("a");
        tokio::time::timeout(Duration::from_secs(5), b.changed())
            .await
            .expect("woken")
            .unwrap();
        assert!(!b.concerns());
    }
}
