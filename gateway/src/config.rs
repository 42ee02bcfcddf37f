//! Every limit of the gateway, with its default and meaning beside it, written once in
//! `limits!`: the struct, its defaults, and the table ([`Limits::SPECS`]) from which the
//! `waas` binary makes its flags and `WAAS_*` variables and against which a test checks
//! `docs/configuration.md`.
//!
//! Adding a limit: one entry in the `limits!` list below (doc comment = the meaning, type,
//! default), then the row it makes in `docs/configuration.md`'s limits table (the
//! `limits_docs` test of the `waas` crate prints the rows it expects) and, when it needs one,
//! a rule in [`Limits::validate`].

use serde::{Deserialize, Serialize};
use std::time::Duration;
use waas_core::http::accept::HttpLimits;

/// Defines [`Limits`] from one list: each limit is written once, with its type, default and
/// meaning, and its field, default, TOML key, flag, `WAAS_*` variable and row of the table in
/// `docs/configuration.md` all follow from that entry ([`Limits::SPECS`]). `shown` adds a
/// reading aid after the default in the doc table.
macro_rules! limits {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident: $ty:ty = $default:expr $(, shown $shown:literal)?;
    )+) => {
        /// Limits that protect the gateway and its tenants from each other. `0` never means
        /// "unlimited" except where a field says so.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Limits {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $field: $default, )+ }
            }
        }

        impl Limits {
            /// Every limit, in the order of the table in `docs/configuration.md`.
            pub const SPECS: &'static [LimitSpec] = &[ $(
                LimitSpec {
                    key: stringify!($field),
                    ty: <$ty as LimitValue>::TYPE,
                    doc: &[$($doc),+],
                    shown: limits!(@shown $($shown)?),
                    get: |limits| limits.$field.to_string(),
                    set: |limits, value| {
                        limits.$field = value.parse()?;
                        Ok(())
                    },
                },
            )+ ];
        }
    };
    (@shown) => { None };
    (@shown $shown:literal) => { Some($shown) };
}

