//! The Pusher protocol 7 (WaaS's Pusher front, Sockudo, Soketi): subscribers open
//! `GET /app/{key}?protocol=7&client=js&version=8.4.0`, wait for `pusher:connection_established`,
//! send `pusher:subscribe` for a public channel and wait for
//! `pusher_internal:subscription_succeeded`; deliveries are `{"event","channel","data"}` frames
//! whose `data` is the published JSON as a string. The publisher uses Pusher's HTTP API,
//! `POST /apps/{app_id}/events`, signed as Pusher's server libraries sign
//! (<https://pusher.com/docs/channels/library_auth_reference/rest-api/#authentication>).

use super::{close_code, Ctx, Publisher, Ready};
use crate::stats::Stats;
use crate::ws::{self, Ws};
use anyhow::{bail, Context, Result};
use fastwebsockets::{Frame, OpCode, Payload};
use md5::{Digest, Md5};
use serde_json::Value;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// HTTP API requests in flight at once.
const HTTP_CONCURRENCY: usize = 64;

/// Pusher credentials for one run: the key clients connect with, the app id and secret the HTTP
/// API is signed for.
#[derive(Debug, Clone)]
pub struct PusherAuth {
    pub key: String,
    pub app_id: String,
    pub secret: String,
}

fn ws_path(key: &str) -> String {
    format!("/app/{key}?protocol=7&client=js&version=8.4.0")
}

/// Connects subscriber `i`, subscribes it, then records deliveries until aborted.
pub async fn subscriber(ctx: Arc<Ctx>, auth: Arc<PusherAuth>, i: usize, ready: Ready) {
    let ws = match subscribe(&ctx, &auth, i).await {
        Ok(ws) => {
            ready.report(Ok(()));
            ws
        }
        Err(e) => {
            ready.report(Err(e));
            return;
        }
    };
    receive(ws, &ctx.stats).await;
}

async fn subscribe(ctx: &Ctx, auth: &PusherAuth, i: usize) -> Result<Ws> {
    let source = ws::source_for(&ctx.source_ips, i);
    let mut ws = ws::connect(
        ctx.subscriber_endpoint(i),
        source,
        &ws_path(&auth.key),
        None,
    )
    .await?;
    let established = read_event(&mut ws).await?;
    if established["event"] != "pusher:connection_established" {
        bail!("expected pusher:connection_established, got {established}");
    }
    let channels = ctx.spread.names_of(i);
    for channel in &channels {
        let subscribe = serde_json::json!({
            "event": "pusher:subscribe",
            "data": {"channel": channel},
        });
        ws.write_frame(Frame::text(Payload::Owned(
            subscribe.to_string().into_bytes(),
        )))
        .await?;
    }
    let mut succeeded = 0;
    while succeeded < channels.len() {
        let event = read_event(&mut ws).await?;
        match event["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") => succeeded += 1,
            Some("pusher:error" | "pusher:subscription_error") => bail!("{event}"),
            _ => continue,
        }
    }
    Ok(ws)
}

/// The next text frame as JSON; a close frame or `pusher:error` is an error.
async fn read_event(ws: &mut Ws) -> Result<Value> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text => {
                let event: Value = serde_json::from_slice(&frame.payload).with_context(|| {
                    format!("frame {}", String::from_utf8_lossy(&frame.payload))
                })?;
                if event["event"] == "pusher:error" {
                    bail!("{event}");
                }
                return Ok(event);
            }
            OpCode::Close => bail!("closed {}", close_code(&frame.payload)),
            _ => continue,
        }
    }
}

