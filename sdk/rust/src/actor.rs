//! The connection task: the one place that owns the socket.
//!
//! Client handles talk to it through [`Command`]s carrying `oneshot` replies; it runs one
//! `select!` over those commands, frames from the reader task and the heartbeat timer, and keeps
//! the protocol state in a [`Session`] that outlives each connection. When a connection is lost
//! it decides from the close code whether to reconnect, waits a jittered backoff, dials the next
//! URL in rotation and resubscribes; commands keep being accepted meanwhile (publishes are queued,
//! `close()` stops the retries).

use crate::error::{Error, Result};
use crate::events::{ConnectionEvent, State};
use crate::nearest::{Late, Ranking};
use crate::options::Options;
use crate::session::{Notice, Session, Subscriber};
use crate::transport::{Endpoint, Inbound, Transport};
use serde_json::value::RawValue;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep, sleep_until, Instant};
use waas_protocol::{CloseCode, ErrorCode};

pub(crate) enum Command {
    Subscribe {
        channel: String,
        subscriber: Subscriber,
        reply: oneshot::Sender<Result<()>>,
    },
    Unsubscribe {
        channel: String,
        subscriber_id: u64,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    Publish {
        channel: String,
        event: String,
        data: Box<RawValue>,
        reply: oneshot::Sender<Result<u64>>,
    },
    Ping {
        reply: oneshot::Sender<Result<Duration>>,
    },
    Members {
        channel: String,
        reply: oneshot::Sender<Result<Vec<waas_protocol::presence::Member>>>,
    },
    History {
        query: crate::session::HistoryQuery,
        reply: oneshot::Sender<Result<waas_protocol::history::HistoryPage>>,
    },
    /// A key directory op (`e2ee/wire.rs`).
    Keys {
        request: crate::e2ee::wire::KeyRequest,
        reply: oneshot::Sender<Result<waas_protocol::ServerFrame>>,
    },
    /// Requests, serving and responses (`rpc.rs`).
    Rpc(crate::rpc::RpcCommand),
    Close {
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Why serving a connection stopped.
enum Ended {
    /// A probe found a clearly nearer gateway (`nearest.rs`); `transport` is connected to it.
    Move { index: usize, transport: Transport },
    /// The connection broke; `code` is the server's close code when it sent one.
    Lost { code: Option<u16>, reason: String },
    /// `close()` was called.
    Close(oneshot::Sender<Result<()>>),
    /// Every handle is gone.
    Dropped,
}

/// Why the client stops for good.
enum Stop {
    Close(oneshot::Sender<Result<()>>),
    Dropped,
    Fatal(Error),
}

/// A probe running beside the connection; stopped (its connections closed) when the connection
/// it was for ends first.
struct Probing(tokio::task::JoinHandle<Reprobed>);

/// What a probe while connected found: the gateways' URLs (fetched again with
/// [`Options::discovery_url`]), their ranking and the probes still running.
struct Reprobed {
    endpoints: Vec<Endpoint>,
    /// Index in `endpoints` of the gateway the client is connected to.
    own: usize,
    ranking: Ranking,
    late: Option<Late>,
}

impl Drop for Probing {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) struct Actor {
    pub options: Arc<Options>,
    pub commands: mpsc::Receiver<Command>,
    pub events: broadcast::Sender<ConnectionEvent>,
    pub presence: broadcast::Sender<crate::presence::PresenceEvent>,
    pub state: watch::Sender<State>,
    pub session: Session,
    /// The gateways: `options.endpoints`, or those the discovery document lists
    /// ([`Options::discovery_url`]), fetched again with every probe.
    pub endpoints: Vec<Endpoint>,
    /// Index in `endpoints` of the current (or last) connection.
    pub endpoint: usize,
    /// Indices in `endpoints` in the order reconnects try them: as given, or nearest first
    /// with [`Options::nearest`], updated by every probe.
    pub order: Vec<usize>,
    /// The last probe's ranking, with [`Options::nearest`].
    pub ranking: Option<Ranking>,
    /// That probe's gateways still probing, whose answers refine `ranking`.
    pub late: Option<Late>,
    /// Set to the fatal error, if any, before the command channel closes.
    pub stopped: Arc<OnceLock<Error>>,
}

/// The first connection and what the connection task starts from.
pub(crate) struct Connected {
    pub transport: Transport,
    pub endpoints: Vec<Endpoint>,
    pub endpoint: usize,
    pub order: Vec<usize>,
    pub ranking: Option<Ranking>,
    pub late: Option<Late>,
}

/// Connects once to each URL in order, returning the first success or the last failure, with
/// the order reconnects try the URLs in; with `nearest`, probes them all and keeps the nearest
/// (`nearest.rs`), after fetching them with a discovery URL (`discovery.rs`). The first connect
/// is not retried with backoff so that a wrong URL, app or token fails fast.
pub(crate) async fn first_connect(options: &Arc<Options>) -> Result<Connected> {
    let endpoints = crate::discovery::endpoints(options, None).await?;
    if options.nearest && endpoints.len() > 1 {
        let (mut ranking, late) = crate::nearest::probe_all(options, &endpoints, None).await;
        let order = ranking.order();
        return match ranking.take_nearest() {
            Some((endpoint, transport)) => Ok(Connected {
                transport,
                endpoints,
                endpoint,
                order,
                ranking: Some(ranking),
                late,
            }),
            None => Err(ranking.into_error()),
        };
    }
    let order: Vec<usize> = (0..endpoints.len()).collect();
    let mut last = None;
    for (i, endpoint) in endpoints.iter().enumerate() {
        let token = options.credentials.get().await?;
        match Transport::dial(endpoint, &options.app, &token, options.connect_timeout).await {
            Ok(transport) => {
                return Ok(Connected {
                    transport,
                    endpoints,
                    endpoint: i,
                    order,
                    ranking: None,
                    late: None,
                })
            }
            Err(e) => {
                tracing::debug!(url = %endpoint.ws_url(options.app.as_str()), error = %e, "connect failed");
                let fatal = is_fatal_at_connect(&e);
                last = Some(e);
                if fatal {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Config("no gateway URL given".into())))
}

/// A probe while connected: the gateways fetched again (with a discovery URL), then probed,
/// waiting for the client's own gateway's answer too so that the move decision compares it
/// with the best ([`crate::nearest::should_move`]). `current` are the gateways known now and
/// `own` the index of the one connected to; if a new discovery document no longer lists it,
/// it stays on the list (at the end) while the client is connected to it.
async fn reprobe_task(options: Arc<Options>, current: Vec<Endpoint>, own: usize) -> Reprobed {
    let connected = current[own].clone();
    let mut endpoints = match options.discovery_url {
        Some(_) => crate::discovery::endpoints(&options, Some(&current))
            .await
            .unwrap_or(current),
        None => current,
    };
    let own = match endpoints.iter().position(|e| *e == connected) {
        Some(i) => i,
        None => {
            endpoints.push(connected);
            endpoints.len() - 1
        }
    };
    let (ranking, late) = crate::nearest::probe_all(&options, &endpoints, Some(own)).await;
    Reprobed {
        endpoints,
        own,
        ranking,
        late,
    }
}

/// Refusals that another attempt with the same configuration would get again.
pub(crate) fn is_fatal_at_connect(e: &Error) -> bool {
    match e {
        Error::Rejected { code, .. } => matches!(
            code,
            ErrorCode::InvalidToken
                | ErrorCode::TokenExpired
                | ErrorCode::TokenWrongApp
                | ErrorCode::AppNotFound
                | ErrorCode::Unauthorized
                | ErrorCode::Forbidden
        ),
        Error::Closed { code, .. } => !CloseCode(*code).should_reconnect(),
        Error::Http { status, .. } => matches!(status, 401 | 403),
        Error::Config(_) => true,
        _ => false,
    }
}

impl Actor {
    pub(crate) async fn run(mut self, mut transport: Transport) {
        let mut late = self.late.take();
        loop {
            self.session.on_connect();
            let ended = self.serve(&mut transport, &mut late).await;
            let stop = match ended {
                Ended::Close(reply) => Stop::Close(reply),
                Ended::Dropped => Stop::Dropped,
                Ended::Move {
                    index,
                    transport: nearer,
                } => {
                    tracing::info!(from = %transport.url, to = %nearer.url, "moving to a nearer gateway");
                    let _ = transport
                        .close(CloseCode::NORMAL.0, "moving to a nearer gateway")
                        .await;
                    self.session.on_disconnect();
                    self.state.send_replace(State::Reconnecting);
                    self.endpoint = index;
                    transport = nearer;
                    continue;
                }
                Ended::Lost { code, reason } => {
                    tracing::info!(?code, %reason, url = %transport.url, "connection lost");
                    self.session.on_disconnect();
                    self.emit(ConnectionEvent::Disconnected {
                        code,
                        reason: reason.clone(),
                    });
                    if self.may_reconnect(code) {
                        self.state.send_replace(State::Reconnecting);
                        match self.reconnect().await {
                            Ok(t) => {
                                transport = t;
                                continue;
                            }
                            Err(stop) => stop,
                        }
                    } else {
                        Stop::Fatal(Error::Closed {
                            code: code.unwrap_or(CloseCode::NORMAL.0),
                            reason,
                        })
                    }
                }
            };
            drop(transport);
            self.finish(stop);
            return;
        }
    }

    fn finish(&mut self, stop: Stop) {
        let error = match &stop {
            Stop::Fatal(e) => Some(Arc::new(e.clone_lossy())),
            _ => None,
        };
        match &error {
            Some(e) => self.session.shutdown(|| e.clone_lossy()),
            None => self.session.shutdown(|| Error::ClientClosed),
        }
        if let Some(e) = &error {
            tracing::warn!(error = %e, "client stopped");
            let _ = self.stopped.set(e.clone_lossy());
        }
        self.state.send_replace(State::Closed);
        self.emit(ConnectionEvent::Closed { error });
        if let Stop::Close(reply) = stop {
            let _ = reply.send(Ok(()));
        }
        // Commands sent from now on fail: their replies are dropped with the receiver.
        self.commands.close();
    }

    fn may_reconnect(&self, code: Option<u16>) -> bool {
        match code {
            None => true,
            Some(code) => {
                CloseCode(code).should_reconnect()
                    // An expired or refused token may be replaced by a fresh one.
                    || (self.options.credentials.can_refresh()
                        && (code == CloseCode::TOKEN_EXPIRED.0
                            || code == CloseCode::INVALID_TOKEN.0))
            }
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        // No listener is fine.
        let _ = self.events.send(event);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Subscribe {
                channel,
                subscriber,
                reply,
            } => self.session.subscribe(channel, subscriber, reply),
            Command::Unsubscribe {
                channel,
                subscriber_id,
                reply,
            } => self.session.unsubscribe(&channel, subscriber_id, reply),
            Command::Publish {
                channel,
                event,
                data,
                reply,
            } => self.session.publish(channel, event, data, reply),
            Command::Ping { reply } => self.session.ping(reply),
            Command::Members { channel, reply } => self.session.members(channel, reply),
            Command::History { query, reply } => self.session.history(query, reply),
            Command::Rpc(command) => self.session.rpc(command),
            Command::Keys { request, reply } => self.session.keys(request, reply),
            Command::Close { .. } => unreachable!("handled by the caller"),
        }
    }

    fn announce(&mut self, transport: &Transport) {
        for notice in self.session.take_notices() {
            match notice {
                Notice::AllLive => {
                    self.state.send_replace(State::Connected {
                        connection_id: transport.ready.connection_id.clone(),
                        sub: transport.ready.sub.clone(),
                        url: transport.url.clone(),
                    });
                    self.emit(ConnectionEvent::Connected {
                        connection_id: transport.ready.connection_id.clone(),
                        url: transport.url.clone(),
                    });
                }
                Notice::Unrecovered { channel } => {
                    tracing::warn!(%channel, "messages missed while disconnected could not all be recovered");
                    self.emit(ConnectionEvent::Unrecovered { channel });
                }
                Notice::Presence(event) => {
                    // No listener is fine.
                    let _ = self.presence.send(event);
                }
                Notice::ResubscribeFailed { channel, error } => {
                    tracing::warn!(%channel, %error, "resubscribe refused");
                    self.emit(ConnectionEvent::ResubscribeFailed {
                        channel,
                        error: Arc::new(error),
                    });
                }
            }
        }
    }

    /// Serves one connection until it ends. `late` holds the last probe's gateways still
    /// probing; their answers refine the reconnect order as they come.
    async fn serve(&mut self, transport: &mut Transport, late: &mut Option<Late>) -> Ended {
        let ping_interval = self.options.ping_interval;
        let mut next_ping = Instant::now() + ping_interval;
        let mut pong_deadline: Option<Instant> = None;
        // With a discovery URL the list may grow on a later fetch, so one gateway is no reason
        // to stop probing.
        let reprobe = self.options.nearest
            && (self.endpoints.len() > 1 || self.options.discovery_url.is_some());
        let mut next_probe = Instant::now() + self.options.reprobe_interval;
        let mut probing: Option<Probing> = None;
        let mut moving: Option<(usize, Transport, Instant)> = None;
        loop {
            if let Some((_, _, deadline)) = &moving {
                if self.session.quiet() || Instant::now() >= *deadline {
                    let (index, transport, _) = moving.take().expect("checked above");
                    return Ended::Move { index, transport };
                }
            }
            for text in self.session.take_outbox() {
                if let Err(e) = transport.send_text(text).await {
                    return Ended::Lost {
                        code: None,
                        reason: e.to_string(),
                    };
                }
            }
            self.announce(transport);
            if !self.session.heartbeat_outstanding() {
                pong_deadline = None;
            }
            let mut wake = pong_deadline.map_or(next_ping, |d| d.min(next_ping));
            if reprobe && probing.is_none() && moving.is_none() {
                wake = wake.min(next_probe);
            }
            if let Some((_, _, deadline)) = &moving {
                wake = wake.min(*deadline);
            }
            tokio::select! {
                answers = async { late.as_mut().expect("guarded").answers().await }, if late.is_some() => {
                    *late = None;
                    if let Some(ranking) = &mut self.ranking {
                        ranking.merge(answers);
                        self.order = ranking.order();
                    }
                }
                reprobed = async { (&mut probing.as_mut().expect("guarded").0).await }, if probing.is_some() => {
                    probing = None;
                    next_probe = Instant::now() + self.options.reprobe_interval;
                    if let Ok(reprobed) = reprobed {
                        self.endpoints = reprobed.endpoints;
                        self.endpoint = reprobed.own;
                        // Dropping the older late probes aborts them: this ranking replaces theirs.
                        *late = reprobed.late;
                        moving = self.reranked(reprobed.ranking).await;
                    }
                }
                command = self.commands.recv() => match command {
                    None => {
                        let _ = transport.close(CloseCode::NORMAL.0, "").await;
                        return Ended::Dropped;
                    }
                    Some(Command::Close { reply }) => {
                        let _ = transport.close(CloseCode::NORMAL.0, "").await;
                        return Ended::Close(reply);
                    }
                    Some(command) => self.handle(command),
                },
                item = transport.inbound.recv() => match item {
                    Some(Inbound::Frame(frame)) => self.session.on_frame(frame),
                    Some(Inbound::Obligation(o)) => {
                        // A failed write here means the socket is gone; the reader reports
                        // why (often the close frame just echoed), so that is what counts.
                        if let Err(e) = transport.fulfil(o).await {
                            tracing::debug!(error = %e, "could not answer a control frame");
                        }
                    }
                    Some(Inbound::Closed { code, reason }) => return Ended::Lost { code, reason },
                    Some(Inbound::Failed(e)) => {
                        return Ended::Lost { code: None, reason: e.to_string() }
                    }
                    None => {
                        return Ended::Lost { code: None, reason: "reader stopped".into() }
                    }
                },
                _ = sleep_until(wake) => {
                    let now = Instant::now();
                    if pong_deadline.is_some_and(|d| now >= d) && self.session.heartbeat_outstanding() {
                        return Ended::Lost {
                            code: None,
                            reason: format!("no pong within {:?}", self.options.ping_timeout),
                        };
                    }
                    if reprobe && probing.is_none() && moving.is_none() && now >= next_probe {
                        let options = self.options.clone();
                        let current = self.endpoints.clone();
                        let own = self.endpoint;
                        probing = Some(Probing(tokio::spawn(async move {
                            reprobe_task(options, current, own).await
                        })));
                    }
                    if now >= next_ping {
                        if !self.session.heartbeat_outstanding() {
                            self.session.send_heartbeat();
                            pong_deadline = Some(now + self.options.ping_timeout);
                        }
                        next_ping = now + ping_interval;
                    }
                }
            }
        }
    }

    /// Takes a new probe's ranking as the reconnect order; returns the nearest gateway's
    /// connection when the client should move there (`nearest::should_move`).
    async fn reranked(&mut self, mut ranking: Ranking) -> Option<(usize, Transport, Instant)> {
        self.order = ranking.order();
        let current = ranking.rtt_of(self.endpoint);
        let nearest = ranking.take_nearest();
        self.ranking = Some(ranking);
        let (index, mut transport) = nearest?;
        let best = self
            .ranking
            .as_ref()
            .and_then(|r| r.rtt_of(index))
            .expect("the nearest answered");
        if index != self.endpoint && crate::nearest::should_move(current, best) {
            tracing::debug!(?current, ?best, to = %transport.url, "a nearer gateway answered");
            Some((
                index,
                transport,
                Instant::now() + self.options.request_timeout,
            ))
        } else {
            let _ = transport.close(CloseCode::NORMAL.0, "probe").await;
            None
        }
    }

    /// Runs `fut` to completion while still serving commands offline.
    async fn offline<F: Future>(&mut self, fut: F) -> std::result::Result<F::Output, Stop> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                command = self.commands.recv() => match command {
                    None => return Err(Stop::Dropped),
                    Some(Command::Close { reply }) => return Err(Stop::Close(reply)),
                    Some(command) => self.handle(command),
                },
            }
        }
    }

    async fn reconnect(&mut self) -> std::result::Result<Transport, Stop> {
        let options = self.options.clone();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let delay = options.backoff.delay(attempt);
            self.emit(ConnectionEvent::Reconnecting { attempt, delay });
            self.offline(sleep(delay)).await?;
            let position = self
                .order
                .iter()
                .position(|&i| i == self.endpoint)
                .unwrap_or(0);
            self.endpoint = self.order[(position + 1) % self.order.len()];
            let endpoint = self.endpoints[self.endpoint].clone();
            let endpoint = &endpoint;
            let dial = async {
                let token = options.credentials.get().await?;
                Transport::dial(endpoint, &options.app, &token, options.connect_timeout).await
            };
            match self.offline(dial).await? {
                Ok(transport) => {
                    tracing::info!(url = %transport.url, attempt, "reconnected");
                    return Ok(transport);
                }
                Err(e) if is_fatal_at_connect(&e) => return Err(Stop::Fatal(e)),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "reconnect failed");
                    if options
                        .max_reconnect_attempts
                        .is_some_and(|max| attempt >= max)
                    {
                        return Err(Stop::Fatal(Error::ReconnectFailed {
                            attempts: attempt,
                            last: Box::new(e),
                        }));
                    }
                }
            }
        }
    }
}