limits! {
    /// Largest client WebSocket frame, or reassembled fragmented message, in bytes; larger gets
    /// `message_too_large` and close `1009`. Also the largest REST request body (`413`).
    max_frame_bytes: usize = 65536;
    /// Channels one connection may be subscribed to at once (`too_many_channels`).
    max_channels_per_connection: usize = 100;
    /// Concurrent authenticated connections per app on one server (`connection_limit`, close
    /// `4004`). `0` = unlimited.
    max_connections_per_app: usize = 10000;
    /// Sustained WebSocket publishes per second per connection (`rate_limited`). `0` = unlimited.
    /// REST publishes are not limited.
    publish_rate: u32 = 50;
    /// Publishes a connection may make at once above the sustained rate (a token bucket of this
    /// size). `0` acts as `1`.
    publish_burst: u32 = 100;
    /// WebSocket publishes of one connection handed to storage and not yet acknowledged; at this
    /// many the connection reads no further frames until the oldest is stored. `1` = one at a
    /// time (each acknowledged before the next frame is read).
    max_publishes_in_flight: usize = 64;
    /// Frames waiting to be sent to one connection before it is closed as a slow consumer (close
    /// `4000`).
    max_queued_messages: usize = 1024;
    /// Bytes waiting to be sent to one connection before it is closed as a slow consumer (close
    /// `4000`).
    max_queued_bytes: usize = 4 << 20, shown "(4 MiB)";
    /// Channels with at most this many subscribers on a gateway have a message that arrives
    /// alone written to each subscriber's socket by the task that received it, instead of
    /// waking each connection's task to write it: a wake-up less per delivery. Busier or larger
    /// channels leave the writes to the connections' tasks, which batch them and spread them
    /// over the worker threads. With the memory bus (`waas dev`) that task is the publisher's
    /// own (a socket's or a REST request's), so the channel's forwarder is not woken either.
    /// `0` = never.
    direct_write_max_subscribers: usize = 64;
    /// Interval between the server's WebSocket pings, ms. Sent to clients in `ready.heartbeat`, in
    /// whole seconds rounded down.
    heartbeat_interval_ms: u64 = 25_000;
    /// A connection from which nothing (pongs included) arrives for this long is closed with
    /// `4001`, ms. Keep it well above `heartbeat_interval_ms`.
    idle_timeout_ms: u64 = 60_000;
    /// Time a connection opened without credentials has to authenticate with `connect`, ms; then
    /// close `4002`.
    connect_timeout_ms: u64 = 10_000;
    /// On SIGTERM or Ctrl-C, how long connections get to close after receiving `1001` before the
    /// process exits, ms. `0` is allowed (exit at once).
    shutdown_grace_ms: u64 = 10_000;
    /// Items in one `POST /batch`.
    max_batch_size: usize = 100;
    /// Entries of `channels` in one REST publish.
    max_channels_per_publish: usize = 100;
    /// Pusher HTTP API ([pusher.md](pusher.md)): largest `data` of one event, bytes (`413`).
    pusher_max_event_data_bytes: usize = 10240, shown "(10 KiB)";
    /// Pusher HTTP API: events in one `POST batch_events` (`400` beyond).
    pusher_max_batch_size: usize = 10;
    /// Pusher HTTP API: `channels` of one event (`400` beyond).
    pusher_max_channels_per_event: usize = 100;
    /// Pusher HTTP API: largest request body, bytes (`413`); room for a full batch.
    pusher_max_body_bytes: usize = 262144, shown "(256 KiB)";
    /// Pusher HTTP API: how far `auth_timestamp` may be from the server's clock, s (`401`).
    pusher_auth_timestamp_window_secs: u64 = 600;
    /// Lifetime of tokens minted by `POST /tokens` when the request gives no `ttl`, s. Greater than
    /// 0 and not above `max_token_ttl_secs`.
    default_token_ttl_secs: u64 = 3600;
    /// Longest `ttl` `POST /tokens` accepts, s; greater than 0. Does not limit tokens you sign
    /// yourself.
    max_token_ttl_secs: u64 = 86400;
    /// Messages buffered between the bus and one channel's fan-out on a server; beyond it the bus
    /// drops messages (subscribers miss them; a later recovery reports `recovered: false` only if
    /// history no longer holds them).
    bus_channel_capacity: usize = 65536;
    /// Messages kept per channel for [recovery and the history API](history.md). `0` keeps none
    /// (and skips JetStream in a cluster). A recovery is queued as one piece, counted by its
    /// bytes against `max_queued_bytes`: keep a full history's size under it, or a client
    /// recovering all of it is closed as a slow consumer.
    history_size: usize = 100;
    /// How long a message is kept in history, s. `0` keeps none.
    history_ttl_secs: u64 = 300;
    /// How often a server frees the in-memory state (offsets, epoch, kept messages) of channels
    /// with no subscriber on it whose kept messages have all expired, ms; channels that keep no
    /// history are freed at once. A freed channel starts a new epoch when next used
    /// ([history.md](history.md#how-long-a-channel-is-remembered)).
    history_sweep_ms: u64 = 10_000;
    /// Most messages one history read returns, and what it returns without `limit`.
    history_page_limit: usize = 100;
    /// Cluster: after a gateway's NATS connection comes back, how long each of its channels keeps
    /// trying to read what it missed from history before its subscribers get a
    /// [`gap`](history.md#after-the-bus-comes-back) frame instead, ms.
    resync_timeout_ms: u64 = 10_000;
    /// Cluster: channels of one gateway reading their history at once after its NATS connection
    /// comes back (the others wait their turn, their live messages held in the bus subscription).
    resync_concurrency: usize = 32;
    /// Connections the kernel queues before the server accepts them (capped by
    /// `net.core.somaxconn`); a burst of reconnecting clients overflows a small backlog and each
    /// waits a 1 s SYN retransmit.
    listen_backlog: u32 = 4096;
    /// How often a gateway announces all its channels and presence members to the other gateways
    /// (and tells the control-plane it is alive), ms. See [presence across
    /// gateways](protocol.md#presence).
    presence_heartbeat_ms: u64 = 5000;
    /// How long a gateway keeps another gateway's channels and members without hearing from it, ms:
    /// the members of a gateway that dies leave (with `member_removed`) within this time, plus up
    /// to a second. Must exceed `presence_heartbeat_ms`.
    presence_ttl_ms: u64 = 15_000;
    /// Largest token `info` claim (as JSON) a member may bring to a presence channel; a larger one
    /// makes `subscribe` to presence channels fail with `bad_request`.
    max_member_info_bytes: usize = 1024;
    /// Members one [presence channel](protocol.md#presence) may have; a newcomer beyond it gets
    /// `presence_full`. A channel's member list travels between gateways in one bus message, so
    /// `max_presence_members × (max_member_info_bytes + 264)` may be at most 786432 bytes; a larger
    /// setting stops the server at start-up.
    max_presence_members: usize = 500;
    /// [Requests](rpc.md) one connection may have waiting for a response; more get
    /// `too_many_requests`.
    max_inflight_requests_per_connection: usize = 100;
    /// Requests forwarded to one serving connection and not yet answered (all its services
    /// together); beyond it the gateway takes no more of its services' requests from the bus until
    /// one is answered ([backpressure](rpc.md#serving-a-service)).
    max_inflight_per_responder: usize = 1024;
    /// Longest wait for a response, ms, for routes that set no `timeout_ms`; then `timeout`.
    rpc_timeout_ms: u64 = 10_000;
    /// Largest HTTP upstream response body, for routes that set no `max_response_bytes`; larger is
    /// `response_too_large`.
    rpc_max_response_bytes: usize = 1 << 20, shown "(1 MiB)";
    /// Device keys the [E2EE key directory](e2ee.md#keys_publish) keeps per user (`sub`);
    /// publishing one more replaces the one published longest ago.
    max_devices_per_user: usize = 10;
    /// Entries of `wrapped` in one [`room_key_put`](e2ee.md#room_key_put); more get `bad_request`.
    /// The SDKs send at most 50 per put: keep it at 50 or more.
    max_room_key_recipients: usize = 100;
    /// Versions of one room key id the key directory keeps per channel; storing version `n` deletes
    /// versions up to `n` minus this.
    max_room_key_versions: u32 = 100;
    /// How long a gateway waits for the key directory (the control-plane) before answering a key op
    /// with `unavailable`, ms.
    key_directory_timeout_ms: u64 = 5000;
    /// Reports a gateway holds for the control-plane's [webhooks](webhooks.md) while they are not
    /// acknowledged (control-plane down); beyond it new reports are dropped and logged.
    webhook_report_queue: usize = 10_000;
    /// Time a new connection has to send its first request's headers (a WebSocket handshake is
    /// one), and a later request on a kept-alive connection to complete its headers from its first
    /// byte, ms; then the socket is closed without an answer. Bounds clients that connect and send
    /// nothing, or send headers a byte at a time. Time spent reading a body or answering is not
    /// bounded by it.
    http_header_timeout_ms: u64 = 10_000;
    /// Time a kept-alive HTTP connection may stay silent between requests before it is closed, ms.
    /// Independent of `http_header_timeout_ms`; the default is above the 60 s idle timeout of
    /// common load balancers, so that they close idle connections, not the server (which could
    /// close one just as the balancer sends a request on it). Upgraded WebSockets are governed by
    /// `idle_timeout_ms` instead.
    http_keepalive_timeout_ms: u64 = 75_000;
    /// Open connections (HTTP and WebSocket, counted for the connection's whole life) from one
    /// source IP address; one more is closed as soon as it is accepted, before anything is read.
    /// `0` = unlimited. The address is the TCP peer's: behind a load balancer or proxy that does
    /// not preserve client addresses, every connection comes from the proxy, so raise it above what
    /// one proxy address carries or set `0` (and enforce a per-client limit in the proxy). Large
    /// NATs (offices, mobile carriers) also put many users behind one address. The benchmarks in
    /// `loadtest/` raise it.
    max_connections_per_address: usize = 1000;
    /// [Pusher front](pusher.md): the `activity_timeout` told to Pusher clients in
    /// `pusher:connection_established`, s; greater than 0. A client that has heard nothing for
    /// this long sends `pusher:ping`. Keep it below `idle_timeout_ms`, after which a silent
    /// connection is closed (Pusher code `4201`).
    pusher_activity_timeout_secs: u64 = 30;
    /// [Pusher front](pusher.md): client events (`client-…`) one connection may send per second,
    /// with bursts of as many; more get `pusher:error` `4301` and are not sent. `0` = unlimited.
    pusher_client_event_rate: u32 = 10;
    /// Apps that get their own `app` label value in this process's [metrics](metrics.md#per-app-metrics);
    /// the first this many apps seen keep theirs until restart, every later one is counted under
    /// `app="other"`. `0` puts every app under `other`. Each labelled app adds 19 series.
    metrics_app_labels: usize = 100;
    /// How often a gateway reports itself and its tenants' server connections (API key) to the
    /// control-plane, for the [dashboard](dashboard.md#servers) and the admin API's
    /// [servers and nodes](admin.md#servers-and-nodes), ms; it also reports at once when a server
    /// connects, disconnects or has its first latency measured. The control-plane deems a gateway
    /// gone after three missed reports. Greater than 0.
    node_report_ms: u64 = 5000;
    /// Server connections one gateway lists in one report; more are counted, not listed. A report
    /// is one bus message (about 200 bytes per server).
    max_reported_servers: usize = 1000;
    /// How often a gateway (and the control-plane, for webhooks) sends its per-app usage counters
    /// to the control-plane, ms ([dashboard.md](dashboard.md#usage)). Live usage lags by up to
    /// this much.
    usage_report_interval_ms: u64 = 5000;
    /// How long the control-plane keeps per-minute usage, s (at least 60).
    usage_minutes_keep_secs: u64 = 172_800, shown "(2 days)";
    /// How long the control-plane keeps per-hour usage (and so per-day), s (at least 3600).
    usage_hours_keep_secs: u64 = 7_776_000, shown "(90 days)";
    /// Most points one usage answer holds (`GET /v1/admin/apps/{app}/usage`); a longer range is
    /// cut to its most recent points.
    usage_max_points: usize = 1440;
}

