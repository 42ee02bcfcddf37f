//! The serving side of requests over the socket (`docs/rpc.md`): a tenant's server, connected
//! with an API key, answers the requests of a service with a handler.
//!
//! ```no_run
//! # async fn demo(client: waas_sdk::Client) -> Result<(), waas_sdk::Error> {
//! use waas_sdk::server::{Json, Request, Router};
//!
//! async fn weather(req: Request) -> Json<serde_json::Value> {
//!     let city = req.param("city").unwrap_or_default();
//!     Json(serde_json::json!({ "city": city, "celsius": 21.5, "asked_by": req.caller.sub }))
//! }
//!
//! let serving = client
//!     .serve("weather", Router::new().route("GET", "/weather/{city}", weather))
//!     .await?;
//! # drop(serving); Ok(()) }
//! ```
//!
//! A handler is any `async fn(Request) -> impl IntoReply` (or a [`Router`] of them): it gets the
//! method, path, headers, JSON body and the caller's identity as the gateway vouches for it
//! ([`Request::caller`]), and returns a status, headers and a JSON body. Each request runs in
//! its own task; a handler that panics answers 500.

use crate::actor::Command;
use crate::client::Client;
use crate::error::Result;
use crate::rpc::RpcCommand;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use waas_protocol::frame::null;
use waas_protocol::rpc::{split_query, Caller, Headers};

/// Requests one service's handlers may be running at once; beyond it the client answers 503
/// itself.
const MAX_RUNNING: usize = 1024;

/// Hands a request to its service's handler (a task of its own); `false` when the service is at
/// [`MAX_RUNNING`] (the request is dropped). Called by the connection task, which must never
/// wait.
pub(crate) type Dispatch = Arc<dyn Fn(Request) -> bool + Send + Sync>;

/// A request for a service this client serves.
#[derive(Debug)]
pub struct Request {
    generation: u64,
    id: u64,
    pub service: String,
    pub method: String,
    /// The path as the caller sent it, query string included.
    pub path: String,
    pub headers: Headers,
    body: Box<RawValue>,
    /// Who sent it: `sub` from their token (`"server"` for an API key), app, connection id.
    pub caller: Caller,
    /// How long the caller still waits; answering later is useless.
    pub timeout: Duration,
    /// `{name}` segments captured by a [`Router`] route.
    params: Vec<(String, String)>,
}

