//! The error answer of every HTTP API (REST and admin): an [`ErrorCode`] with its message,
//! rendered as `{"error": {"code", "message"}}` with the code's HTTP status; and the bearer
//! credential both APIs authenticate with.

use axum::extract::rejection::JsonRejection;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use waas_protocol::rest::{ErrorBody, ErrorDetail};
use waas_protocol::ErrorCode;

/// A REST failure, rendered as `{"error": {"code", "message"}}` with the code's HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
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

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::MessageTooLarge
        } else {
            ErrorCode::BadRequest
        };
        ApiError::new(code, r.body_text())
    }
}

/// The bearer credential of a request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// The credential of an `Authorization: Bearer <credential>` header. The scheme is matched
/// without regard to case, as HTTP defines auth schemes; spaces around the credential are
/// ignored.
pub fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credential) = value.split_once([' ', '\t'])?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_spaces_are_ignored() {
        for ok in [
            "Bearer k",
            "bearer k",
            "BEARER k",
            "Bearer  k",
            "Bearer\tk",
            " Bearer k ",
        ] {
            assert_eq!(bearer_in(&with(ok)), Some("k"), "{ok:?}");
        }
        for bad in ["Bearer", "Bearer ", "Basic k", "Bearerk", "k"] {
            assert_eq!(bearer_in(&with(bad)), None, "{bad:?}");
        }
        assert_eq!(bearer_in(&HeaderMap::new()), None);
    }
}
