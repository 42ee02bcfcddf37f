//! Picking the nearest gateway among several (one per region, say): [`ClientBuilder::nearest`].
//!
//! Every URL is probed at once: a connection is opened to each (the same dial as a real
//! connection, credentials included) and sent `probe_samples` protocol `ping`s one after the
//! other; the median round trip ranks it. The fastest connection is kept and becomes the
//! client's connection, so probing costs the slowest answer among the gateways that answer, not
//! a second connect; the others are closed (1000). A gateway that cannot be reached or refuses
//! ranks last, in the order given. Reconnects after a failure go down the ranking (the next
//! nearest first), and a connected client probes again every `reprobe_interval`, moving to a
//! gateway that answers clearly faster than its own (see [`MOVE_RATIO`]).
//!
//! [`ClientBuilder::nearest`]: crate::ClientBuilder::nearest

use crate::error::{Error, Result};
use crate::options::Options;
use crate::transport::{Inbound, Transport};
use std::time::{Duration, Instant};
use waas_protocol::frame::{ClientFrame, ServerFrame};

/// A connected client moves only to a gateway whose median round trip is below this share of
/// its own gateway's, so two gateways at about the same distance do not swap the client back
/// and forth on noise.
pub(crate) const MOVE_RATIO: f64 = 0.8;

/// One gateway's answer to a probe.
pub(crate) struct Probed {
    /// Index in `Options::endpoints`.
    pub index: usize,
    /// Median round trip of the pings, `None` when the gateway could not be reached.
    pub rtt: Option<Duration>,
    /// The open connection of the nearest gateway only (taken by [`Ranking::take_nearest`]).
    pub transport: Option<Transport>,
    pub error: Option<Error>,
}

/// Every gateway, nearest first.
pub(crate) struct Ranking {
    pub probed: Vec<Probed>,
}

impl Ranking {
    /// Endpoint indices, nearest first; unreachable ones last, in the order given.
    pub(crate) fn order(&self) -> Vec<usize> {
        self.probed.iter().map(|p| p.index).collect()
    }

    pub(crate) fn rtt_of(&self, index: usize) -> Option<Duration> {
        self.probed
            .iter()
            .find(|p| p.index == index)
            .and_then(|p| p.rtt)
    }

    /// The nearest gateway's index and open connection, if any gateway answered.
    pub(crate) fn take_nearest(&mut self) -> Option<(usize, Transport)> {
        let first = self.probed.first_mut()?;
        let transport = first.transport.take()?;
        Some((first.index, transport))
    }

    /// The error to report when no gateway answered: a refusal that would recur (a bad token)
    /// before a network error.
    pub(crate) fn into_error(self) -> Error {
        let mut errors: Vec<Error> = self.probed.into_iter().filter_map(|p| p.error).collect();
        match errors.iter().position(crate::actor::is_fatal_at_connect) {
            Some(i) => errors.swap_remove(i),
            None => errors
                .pop()
                .unwrap_or_else(|| Error::Config("no gateway URL given".into())),
        }
    }
}

/// Probes every endpoint in parallel and ranks them. Only the nearest one's connection is kept
/// open in the result; the others are closed before this returns.
pub(crate) async fn probe_all(options: &Options) -> Ranking {
    let probes = options
        .endpoints
        .iter()
        .enumerate()
        .map(|(index, _)| probe(options, index));
    let mut probed = futures_util::future::join_all(probes).await;
    // Stable: gateways that did not answer keep the given order among themselves.
    probed.sort_by_key(|p| (p.rtt.is_none(), p.rtt));
    for p in probed.iter_mut().skip(1) {
        if let Some(mut t) = p.transport.take() {
            let _ = t.close(1000, "probe").await;
        }
    }
    tracing::debug!(
        ranking = ?probed.iter().map(|p| (p.index, p.rtt)).collect::<Vec<_>>(),
        "gateways probed"
    );
    Ranking { probed }
}

