//! The responder's side: a server connected with an API key `serve`s a service, and this gateway
//! subscribes to the service's bus subject in the service's queue group on its behalf. Each
//! request taken from the bus is forwarded down the server's socket as a `request` frame with an
//! id of this connection; the server's `response` frame with that id is published to the
//! request's reply subject.
//!
//! Backpressure: a server has at most `max_inflight_per_responder` requests forwarded and not
//! yet answered. At the cap the gateway stops taking requests from the bus for it: they wait in
//! the bus subscription (and time out there if the server stays saturated) instead of piling up
//! in the server's socket.
//!
//! Leaving is orderly ([`Bus::serve_until`]): the bus stops routing the service here, and the
//! requests already on their way are still taken. On `unserve` they are forwarded as usual (the
//! `ack` comes once none is left), so nothing is lost. When the server disconnects they are
//! answered `upstream_error`, and so is every request it owed an answer, once the subscription
//! is gone: a caller who retries after the error cannot be routed to the dead server again.

use super::envelope::{self, BusCall, BusReply};
use super::{Ctx, RpcError};
use crate::bus::{Bus, BusRequest, RequestStream};
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
use waas_protocol::frame::{null, RequestRef};
use waas_protocol::rpc::Headers;
use waas_protocol::{ErrorCode, ServerFrame, ServiceName};

/// A forwarded request waiting for the server's `response`.
struct Pending {
    reply: String,
    /// Told when answered; dropped unanswered when the server is gone, which the watcher
    /// reports to the caller.
    answered: oneshot::Sender<()>,
    _permit: OwnedSemaphorePermit,
}

/// Lock held only to insert or remove one entry, never across an await.
type PendingMap = Arc<Mutex<HashMap<u64, Pending>>>;

/// What the forwarding loops of one connection share.
#[derive(Clone)]
struct Shared {
    bus: Arc<dyn Bus>,
    out: Arc<Outbound>,
    pending: PendingMap,
    next_id: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
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
}

impl Responder {
    pub fn new(ctx: &Ctx<'_>) -> Self {
        let cap = ctx.gw.config.limits.max_inflight_per_responder;
        Responder {
            services: HashMap::new(),
            shared: Shared {
                bus: Arc::clone(ctx.gw.publisher.bus()),
                out: Arc::clone(ctx.out),
                pending: PendingMap::default(),
                next_id: Arc::new(AtomicU64::new(1)),
                permits: Arc::new(Semaphore::new(cap)),
            },
        }
    }

    /// Starts serving; returns once the bus routes the service's requests here.
    pub async fn serve(&mut self, ctx: &Ctx<'_>, service: &str) -> Result<(), RpcError> {
        if !ctx.identity.is_server {
            return Err(RpcError::new(
                ErrorCode::Forbidden,
                "only connections authenticated with an API key may serve",
            ));
        }
        let service = ServiceName::parse(service)
            .map_err(|e| RpcError::new(ErrorCode::BadRequest, format!("{service:?}: {e}")))?;
        if self.services.contains_key(&service) {
            return Ok(());
        }
        let subject = envelope::subject(&ctx.gw.config.subject_prefix, ctx.app.id(), &service);
        let (stop, stopped) = oneshot::channel();
        let requests = self
            .shared
            .bus
            .serve_until(&subject, Some(service.as_str()), stopped)
            .await
            .map_err(|e| RpcError::new(ErrorCode::Unavailable, e.to_string()))?;
        let (gone, is_gone) = watch::channel(false);
        let task = tokio::spawn(forward(requests, is_gone, self.shared.clone()));
        self.services.insert(service, Loop { stop, gone, task });
        Ok(())
    }

    /// Stops serving `service`: returns once no more of its requests will be forwarded. Those
    /// already forwarded may still be answered.
    pub async fn unserve(&mut self, service: &str) {
        let found = ServiceName::parse(service)
            .ok()
            .and_then(|s| self.services.remove(&s));
        if let Some(l) = found {
            stop(l, false).await;
        }
    }

    /// A `response` frame: publish it to the caller's reply subject.
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
        let Some(pending) = pending else {
            // Late (the caller gave up) or never asked: nothing waits for it.
            tracing::debug!(conn = ctx.out.id, id, "response to no pending request");
            return;
        };
        let reply = match check(status, headers) {
            Ok(headers) => {
                let null = null();
                let reply = BusReply {
                    status: Some(status),
                    headers,
                    body: Some(body.as_deref().unwrap_or(&null)),
                    error: None,
                };
                serde_json::to_vec(&reply).expect("replies serialise")
            }
            Err(message) => {
                // No `id`: the ids of `response` frames are the server's, not the client's.
                ctx.out.push(wsframe::json(&ServerFrame::Error {
                    id: None,
                    code: ErrorCode::BadRequest,
                    message: format!("response {id}: {message}"),
                }));
                BusReply::error(
                    ErrorCode::UpstreamError,
                    format!("the responder sent an invalid response: {message}"),
                )
            }
        };
        if let Err(e) = self
            .shared
            .bus
            .publish(&pending.reply, Bytes::from(reply))
            .await
        {
            tracing::warn!(error = %e, "could not publish a response");
        }
        let _ = pending.answered.send(());
    }

    /// Unsubscribes every service, refusing what still arrives, then fails the requests still
    /// waiting for this server.
    pub async fn shutdown(&mut self) {
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
        for (_, l) in self.services.drain() {
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
    if tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await.is_err() {
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

impl Shared {
    async fn refuse(&self, request: BusRequest) {
        if let Some(reply) = request.reply {
            let error = BusReply::error(ErrorCode::UpstreamError, GONE);
            let _ = self.bus.publish(&reply, Bytes::from(error)).await;
        }
    }

    async fn dispatch(&self, request: BusRequest, permit: OwnedSemaphorePermit) {
        let Some(reply) = request.reply else {
            return;
        };
        let call: BusCall = match serde_json::from_slice(&request.payload) {
            Ok(call) => call,
            Err(e) => {
                let error =
                    BusReply::error(ErrorCode::Internal, format!("unreadable request: {e}"));
                let _ = self.bus.publish(&reply, Bytes::from(error)).await;
                return;
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wsframe::json(&RequestRef {
            op: "request",
            id,
            service: &call.service,
            method: &call.method,
            path: &call.path,
            headers: &call.headers,
            body: call.body,
            caller: &call.caller,
            timeout_ms: call.timeout_ms,
        });
        let (answered, watch) = oneshot::channel();
        self.pending.lock().expect("pending poisoned").insert(
            id,
            Pending {
                reply: reply.clone(),
                answered,
                _permit: permit,
            },
        );
        self.out.push(frame);
        let timeout = Duration::from_millis(call.timeout_ms);
        tokio::spawn(watch_answer(
            id,
            watch,
            timeout,
            reply,
            Arc::clone(&self.pending),
            Arc::clone(&self.bus),
        ));
    }
}

/// Frees a request's slot when the caller's time is up, and tells the caller when the server
/// went away without answering.
async fn watch_answer(
    id: u64,
    answered: oneshot::Receiver<()>,
    timeout: Duration,
    reply: String,
    pending: PendingMap,
    bus: Arc<dyn Bus>,
) {
    match tokio::time::timeout(timeout, answered).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            let error = BusReply::error(ErrorCode::UpstreamError, GONE);
            let _ = bus.publish(&reply, Bytes::from(error)).await;
        }
        // The caller has stopped waiting too; forget the request (an answer would be dropped).
        Err(_) => {
            pending.lock().expect("pending poisoned").remove(&id);
        }
    }
}
