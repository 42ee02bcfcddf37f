//! The client handle applications hold.
//!
//! [`Client`] is cheap to clone and every clone drives the same connection: it only holds the
//! sending end of the connection task's command channel (see `actor.rs`). The connection lives
//! as long as any clone or any [`Subscription`] does, or until [`Client::close`].

use crate::actor::{first_connect, Actor, Command};
use crate::error::{Error, Result};
use crate::events::{ConnectionEvent, Events, State, EVENT_BUFFER};
use crate::options::{ClientBuilder, Options};
use crate::session::{Session, Subscriber};
use crate::subscription::Subscription;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use waas_protocol::ChannelName;

/// Commands that may wait for the connection task before senders block.
const COMMAND_CAPACITY: usize = 256;

#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<ConnectionEvent>,
    presence: broadcast::Sender<crate::presence::PresenceEvent>,
    state: watch::Receiver<State>,
    options: Arc<Options>,
    next_subscriber: AtomicU64,
    /// Why the client stopped, when it was not `close()`; later calls report it.
    stopped: Arc<OnceLock<Error>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("app", &self.inner.options.app)
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

impl Client {
    /// Starts configuring a client; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    pub(crate) async fn connect(options: Options) -> Result<Client> {
        let options = Arc::new(options);
        let connected = first_connect(&options).await?;
        let transport = connected.transport;
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (presence, _) = broadcast::channel(crate::presence::PRESENCE_BUFFER);
        let stopped = Arc::new(OnceLock::new());
        let (state_tx, state) = watch::channel(State::Connected {
            connection_id: transport.ready.connection_id.clone(),
            sub: transport.ready.sub.clone(),
            url: transport.url.clone(),
        });
        let actor = Actor {
            options: options.clone(),
            commands,
            events: events.clone(),
            presence: presence.clone(),
            state: state_tx,
            session: Session::new(options.offline_queue),
            endpoints: connected.endpoints,
            endpoint: connected.endpoint,
            order: connected.order,
            ranking: connected.ranking,
            late: connected.late,
            stopped: stopped.clone(),
        };
        tokio::spawn(actor.run(transport));
        Ok(Client {
            inner: Arc::new(Inner {
                commands: commands_tx,
                events,
                presence,
                state,
                options,
                next_subscriber: AtomicU64::new(1),
                stopped,
            }),
        })
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Queues a command if there is room, from code that cannot wait (`Drop`).
    pub(crate) fn try_command(&self, command: Command) -> bool {
        self.inner.commands.try_send(command).is_ok()
    }