/// The integer types a limit can have, so that the command line parses each value as its field
/// would (same range, same error) before it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitType {
    Usize,
    U32,
    U64,
}

trait LimitValue {
    const TYPE: LimitType;
}

impl LimitValue for usize {
    const TYPE: LimitType = LimitType::Usize;
}

impl LimitValue for u32 {
    const TYPE: LimitType = LimitType::U32;
}

impl LimitValue for u64 {
    const TYPE: LimitType = LimitType::U64;
}

/// One limit as an operator sees it. The names follow one rule (`docs/configuration.md`):
/// the TOML key is the field's name, the flag is the key with `-` for `_`, the variable is
/// `WAAS_` and the key in capitals; deriving them keeps the rule from being broken by hand.
#[derive(Clone, Copy)]
pub struct LimitSpec {
    /// The key under `[limits]`, and the field of [`Limits`].
    pub key: &'static str,
    pub ty: LimitType,
    doc: &'static [&'static str],
    shown: Option<&'static str>,
    get: fn(&Limits) -> String,
    set: fn(&mut Limits, &str) -> Result<(), std::num::ParseIntError>,
}

impl LimitSpec {
    /// The long flag, without its leading `--`.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The environment variable.
    pub fn env(&self) -> String {
        format!("WAAS_{}", self.key.to_ascii_uppercase())
    }

