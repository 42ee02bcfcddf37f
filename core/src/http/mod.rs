//! The HTTP plumbing both fronts share: the gateway's REST API and the control-plane's admin
//! API answer errors alike, authenticate with the same bearer header, document themselves in
//! OpenAPI documents that merge into one, and accept connections within the same bounds.
//!
//! # Layout
//! - [`error`]: [`error::ApiError`], the `{"error": {"code", "message"}}` answer; the bearer
//!   credential of a request.
//! - [`json_errors`]: the layer that gives every error answer the JSON error body.
//! - [`openapi`]: security schemes, `GET /openapi.json`, operations every process serves.
//! - [`accept`]: the accept loop and its bounds: header and keep-alive timeouts, connections
//!   per source address.
//! - [`stream`]: the socket under hyper; answers to pipelined requests leave in one write.

pub mod accept;
pub mod error;
pub mod json_errors;
pub mod openapi;
pub mod stream;
