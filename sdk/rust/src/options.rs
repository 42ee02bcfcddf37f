//! Client options, set through [`ClientBuilder`].
//!
//! Every option has a default chosen for a browser-like end-user client; the defaults are stated
//! on each setter. URLs are a list from the start: a client rotates through them on reconnect, so
//! one gateway draining (close 1001) sends its clients to the others.

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{BoxError, Error, Result};
use crate::transport::Endpoint;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use waas_protocol::{AppId, ServerName};

pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>>;
type TokenFn = dyn Fn() -> TokenFuture + Send + Sync;

/// What the client authenticates with on each (re)connect.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// A JWT or an API key, used as is every time.
    Static(String),
    /// Asked for a fresh token before every connect, so that a long-lived client survives its
    /// tokens expiring.
    Provider(Arc<TokenFn>),
}

impl Credentials {
    pub(crate) async fn get(&self) -> Result<String> {
        match self {
            Credentials::Static(token) => Ok(token.clone()),
            Credentials::Provider(f) => f().await.map_err(Error::TokenProvider),
        }
    }

    /// Whether a reconnect can present different credentials than the ones just refused.
    pub(crate) fn can_refresh(&self) -> bool {
        matches!(self, Credentials::Provider(_))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Static(_) => f.write_str("Static(..)"),
            Credentials::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// Validated options, shared read-only by the client handle and its connection task.
#[derive(Debug)]
pub(crate) struct Options {
    pub endpoints: Vec<Endpoint>,
    pub app: AppId,
    pub credentials: Credentials,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub backoff: Backoff,
    pub max_reconnect_attempts: Option<u32>,
    pub subscription_capacity: usize,
    pub offline_queue: usize,
    pub nearest: bool,
    pub probe_samples: u32,
    pub reprobe_interval: Duration,
    /// Where the gateways' URLs are fetched from (`discovery.rs`); implies `nearest`.
    pub discovery_url: Option<String>,
    /// Sent with every connection, also to gateways found by discovery.
    pub server_name: Option<ServerName>,
}

/// Builds a [`Client`]: `Client::builder().url(..).app(..).token(..).connect().await`.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    urls: Vec<String>,
    app: Option<String>,
    credentials: Option<Credentials>,
    ping_interval: Duration,
    ping_timeout: Duration,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff: Backoff,
    max_reconnect_attempts: Option<u32>,
    subscription_capacity: usize,
    offline_queue: usize,
    nearest: bool,
    probe_samples: u32,
    reprobe_interval: Duration,
    discovery_url: Option<String>,
    server_name: Option<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            urls: Vec::new(),
            app: None,
            credentials: None,
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            max_reconnect_attempts: None,
            subscription_capacity: 1024,
            offline_queue: 1024,
            nearest: false,
            probe_samples: 3,
            reprobe_interval: Duration::from_secs(300),
            discovery_url: None,
            server_name: None,
        }
    }
}

