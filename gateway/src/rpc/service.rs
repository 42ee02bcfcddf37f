//! The responder's side: a server connected with an API key `serve`s a service, and this gateway
//! subscribes to the service's bus subject in the service's queue group on its behalf (and lists
//! it among the [`super::local`] services, for callers on this gateway). Each request — from
//! the bus, or straight from a caller here — is forwarded down the server's socket as a `request`
//! frame with an id of this connection; the server's `response` frame with that id goes back the
//! way the request came: published to the request's reply subject, or queued on the caller's
//! connection.
//!
//! Backpressure: a server has at most `max_inflight_per_responder` requests forwarded and not
//! yet answered. At the cap the gateway stops taking requests from the bus for it: they wait in
//! the bus subscription (and time out there if the server stays saturated) instead of piling up
//! in the server's socket; callers on this gateway go through the bus to other servers.
//!
//! Leaving is orderly ([`Bus::serve_until`]): the bus stops routing the service here, and the
//! requests already on their way are still taken. On `unserve` they are forwarded as usual (the
//! `ack` comes once none is left), so nothing is lost. When the server disconnects they are
//! answered `upstream_error`, and so is every request it owed an answer, once the subscription
//! is gone: a caller who retries after the error cannot be routed to the dead server again.

use super::call::InflightGuard;
use super::envelope::{self, BusCall, BusReply};
use super::local::LocalServices;
use super::Ctx;
use crate::op_error::OpError;
use crate::outbound::Outbound;
use crate::wsframe;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use waas_core::bus::{Bus, BusRequest, RequestStream};
use waas_core::trace::TraceParent;
use waas_protocol::frame::{null, RequestRef, ResponseRef};
use waas_protocol::rpc::{Caller, Headers};
use waas_protocol::{AppId, ErrorCode, ServerFrame, ServiceName};

/// Where the answer to a forwarded request goes.
enum ReplyTo {
    /// Published to this reply subject (the caller is behind the bus).
    Bus(String),
    /// Queued as a `response` with the caller's request `id` on its connection, here.
    Local {
        out: Arc<Outbound>,
        id: u64,
        _inflight: InflightGuard,
        /// When the caller asked, for `waas_rpc_duration_seconds`.
        started: std::time::Instant,
    },
}

/// Records a local request's latency once its answer is known.
fn local_done(code: Option<ErrorCode>, started: std::time::Instant) {
    waas_core::metrics::METRICS.rpc_done(
        waas_core::metrics::RpcRoute::ServiceLocal,
        code.map_or("ok", |c| c.as_str()),
        started,
    );
}

/// A forwarded request waiting for the server's `response`. Dropped with its reply target
/// still in place — the server went away, the entry was cleared — it tells the caller so.
struct Pending {
    reply: Option<ReplyTo>,
    bus: Arc<dyn Bus>,
    /// Dropped with the entry, which ends its watcher early.
    _done: oneshot::Sender<()>,
    _permit: OwnedSemaphorePermit,
    /// The `rpc.serve` span it was forwarded in (when tracing): the answer's span goes under it.
    trace: Option<TraceParent>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        match self.reply.take() {
            None => {}
            Some(ReplyTo::Local {
                out, id, started, ..
            }) => {
                local_done(Some(ErrorCode::UpstreamError), started);
                out.push(OpError::new(ErrorCode::UpstreamError, GONE).frame(id))
            }
            Some(ReplyTo::Bus(subject)) => {
                // Cleared after the subscription ended, so published after it: a caller that
                // retries on this error is not routed here again.
                let bus = Arc::clone(&self.bus);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let error = BusReply::error(ErrorCode::UpstreamError, GONE);
                        let _ = bus.publish(&subject, Bytes::from(error)).await;
                    });
                }
            }
        }
    }
}

/// Lock held only to insert or remove one entry, never across an await.
type PendingMap = Arc<Mutex<HashMap<u64, Pending>>>;

