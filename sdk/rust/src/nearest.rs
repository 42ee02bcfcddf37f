//! Picking the nearest gateway among several (one per region, say): [`ClientBuilder::nearest`].
//!
//! Every URL is probed at once: a connection is opened to each (the same dial as a real
//! connection, credentials included) and sent `probe_samples` protocol `ping`s one after the
//! other; the median round trip ranks it. The first gateway to answer sets a deadline
//! ([`stop_waiting_at`]); the gateways that answer by then are ranked by round trip, the
//! fastest one's connection is kept and becomes the client's connection, and the others are
//! closed (1000). Probes still running at the deadline go on in the background ([`Late`]): they
//! rank after every gateway that answered until they finish, then by their round trip, and
//! their connections are closed as they finish. A gateway that cannot be reached or refuses
//! ranks last, in the order given. Reconnects after a failure go down the ranking (the next
//! nearest first), and a connected client probes again every `reprobe_interval`, moving to a
//! gateway that answers clearly faster than its own (see [`MOVE_RATIO`]).
//!
//! [`ClientBuilder::nearest`]: crate::ClientBuilder::nearest

use crate::error::{Error, Result};
use crate::options::Options;
use crate::transport::{Endpoint, Inbound, Transport};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use waas_protocol::frame::{ClientFrame, ServerFrame};

/// A connected client moves only to a gateway whose median round trip is below this share of
/// its own gateway's, so two gateways at about the same distance do not swap the client back
/// and forth on noise.
pub(crate) const MOVE_RATIO: f64 = 0.8;

/// How much longer than the first gateway to answer the others are waited for; see
/// [`stop_waiting_at`].
pub(crate) const GRACE_FACTOR: u32 = 2;

/// The least time the others are waited for after the first answer; see [`stop_waiting_at`].
pub(crate) const GRACE_FLOOR: Duration = Duration::from_millis(5);

/// When, counted from the start of probing, to stop waiting for the gateways still probing,
/// given that the first one finished its probe (connect and pings) at `first`.
///
/// A probe costs a gateway its connect (TCP, the WebSocket upgrade and `ready`: two or three
/// round trips plus the server's work) and `probe_samples` round trips, so its total time grows
/// with its round trip. A gateway whose round trip is no longer than the first finisher's
/// would therefore finish at about the same time; one still probing at twice that time has a
/// round trip about twice as long, or a server much slower to accept it: either way, not one to
/// connect to now. The floor keeps gateways that all answer within a few milliseconds (one data
/// centre, a test on loopback) from being told apart by scheduling noise, at the cost of at most
/// those milliseconds. Waiting for the rest would cost the slowest gateway's connect and pings
/// (a far region's, often hundreds of milliseconds) for nothing.
pub(crate) fn stop_waiting_at(first: Duration) -> Duration {
    (first * GRACE_FACTOR).max(first + GRACE_FLOOR)
}

/// What probing does next ([`next_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Wait for the next gateway to finish its probe.
    Await,
    /// Wait for the next gateway, but no later than this, counted from the start of probing.
    AwaitUntil(Duration),
    /// Stop waiting: rank what answered, the rest rank after it and finish in the background.
    Rank,
}

/// The waiting rule, over timings only: `first` is when the first gateway answered (counted
/// from the start of probing, `None` while none has), `running` how many probes are still
/// running, `own_done` whether the client's own gateway (when re-probing; else `true`) has
/// finished, `elapsed` the time since the start.
///
/// Nothing is cut short before a gateway answered (an error is no answer: the next gateway may
/// still answer), nor before the own gateway finished when re-probing: the move decision
/// compares its round trip with the best ([`should_move`]), and a re-probe runs beside a live
/// connection, so it costs no one any waiting.
pub(crate) fn next_step(
    first: Option<Duration>,
    running: usize,
    own_done: bool,
    elapsed: Duration,
) -> Step {
    if running == 0 {
        return Step::Rank;
    }
    match first {
        Some(first) if own_done => {
            let at = stop_waiting_at(first);
            if elapsed >= at {
                Step::Rank
            } else {
                Step::AwaitUntil(at)
            }
        }
        _ => Step::Await,
    }
}

/// Where a gateway's probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// It answered: ranked by its round trip.
    Answered,
    /// Still probing when the others were ranked ([`Late`]): after every gateway that answered.
    Pending,
    /// It could not be reached or refused: last.
    Failed,
}