async fn receive(mut ws: Ws, stats: &Stats) {
    const PONG: &[u8] = br#"{"event":"pusher:pong","data":{}}"#;
    loop {
        match ws.read_frame().await {
            Ok(frame) => match frame.opcode {
                // The data string escapes its quotes: `"data":"{\"t\":123,...}"`.
                OpCode::Text if stats.record_delivery(&frame.payload) => {}
                OpCode::Text => match serde_json::from_slice::<Value>(&frame.payload) {
                    Ok(e) if e["event"] == "pusher:ping" => {
                        if let Err(e) = ws.write_frame(Frame::text(Payload::Borrowed(PONG))).await {
                            stats.error(format!("subscriber pong: {e}"));
                            return;
                        }
                    }
                    Ok(e) if e["event"] == "pusher:error" => {
                        stats.error(format!("pusher:error {}", e["data"]["code"]))
                    }
                    Ok(_) => {}
                    Err(_) => stats.error("unreadable frame"),
                },
                OpCode::Close => {
                    stats.error(format!("subscriber closed {}", close_code(&frame.payload)));
                    return;
                }
                _ => {}
            },
            Err(e) => {
                stats.error(format!("subscriber read: {e}"));
                return;
            }
        }
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The query string of a signed `POST path` with `body`: `auth_key`, `auth_timestamp`,
/// `auth_version`, `body_md5` in key order, then `auth_signature`, the hex HMAC-SHA256 with the
/// secret of `"POST\n{path}\n{the parameters before it}"`.
pub fn signed_query(auth: &PusherAuth, path: &str, body: &[u8], timestamp: u64) -> String {
    let params = format!(
        "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
        auth.key,
        hex(&Md5::digest(body))
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, auth.secret.as_bytes());
    let signature = ring::hmac::sign(&key, format!("POST\n{path}\n{params}").as_bytes());
    format!("{params}&auth_signature={}", hex(signature.as_ref()))
}

/// Publishes with `POST /apps/{app_id}/events`, up to [`HTTP_CONCURRENCY`] requests at once.
pub struct HttpPublisher {
    ctx: Arc<Ctx>,
    auth: Arc<PusherAuth>,
    client: reqwest::Client,
    base: String,
    path: String,
    in_flight: Arc<Semaphore>,
}

impl HttpPublisher {
    pub fn new(ctx: Arc<Ctx>, auth: Arc<PusherAuth>) -> Result<HttpPublisher> {
        let path = format!("/apps/{}/events", auth.app_id);
        let base = format!("http://{}", ctx.publish_endpoint.host);
        Ok(HttpPublisher {
            ctx,
            auth,
            client: reqwest::Client::builder().no_proxy().build()?,
            base,
            path,
            in_flight: Arc::new(Semaphore::new(HTTP_CONCURRENCY)),
        })
    }
}

impl Publisher for HttpPublisher {
    async fn publish(&mut self, _id: u64, channel: &str, data: &str) -> Result<()> {
        let permit = self.in_flight.clone().acquire_owned().await?;
        // Pusher's `data` is a string: the JSON object, encoded once more.
        let body = format!(
            r#"{{"name":"tick","channels":[{}],"data":{}}}"#,
            serde_json::to_string(channel)?,
            serde_json::to_string(data)?
        );
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let query = signed_query(&self.auth, &self.path, body.as_bytes(), timestamp);
        let request = self
            .client
            .post(format!("{}{}?{query}", self.base, self.path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            match request.send().await {
                Ok(resp) if resp.status().is_success() => ctx.published.accept(),
                Ok(resp) => {
                    ctx.published.reject();
                    ctx.stats.error(format!("publish {}", resp.status()));
                }
                Err(e) => {
                    ctx.published.reject();
                    ctx.stats.error(format!("publish http: {e}"));
                }
            }
            drop(permit);
        });
        Ok(())
    }

    async fn close(self) {
        // Wait for the requests in flight.
        let _ = self.in_flight.acquire_many(HTTP_CONCURRENCY as u32).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's HTTP API authentication reference.
    #[test]
    fn signs_as_pusher_documents() {
        let auth = PusherAuth {
            key: "278d425bdf160c739803".into(),
            app_id: "3".into(),
            secret: "7ad3773142a6692b25b8".into(),
        };
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let query = signed_query(&auth, "/apps/3/events", body, 1353088179);
        assert_eq!(
            query,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }
}
