//! Every limit of the gateway, with its default beside it. `docs/configuration.md` lists the
//! same keys; the `waas` binary fills them from a TOML file, `WAAS_*` variables and flags.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use waas_core::http::accept::HttpLimits;

/// Limits that protect the gateway and its tenants from each other. `0` never means
/// "unlimited" except where a field says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest client frame (or reassembled fragmented message), and largest REST body, in bytes.
    /// Default 65536.
    pub max_frame_bytes: usize,
    /// Channels one connection may be subscribed to at once. Default 100.
    pub max_channels_per_connection: usize,
    /// Concurrent connections per app on this gateway; 0 = unlimited. Default 10000.
    pub max_connections_per_app: usize,
    /// Sustained publishes per second per connection; 0 = unlimited. Default 50.
    pub publish_rate: u32,
    /// Publishes a connection may burst above the sustained rate. Default 100.
    pub publish_burst: u32,
    /// Frames queued for one connection before it is closed as a slow consumer. Default 1024.
    pub max_queued_messages: usize,
    /// Bytes queued for one connection before it is closed as a slow consumer. Default 4 MiB.
    pub max_queued_bytes: usize,
    /// Interval between the server's WebSocket pings, ms. Default 25000.
    pub heartbeat_interval_ms: u64,
    /// A connection that sends nothing (pongs included) for this long is closed, ms. Default 60000.
    pub idle_timeout_ms: u64,
    /// Time a connection opened without credentials has to send `connect`, ms. Default 10000.
    pub connect_timeout_ms: u64,
    /// On SIGTERM, how long connections get to close before the process exits, ms. Default 10000.
    pub shutdown_grace_ms: u64,
    /// Items in one `POST /batch`. Default 100.
    pub max_batch_size: usize,
    /// Channels in one publish (`channels`). Default 100.
    pub max_channels_per_publish: usize,
    /// Lifetime of tokens minted by `POST /tokens` when the request gives none, s. Default 3600.
    pub default_token_ttl_secs: u64,
    /// Longest lifetime `POST /tokens` will mint, s. Default 86400.
    pub max_token_ttl_secs: u64,
    /// Messages buffered between the bus and one channel's fan-out before the bus drops them
    /// (NATS calls this a slow consumer). Default 65536.
    pub bus_channel_capacity: usize,
    /// Connections the kernel queues before the server accepts them; bursts of reconnecting
    /// clients need more than the usual 128. Capped by `net.core.somaxconn`. Default 4096.
    pub listen_backlog: u32,
    /// How often a gateway announces all its channels and presence members to the others, ms.
    /// Default 5000.
    pub presence_heartbeat_ms: u64,
    /// How long a gateway keeps another's channels and members without hearing from it, ms: a
    /// gateway that dies is forgotten (its members leave) within this time. Must exceed
    /// `presence_heartbeat_ms`. Default 15000.
    pub presence_ttl_ms: u64,
    /// Largest `info` claim (as JSON) a member may bring to a presence channel, bytes.
    /// Default 1024.
    pub max_member_info_bytes: usize,
    /// Members one presence channel may have (cluster-wide, as this gateway knows them); one
    /// more gets `presence_full`. Bounded so that a channel's member list always fits in one
    /// presence announcement on the bus. Default 500.
    pub max_presence_members: usize,
    /// Webhook reports (presence transitions, publishes an endpoint wants) a gateway holds
    /// while the control-plane does not acknowledge them; beyond this new ones are dropped.
    /// Default 10000.
    pub webhook_report_queue: usize,
    /// Messages kept per channel for history and recovery; 0 keeps none. Default 100.
    pub history_size: usize,
    /// How long a message is kept in history, s. Default 300.
    pub history_ttl_secs: u64,
    /// Most messages one history read returns, and what it returns when it gives no `limit`.
    /// Default 100.
    pub history_page_limit: usize,
    /// `request`s one connection may have waiting for a response. Default 100.
    pub max_inflight_requests_per_connection: usize,
    /// Requests forwarded to one serving connection and not yet answered; beyond it the gateway
    /// stops taking the service's requests from the bus for that server. Default 1024.
    pub max_inflight_per_responder: usize,
    /// Longest wait for a response when the route sets no `timeout_ms`, ms. Default 10000.
    pub rpc_timeout_ms: u64,
    /// Largest HTTP upstream response body when the route sets no `max_response_bytes`, bytes.
    /// Default 1 MiB.
    pub rpc_max_response_bytes: usize,
    /// Device keys kept per user in the E2EE key directory; publishing one more replaces the
    /// least recently published. Default 10.
    pub max_devices_per_user: usize,
    /// Recipients in one `room_key_put`. Default 100.
    pub max_room_key_recipients: usize,
    /// Versions of one room key id the key directory keeps per channel. Default 100.
    pub max_room_key_versions: u32,
    /// How long a gateway waits for the key directory (the control-plane), ms. Default 5000.
    pub key_directory_timeout_ms: u64,
    /// Time a new HTTP connection has to send its first request's headers, and a later request
    /// from its first byte, ms; then the socket is closed. Default 10000.
    pub http_header_timeout_ms: u64,
    /// Time a kept-alive HTTP connection may stay silent between requests, ms. Above the 60 s
    /// idle timeout of common load balancers, so they, not we, close idle connections (the
    /// other way round they may send a request just as we close). Default 75000.
    pub http_keepalive_timeout_ms: u64,
    /// Open connections (HTTP and WebSocket) per source IP address; one more is closed at
    /// once; 0 = unlimited. Behind a proxy that hides client addresses every connection comes
    /// from the proxy: raise it or set 0 there. Default 1000.
    pub max_connections_per_address: usize,
    /// After the bus reconnects, how long one channel keeps trying to read what it missed from
    /// history before its subscribers get a `gap` frame instead, ms. Default 10000.
    pub resync_timeout_ms: u64,
    /// Channels reading their history at once after the bus reconnects. Default 32.
    pub resync_concurrency: usize,
    /// How often a gateway frees the in-memory history of channels whose messages all expired
    /// and that have no subscriber on it, ms. Default 10000.
    pub history_sweep_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 65536,
            max_channels_per_connection: 100,
            max_connections_per_app: 10000,
            publish_rate: 50,
            publish_burst: 100,
            max_queued_messages: 1024,
            max_queued_bytes: 4 << 20,
            heartbeat_interval_ms: 25_000,
            idle_timeout_ms: 60_000,
            connect_timeout_ms: 10_000,
            shutdown_grace_ms: 10_000,
            max_batch_size: 100,
            max_channels_per_publish: 100,
            default_token_ttl_secs: 3600,
            max_token_ttl_secs: 86400,
            bus_channel_capacity: 65536,
            listen_backlog: 4096,
            presence_heartbeat_ms: 5000,
            presence_ttl_ms: 15_000,
            max_member_info_bytes: 1024,
            max_presence_members: 500,
            webhook_report_queue: 10_000,
            history_size: 100,
            history_ttl_secs: 300,
            history_page_limit: 100,
            max_inflight_requests_per_connection: 100,
            max_inflight_per_responder: 1024,
            rpc_timeout_ms: 10_000,
            rpc_max_response_bytes: 1 << 20,
            max_devices_per_user: 10,
            max_room_key_recipients: 100,
            max_room_key_versions: 100,
            key_directory_timeout_ms: 5000,
            http_header_timeout_ms: 10_000,
            http_keepalive_timeout_ms: 75_000,
            max_connections_per_address: 1000,
            resync_timeout_ms: 10_000,
            resync_concurrency: 32,
            history_sweep_ms: 10_000,
        }
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
        let positive: [(&'static str, u64); 10] = [
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
            ("bus_channel_capacity", self.bus_channel_capacity as u64),
            ("history_page_limit", self.history_page_limit as u64),
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
        let http: [(&'static str, u64); 2] = [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_keepalive_timeout_ms", self.http_keepalive_timeout_ms),
        ];
        let positive = positive
            .into_iter()
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
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            subject_prefix: "waas".into(),
            limits: Limits::default(),
            outbound: waas_core::egress::Policy::default(),
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