/// What the forwarding loops of one serving connection share, and what callers on this
/// gateway use to hand it requests directly.
#[derive(Clone)]
pub(crate) struct Shared {
    bus: Arc<dyn Bus>,
    out: Arc<Outbound>,
    pending: PendingMap,
    next_id: Arc<AtomicU64>,
    pub(crate) permits: Arc<Semaphore>,
}

/// Longest wait for the bus to end a subscription in order (one NATS round trip normally);
/// past it the subscription is simply dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a caller is told when the serving connection went away with its request.
const GONE: &str = "the responder disconnected before answering";

/// One served service: its forwarding loop and how to stop it.
struct Loop {
    /// Ends the bus subscription in order.
    stop: oneshot::Sender<()>,
    /// Set when the server is gone: requests still arriving are refused, not forwarded.
    gone: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A connection's services.
pub struct Responder {
    services: HashMap<ServiceName, Loop>,
    shared: Shared,
    local: Arc<LocalServices>,
    app: AppId,
}

impl Responder {
    pub fn new(ctx: &Ctx<'_>) -> Self {
        let cap = ctx.limits.max_inflight_per_responder;
        Responder {
            services: HashMap::new(),
            shared: Shared {
                bus: Arc::clone(&ctx.rpc.bus),
                out: Arc::clone(ctx.out),
                pending: PendingMap::default(),
                next_id: Arc::new(AtomicU64::new(1)),
                permits: Arc::new(Semaphore::new(cap)),
            },
            local: Arc::clone(&ctx.rpc.local),
            app: ctx.app.id().clone(),
        }
    }

    /// Starts serving; returns once the bus routes the service's requests here.
    pub async fn serve(&mut self, ctx: &Ctx<'_>, service: &str) -> Result<(), OpError> {
        if !ctx.identity.is_server {
            return Err(OpError::new(
                ErrorCode::Forbidden,
                "only connections authenticated with an API key may serve",
            ));
        }
        let service = ServiceName::parse(service)
            .map_err(|e| OpError::new(ErrorCode::BadRequest, format!("{service:?}: {e}")))?;
        if self.services.contains_key(&service) {
            return Ok(());
        }
        let subject = envelope::subject(&ctx.rpc.prefix, ctx.app.id(), &service);
        let (stop, stopped) = oneshot::channel();
        let requests = self
            .shared
            .bus
            .serve_until(&subject, Some(service.as_str()), stopped)
            .await
            .map_err(|e| OpError::new(ErrorCode::Unavailable, e.to_string()))?;
        let (gone, is_gone) = watch::channel(false);
        let task = tokio::spawn(forward(requests, is_gone, self.shared.clone()));
        self.local
            .add(&self.app, &service, self.shared.out.id, self.shared.clone());
        self.services.insert(service, Loop { stop, gone, task });
        Ok(())
    }

    /// Stops serving `service`: returns once no more of its requests will be forwarded. Those
    /// already forwarded may still be answered.
    pub async fn unserve(&mut self, service: &str) {
        let Ok(service) = ServiceName::parse(service) else {
            return;
        };
        if let Some(l) = self.services.remove(&service) {
            self.local.remove(&self.app, &service, self.shared.out.id);
            stop(l, false).await;
        }
    }

