//! The caller's side of a request: checks (in the order `docs/rpc.md` gives), the route, then
//! the responder. A service with a server on this gateway gets the request handed over directly
//! ([`super::local`]), and the server's answer is queued on this connection by the server's own
//! connection. Otherwise a task per request waits for the bus or the HTTP upstream and queues
//! the `response` (or `error`). The connection keeps reading meanwhile, so requests overlap; the
//! tasks live in the connection's [`Calls`] and are aborted when it closes, which drops the bus
//! request or the upstream HTTP exchange in flight.

use super::envelope::{self, BusCall, BusReply};
use super::Ctx;
use crate::op_error::OpError;
use crate::wsframe;
use bytes::Bytes;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::Instrument;
use waas_core::bus::BusError;
use waas_core::metrics::RpcRoute;
use waas_core::route::{self, Target};
use waas_core::usage::AppCounters;
use waas_protocol::frame::{null, ResponseRef};
use waas_protocol::rpc::{check_method, check_path, Headers};
use waas_protocol::ErrorCode;

/// A `request` frame from a client.
pub struct Request {
    pub id: u64,
    pub method: String,
    pub path: String,
    pub headers: Headers,
    pub body: Option<Box<RawValue>>,
    pub timeout_ms: Option<u64>,
}

/// A connection's requests in flight.
#[derive(Default)]
pub struct Calls {
    tasks: JoinSet<()>,
    /// Requests started and not yet answered, wherever they wait.
    inflight: Arc<AtomicUsize>,
}

/// Counts one request against its connection's `max_inflight_requests_per_connection` until
/// it is answered (dropped).
pub struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Header names lower-cased; values without control characters (they would be refused by, or
/// smuggle lines into, an HTTP upstream).
pub fn normalize_headers(headers: Headers) -> Result<Headers, String> {
    let mut out = Headers::new();
    for (name, value) in headers {
        if !route::is_header_name(&name) {
            return Err(format!("{name:?} is not a header name"));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(format!(
                "the value of header {name:?} has control characters"
            ));
        }
        out.insert(name.to_ascii_lowercase(), value);
    }
    Ok(out)
}

impl Calls {
    /// Starts a request, or says at once why it cannot be. Counted in the app's usage: a
    /// refusal here as a failed request, the others when their answer is known.
    pub fn start(&mut self, ctx: &Ctx<'_>, req: Request) -> Result<(), OpError> {
        let usage = ctx.app.usage().cloned();
        let begun = self.begin(ctx, req, usage.clone());
        if let (Err(_), Some(usage)) = (&begun, &usage) {
            usage.request(true);
        }
        begun
    }

    fn begin(
        &mut self,
        ctx: &Ctx<'_>,
        req: Request,
        usage: Option<Arc<AppCounters>>,
    ) -> Result<(), OpError> {
        let started = std::time::Instant::now();
        let bad = |m: String| OpError::new(ErrorCode::BadRequest, m);
        check_method(&req.method).map_err(|e| bad(e.to_string()))?;
        check_path(&req.path).map_err(|e| bad(format!("{:?}: {e}", req.path)))?;
        let headers = normalize_headers(req.headers).map_err(bad)?;
        if req.timeout_ms == Some(0) {
            return Err(bad("\"timeout_ms\" must be greater than 0".into()));
        }
        if !ctx.identity.caps.call.allows(&req.path) {
            return Err(OpError::new(
                ErrorCode::Forbidden,
                format!("the token does not allow requests to {}", req.path),
            ));
        }
        let route = route::find(&ctx.app.config.routes, &req.path)
            .ok_or_else(|| OpError::new(ErrorCode::NoRoute, format!("no route for {}", req.path)))?
            .clone();
        let limits = ctx.limits;
        while self.tasks.try_join_next().is_some() {}
        if self.inflight.load(Ordering::Acquire) >= limits.max_inflight_requests_per_connection {
            return Err(OpError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "at most {} requests in flight per connection",
                    limits.max_inflight_requests_per_connection
                ),
            ));
        }
        let route_timeout = route.timeout_ms.unwrap_or(limits.rpc_timeout_ms);
        let timeout = Duration::from_millis(
            req.timeout_ms
                .map_or(route_timeout, |t| t.min(route_timeout)),
        );
        let body = req.body.unwrap_or_else(null);
        let caller = ctx.caller();
        let out = Arc::clone(ctx.out);
        let id = req.id;
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let inflight = InflightGuard(Arc::clone(&self.inflight));
        match route.target() {
            Some(Target::Service(service)) => {
                if let Some((server, permit)) = ctx.rpc.local.pick(ctx.app.id(), service) {
                    let request = super::service::Forwarded {
                        service: service.as_str(),
                        method: &req.method,
                        path: &req.path,
                        headers: &headers,
                        body: &body,
                        caller: &caller,
                        timeout,
                    };
                    server.dispatch_local(request, out, id, inflight, permit, started);
                    // A service on this gateway: counted once handed over.
                    if let Some(usage) = &usage {
                        usage.request(false);
                    }
                    return Ok(());
                }
                let bus = Arc::clone(&ctx.rpc.bus);
                let subject = envelope::subject(&ctx.rpc.prefix, ctx.app.id(), service);
                let call = BusCall {
                    service: Cow::Borrowed(service.as_str()),
                    method: Cow::Owned(req.method),
                    path: Cow::Owned(req.path),
                    headers,
                    body: &body,
                    caller,
                    timeout_ms: timeout.as_millis() as u64,
                };
                let payload = Bytes::from(serde_json::to_vec(&call).expect("calls serialise"));
                let span = waas_core::span!("rpc.request", route = "service");
                self.tasks.spawn(
                    async move {
                        let sent = bus
                            .request(&subject, payload, timeout)
                            .instrument(waas_core::span!("bus.request"))
                            .await;
                        let frame = match sent {
                            Ok(reply) => answer(id, &reply),
                            Err(e) => Err(bus_error(e, &subject)),
                        };
                        rpc_done(RpcRoute::Service, &frame, started, usage.as_deref());
                        // The answer's socket write under this request's span.
                        let trace = waas_core::trace::TraceParent::current();
                        out.push_traced(frame.unwrap_or_else(|e| e.frame(id)), trace);
                        drop(inflight);
                    }
                    .instrument(span),
                );
            }
            Some(Target::Upstream(base)) => {
                let url = format!("{}{}", base.trim_end_matches('/'), req.path);
                let max = route
                    .max_response_bytes
                    .unwrap_or(limits.rpc_max_response_bytes);
                let client = ctx.rpc.upstream.clone();
                let method = req.method;
                let span = waas_core::span!("rpc.request", route = "upstream");
                self.tasks.spawn(
                    async move {
                        let call = super::upstream::Call {
                            method: &method,
                            url: &url,
                            headers: &headers,
                            body: &body,
                            caller: &caller,
                            route: &route,
                            timeout,
                            max_response_bytes: max,
                        };
                        let answer = client
                            .call(call)
                            .instrument(waas_core::span!("rpc.upstream"))
                            .await;
                        let frame = answer.map(|r| {
                            wsframe::json(&ResponseRef::new(id, r.status, &r.headers, &r.body))
                        });
                        rpc_done(RpcRoute::Upstream, &frame, started, usage.as_deref());
                        // The answer's socket write under this request's span.
                        let trace = waas_core::trace::TraceParent::current();
                        out.push_traced(frame.unwrap_or_else(|e| e.frame(id)), trace);
                        drop(inflight);
                    }
                    .instrument(span),
                );
            }
            None => {
                return Err(OpError::new(
                    ErrorCode::Internal,
                    format!("route {} is misconfigured", route.prefix),
                ))
            }
        }
        Ok(())
    }
}

