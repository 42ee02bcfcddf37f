//! Admin API failures, in the same `{"error": {"code", "message"}}` shape as the public REST API.

use crate::store::StoreError;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use waas_protocol::rest::{ErrorBody, ErrorDetail};
use waas_protocol::ErrorCode;

#[derive(Debug)]
pub struct AdminError {
    pub code: ErrorCode,
    pub message: String,
}

impl AdminError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

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

impl From<JsonRejection> for AdminError {
    fn from(r: JsonRejection) -> Self {
        AdminError::new(ErrorCode::BadRequest, r.body_text())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (status, Json(body)).into_response()
    }
}
