//! Pusher's error and close codes, as its client libraries read them: 4000–4099 do not
//! reconnect, 4100–4199 reconnect after a pause, 4200–4299 reconnect at once; 4300–4399 are
//! errors that leave the connection open. The same number is the `pusher:error` code and, when
//! the connection closes for it, the close code.

use waas_protocol::CloseCode;

/// A Pusher error or close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PusherCode(pub u16);

impl PusherCode {
    /// The key (app id) names no app.
    pub const APP_NOT_FOUND: PusherCode = PusherCode(4001);
    /// The app has no Pusher settings: the Pusher front is off for it.
    pub const APP_DISABLED: PusherCode = PusherCode(4003);
    /// The app is at its connection limit (`max_connections_per_app`).
    pub const OVER_QUOTA: PusherCode = PusherCode(4004);
    /// Nothing is served at that path under `/app/`.
    pub const PATH_NOT_FOUND: PusherCode = PusherCode(4005);
    /// `protocol` is not a number.
    pub const INVALID_VERSION: PusherCode = PusherCode(4006);
    /// `protocol` is a number other than 7.
    pub const UNSUPPORTED_PROTOCOL: PusherCode = PusherCode(4007);
    /// No `protocol` in the URL.
    pub const NO_PROTOCOL: PusherCode = PusherCode(4008);
    /// Refused: the origin is not allowed, a sign-in failed, or the user was terminated.
    pub const UNAUTHORIZED: PusherCode = PusherCode(4009);
    /// The connection could not keep up with its messages (slow consumer).
    pub const OVER_CAPACITY: PusherCode = PusherCode(4100);
    /// Reconnect now: the server is shutting down, or could not look the app up.
    pub const RECONNECT: PusherCode = PusherCode(4200);
    /// Nothing arrived from the client for `idle_timeout_ms`.
    pub const PONG_NOT_RECEIVED: PusherCode = PusherCode(4201);
    /// A client event over `pusher_client_event_rate`; the connection stays open.
    pub const CLIENT_EVENT_RATE: PusherCode = PusherCode(4301);

    /// What a Pusher client is told when something outside its task closes it with a native
    /// code: the sweeper, the slow-consumer check, shutdown, app deletion.
    pub fn from_native(code: CloseCode) -> u16 {
        match code {
            CloseCode::SLOW_CONSUMER => Self::OVER_CAPACITY.0,
            CloseCode::HEARTBEAT_TIMEOUT | CloseCode::CONNECT_TIMEOUT => Self::PONG_NOT_RECEIVED.0,
            CloseCode::GOING_AWAY | CloseCode::SERVER_ERROR => Self::RECONNECT.0,
            CloseCode::CONNECTION_LIMIT => Self::OVER_QUOTA.0,
            CloseCode::APP_NOT_FOUND => Self::APP_NOT_FOUND.0,
            CloseCode::INVALID_TOKEN | CloseCode::TOKEN_EXPIRED | CloseCode::ORIGIN_NOT_ALLOWED => {
                Self::UNAUTHORIZED.0
            }
            other => other.0,
        }
    }

    /// Short reason for the close frame.
    pub fn reason(self) -> &'static str {
        match self.0 {
            4001 => "app does not exist",
            4003 => "app disabled",
            4004 => "over connection quota",
            4005 => "path not found",
            4006 => "invalid version string format",
            4007 => "unsupported protocol version",
            4008 => "no protocol version supplied",
            4009 => "connection is unauthorized",
            4100 => "over capacity",
            4200 => "reconnect",
            4201 => "pong not received",
            1009 => "message too big",
            1002 => "protocol error",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_closes_land_in_the_right_pusher_range() {
        // Slow consumers may come back after a pause; shutdown and idle ones at once; a deleted
        // app never.
        assert_eq!(PusherCode::from_native(CloseCode::SLOW_CONSUMER), 4100);
        assert_eq!(PusherCode::from_native(CloseCode::GOING_AWAY), 4200);
        assert_eq!(PusherCode::from_native(CloseCode::HEARTBEAT_TIMEOUT), 4201);
        assert_eq!(PusherCode::from_native(CloseCode::APP_NOT_FOUND), 4001);
        assert_eq!(PusherCode::from_native(CloseCode::MESSAGE_TOO_BIG), 1009);
        assert_eq!(PusherCode::from_native(CloseCode(4009)), 4009);
    }
}