/// Records a request's latency, by its outcome: `ok` (a response, whatever its status) or the
/// error code.
fn rpc_done(
    route: RpcRoute,
    frame: &Result<Bytes, OpError>,
    started: std::time::Instant,
    usage: Option<&AppCounters>,
) {
    if let Some(usage) = usage {
        usage.request(frame.is_err());
    }
    let outcome = frame.as_ref().err().map_or("ok", |e| e.code.as_str());
    waas_core::metrics::METRICS.rpc_done(route, outcome, started);
}

/// The `response` frame for a service's reply.
fn answer(id: u64, reply: &[u8]) -> Result<Bytes, OpError> {
    let reply: BusReply = serde_json::from_slice(reply).map_err(|e| {
        OpError::new(
            ErrorCode::Internal,
            format!("unreadable reply from the bus: {e}"),
        )
    })?;
    if let Some(e) = reply.error {
        return Err(OpError::new(e.code, e.message));
    }
    let status = reply
        .status
        .ok_or_else(|| OpError::new(ErrorCode::Internal, "reply from the bus without a status"))?;
    let null = null();
    let body = reply.body.unwrap_or(&null);
    Ok(wsframe::json(&ResponseRef::new(
        id,
        status,
        &reply.headers,
        body,
    )))
}

fn bus_error(e: BusError, subject: &str) -> OpError {
    let service = subject.rsplit('.').next().unwrap_or(subject);
    match e {
        BusError::NoResponders(_) => OpError::new(
            ErrorCode::NoResponder,
            format!("no server is serving {service:?}"),
        ),
        BusError::Timeout(t) => OpError::new(
            ErrorCode::Timeout,
            format!("no response within {} ms", t.as_millis()),
        ),
        BusError::Unavailable(m) => OpError::new(ErrorCode::Unavailable, m),
        BusError::InvalidSubject(s) => {
            OpError::new(ErrorCode::Internal, format!("invalid bus subject {s:?}"))
        }
    }
}
