//! Pusher's channel types, told by the name's prefix. A Pusher channel is the native channel of
//! the same name, so names must also follow the native rules (`ChannelName`).

/// The prefix of the channel carrying server-to-user messages for a signed-in user.
pub const SERVER_TO_USER: &str = "#server-to-user-";

/// How a channel is joined and what may be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Needs a signature (`private-`, `presence-`, `private-encrypted-`).
    pub signed: bool,
    /// Has members (`presence-`).
    pub presence: bool,
    /// Payloads are end-to-end encrypted by clients (`private-encrypted-`); the server passes
    /// them through.
    pub encrypted: bool,
    /// Replays its last event on subscribe (`cache-`, `private-cache-`, `presence-cache-`,
    /// `private-encrypted-cache-`).
    pub cache: bool,
    /// `#server-to-user-{id}`: only the connection signed in as `id` may join.
    pub user: bool,
}

impl Kind {
    pub fn of(name: &str) -> Kind {
        let (signed, presence, encrypted, rest) =
            if let Some(r) = name.strip_prefix("private-encrypted-") {
                (true, false, true, r)
            } else if let Some(r) = name.strip_prefix("private-") {
                (true, false, false, r)
            } else if let Some(r) = name.strip_prefix("presence-") {
                (true, true, false, r)
            } else {
                (false, false, false, name)
            };
        Kind {
            signed,
            presence,
            encrypted,
            cache: rest.starts_with("cache-"),
            user: name.starts_with(SERVER_TO_USER),
        }
    }

    /// Whether clients may send `client-` events on it: private and presence channels.
    pub fn allows_client_events(self) -> bool {
        self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        let k = Kind::of("news");
        assert!(!k.signed && !k.presence && !k.cache && !k.allows_client_events());
        assert!(Kind::of("cache-news").cache);
        let p = Kind::of("private-cache-x");
        assert!(p.signed && p.cache && !p.presence && !p.encrypted);
        let e = Kind::of("private-encrypted-cache-x");
        assert!(e.signed && e.encrypted && e.cache);
        let m = Kind::of("presence-cache-room");
        assert!(m.signed && m.presence && m.cache && m.allows_client_events());
        assert!(!Kind::of("presence").signed, "no prefix without the dash");
        assert!(!Kind::of("news-cache-x").cache);
        assert!(Kind::of("#server-to-user-42").user);
    }
}
