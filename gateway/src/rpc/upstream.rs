//! HTTP upstreams: the tenant's existing REST backend answers requests of the routes that point
//! to it. One pooled client per gateway keeps connections alive between requests (HTTP/1.1,
//! plain `http://`: upstreams sit on the private network beside the gateways).
//!
//! What crosses: the method, the path (appended to the route's base URL), the headers the route
//! allows, the JSON body, and the caller's identity in `x-waas-*` headers that clients can never
//! set. What comes back: the status, the allowed headers, and the body — JSON as is, other text
//! as a JSON string — up to the route's size limit: a larger body is not read further, and its
//! connection is closed rather than drained.
//!
//! Upstreams are reached only at addresses the gateway's outbound rules allow
//! ([`waas_core::egress`]): a literal IP is checked before each request, a host name on the
//! addresses it resolves to.

use crate::op_error::OpError;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::value::RawValue;
use std::time::Duration;
use waas_core::egress::{self, body::read_at_most, error_chain};
use waas_core::route::{Route, IDENTITY_HEADERS};
use waas_protocol::frame::null;
use waas_protocol::rpc::{Caller, Headers};
use waas_protocol::ErrorCode;

/// Idle keep-alive connections kept per upstream host.
const MAX_IDLE_PER_HOST: usize = 256;
/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway's pooled client for upstreams. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Upstreams {
    client: reqwest::Client,
    policy: egress::Policy,
}

/// One request to an upstream.
pub struct Call<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a Headers,
    pub body: &'a RawValue,
    pub caller: &'a Caller,
    pub route: &'a Route,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

/// An upstream's answer.
pub struct Reply {
    pub status: u16,
    pub headers: Headers,
    pub body: Box<RawValue>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self::new(egress::Policy::default())
    }
}

/// `sub` as a header value: bytes outside printable ASCII (and `%`) percent-encoded.
fn header_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn upstream_error(message: String) -> OpError {
    OpError::new(ErrorCode::UpstreamError, message)
}

impl Upstreams {
    pub fn new(policy: egress::Policy) -> Self {
        let client = policy
            .client_builder()
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .tcp_nodelay(true)
            // A redirect is the upstream's answer, passed back as is.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS always builds");
        Upstreams { client, policy }
    }

    pub async fn call(&self, call: Call<'_>) -> Result<Reply, OpError> {
        let timeout = call.timeout;
        match tokio::time::timeout(timeout, self.exchange(call)).await {
            Ok(result) => result,
            Err(_) => Err(OpError::new(
                ErrorCode::Timeout,
                format!("no response within {} ms", timeout.as_millis()),
            )),
        }
    }

    async fn exchange(&self, call: Call<'_>) -> Result<Reply, OpError> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())
            .map_err(|e| OpError::new(ErrorCode::BadRequest, e.to_string()))?;
        let url = reqwest::Url::parse(call.url)
            .map_err(|e| upstream_error(format!("invalid upstream URL: {e}")))?;
        // reqwest does not resolve a literal IP, so the resolver's check cannot see it.
        self.policy
            .check_url(&url)
            .map_err(|e| upstream_error(format!("cannot reach the upstream: {e}")))?;
        let mut request = self.client.request(method, url);
        // When tracing: the `rpc.upstream` span, as W3C trace context, instead of any the client
        // sent, so the upstream's own spans join the request's trace.
        let trace = waas_core::trace::TraceParent::current();
        let ours =
            |name: &str| trace.is_some() && name.eq_ignore_ascii_case(waas_core::trace::HEADER);
        for (name, value) in call.headers {
            if call.route.allows_header(name)
                && !IDENTITY_HEADERS.contains(&name.as_str())
                && !ours(name)
            {
                request = request.header(name, value);
            }
        }
        let [sub, app, conn] = IDENTITY_HEADERS;
        request = request
            .header(sub, header_safe(&call.caller.sub))
            .header(app, &call.caller.app)
            .header(conn, &call.caller.connection_id);
        if let Some(trace) = trace {
            request = request.header(waas_core::trace::HEADER, trace.header());
        }
        if call.body.get() != "null" {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(call.body.get().to_owned());
        }
        let mut response = request.send().await.map_err(|e| {
            upstream_error(match egress::resolve::refusal(&e) {
                Some(r) => format!("cannot reach the upstream: {r}"),
                None => format!("cannot reach the upstream: {}", error_chain(&e)),
            })
        })?;
        let max = call.max_response_bytes;
        let too_large = || {
            OpError::new(
                ErrorCode::ResponseTooLarge,
                format!("the upstream's response is larger than {max} bytes"),
            )
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let status = response.status().as_u16();
        let headers = allowed_headers(response.headers(), call.route);
        // On a body over the limit, `response` is dropped unread: its connection is closed.
        let body = read_at_most(&mut response, max).await.map_err(|e| {
            upstream_error(format!(
                "reading the upstream's response: {}",
                error_chain(&e)
            ))
        })?;
        if body.truncated {
            return Err(too_large());
        }
        Ok(Reply {
            status,
            headers,
            body: json_body(body.bytes)?,
        })
    }
}

fn allowed_headers(map: &reqwest::header::HeaderMap, route: &Route) -> Headers {
    let mut out = Headers::new();
    for (name, value) in map {
        if !route.allows_header(name.as_str()) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        out.entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    out
}

/// The response body as JSON: empty is `null`, JSON is kept as written, other UTF-8 text
/// becomes a JSON string; anything else is refused.
fn json_body(body: Vec<u8>) -> Result<Box<RawValue>, OpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(null());
    }
    let text = String::from_utf8(body).map_err(|_| {
        upstream_error("the upstream's response body is neither JSON nor UTF-8 text".into())
    })?;
    match serde_json::from_str::<Box<RawValue>>(&text) {
        Ok(raw) => Ok(raw),
        Err(_) => {
            let quoted = serde_json::to_string(&text).expect("strings serialise");
            Ok(RawValue::from_string(quoted).expect("a JSON string is JSON"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderName;

    #[test]
    fn bodies_become_json() {
        assert_eq!(json_body(b"".to_vec()).unwrap().get(), "null");
        assert_eq!(
            json_body(b" {\"a\":1} ".to_vec()).unwrap().get(),
            "{\"a\":1}"
        );
        assert_eq!(
            json_body(b"Internal Server Error".to_vec()).unwrap().get(),
            "\"Internal Server Error\""
        );
        assert_eq!(
            json_body(vec![0xff, 0xfe]).unwrap_err().code,
            ErrorCode::UpstreamError
        );
    }

    #[test]
    fn identity_headers_are_valid_and_subs_are_escaped() {
        for h in IDENTITY_HEADERS {
            HeaderName::from_static(h);
        }
        assert_eq!(header_safe("alice"), "alice");
        assert_eq!(header_safe("zoë%\n"), "zo%C3%AB%25%0A");
    }
}
