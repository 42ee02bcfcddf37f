//! Who a connection or REST caller is, and what it may do. Verification is local: a gateway never
//! calls anyone to check a token.

pub mod jwt;

use crate::app::App;
use std::sync::{Arc, LazyLock};
use waas_protocol::{CallSet, Caps, ChannelName, ErrorCode, PatternSet};

/// What a holder of the app's API key may do: everything.
static SERVER_CAPS: LazyLock<Arc<Caps>> = LazyLock::new(|| {
    Arc::new(Caps {
        subscribe: PatternSet::all(),
        publish: PatternSet::all(),
        call: CallSet::all(),
        share: PatternSet::all(),
    })
});

/// The authenticated party behind a connection.
#[derive(Debug, Clone)]
pub struct Identity {
    pub sub: String,
    /// Shared: every API-key connection holds the same "everything" capabilities, without
    /// allocating its own copy.
    pub caps: Arc<Caps>,
    /// Token expiry (seconds since the epoch); `None` for API-key callers.
    pub expires_at: Option<u64>,
    /// Authenticated with an API key: one of the tenant's servers (may `serve`, `docs/rpc.md`).
    pub is_server: bool,
    /// The token's `info` claim: what presence channels show about this member.
    pub info: Option<serde_json::Value>,
}

pub use waas_protocol::claims::SERVER_SUB;

impl Identity {
    pub fn server() -> Self {
        Identity {
            sub: SERVER_SUB.into(),
            caps: Arc::clone(&SERVER_CAPS),
            expires_at: None,
            is_server: true,
            info: None,
        }
    }

    pub fn may_subscribe(&self, channel: &ChannelName) -> bool {
        self.caps.subscribe.allows(channel)
    }

    pub fn may_publish(&self, channel: &ChannelName) -> bool {
        self.caps.publish.allows(channel)
    }

    /// May store room keys for `channel` in the key directory (`docs/e2ee.md`).
    pub fn may_share(&self, channel: &ChannelName) -> bool {
        self.is_server || self.caps.share.allows(channel)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token expired")]
    Expired,
    #[error("token is for app {0:?}")]
    WrongApp(String),
    #[error("invalid app key material: {0}")]
    BadKey(String),
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::InvalidToken(_) | AuthError::BadKey(_) => ErrorCode::InvalidToken,
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::WrongApp(_) => ErrorCode::TokenWrongApp,
        }
    }
}

/// Authenticates a bearer credential: an API key of the app, or a JWT for one of its users.
pub fn authenticate(app: &App, credential: &str) -> Result<Identity, AuthError> {
    if app.is_api_key(credential) {
        return Ok(Identity::server());
    }
    let claims = app.jwt.verify(credential, app.id())?;
    Ok(Identity {
        sub: claims.sub,
        caps: Arc::new(claims.caps),
        expires_at: Some(claims.exp),
        is_server: false,
        info: claims.info,
    })
}
