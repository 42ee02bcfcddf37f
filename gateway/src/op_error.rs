//! Why an op on the socket failed: an [`ErrorCode`] and a message, sent to the client in an
//! `error` frame with the op's id (`docs/protocol.md`). The socket path speaks in these rather
//! than in HTTP answers; where a REST handler shares code with it, the error becomes an
//! `ApiError` at the HTTP edge ([`crate::http`]).

use crate::wsframe;
use bytes::Bytes;
use waas_protocol::rest::ErrorDetail;
use waas_protocol::{ErrorCode, ServerFrame};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    pub code: ErrorCode,
    pub message: String,
}

impl OpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        OpError {
            code,
            message: message.into(),
        }
    }

    /// The `error` frame answering op `id`.
    pub fn frame(&self, id: u64) -> Bytes {
        wsframe::json(&ServerFrame::Error {
            id: Some(id),
            code: self.code,
            message: self.message.clone(),
        })
    }
}

/// The control-plane answers requests over the bus (the key directory) with the detail of its
/// error bodies.
impl From<ErrorDetail> for OpError {
    fn from(e: ErrorDetail) -> Self {
        OpError::new(e.code, e.message)
    }
}