    /// Sends a command without waiting for an answer.
    pub(crate) async fn send_command(&self, command: Command) -> Result<()> {
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| match self.inner.stopped.get() {
                Some(e) => e.clone_lossy(),
                None => Error::ClientClosed,
            })
    }

    /// Sends a command and waits for its answer, within the request timeout.
    pub(crate) async fn command<T>(
        &self,
        operation: &'static str,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let timeout = self.inner.options.request_timeout;
        self.command_within(operation, timeout, command).await
    }

    /// Sends a command and waits for its answer, within `timeout`.
    pub(crate) async fn command_within<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let closed = || match self.inner.stopped.get() {
            Some(e) => e.clone_lossy(),
            None => Error::ClientClosed,
        };
        let exchange = async {
            self.inner
                .commands
                .send(command(reply))
                .await
                .map_err(|_| closed())?;
            answer.await.map_err(|_| closed())?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout { operation })?
    }

    /// Subscribes to a channel. Returns once the server has acknowledged, so a message published
    /// after this returns is delivered. Fails with [`Error::Rejected`] (`forbidden`,
    /// `too_many_channels`, ...) when the server refuses. The subscription survives reconnects.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        validate(channel)?;
        let id = self.inner.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.options.subscription_capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let subscriber = Subscriber {
            id,
            tx,
            dropped: dropped.clone(),
        };
        self.command("subscribe", |reply| Command::Subscribe {
            channel: channel.to_owned(),
            subscriber,
            reply,
        })
        .await?;
        Ok(Subscription::new(
            channel.to_owned(),
            id,
            rx,
            dropped,
            self.clone(),
        ))
    }

    pub(crate) async fn unsubscribe(&self, channel: String, subscriber_id: u64) -> Result<()> {
        self.command("unsubscribe", |reply| Command::Unsubscribe {
            channel,
            subscriber_id,
            reply: Some(reply),
        })
        .await
    }

    /// Unsubscribes without waiting, from `Drop`. If the command queue is full the unsubscribe is
    /// skipped here and happens on the next message for the channel, when its closed buffer is
    /// noticed.
    pub(crate) fn unsubscribe_now(&self, channel: String, subscriber_id: u64) {
        let _ = self.inner.commands.try_send(Command::Unsubscribe {
            channel,
            subscriber_id,
            reply: None,
        });
    }

    /// Publishes `data` (any `Serialize`, sent as JSON) to a channel and returns the offset the
    /// server gave it. While reconnecting the publish is held and sent once connected (within
    /// the request timeout); if the connection drops after it was sent the result is
    /// [`Error::Disconnected`]: it may or may not have been published, and is not resent.
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<u64> {
        validate(channel)?;
        let data = serde_json::value::to_raw_value(data)?;
        self.command("publish", |reply| Command::Publish {
            channel: channel.to_owned(),
            event: event.to_owned(),
            data,
            reply,
        })
        .await
    }

    /// Measures one round trip to the server (protocol `ping`/`pong`).
    pub async fn ping(&self) -> Result<Duration> {
        self.command("ping", |reply| Command::Ping { reply }).await
    }

    /// Closes the connection (code 1000) and stops reconnecting. Every clone is affected: later
    /// calls fail with [`Error::ClientClosed`], subscription streams end.
    pub async fn close(&self) -> Result<()> {
        match self
            .command("close", |reply| Command::Close { reply })
            .await
        {
            // Already finished, by another clone or for good: nothing left to close.
            Err(_) if self.inner.commands.is_closed() => Ok(()),
            other => other,
        }
    }

    /// The members of a presence channel (`presence.…`) the token may subscribe to, as the
    /// server knows them now. Fails with [`Error::Disconnected`] while reconnecting.
    pub async fn members(&self, channel: &str) -> Result<Vec<crate::presence::Member>> {
        validate(channel)?;
        self.command("members", |reply| Command::Members {
            channel: channel.to_owned(),
            reply,
        })
        .await
    }

    /// A page of `channel`'s stored messages over the socket (the `history` op,
    /// `docs/history.md`): after `since` (before it when `reverse`), at most `limit` (the
    /// server's `history_page_limit` by default), oldest first (newest first when `reverse`).
    /// Each item of `messages` is a `message` frame; parse it with `protocol::ServerFrame::parse`.
    /// Needs the right to subscribe to the channel. Fails with `Disconnected` while offline.
    pub async fn history(
        &self,
        channel: &str,
        since: Option<u64>,
        limit: Option<usize>,
        reverse: bool,
    ) -> Result<waas_protocol::history::HistoryPage> {
        validate(channel)?;
        self.command("history", |reply| Command::History {
            query: crate::session::HistoryQuery {
                channel: channel.to_owned(),
                since,
                limit,
                reverse,
            },
            reply,
        })
        .await
    }

    /// Presence events from now on, for every presence channel this client is subscribed to:
    /// the member list after each subscribe (and resubscribe), then members joining and leaving.
    pub fn presence_events(&self) -> crate::presence::PresenceEvents {
        crate::presence::PresenceEvents::new(self.inner.presence.subscribe())
    }

    /// Lifecycle events from now on: connected, disconnected, reconnecting, closed.
    pub fn events(&self) -> Events {
        Events::new(self.inner.events.subscribe())
    }

    /// What the client is doing right now.
    pub fn state(&self) -> State {
        self.inner.state.borrow().clone()
    }

    /// The server's id for the current connection (changes on reconnect).
    pub fn connection_id(&self) -> Option<String> {
        match &*self.inner.state.borrow() {
            State::Connected { connection_id, .. } => Some(connection_id.clone()),
            _ => None,
        }
    }

    /// The WebSocket URL of the gateway connected to now (with [`ClientBuilder::nearest`], the
    /// nearest that answered); `None` while reconnecting or closed.
    pub fn url(&self) -> Option<String> {
        match &*self.inner.state.borrow() {
            State::Connected { url, .. } => Some(url.clone()),
            _ => None,
        }
    }
}

fn validate(channel: &str) -> Result<()> {
    ChannelName::parse(channel)
        .map(|_| ())
        .map_err(|reason| Error::InvalidChannel {
            channel: channel.to_owned(),
            reason,
        })
}