impl ClientBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a gateway base URL (`ws://host:port` or `http://host:port`, optionally with a path
    /// prefix). May be called several times: the first URL is tried first, and reconnects rotate
    /// through the list. `wss://`/`https://` are not supported yet.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Adds several gateway base URLs; see [`ClientBuilder::url`].
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// The app (tenant application) id to connect to. Required.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// A JWT for an end user, or the app's API key for a trusted server process. Sent as
    /// `Authorization: Bearer` on every (re)connect. Replaces any token provider.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Static(token.into()));
        self
    }

    /// A function returning a fresh token, called before every connect and reconnect. Use it when
    /// tokens expire during the client's life: the server closes an expired connection with 4501,
    /// and with a provider the client reconnects with a new token instead of stopping. Provider
    /// errors count as failed attempts (retried with backoff). Replaces any static token.
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let f = move || -> TokenFuture {
            let fut = provider();
            Box::pin(async move { fut.await.map_err(Into::into) })
        };
        self.credentials = Some(Credentials::Provider(Arc::new(f)));
        self
    }

    /// How often the client pings the server to detect a dead connection. Default 20 s.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long a ping may go unanswered before the connection is deemed dead and replaced.
    /// Default 10 s.
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Limit for one connect: TCP, WebSocket upgrade and the server's `ready`. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long `subscribe`, `publish`, `unsubscribe` and `ping` wait for the server's answer,
    /// including time spent waiting for a reconnect. Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Reconnect delays; see [`Backoff`]. Default 100 ms doubling to 5 s, jittered.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Give up after this many consecutive failed reconnect attempts. Default: never give up.
    pub fn max_reconnect_attempts(mut self, attempts: u32) -> Self {
        self.max_reconnect_attempts = Some(attempts);
        self
    }

    /// Messages buffered per subscription for an application that is not reading. When the
    /// buffer is full, newer messages for that subscription are dropped (and counted, see
    /// [`crate::Subscription::dropped`]) rather than stalling the connection: one slow consumer
    /// must not delay the other subscriptions or the heartbeat. Offsets show the gap. Default 1024.
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity;
        self
    }

    /// Publishes and pings kept while reconnecting, sent once connected again; beyond this they
    /// fail at once with [`Error::Disconnected`]. Default 1024.
    pub fn offline_queue(mut self, capacity: usize) -> Self {
        self.offline_queue = capacity;
        self
    }

    /// Connect to the nearest of the URLs instead of the first (one gateway URL per region, say):
    /// every URL is probed in parallel with `probe_samples` protocol pings on a real connection,
    /// the one with the shortest median round trip is kept, reconnects after a failure try the
    /// next nearest first, and a connected client probes again every `reprobe_interval`, moving
    /// to a gateway that answers in under 80% of its own's round trip. A move resubscribes from
    /// each channel's last position, like any reconnect, so no message is lost or repeated where
    /// history covers the switch; it waits (up to the request timeout) for requests in flight to
    /// be answered first, and shows as a [`crate::ConnectionEvent::Connected`] with the new URL.
    /// Probes are connections like any other to the gateways (counted in their metrics).
    /// Default off: the first URL is tried first (`docs/regions.md`).
    pub fn nearest(mut self, nearest: bool) -> Self {
        self.nearest = nearest;
        self
    }

    /// Pings per gateway and probe with [`ClientBuilder::nearest`]; the median counts. Default 3,
    /// at least 1.
    pub fn probe_samples(mut self, samples: u32) -> Self {
        self.probe_samples = samples;
        self
    }

    /// How often a connected client probes the gateways again with [`ClientBuilder::nearest`],
    /// to move back to a nearer one that failed or was slow earlier. Default 5 minutes.
    pub fn reprobe_interval(mut self, interval: Duration) -> Self {
        self.reprobe_interval = interval;
        self
    }

    /// Fetch the gateways' URLs from this discovery URL instead of listing them in the client:
    /// an `http://` URL (no TLS in this SDK yet) answering a regions document, such as any gateway's `GET /v1/regions`
    /// (`docs/regions.md`). Turns [`ClientBuilder::nearest`] on: the URLs it lists are probed
    /// and the nearest is kept. The document is fetched at connect and again before every
    /// re-probe, so regions can be added or moved without changing clients. URLs given with
    /// [`ClientBuilder::url`] are a fallback, used when the document cannot be fetched or read;
    /// without them that failure fails the connect with [`Error::Discovery`]. A document larger
    /// than 64 KiB, listing more than 32 regions or a URL other than `ws://`/`wss://` is refused
    /// (this SDK connects to `ws://` only for now).
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.discovery_url = Some(url.into());
        self
    }

    /// The name of this server process, for a client connecting with an API key: the dashboard's
    /// Servers page and the admin API list the connection under it, with its gateway and ping
    /// latency (`docs/protocol.md`, `server_name`). 1–64 of letters, digits, `.`, `_`, `:`, `-`,
    /// such as a host or pod name. Ignored by the server for end users' tokens.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Connects and waits for the server's `ready`. Fails with the server's reason
    /// ([`Error::Rejected`]) when it refuses the credentials or the app; the first connect is not
    /// retried (each URL is tried once), so configuration mistakes surface at once.
    pub async fn connect(self) -> Result<Client> {
        let options = self.build()?;
        Client::connect(options).await
    }

    pub(crate) fn build(self) -> Result<Options> {
        if self.urls.is_empty() && self.discovery_url.is_none() {
            return Err(Error::Config(
                "no gateway URL or discovery URL given".into(),
            ));
        }
        if let Some(url) = &self.discovery_url {
            if !url.starts_with("http://") {
                return Err(Error::Config(format!(
                    "discovery URL {url:?}: expected http:// (TLS is not supported by this SDK \
                     yet)"
                )));
            }
        }
        let server_name = self
            .server_name
            .as_deref()
            .map(ServerName::parse)
            .transpose()
            .map_err(|e| Error::Config(format!("server name: {e}")))?;
        let endpoints = self
            .urls
            .iter()
            .map(|u| Endpoint::parse(u).map(|e| e.with_server_name(server_name.as_ref())))
            .collect::<Result<Vec<_>>>()?;
        let app = self
            .app
            .ok_or_else(|| Error::Config("no app id given".into()))?;
        let app = AppId::parse(&app).map_err(|e| Error::Config(format!("app id {app:?}: {e}")))?;
        let credentials = self
            .credentials
            .ok_or_else(|| Error::Config("no token, API key or token provider given".into()))?;
        if self.subscription_capacity == 0 {
            return Err(Error::Config(
                "subscription_capacity must be at least 1".into(),
            ));
        }
        if self.ping_interval.is_zero() || self.ping_timeout.is_zero() {
            return Err(Error::Config(
                "ping interval and timeout must be positive".into(),
            ));
        }
        if self.probe_samples == 0 {
            return Err(Error::Config("probe_samples must be at least 1".into()));
        }
        if self.reprobe_interval.is_zero() {
            return Err(Error::Config("reprobe_interval must be positive".into()));
        }
        Ok(Options {
            endpoints,
            app,
            credentials,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            backoff: self.backoff,
            max_reconnect_attempts: self.max_reconnect_attempts,
            subscription_capacity: self.subscription_capacity,
            offline_queue: self.offline_queue,
            nearest: self.nearest || self.discovery_url.is_some(),
            probe_samples: self.probe_samples,
            reprobe_interval: self.reprobe_interval,
            discovery_url: self.discovery_url,
            server_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requires_url_app_and_credentials() {
        let e = ClientBuilder::new()
            .app("demo")
            .token("t")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        let e = ClientBuilder::new()
            .url("ws://h:1")
            .token("t")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        let e = ClientBuilder::new()
            .url("ws://h:1")
            .app("demo")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        let e = ClientBuilder::new()
            .url("ws://h:1")
            .app("bad app")
            .token("t")
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }

    #[test]
    fn a_server_name_goes_in_the_url_and_a_bad_one_is_refused() {
        let o = ClientBuilder::new()
            .url("ws://a:1/p")
            .app("demo")
            .token("key")
            .server_name("api-1.eu")
            .build()
            .unwrap();
        assert_eq!(
            o.endpoints[0].ws_url("demo"),
            "ws://a:1/p/v1/apps/demo/ws?server_name=api-1.eu"
        );
        let e = ClientBuilder::new()
            .url("ws://a:1")
            .app("demo")
            .token("key")
            .server_name("api 1")
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("server name")),
            "{e}"
        );
    }

    #[test]
    fn urls_accumulate_in_order() {
        let o = ClientBuilder::new()
            .url("ws://a:1")
            .urls(["http://b:2", "ws://c:3/prefix"])
            .app("demo")
            .token("t")
            .build()
            .unwrap();
        let urls: Vec<_> = o.endpoints.iter().map(|e| e.ws_url("demo")).collect();
        assert_eq!(
            urls,
            [
                "ws://a:1/v1/apps/demo/ws",
                "ws://b:2/v1/apps/demo/ws",
                "ws://c:3/prefix/v1/apps/demo/ws"
            ]
        );
    }

    #[test]
    fn a_discovery_url_may_replace_the_urls_and_turns_nearest_on() {
        let o = ClientBuilder::new()
            .discovery_url("http://gw:8080/v1/regions")
            .app("demo")
            .token("t")
            .build()
            .unwrap();
        assert!(o.nearest);
        assert!(o.endpoints.is_empty());
        let e = ClientBuilder::new()
            .discovery_url("ftp://gw/regions")
            .app("demo")
            .token("t")
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("discovery URL")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn token_provider_is_called_each_time() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let n2 = n.clone();
        let o = ClientBuilder::new()
            .url("ws://a:1")
            .app("demo")
            .token_provider(move || {
                let i = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { Ok::<_, std::io::Error>(format!("tok{i}")) }
            })
            .build()
            .unwrap();
        assert!(o.credentials.can_refresh());
        assert_eq!(o.credentials.get().await.unwrap(), "tok0");
        assert_eq!(o.credentials.get().await.unwrap(), "tok1");
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