    /// What the limit means, as one line (the doc comment's lines joined).
    pub fn doc(&self) -> String {
        self.doc
            .iter()
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The default value, as written in the configuration.
    pub fn default_value(&self) -> String {
        (self.get)(&Limits::default())
    }

    /// A reading aid for the default, such as `(4 MiB)`.
    pub fn shown(&self) -> Option<&'static str> {
        self.shown
    }

    /// The limit's value in `limits`.
    pub fn get(&self, limits: &Limits) -> String {
        (self.get)(limits)
    }

    /// Sets the limit in `limits` from its text form.
    pub fn set(&self, limits: &mut Limits, value: &str) -> Result<(), std::num::ParseIntError> {
        (self.set)(limits, value)
    }
}

impl std::fmt::Debug for LimitSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitSpec")
            .field("key", &self.key)
            .field("ty", &self.ty)
            .finish_non_exhaustive()
    }
}

/// Why a configuration was refused at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid limit {key}: {reason}")]
pub struct LimitError {
    pub key: &'static str,
    pub reason: &'static str,
}

impl Limits {
    /// Refuses values that would make the gateway unusable rather than failing at run time.
    pub fn validate(&self) -> Result<(), LimitError> {
        let positive: [(&'static str, u64); 16] = [
            ("max_frame_bytes", self.max_frame_bytes as u64),
            (
                "max_channels_per_connection",
                self.max_channels_per_connection as u64,
            ),
            ("max_queued_messages", self.max_queued_messages as u64),
            ("max_queued_bytes", self.max_queued_bytes as u64),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("max_batch_size", self.max_batch_size as u64),
            (
                "max_publishes_in_flight",
                self.max_publishes_in_flight as u64,
            ),
            ("bus_channel_capacity", self.bus_channel_capacity as u64),
            ("history_page_limit", self.history_page_limit as u64),
            (
                "pusher_max_event_data_bytes",
                self.pusher_max_event_data_bytes as u64,
            ),
            ("pusher_max_batch_size", self.pusher_max_batch_size as u64),
            (
                "pusher_max_channels_per_event",
                self.pusher_max_channels_per_event as u64,
            ),
            ("pusher_max_body_bytes", self.pusher_max_body_bytes as u64),
            (
                "pusher_auth_timestamp_window_secs",
                self.pusher_auth_timestamp_window_secs,
            ),
        ];
        let rpc: [(&'static str, u64); 4] = [
            (
                "max_inflight_requests_per_connection",
                self.max_inflight_requests_per_connection as u64,
            ),
            (
                "max_inflight_per_responder",
                self.max_inflight_per_responder as u64,
            ),
            ("rpc_timeout_ms", self.rpc_timeout_ms),
            ("rpc_max_response_bytes", self.rpc_max_response_bytes as u64),
        ];
        let resync: [(&'static str, u64); 3] = [
            ("resync_timeout_ms", self.resync_timeout_ms),
            ("resync_concurrency", self.resync_concurrency as u64),
            ("history_sweep_ms", self.history_sweep_ms),
        ];
        let e2ee: [(&'static str, u64); 4] = [
            ("max_devices_per_user", self.max_devices_per_user as u64),
            (
                "max_room_key_recipients",
                self.max_room_key_recipients as u64,
            ),
            ("max_room_key_versions", self.max_room_key_versions as u64),
            ("key_directory_timeout_ms", self.key_directory_timeout_ms),
        ];
        if self.node_report_ms == 0 {
            return Err(LimitError {
                key: "node_report_ms",
                reason: "must be greater than 0",
            });
        }
        let http: [(&'static str, u64); 3] = [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_keepalive_timeout_ms", self.http_keepalive_timeout_ms),
            (
                "pusher_activity_timeout_secs",
                self.pusher_activity_timeout_secs,
            ),
        ];
        let usage: [(&'static str, u64); 2] = [
            ("usage_report_interval_ms", self.usage_report_interval_ms),
            ("usage_max_points", self.usage_max_points as u64),
        ];
        if self.usage_minutes_keep_secs < 60 || self.usage_hours_keep_secs < 3600 {
            return Err(LimitError {
                key: "usage_minutes_keep_secs",
                reason: "usage_minutes_keep_secs must be at least 60 and usage_hours_keep_secs at least 3600",
            });
        }
        let positive = positive
            .into_iter()
            .chain(usage)
            .chain(rpc)
            .chain(e2ee)
            .chain(http)
            .chain(resync);
        for (key, v) in positive {
            if v == 0 {
                return Err(LimitError {
                    key,
                    reason: "must be greater than 0",
                });
            }
        }
        if self.max_presence_members == 0
            || self.max_presence_members.saturating_mul(
                self.max_member_info_bytes
                    + waas_protocol::presence::MAX_MEMBER_ID_BYTES
                    + crate::presence::MEMBER_OVERHEAD_BYTES,
            ) > crate::presence::MAX_ENTRY_BYTES
        {
            return Err(LimitError {
                key: "max_presence_members",
                reason: "must be at least 1, and max_presence_members × (max_member_info_bytes + 264) at most 786432 (one channel's members must fit in one bus message)",
            });
        }
        if self.presence_heartbeat_ms == 0 || self.presence_ttl_ms <= self.presence_heartbeat_ms {
            return Err(LimitError {
                key: "presence_ttl_ms",
                reason: "must exceed presence_heartbeat_ms, which must be greater than 0",
            });
        }
        if self.max_channels_per_publish == 0 {
            return Err(LimitError {
                key: "max_channels_per_publish",
                reason: "must be greater than 0",
            });
        }
        if self.default_token_ttl_secs == 0 || self.max_token_ttl_secs == 0 {
            return Err(LimitError {
                key: "default_token_ttl_secs",
                reason: "token lifetimes must be greater than 0",
            });
        }
        if self.default_token_ttl_secs > self.max_token_ttl_secs {
            return Err(LimitError {
                key: "default_token_ttl_secs",
                reason: "must not exceed max_token_ttl_secs",
            });
        }
        Ok(())
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// The history apps keep unless they set their own.
    pub fn history_policy(&self) -> waas_core::history::Policy {
        waas_core::history::Policy {
            size: self.history_size,
            ttl: Duration::from_secs(self.history_ttl_secs),
            namespaced: false,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// What a gateway node needs besides its apps.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// First token of every bus subject, so deployments (or test runs) sharing a NATS stay apart.
    pub subject_prefix: String,
    pub limits: Limits,
    /// Which addresses HTTP upstreams may be reached at (`outbound_allow_*` settings).
    pub outbound: waas_core::egress::Policy,
    /// Each region's public gateway URL, served at `GET /v1/regions` (`regions` setting,
    /// `docs/regions.md`); empty: not served.
    pub regions: waas_protocol::regions::RegionsDocument,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            subject_prefix: "waas".into(),
            limits: Limits::default(),
            outbound: waas_core::egress::Policy::default(),
            regions: waas_protocol::regions::RegionsDocument {
                regions: Vec::new(),
            },
        }
    }
}

/// The HTTP limits of the accept loop (`waas_core::http::accept`).
impl From<&Limits> for HttpLimits {
    fn from(l: &Limits) -> Self {
        HttpLimits {
            header_timeout: Duration::from_millis(l.http_header_timeout_ms),
            keepalive_timeout: Duration::from_millis(l.http_keepalive_timeout_ms),
            max_connections_per_address: l.max_connections_per_address,
        }
    }
}