impl Request {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        generation: u64,
        id: u64,
        service: String,
        method: String,
        path: String,
        headers: Headers,
        body: Box<RawValue>,
        caller: Caller,
        timeout: Duration,
    ) -> Self {
        Request {
            generation,
            id,
            service,
            method,
            path,
            headers,
            body,
            caller,
            timeout,
            params: Vec::new(),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The body as JSON text, exactly as the caller wrote it (`null` when it sent none).
    pub fn body(&self) -> &RawValue {
        &self.body
    }

    /// The body decoded as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(serde_json::from_str(self.body.get())?)
    }

    /// A header by (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// A `{name}` segment of the route that matched, e.g. `city` in `/weather/{city}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query string, without `?`.
    pub fn query(&self) -> Option<&str> {
        split_query(&self.path).1
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Headers,
    pub body: Box<RawValue>,
}

impl Reply {
    /// A reply with `status` and `body` serialised as JSON.
    pub fn new<T: Serialize + ?Sized>(status: u16, body: &T) -> Self {
        match serde_json::value::to_raw_value(body) {
            Ok(body) => Reply {
                status,
                headers: Headers::new(),
                body,
            },
            Err(e) => Reply::error(500, &format!("the handler's body does not serialise: {e}")),
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        Reply::new(status, &serde_json::json!({ "error": message }))
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }
}

/// Turns a handler's output into a [`Reply`], as axum's `IntoResponse` does.
pub trait IntoReply {
    fn into_reply(self) -> Reply;
}

impl IntoReply for Reply {
    fn into_reply(self) -> Reply {
        self
    }
}

/// A JSON body with status 200.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoReply for Json<T> {
    fn into_reply(self) -> Reply {
        Reply::new(200, &self.0)
    }
}

/// Status 204 and a `null` body.
impl IntoReply for () {
    fn into_reply(self) -> Reply {
        Reply {
            status: 204,
            headers: Headers::new(),
            body: null(),
        }
    }
}

/// A JSON string body with status 200.
impl IntoReply for String {
    fn into_reply(self) -> Reply {
        Reply::new(200, &self)
    }
}

/// Another status for the same body: `(201, Json(created))`.
impl<T: IntoReply> IntoReply for (u16, T) {
    fn into_reply(self) -> Reply {
        let mut reply = self.1.into_reply();
        reply.status = self.0;
        reply
    }
}

impl<T: IntoReply, E: IntoReply> IntoReply for std::result::Result<T, E> {
    fn into_reply(self) -> Reply {
        match self {
            Ok(t) => t.into_reply(),
            Err(e) => e.into_reply(),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// Answers a service's requests. Implemented by every `Fn(Request) -> impl Future<Output = impl
/// IntoReply>` and by [`Router`].
pub trait Handler: Send + Sync + 'static {
    fn call(&self, request: Request) -> BoxFuture;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoReply,
{
    fn call(&self, request: Request) -> BoxFuture {
        let fut = self(request);
        Box::pin(async move { fut.await.into_reply() })
    }
}

/// Dispatches on method and path pattern (`/weather/{city}`: literal segments, and `{name}`
/// segments that capture one segment each, read with [`Request::param`]). No match answers 404,
/// a path matched with another method 405.
#[derive(Default, Clone)]
pub struct Router {
    routes: Vec<(String, Vec<String>, Arc<dyn Handler>)>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, method: &str, pattern: &str, handler: impl Handler) -> Self {
        let segments = pattern
            .trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect();
        self.routes
            .push((method.to_ascii_uppercase(), segments, Arc::new(handler)));
        self
    }

    fn matches(pattern: &[String], path: &str) -> Option<Vec<(String, String)>> {
        let path = split_query(path).0.trim_start_matches('/');
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() != pattern.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(segments) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => params.push((name.to_owned(), s.to_owned())),
                None if p == s => {}
                None => return None,
            }
        }
        Some(params)
    }
}

impl Handler for Router {
    fn call(&self, mut request: Request) -> BoxFuture {
        let mut path_matched = false;
        for (method, pattern, handler) in &self.routes {
            if let Some(params) = Self::matches(pattern, &request.path) {
                path_matched = true;
                if *method == request.method {
                    request.params = params;
                    return handler.call(request);
                }
            }
        }
        let reply = if path_matched {
            Reply::error(405, &format!("{} is not allowed here", request.method))
        } else {
            Reply::error(404, &format!("no handler for {}", request.path))
        };
        Box::pin(async move { reply })
    }
}

/// A service being served; dropping it (or [`Serving::stop`]) stops serving.
pub struct Serving {
    client: Client,
    service: String,
    /// Set once stopped: the service is not served again after a reconnect.
    stopped: Arc<AtomicBool>,
}

impl Serving {
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Stops taking requests; returns once the server has acknowledged. Requests already
    /// handed to handlers are still answered.
    pub async fn stop(self) -> Result<()> {
        self.stopped.store(true, Ordering::Release);
        let service = self.service.clone();
        self.client
            .command("unserve", |reply| {
                Command::Rpc(RpcCommand::Unserve {
                    service,
                    reply: Some(reply),
                })
            })
            .await
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            let _ = self.client.try_command(Command::Rpc(RpcCommand::Unserve {
                service: self.service.clone(),
                reply: None,
            }));
        }
    }
}

