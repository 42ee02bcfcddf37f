//! HTTP/1.1 pipelining for `loadtest ingest --via rest --in-flight N`: requests written back to
//! back on one keep-alive connection without waiting for the answers, which come back in order.
//!
//! hyper's client sends one request at a time per connection, so this writes requests itself
//! (a request is a few formatted lines) and reads the responses with `httparse`, hyper's own
//! parser. Only what the gateway answers is understood: `Content-Length` bodies, no chunking.

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// One POST, encoded once and written as many times as wanted.
pub fn post(host: &str, path: &str, authorization: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: {authorization}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Keeps up to `window` requests from `next` in flight on `stream` and hands each response's
/// status and body to `answered`, in order, until `next` returns `None` or the connection fails.
pub async fn run(
    stream: TcpStream,
    window: usize,
    mut next: impl FnMut() -> Option<Vec<u8>> + Send + 'static,
    mut answered: impl FnMut(u16, &[u8]),
) -> Result<()> {
    let (mut read, mut write) = stream.into_split();
    let room = Arc::new(Semaphore::new(window));
    let writer_room = Arc::clone(&room);
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        loop {
            // At least one request, then as many as the window has room for, in one write.
            writer_room.acquire().await?.forget();
            let mut permits = 1;
            loop {
                let Some(request) = next() else {
                    return anyhow::Ok(());
                };
                out.extend_from_slice(&request);
                match writer_room.try_acquire() {
                    Ok(p) if permits < 64 => {
                        p.forget();
                        permits += 1;
                    }
                    Ok(p) => {
                        drop(p);
                        break;
                    }
                    Err(_) => break,
                }
            }
            write.write_all(&out).await?;
            out.clear();
        }
    });
    let mut buf = BytesMut::with_capacity(64 << 10);
    let result = async {
        loop {
            while let Some((status, head, body)) = parse(&buf)? {
                answered(status, &buf[head..head + body]);
                buf.advance(head + body);
                room.add_permits(1);
            }
            if read.read_buf(&mut buf).await.context("reading responses")? == 0 {
                bail!("connection closed by the server");
            }
        }
    }
    .await;
    writer.abort();
    result
}

/// A whole response at the start of `buf`: its status, head length and body length.
fn parse(buf: &[u8]) -> Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf).context("parsing a response")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .context("a response without content-length")?;
    let length: usize = std::str::from_utf8(length.value)?.trim().parse()?;
    let status = response.code.unwrap_or(0);
    Ok((buf.len() >= head + length).then_some((status, head, length)))
}