/// One gateway's answer to a probe.
pub(crate) struct Probed {
    /// Index in the endpoints probed.
    pub index: usize,
    /// Median round trip of the pings, `None` when the gateway has not answered (yet).
    pub rtt: Option<Duration>,
    /// Still probing in the background ([`Late`]).
    pub pending: bool,
    /// The open connection of the nearest gateway only (taken by [`Ranking::take_nearest`]).
    pub transport: Option<Transport>,
    pub error: Option<Error>,
}

impl Probed {
    fn class(&self) -> Class {
        match (self.rtt, self.pending) {
            (Some(_), _) => Class::Answered,
            (None, true) => Class::Pending,
            (None, false) => Class::Failed,
        }
    }
}

/// Every gateway, nearest first.
pub(crate) struct Ranking {
    pub probed: Vec<Probed>,
}

impl Ranking {
    /// Ranks `probed`: answered by round trip, then those still probing, then unreachable ones,
    /// each kind in the order given among equals.
    pub(crate) fn new(mut probed: Vec<Probed>) -> Ranking {
        probed.sort_by_key(|p| (p.class(), p.rtt, p.index));
        Ranking { probed }
    }

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

    /// Takes the answers of probes that were still running ([`Late`]) and ranks again.
    pub(crate) fn merge(&mut self, late: Vec<Probed>) {
        for answer in late {
            match self.probed.iter_mut().find(|p| p.index == answer.index) {
                Some(p) => {
                    p.rtt = answer.rtt;
                    p.pending = false;
                    p.error = answer.error;
                }
                None => self.probed.push(answer),
            }
        }
        let probed = std::mem::take(&mut self.probed);
        *self = Ranking::new(probed);
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

/// Probes that were still running when the others were ranked, finishing in the background:
/// each closes its connection as it finishes, and the task returns their answers (to refine the
/// ranking, [`Ranking::merge`]). Dropping it aborts them, which drops their connections.
pub(crate) struct Late(tokio::task::JoinHandle<Vec<Probed>>);

impl Late {
    /// The late probes' answers, connections closed; empty if the task was aborted.
    pub(crate) async fn answers(&mut self) -> Vec<Probed> {
        (&mut self.0).await.unwrap_or_default()
    }
}

impl Drop for Late {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Probes every endpoint in parallel and ranks those that answer by the deadline of
/// [`stop_waiting_at`], and, when `own` is given (a connected client probing again, which
/// compares its own gateway with the best), until that one has answered or failed too. Only
/// the nearest one's connection is kept open in the result; the others are closed before this
/// returns, or in the background for probes still running ([`Late`]).
pub(crate) async fn probe_all(
    options: &Arc<Options>,
    endpoints: &[Endpoint],
    own: Option<usize>,
) -> (Ranking, Option<Late>) {
    let start = Instant::now();
    let mut running: FuturesUnordered<_> = endpoints
        .iter()
        .enumerate()
        .map(|(index, endpoint)| probe(options.clone(), endpoint.clone(), index))
        .collect();
    let mut done: Vec<Probed> = Vec::with_capacity(endpoints.len());
    // When the first gateway answered, counted from `start`.
    let mut first: Option<Duration> = None;
    loop {
        let own_done = own.is_none_or(|own| done.iter().any(|p| p.index == own));
        let until = match next_step(first, running.len(), own_done, start.elapsed()) {
            Step::Rank => break,
            Step::Await => None,
            Step::AwaitUntil(at) => Some(start + at),
        };
        tokio::select! {
            answer = running.next() => if let Some(p) = answer {
                if p.rtt.is_some() && first.is_none() {
                    first = Some(start.elapsed());
                }
                done.push(p);
            },
            _ = tokio::time::sleep_until(until.unwrap_or(start)), if until.is_some() => break,
        }
    }
    let late_indices: Vec<usize> = (0..endpoints.len())
        .filter(|i| !done.iter().any(|p| p.index == *i))
        .collect();
    let late = (!running.is_empty()).then(|| {
        Late(tokio::spawn(async move {
            let mut answers = Vec::new();
            while let Some(mut p) = running.next().await {
                if let Some(mut t) = p.transport.take() {
                    let _ = t.close(1000, "probe").await;
                }
                answers.push(p);
            }
            tracing::debug!(
                late = ?answers.iter().map(|p| (p.index, p.rtt)).collect::<Vec<_>>(),
                "late probes finished"
            );
            answers
        }))
    });
    done.extend(late_indices.iter().map(|&index| Probed {
        index,
        rtt: None,
        pending: true,
        transport: None,
        error: None,
    }));
    let mut ranking = Ranking::new(done);
    for p in ranking.probed.iter_mut().skip(1) {
        if let Some(mut t) = p.transport.take() {
            let _ = t.close(1000, "probe").await;
        }
    }
    tracing::debug!(
        ranking = ?ranking.probed.iter().map(|p| (p.index, p.rtt, p.pending)).collect::<Vec<_>>(),
        elapsed = ?start.elapsed(),
        "gateways probed"
    );
    (ranking, late)
}

async fn probe(options: Arc<Options>, endpoint: Endpoint, index: usize) -> Probed {
    let attempt = async {
        let token = options.credentials.get().await?;
        let mut transport =
            Transport::dial(&endpoint, &options.app, &token, options.connect_timeout).await?;
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
            pending: false,
            transport: Some(transport),
            error: None,
        },
        Err(e) => {
            tracing::debug!(url = %endpoint.ws_url(options.app.as_str()), error = %e, "probe failed");
            Probed {
                index,
                rtt: None,
                pending: false,
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
            pending: false,
            transport: None,
            error: None,
        }
    }

    fn pending(index: usize) -> Probed {
        Probed {
            pending: true,
            ..probed(index, None)
        }
    }

    #[test]
    fn ranks_by_round_trip_and_unreachable_last_in_given_order() {
        let r = Ranking::new(vec![
            probed(0, None),
            probed(1, Some(40)),
            probed(2, None),
            probed(3, Some(5)),
        ]);
        assert_eq!(r.order(), [3, 1, 0, 2]);
        assert_eq!(r.rtt_of(1), Some(Duration::from_millis(40)));
        assert_eq!(r.rtt_of(2), None);
    }

    #[test]
    fn gateways_still_probing_rank_after_those_that_answered_and_before_unreachable_ones() {
        let r = Ranking::new(vec![
            pending(0),
            probed(1, None),
            probed(2, Some(90)),
            pending(3),
            probed(4, Some(3)),
        ]);
        assert_eq!(r.order(), [4, 2, 0, 3, 1]);
    }

    #[test]
    fn late_answers_refine_the_ranking() {
        let mut r = Ranking::new(vec![
            pending(0),
            probed(1, Some(10)),
            pending(2),
            probed(3, None),
        ]);
        // Gateway 0 answered late but nearer than 1 (a slow server, a short link); 2 failed.
        r.merge(vec![probed(2, None), probed(0, Some(4))]);
        assert_eq!(r.order(), [0, 1, 2, 3]);
        assert_eq!(r.rtt_of(0), Some(Duration::from_millis(4)));
        assert!(r.probed.iter().all(|p| !p.pending));
    }

    #[test]
    fn stops_waiting_at_the_deadline_once_a_gateway_answered_and_the_own_one_finished() {
        let ms = Duration::from_millis;
        // Every probe finished: rank, whatever the time.
        assert_eq!(next_step(None, 0, true, ms(1)), Step::Rank);
        assert_eq!(next_step(Some(ms(3)), 0, false, ms(1)), Step::Rank);
        // No answer yet (failures do not count): wait for the next one, however long.
        assert_eq!(next_step(None, 2, true, ms(9_000)), Step::Await);
        // The first answer at 40 ms: wait until 80 ms, then rank.
        assert_eq!(
            next_step(Some(ms(40)), 1, true, ms(41)),
            Step::AwaitUntil(ms(80))
        );
        assert_eq!(next_step(Some(ms(40)), 1, true, ms(80)), Step::Rank);
        // Re-probing: the own gateway is waited for past the deadline, so that the move
        // compares it with the best.
        assert_eq!(next_step(Some(ms(40)), 1, false, ms(500)), Step::Await);
        // A first answer within a data centre: the floor.
        assert_eq!(
            next_step(Some(Duration::from_micros(350)), 1, true, ms(1)),
            Step::AwaitUntil(Duration::from_micros(5350))
        );
    }

    #[test]
    fn waits_for_the_others_twice_the_first_answer_or_the_floor() {
        let ms = Duration::from_millis;
        // A far first answer: the others get as long again.
        assert_eq!(stop_waiting_at(ms(200)), ms(400));
        // A gateway in the same data centre: a few milliseconds more, not a far one's 200.
        assert_eq!(
            stop_waiting_at(Duration::from_micros(350)),
            Duration::from_micros(5350)
        );
        assert_eq!(stop_waiting_at(ms(5)), ms(10));
        // Measured (docs/regions.md): own gateway 0.35 ms, the far one's connect alone 82 ms,
        // its probe about 205 ms. The far one cannot be waited for.
        assert!(stop_waiting_at(Duration::from_micros(350)) < ms(82));
        // A gateway with the same round trip whose server takes as long again to accept still
        // counts.
        assert!(stop_waiting_at(ms(40)) >= ms(40) + ms(40));
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