async fn probe(options: &Options, index: usize) -> Probed {
    let endpoint = &options.endpoints[index];
    let attempt = async {
        let token = options.credentials.get().await?;
        let mut transport =
            Transport::dial(endpoint, &options.app, &token, options.connect_timeout).await?;
        let rtt = tokio::time::timeout(
            options.connect_timeout,
            measure(&mut transport, options.probe_samples),
        )
        .await
        .map_err(|_| Error::Timeout { operation: "probe" })??;
        Ok::<_, Error>((transport, rtt))
    };
    match attempt.await {
        Ok((transport, rtt)) => Probed {
            index,
            rtt: Some(rtt),
            transport: Some(transport),
            error: None,
        },
        Err(e) => {
            tracing::debug!(url = %endpoint.ws_url(options.app.as_str()), error = %e, "probe failed");
            Probed {
                index,
                rtt: None,
                transport: None,
                error: Some(e),
            }
        }
    }
}

/// Median round trip of `samples` pings sent one after the other on a fresh connection. Their ids
/// count down from `u64::MAX`, far from the ids the session gives its own requests.
async fn measure(transport: &mut Transport, samples: u32) -> Result<Duration> {
    let mut rtts = Vec::with_capacity(samples as usize);
    for i in 0..u64::from(samples) {
        let id = u64::MAX - i;
        let frame =
            serde_json::to_string(&ClientFrame::Ping { id: Some(id) }).expect("a ping serialises");
        let sent = Instant::now();
        transport.send_text(frame).await?;
        loop {
            match transport.inbound.recv().await {
                Some(Inbound::Frame(ServerFrame::Pong { id: Some(got) })) if got == id => break,
                Some(Inbound::Frame(_)) => {}
                Some(Inbound::Obligation(o)) => transport.fulfil(o).await?,
                Some(Inbound::Closed { code, reason }) => {
                    return Err(match code {
                        Some(code) => Error::Closed { code, reason },
                        None => Error::WebSocket("closed while probing".into()),
                    })
                }
                Some(Inbound::Failed(e)) => return Err(e),
                None => return Err(Error::WebSocket("closed while probing".into())),
            }
        }
        rtts.push(sent.elapsed());
    }
    rtts.sort();
    Ok(rtts[rtts.len() / 2])
}

/// Whether a client on `current` should move to `best`, given their probed round trips.
pub(crate) fn should_move(current: Option<Duration>, best: Duration) -> bool {
    match current {
        // The client's own gateway did not answer the probe: anything that did is better.
        None => true,
        Some(current) => best.as_secs_f64() < current.as_secs_f64() * MOVE_RATIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(index: usize, rtt: Option<u64>) -> Probed {
        Probed {
            index,
            rtt: rtt.map(Duration::from_millis),
            transport: None,
            error: None,
        }
    }

    #[test]
    fn ranks_by_round_trip_and_unreachable_last_in_given_order() {
        let mut p = vec![
            probed(0, None),
            probed(1, Some(40)),
            probed(2, None),
            probed(3, Some(5)),
        ];
        p.sort_by_key(|p| (p.rtt.is_none(), p.rtt));
        let r = Ranking { probed: p };
        assert_eq!(r.order(), [3, 1, 0, 2]);
        assert_eq!(r.rtt_of(1), Some(Duration::from_millis(40)));
        assert_eq!(r.rtt_of(2), None);
    }

    #[test]
    fn moves_only_when_clearly_nearer() {
        let ms = Duration::from_millis;
        assert!(should_move(Some(ms(40)), ms(5)));
        assert!(!should_move(Some(ms(10)), ms(9)));
        assert!(should_move(None, ms(100)));
    }

    #[test]
    fn reports_a_refusal_before_a_network_error() {
        let r = Ranking {
            probed: vec![
                Probed {
                    error: Some(Error::Rejected {
                        code: waas_protocol::ErrorCode::InvalidToken,
                        message: "bad".into(),
                    }),
                    ..probed(0, None)
                },
                Probed {
                    error: Some(Error::WebSocket("refused".into())),
                    ..probed(1, None)
                },
            ],
        };
        assert!(matches!(r.into_error(), Error::Rejected { .. }));
    }
}