impl Client {
    /// Serves `service`: requests the app's routes send to it are answered by `handler`.
    /// Returns once the gateway routes them here. Needs a connection authenticated with an API
    /// key (`forbidden` otherwise). Served again after every reconnect. Several servers may
    /// serve the same service: each request goes to one of them.
    pub async fn serve(&self, service: &str, handler: impl Handler) -> Result<Serving> {
        let service = service.to_owned();
        let stopped = Arc::new(AtomicBool::new(false));
        let dispatch = dispatcher(Arc::new(handler), self.clone());
        let command_service = service.clone();
        let command_stopped = Arc::clone(&stopped);
        self.command("serve", |reply| {
            Command::Rpc(RpcCommand::Serve {
                service: command_service,
                dispatch,
                stopped: command_stopped,
                reply,
            })
        })
        .await?;
        Ok(Serving {
            client: self.clone(),
            service,
            stopped,
        })
    }
}

/// Runs each request in a task of its own, straight from the connection task (no queue and
/// no task in between: a request's latency is one hand-off), and sends back its reply.
fn dispatcher(handler: Arc<dyn Handler>, client: Client) -> Dispatch {
    let running = Arc::new(Semaphore::new(MAX_RUNNING));
    Arc::new(move |request: Request| {
        let Ok(permit) = Arc::clone(&running).try_acquire_owned() else {
            return false;
        };
        let (handler, client) = (Arc::clone(&handler), client.clone());
        tokio::spawn(async move {
            let (generation, id) = (request.generation, request.id);
            let reply = match AssertUnwindSafe(handler.call(request)).catch_unwind().await {
                Ok(reply) => reply,
                Err(_) => Reply::error(500, "the handler panicked"),
            };
            drop(permit);
            let _ = client
                .send_command(Command::Rpc(RpcCommand::Respond {
                    generation,
                    id,
                    status: reply.status,
                    headers: reply.headers,
                    body: reply.body,
                }))
                .await;
        });
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> Request {
        Request::new(
            1,
            1,
            "s".into(),
            method.into(),
            path.into(),
            Headers::new(),
            null(),
            Caller {
                sub: "u".into(),
                app: "a".into(),
                connection_id: "a-1".into(),
            },
            Duration::from_secs(1),
        )
    }

    #[tokio::test]
    async fn router_captures_params_and_answers_404_and_405() {
        async fn weather(req: Request) -> Json<String> {
            Json(req.param("city").unwrap_or_default().to_owned())
        }
        let router = Router::new().route("GET", "/weather/{city}", weather);
        let r = router.call(request("GET", "/weather/paris?units=c")).await;
        assert_eq!((r.status, r.body.get()), (200, "\"paris\""));
        assert_eq!(
            router.call(request("POST", "/weather/paris")).await.status,
            405
        );
        assert_eq!(router.call(request("GET", "/weather")).await.status, 404);
        assert_eq!(
            router.call(request("GET", "/weather/a/b")).await.status,
            404
        );
    }

    #[test]
    fn functions_and_routers_are_handlers() {
        fn is_handler<H: Handler>(_: H) {}
        async fn plain(_: Request) -> Json<u8> {
            Json(1)
        }
        async fn fallible(_: Request) -> std::result::Result<(u16, Json<u8>), Reply> {
            Ok((201, Json(1)))
        }
        is_handler(plain);
        is_handler(fallible);
        is_handler(Router::new().route("GET", "/a/{b}", plain));
    }

    #[test]
    fn replies_from_handler_outputs() {
        let r = (201, Json(serde_json::json!({"id": 7}))).into_reply();
        assert_eq!((r.status, r.body.get()), (201, r#"{"id":7}"#));
        let r: std::result::Result<Json<u8>, Reply> = Err(Reply::error(409, "taken"));
        let r = r.into_reply();
        assert_eq!((r.status, r.body.get()), (409, r#"{"error":"taken"}"#));
        assert_eq!(().into_reply().status, 204);
    }
}