    /// A `response` frame: send it back the way its request came.
    pub async fn response(
        &mut self,
        ctx: &Ctx<'_>,
        id: u64,
        status: u16,
        headers: Headers,
        body: Option<Box<RawValue>>,
    ) {
        let pending = self
            .shared
            .pending
            .lock()
            .expect("pending poisoned")
            .remove(&id);
        let trace = pending.as_ref().and_then(|p| p.trace);
        let Some(reply) = pending.and_then(|mut p| p.reply.take()) else {
            // Late (the caller gave up) or never asked: nothing waits for it.
            tracing::debug!(conn = ctx.out.id, id, "response to no pending request");
            return;
        };
        let answer = check(status, headers).inspect_err(|message| {
            // No `id`: the ids of `response` frames are the server's, not the client's.
            ctx.out.push(wsframe::json(&ServerFrame::Error {
                id: None,
                code: ErrorCode::BadRequest,
                message: format!("response {id}: {message}"),
            }));
        });
        let invalid = |message: &str| {
            OpError::new(
                ErrorCode::UpstreamError,
                format!("the responder sent an invalid response: {message}"),
            )
        };
        let null = null();
        let body = body.as_deref().unwrap_or(&null);
        match &reply {
            ReplyTo::Local {
                out, id, started, ..
            } => {
                local_done(
                    answer.as_ref().err().map(|_| ErrorCode::UpstreamError),
                    *started,
                );
                out.push(match &answer {
                    Ok(headers) => wsframe::json(&ResponseRef::new(*id, status, headers, body)),
                    Err(message) => invalid(message).frame(*id),
                })
            }
            ReplyTo::Bus(subject) => {
                let reply = match answer {
                    Ok(headers) => serde_json::to_vec(&BusReply {
                        status: Some(status),
                        headers,
                        body: Some(body),
                        error: None,
                    })
                    .expect("replies serialise"),
                    Err(message) => {
                        let e = invalid(&message);
                        BusReply::error(e.code, e.message)
                    }
                };
                use tracing::Instrument;
                let span = waas_core::span!("rpc.respond", status);
                if let Some(parent) = trace {
                    parent.adopt(&span);
                }
                let sent = self.shared.bus.publish(subject, Bytes::from(reply));
                if let Err(e) = sent.instrument(span).await {
                    tracing::warn!(error = %e, "could not publish a response");
                }
            }
        }
    }

    /// Unsubscribes every service, refusing what still arrives, then fails the requests still
    /// waiting for this server.
    pub async fn shutdown(&mut self) {
        for service in self.services.keys() {
            self.local.remove(&self.app, service, self.shared.out.id);
        }
        let loops: Vec<Loop> = self.services.drain().map(|(_, l)| l).collect();
        futures_util::future::join_all(loops.into_iter().map(|l| stop(l, true))).await;
        self.shared
            .pending
            .lock()
            .expect("pending poisoned")
            .clear();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // Without `shutdown` (the connection task was cancelled): stop the loops and fail the
        // waiting requests all the same, only without the ordering guarantee.
        for (service, l) in self.services.drain() {
            self.local.remove(&self.app, &service, self.shared.out.id);
            l.task.abort();
        }
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.clear();
        }
    }
}

/// Ends a forwarding loop once the bus has handed over every request routed to it; `gone`:
/// the server cannot take them, refuse them.
async fn stop(l: Loop, gone: bool) {
    if gone {
        l.gone.send_replace(true);
    }
    let _ = l.stop.send(());
    let mut task = l.task;
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
        .await
        .is_err()
    {
        tracing::warn!("the bus did not end a responder's subscription in time; dropped");
        task.abort();
    }
}

/// A response's status and headers, checked as the client will need them.
fn check(status: u16, headers: Headers) -> Result<Headers, String> {
    if !(100..=599).contains(&status) {
        return Err(format!("status {status} is not between 100 and 599"));
    }
    super::call::normalize_headers(headers)
}

/// Takes requests from the bus while the server has room for them, until the bus ends the
/// stream (after a stop, once every request routed here was taken). Once the server is gone,
/// what still arrives is refused.
async fn forward(mut requests: RequestStream, mut gone: watch::Receiver<bool>, shared: Shared) {
    while let Some(request) = requests.next().await {
        if *gone.borrow() {
            shared.refuse(request).await;
            continue;
        }
        let permit = tokio::select! {
            biased;
            _ = gone.wait_for(|gone| *gone) => None,
            p = Arc::clone(&shared.permits).acquire_owned() => p.ok(),
        };
        match permit {
            Some(permit) => shared.dispatch(request, permit).await,
            None => shared.refuse(request).await,
        }
    }
}

