//! Request/response over the socket (`docs/rpc.md`): a client sends a `request` frame, the
//! app's routes pick a responder, and the answer comes back as a `response` frame on the same
//! connection — no new TCP or HTTP exchange for the client, and its identity travels with it.
//!
//! Two kinds of responder:
//! - a **service**: the tenant's servers connect with an API key and `serve` a service name
//!   ([`service`]). Requests travel over the bus as request/reply on `{prefix}.$rpc.{app}.{service}`
//!   with the service name as queue group ([`envelope`]), so servers on any gateway share them.
//!   The gateway subscribes on the server's behalf and forwards requests down its socket: SDK
//!   servers need no bus client, and `waas dev` works the same on its in-process bus.
//! - an **HTTP upstream**: the gateway calls the tenant's REST backend over pooled keep-alive
//!   connections ([`upstream`]).
//!
//! A server connected to the caller's own gateway gets the request directly when it has room
//! ([`local`]): no bus round trip, which is most of the cost of a request on one machine.
//!
//! `waas_core::route` holds an app's routes; [`call`] is the caller's side. Per connection, [`ConnRpc`]
//! keeps the requests in flight (dropped, hence cancelled, when the connection ends) and the
//! services served.

pub mod call;
pub mod envelope;
pub mod local;
pub mod service;
pub mod upstream;

use crate::config::Limits;
use crate::connections::Connections;
use crate::outbound::Outbound;
use crate::wsframe;
use std::sync::Arc;
use waas_core::app::App;
use waas_core::auth::Identity;
use waas_core::bus::Bus;
use waas_protocol::rpc::Caller;
use waas_protocol::ClientFrame;

/// `ack` for `serve` and `unserve` (no other field).
fn ack(id: u64) -> bytes::Bytes {
    wsframe::json(&serde_json::json!({"op": "ack", "id": id}))
}

/// What the node shares between connections: the pooled HTTP client for upstreams, the
/// services served on this node, and the bus that carries requests to services on others.
pub struct Rpc {
    pub upstream: upstream::Upstreams,
    pub local: std::sync::Arc<local::LocalServices>,
    pub bus: Arc<dyn Bus>,
    /// The subject prefix of the bus ([`envelope::subject`]).
    pub prefix: String,
}

impl Rpc {
    /// Upstreams are reached only at addresses `outbound` allows.
    pub fn new(bus: Arc<dyn Bus>, prefix: &str, outbound: waas_core::egress::Policy) -> Self {
        Rpc {
            upstream: upstream::Upstreams::new(outbound),
            local: Default::default(),
            bus,
            prefix: prefix.to_owned(),
        }
    }
}

/// An authenticated connection, as the RPC code needs it.
pub struct Ctx<'a> {
    pub rpc: &'a Rpc,
    pub limits: &'a Limits,
    /// Names the caller's connection to responders.
    pub connections: &'a Connections,
    pub app: &'a Arc<App>,
    pub identity: &'a Identity,
    pub out: &'a Arc<Outbound>,
}

impl Ctx<'_> {
    pub fn caller(&self) -> Caller {
        Caller {
            sub: self.identity.sub.clone(),
            app: self.app.id().to_string(),
            connection_id: self.connections.connection_id(self.app.id(), self.out.id),
        }
    }
}

/// A connection's requests and services. Costs one pointer until the connection uses RPC.
#[derive(Default)]
pub struct ConnRpc(Option<Box<State>>);

#[derive(Default)]
struct State {
    calls: call::Calls,
    responder: Option<service::Responder>,
}

impl ConnRpc {
    fn state(&mut self) -> &mut State {
        self.0.get_or_insert_with(Box::default)
    }

    /// Handles `request`, `response`, `serve` and `unserve`; other frames are not for us.
    pub async fn on_frame(&mut self, ctx: Ctx<'_>, frame: ClientFrame) {
        match frame {
            ClientFrame::Request {
                id,
                method,
                path,
                headers,
                body,
                timeout_ms,
            } => {
                let request = call::Request {
                    id,
                    method,
                    path,
                    headers,
                    body,
                    timeout_ms,
                };
                if let Err(e) = self.state().calls.start(&ctx, request) {
                    ctx.out.push(e.frame(id));
                }
            }
            ClientFrame::Response {
                id,
                status,
                headers,
                body,
            } => {
                if let Some(responder) = self.0.as_mut().and_then(|s| s.responder.as_mut()) {
                    responder.response(&ctx, id, status, headers, body).await;
                }
            }
            ClientFrame::Serve { id, service } => {
                let state = self.state();
                let responder = state
                    .responder
                    .get_or_insert_with(|| service::Responder::new(&ctx));
                let answer = responder.serve(&ctx, &service).await;
                ctx.out.push(match answer {
                    Ok(()) => ack(id),
                    Err(e) => e.frame(id),
                });
            }
            ClientFrame::Unserve { id, service } => {
                if let Some(responder) = self.0.as_mut().and_then(|s| s.responder.as_mut()) {
                    responder.unserve(&service).await;
                }
                ctx.out.push(ack(id));
            }
            _ => {}
        }
    }

    /// The connection is ending: stop serving (unsubscribing first, so no new request is routed
    /// here), fail the requests it still owed an answer, cancel its own requests in flight.
    pub async fn shutdown(&mut self) {
        if let Some(mut state) = self.0.take() {
            if let Some(responder) = state.responder.as_mut() {
                responder.shutdown().await;
            }
        }
    }
}
