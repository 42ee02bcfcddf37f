//! Admin API failures share the public REST API's error type and body,
//! `{"error": {"code", "message"}}`; store errors map onto its codes here.

use crate::store::StoreError;
pub use waas_core::http::error::ApiError as AdminError;
use waas_protocol::ErrorCode;

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::Invalid(_) => ErrorCode::BadRequest,
            StoreError::Backend(_) => ErrorCode::Unavailable,
        };
        AdminError::new(code, e.to_string())
    }
}
