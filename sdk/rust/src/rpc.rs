//! Requests over the socket (`docs/rpc.md`): [`Client::request`] and [`Client::call`] send a
//! `request` frame and return the [`Response`] the app's route got from its responder, over the
//! connection the client already holds.
//!
//! The serving side ([`crate::server`]) shares this file's session state: which services this
//! connection serves (sent again after every reconnect, like subscriptions) and the connection
//! *generation*. Requests the server forwards carry ids of one connection; a handler that
//! finishes after a reconnect must not answer with an old id, which the new connection may have
//! given to another request, so answers of an older generation are dropped.

use crate::actor::Command;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::server::{Dispatch, Request as Incoming};
use crate::session::{Pending, Session};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use waas_protocol::frame::{ClientFrame, ServerFrame};
use waas_protocol::rpc::{check_method, check_path};

pub use waas_protocol::rpc::{Caller, Headers};

/// How much longer than a request's own timeout the client waits for the server's answer (which
/// is then a `timeout` error) before giving up locally.
const LOCAL_GRACE: Duration = Duration::from_secs(1);

/// The answer to a request: what the responder (a server's handler or an HTTP upstream) said.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    body: Box<RawValue>,
}

impl Response {
    /// Status 200–299.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON text, exactly as the responder wrote it (`null` when it gave none).
    pub fn body(&self) -> &RawValue {
        &self.body
    }

    /// The body decoded as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_str(self.body.get())?)
    }
}

/// A request with every option: headers, a timeout. Send it with [`Client::call`].
#[derive(Debug, Clone)]
pub struct Call {
    method: String,
    path: String,
    headers: Headers,
    body: Option<Box<RawValue>>,
    timeout: Option<Duration>,
}

impl Call {
    /// `method` is upper case (`GET`, `POST`, ...); `path` starts with `/` and may end with a
    /// query string.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Call {
            method: method.into(),
            path: path.into(),
            headers: Headers::new(),
            body: None,
            timeout: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header (names are case-insensitive). Only the headers a route allows reach an HTTP
    /// upstream; a service's handlers see them all.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// The body, any `Serialize` sent as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        self.body = Some(serde_json::value::to_raw_value(body)?);
        Ok(self)
    }

    /// Waits at most this long (shortens the route's timeout, never extends it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

impl Client {
    /// Sends a request to the app's routes and waits for the response: for example
    /// `client.request("GET", "/weather/paris", &()).await?`. `body` is any `Serialize`, sent as
    /// JSON (`&()` sends none).
    ///
    /// A response with any status, 4xx and 5xx included, is `Ok`: it is the responder's answer.
    /// `Err(Error::Rejected { code, .. })` means there was no answer: `forbidden` (the token's
    /// `caps.call`), `no_route`, `no_responder`, `timeout`, `upstream_error`,
    /// `response_too_large`, `too_many_requests`. [`Error::Disconnected`] means the connection
    /// dropped while it was in flight (or was down when it was made); whether the responder
    /// acted on it is unknown, and it is not resent.
    pub async fn request<B: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<Response> {
        self.call(Call::new(method, path).json(body)?).await
    }

    /// Sends a request built with [`Call`].
    pub async fn call(&self, call: Call) -> Result<Response> {
        check_method(&call.method).map_err(|reason| Error::InvalidPath {
            path: call.method.clone(),
            reason,
        })?;
        check_path(&call.path).map_err(|reason| Error::InvalidPath {
            path: call.path.clone(),
            reason,
        })?;
        let wait = call
            .timeout
            .map_or(self.options().request_timeout, |t| t + LOCAL_GRACE);
        self.command_within("request", wait, |reply| {
            Command::Rpc(RpcCommand::Request { call, reply })
        })
        .await
    }
}

