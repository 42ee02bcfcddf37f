//! The backend process: one echo handler, served two ways — as an HTTP/1.1 server (for plain
//! HTTP and for the gateway's HTTP upstream) and as a WaaS service through the SDK (for requests
//! over the socket). Running it apart from the load generator keeps the two from sharing a
//! runtime, as a real backend and its clients would not.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;
use waas_sdk::rpc::Headers;
use waas_sdk::server::{Reply, Request as RpcRequest};

/// The handler: the response body is the request body.
fn echo(body: &[u8]) -> &[u8] {
    body
}

async fn http(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let out = Bytes::copy_from_slice(echo(&body));
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(out))
        .expect("a valid response"))
}

async fn rpc(req: RpcRequest) -> Reply {
    // The same echo: the body arrives as JSON text the SDK already checked, and goes back as a
    // copy, as the HTTP handler's does.
    Reply {
        status: 200,
        headers: Headers::new(),
        body: req.body().to_owned(),
    }
}

/// Serves HTTP on a free port and the service `echo` on `gateway`, prints `backend ADDR` once
/// both are ready, then runs until killed.
pub async fn run(gateway: &str, app: &str, key: &str, bind: &str) -> Result<()> {
    let listener = TcpListener::bind((bind, 0)).await?;
    let addr = listener.local_addr()?;
    let client = waas_sdk::Client::builder()
        .url(gateway)
        .app(app)
        .token(key)
        .connect()
        .await
        .context("connecting the responder")?;
    let _serving = client.serve("echo", rpc).await.context("serve echo")?;
    println!("backend {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(http))
                .await;
        });
    }
}
