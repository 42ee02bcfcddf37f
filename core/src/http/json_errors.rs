//! Every error answer of the REST and admin APIs has the JSON body `{"error": {"code",
//! "message"}}` (docs/rest.md, and the OpenAPI document says so). Handlers build theirs with
//! [`ApiError`]; this layer catches the rest: axum's own rejections, which are plain text
//! (a query string that does not parse, a path segment that is not UTF-8, an optional JSON body
//! that is not JSON), and the bodyless 404/405 of a router without fallbacks.

use crate::http::error::ApiError;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use waas_protocol::ErrorCode;

/// The longest rejection text kept as the message; axum's are a line or two.
const MAX_MESSAGE_BYTES: usize = 1024;

/// `axum::middleware::map_response(json_errors)`: rewrites an error answer that is not JSON into
/// the error body, with the code its status stands for. A wrong `Content-Type` (415) or a body
/// of the wrong shape (422) become `400 bad_request`, as the docs list them.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (status, code) = match status {
        StatusCode::NOT_FOUND => (status, ErrorCode::NotFound),
        StatusCode::PAYLOAD_TOO_LARGE => (status, ErrorCode::MessageTooLarge),
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
            (StatusCode::BAD_REQUEST, ErrorCode::BadRequest)
        }
        StatusCode::SERVICE_UNAVAILABLE => (status, ErrorCode::Unavailable),
        s if s.is_server_error() => (status, ErrorCode::Internal),
        _ => (status, ErrorCode::BadRequest),
    };
    let text = match axum::body::to_bytes(resp.into_body(), MAX_MESSAGE_BYTES).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
    };
    let mut resp = ApiError::new(code, text).into_response();
    *resp.status_mut() = status;
    resp
}

fn is_json(resp: &Response<Body>) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