/// What the client handle asks the connection task to do.
pub(crate) enum RpcCommand {
    Request {
        call: Call,
        reply: oneshot::Sender<Result<Response>>,
    },
    Serve {
        service: String,
        dispatch: Dispatch,
        /// Set by the `Serving` handle when it stops.
        stopped: Arc<AtomicBool>,
        reply: oneshot::Sender<Result<()>>,
    },
    Unserve {
        service: String,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// A handler's answer to request `id` of connection `generation`.
    Respond {
        generation: u64,
        id: u64,
        status: u16,
        headers: Headers,
        body: Box<RawValue>,
    },
}

/// A request, `serve` or `unserve` waiting for the server.
#[derive(Debug)]
pub(crate) enum Waiting {
    Request(oneshot::Sender<Result<Response>>),
    Serve(String),
    Unserve(Option<oneshot::Sender<Result<()>>>),
}

impl Waiting {
    /// The connection dropped before the answer came.
    pub(crate) fn disconnected(self) {
        match self {
            Waiting::Request(reply) => {
                let _ = reply.send(Err(Error::Disconnected));
            }
            // Served again on the next connection; whoever waits keeps waiting.
            Waiting::Serve(_) => {}
            // The server forgets a closed connection's services.
            Waiting::Unserve(reply) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }
}

/// A served service: where its requests go, and who waits for the first `serve` ack.
struct Service {
    dispatch: Dispatch,
    stopped: Arc<AtomicBool>,
    ready: Option<oneshot::Sender<Result<()>>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

/// The serving side's part of the session.
#[derive(Debug, Default)]
pub(crate) struct RpcState {
    services: HashMap<String, Service>,
    /// Increased on every connect; see the module documentation.
    generation: u64,
}

fn encode(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).expect("client frames hold only strings, numbers and raw JSON")
}

/// A response the client library makes up on the server's behalf (no handler could take it).
fn refusal(id: u64, status: u16, message: &str) -> String {
    let body = serde_json::value::to_raw_value(&serde_json::json!({ "error": message }))
        .expect("JSON values serialise");
    encode(&ClientFrame::Response {
        id,
        status,
        headers: Headers::new(),
        body: Some(body),
    })
}

impl Session {
    pub(crate) fn rpc(&mut self, command: RpcCommand) {
        match command {
            RpcCommand::Request { call, reply } => {
                if !self.online {
                    let _ = reply.send(Err(Error::Disconnected));
                    return;
                }
                let id = self.id();
                self.outbox.push(encode(&ClientFrame::Request {
                    id,
                    method: call.method,
                    path: call.path,
                    headers: call.headers,
                    body: call.body,
                    timeout_ms: call.timeout.map(|t| t.as_millis().max(1) as u64),
                }));
                self.pending
                    .insert(id, Pending::Rpc(Waiting::Request(reply)));
            }
            RpcCommand::Serve {
                service,
                dispatch,
                stopped,
                reply,
            } => {
                if self.rpc.services.contains_key(&service) {
                    let _ = reply.send(Err(Error::Config(format!(
                        "service {service:?} is already served by this client"
                    ))));
                    return;
                }
                self.rpc.services.insert(
                    service.clone(),
                    Service {
                        dispatch,
                        stopped,
                        ready: Some(reply),
                    },
                );
                if self.online {
                    self.send_serve(service);
                }
            }
            RpcCommand::Unserve { service, reply } => {
                if self.rpc.services.remove(&service).is_none() || !self.online {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                    return;
                }
                let id = self.id();
                self.outbox
                    .push(encode(&ClientFrame::Unserve { id, service }));
                self.pending
                    .insert(id, Pending::Rpc(Waiting::Unserve(reply)));
            }
            RpcCommand::Respond {
                generation,
                id,
                status,
                headers,
                body,
            } => {
                if !self.online || generation != self.rpc.generation {
                    tracing::debug!(id, "dropping a response to a request of a lost connection");
                    return;
                }
                self.outbox.push(encode(&ClientFrame::Response {
                    id,
                    status,
                    headers,
                    body: Some(body),
                }));
            }
        }
    }

    fn send_serve(&mut self, service: String) {
        let id = self.id();
        self.outbox.push(encode(&ClientFrame::Serve {
            id,
            service: service.clone(),
        }));
        self.pending
            .insert(id, Pending::Rpc(Waiting::Serve(service)));
    }

    /// A new connection: a new generation, and every service served again.
    pub(crate) fn rpc_on_connect(&mut self) {
        self.rpc.generation += 1;
        // Services whose handler is gone (its `Serving` dropped without a word) are not served
        // again.
        self.rpc
            .services
            .retain(|_, s| !s.stopped.load(Ordering::Acquire));
        let services: Vec<String> = self.rpc.services.keys().cloned().collect();
        for service in services {
            self.send_serve(service);
        }
    }

    pub(crate) fn on_rpc_answer(&mut self, waiting: Waiting, answer: Result<Option<u64>>) {
        match waiting {
            Waiting::Request(reply) => {
                let _ =
                    reply
                        .send(answer.and_then(|_| {
                            Err(Error::Protocol("a request answered by ack".into()))
                        }));
            }
            Waiting::Serve(service) => match answer {
                Ok(_) => {
                    if let Some(ready) = self
                        .rpc
                        .services
                        .get_mut(&service)
                        .and_then(|s| s.ready.take())
                    {
                        let _ = ready.send(Ok(()));
                    }
                }
                Err(e) => {
                    tracing::warn!(%service, error = %e, "the server refused to let us serve");
                    if let Some(s) = self.rpc.services.remove(&service) {
                        if let Some(ready) = s.ready {
                            let _ = ready.send(Err(e));
                        }
                    }
                }
            },
            Waiting::Unserve(reply) => {
                if let Some(reply) = reply {
                    let _ = reply.send(answer.map(|_| ()));
                }
            }
        }
    }

    pub(crate) fn on_rpc_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Response {
                id,
                status,
                headers,
                body,
            } => match self.pending.remove(&id) {
                Some(Pending::Rpc(Waiting::Request(reply))) => {
                    let _ = reply.send(Ok(Response {
                        status,
                        headers,
                        body,
                    }));
                }
                Some(other) => {
                    tracing::debug!(id, "a response to something that is not a request");
                    self.pending.insert(id, other);
                }
                None => tracing::debug!(id, "a response to an unknown request"),
            },
            ServerFrame::Request {
                id,
                service,
                method,
                path,
                headers,
                body,
                caller,
                timeout_ms,
            } => {
                let Some(s) = self.rpc.services.get(&service) else {
                    let message = format!("this server does not serve {service:?}");
                    self.outbox.push(refusal(id, 503, &message));
                    return;
                };
                let request = Incoming::new(
                    self.rpc.generation,
                    id,
                    service,
                    method,
                    path,
                    headers,
                    body,
                    caller,
                    Duration::from_millis(timeout_ms),
                );
                if s.stopped.load(Ordering::Acquire) {
                    let message = format!("this server no longer serves {:?}", request.service);
                    self.outbox.push(refusal(request.id(), 503, &message));
                } else if !(s.dispatch)(request) {
                    self.outbox
                        .push(refusal(id, 503, "the server is overloaded"));
                }
            }
            _ => {}
        }
    }
}