/// A request as the server is to see it.
pub(crate) struct Forwarded<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a Headers,
    pub body: &'a RawValue,
    pub caller: &'a Caller,
    pub timeout: Duration,
}

impl Shared {
    async fn refuse(&self, request: BusRequest) {
        if let Some(reply) = request.reply {
            let error = BusReply::error(ErrorCode::UpstreamError, GONE);
            let _ = self.bus.publish(&reply, Bytes::from(error)).await;
        }
    }

    /// A request from the bus.
    async fn dispatch(&self, request: BusRequest, permit: OwnedSemaphorePermit) {
        let Some(reply) = request.reply else {
            return;
        };
        // Under the caller's span when it sent one: the request's trace goes on here.
        let span = waas_core::span!("rpc.serve");
        if let Some(parent) = request.trace {
            parent.adopt(&span);
        }
        let call: BusCall = match serde_json::from_slice(&request.payload) {
            Ok(call) => call,
            Err(e) => {
                let error =
                    BusReply::error(ErrorCode::Internal, format!("unreadable request: {e}"));
                let _ = self.bus.publish(&reply, Bytes::from(error)).await;
                return;
            }
        };
        let request = Forwarded {
            service: &call.service,
            method: &call.method,
            path: &call.path,
            headers: &call.headers,
            body: call.body,
            caller: &call.caller,
            timeout: Duration::from_millis(call.timeout_ms),
        };
        self.forward(request, ReplyTo::Bus(reply), permit, TraceParent::of(&span));
    }

    /// A request from a caller on this gateway, answered on `out` with `id`; `permit` taken
    /// with [`LocalServices::pick`].
    pub(crate) fn dispatch_local(
        &self,
        request: Forwarded<'_>,
        out: Arc<Outbound>,
        id: u64,
        inflight: InflightGuard,
        permit: OwnedSemaphorePermit,
        started: std::time::Instant,
    ) {
        let reply = ReplyTo::Local {
            out,
            id,
            _inflight: inflight,
            started,
        };
        self.forward(request, reply, permit, TraceParent::current());
    }

    /// Queues the request on the server's socket; `trace` (when tracing) is the span the socket
    /// write and the answer go under.
    fn forward(
        &self,
        request: Forwarded<'_>,
        reply: ReplyTo,
        permit: OwnedSemaphorePermit,
        trace: Option<TraceParent>,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wsframe::json(&RequestRef {
            op: "request",
            id,
            service: request.service,
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: request.body,
            caller: request.caller,
            timeout_ms: request.timeout.as_millis() as u64,
        });
        let (done, watch) = oneshot::channel();
        self.pending.lock().expect("pending poisoned").insert(
            id,
            Pending {
                reply: Some(reply),
                bus: Arc::clone(&self.bus),
                _done: done,
                _permit: permit,
                trace,
            },
        );
        self.out.push_traced(frame, trace);
        tokio::spawn(watch_timeout(
            id,
            watch,
            request.timeout,
            Arc::clone(&self.pending),
        ));
    }
}

/// Frees a request's slot when the caller's time is up, telling a caller on this gateway (whose
/// wait no bus request bounds); ends early when the entry goes.
async fn watch_timeout(
    id: u64,
    done: oneshot::Receiver<()>,
    timeout: Duration,
    pending: PendingMap,
) {
    if tokio::time::timeout(timeout, done).await.is_ok() {
        return;
    }
    let entry = pending.lock().expect("pending poisoned").remove(&id);
    if let Some(mut entry) = entry {
        // A bus caller times out on its own; it is not told twice.
        if let Some(ReplyTo::Local {
            out, id, started, ..
        }) = entry.reply.take()
        {
            local_done(Some(ErrorCode::Timeout), started);
            let message = format!("no response within {} ms", timeout.as_millis());
            out.push(OpError::new(ErrorCode::Timeout, message).frame(id));
        }
    }
}
