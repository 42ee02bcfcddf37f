//! A channel's forwarding task: turns each bus message into a WebSocket frame once and hands
//! it to the fan-out, and catches the channel up from history after the bus reconnects or when
//! a cut shows it missed messages ([`crate::resync`]).

use super::direct::Direct;
use crate::resync::{self, Tracker};
use futures_util::{FutureExt, StreamExt};
use std::sync::Arc;
use waas_core::history::{offset_of, History};

/// What a forwarder needs to catch up after the bus reconnects.
pub(super) struct Resync {
    pub(super) history: Arc<dyn History>,
    pub(super) subject: String,
    pub(super) tracker: Arc<Tracker>,
    pub(super) settings: resync::Settings,
    pub(super) reconnects: Option<waas_core::bus::Reconnects>,
    /// The bus connections counted when this forwarder last knew itself up to date.
    pub(super) seen: u64,
    /// The cuts this gateway's forwarders found ([`resync::Cuts`]), as the channel's tenant
    /// sees them: its own, and the network's.
    pub(super) cuts: resync::CutWatch,
}

impl Resync {
    /// Whether the bus made a new connection since [`Resync::seen`]: an atomic load.
    fn reconnected(&mut self) -> bool {
        match &self.reconnects {
            Some(r) => {
                let now = r.count();
                std::mem::replace(&mut self.seen, now) != now
            }
            None => false,
        }
    }

    /// Until the bus makes a new connection (never without a count). On the field alone, so
    /// that the forwarder can wait on it and on [`Resync::cuts`] at once.
    async fn changed(reconnects: &mut Option<waas_core::bus::Reconnects>) {
        match reconnects.as_mut() {
            Some(r) => r.changed().await,
            None => std::future::pending().await,
        }
    }

    /// Whether the channel is behind its history, asked when another channel found a cut.
    async fn behind(&self) -> bool {
        resync::behind(
            self.history.as_ref(),
            &self.subject,
            &self.tracker,
            &self.settings,
        )
        .await
    }

    /// Passes on what the channel missed; returns the offset up to which live messages are
    /// among what it passed on, and whether it passed on anything (a message or a gap).
    /// Publishers pass nothing on meanwhile ([`Direct::hold`]).
    async fn catch_up(&self, direct: &Direct) -> (u64, bool) {
        direct.hold();
        let catchup = resync::catch_up(
            self.history.as_ref(),
            &self.subject,
            &self.tracker,
            &self.settings,
        )
        .await;
        for frame in &catchup.frames {
            if let Some(offset) = offset_of(frame) {
                self.tracker.delivered(offset);
            }
            direct.fanout.push(frame);
        }
        direct.release();
        (catchup.skip_upto, !catchup.frames.is_empty())
    }
}

/// Passes on the channel's messages that come out of its bus subscription: all of them, or
/// (a bus in this process) those its publishers gave back ([`Direct`]).
pub(super) async fn forward(
    mut stream: waas_core::bus::TracedSubscription,
    direct: Arc<Direct>,
    mut resync: Resync,
) {
    // After a resync: live messages up to this offset were passed on by it.
    let mut skip_upto = 0;
    // The message after the current one, when it was already waiting; `ended`: the
    // subscription ended after it.
    let mut next: Option<waas_core::bus::BusMessage> = None;
    let mut ended = false;
    loop {
        // Messages first: while they flow, the reconnect watch is not even polled.
        let message = match next.take() {
            Some(message) => message,
            None if ended => break,
            None => tokio::select! {
                biased;
                message = stream.next() => match message {
                    Some(message) => message,
                    None => break,
                },
                _ = Resync::changed(&mut resync.reconnects) => {
                    if resync.reconnected() {
                        skip_upto = resync.catch_up(&direct).await.0;
                    }
                    continue;
                }
                // Another channel of this gateway found a cut: this one may have missed
                // messages too and have no next one to say so.
                Ok(()) = resync.cuts.changed() => {
                    if resync.cuts.concerns() && resync.behind().await {
                        skip_upto = resync.catch_up(&direct).await.0;
                    }
                    continue;
                }
            },
        };
        // The history says the next message's predecessor may not have reached us although the
        // connection stayed up (a link between regions was down, docs/regions.md): catch up
        // if it is past what was passed on.
        if let Some(previous) = waas_core::history::previous_of(&message.payload) {
            if previous > resync.tracker.last() {
                let found;
                (skip_upto, found) = resync.catch_up(&direct).await;
                if found {
                    // Tell the other channels, not this one (caught up already).
                    resync.cuts.found();
                }
            }
            direct.handled();
            continue;
        }
        // Before passing on a message that may have come over a new connection, what the old
        // one missed (live messages wait in the bus subscription meanwhile).
        if resync.reconnected() {
            skip_upto = resync.catch_up(&direct).await.0;
        }
        // With no further message waiting, frames would not meet in the subscribers' queues:
        // the fan-out may write them itself ([`super::fanout::Fanout::push_live`]).
        let quiet = match stream.next().now_or_never() {
            None => true,
            Some(Some(waiting)) => {
                next = Some(waiting);
                false
            }
            Some(None) => {
                ended = true;
                true
            }
        };
        let _turn = direct.turn();
        pass(&direct, &resync, message, quiet, &mut skip_upto);
        direct.handled();
    }
}

/// Passes on one message that came out of the subscription, unless a resync passed it on.
fn pass(
    direct: &Direct,
    resync: &Resync,
    message: waas_core::bus::BusMessage,
    quiet: bool,
    skip_upto: &mut u64,
) {
    let payload = message.payload;
    if let Some(offset) = offset_of(&payload) {
        if *skip_upto > 0 {
            // Offsets of a channel with history arrive in order: once past, done skipping.
            if offset <= *skip_upto {
                return;
            }
            *skip_upto = 0;
        }
    }
    match message.trace {
        None => direct.pass(&payload, quiet),
        Some(parent) => direct.pass_traced(&payload, parent, &resync.subject),
    }
}
