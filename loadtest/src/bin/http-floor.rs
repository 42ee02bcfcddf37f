//! The least CPU an HTTP/1.1 server built like WaaS's can spend on a request here: hyper's
//! HTTP/1 server on tokio's multi-threaded runtime, answering every request with a fixed
//! 200 JSON body after reading the request's body, and nothing else (no routing, no auth, no
//! JSON parsing, no publishing). Load it with `loadtest ingest --via rest --addr ADDR
//! --server-pid PID`: its CPU per request is what the kernel and hyper cost whatever the
//! handler does, the floor under WaaS's REST publish (`loadtest/RESULTS.md`).
//!
//! Prints `listening on ADDR`, like `waas dev`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;

/// What a WaaS publish answers, near enough in size.
const BODY: &[u8] = br#"{"offsets":{"bench-0":1}}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = service_fn(|req: Request<Incoming>| async move {
                // Read the body, as any handler of a publish must.
                let _ = req.into_body().collect().await;
                let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
                res.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(res)
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
