//! `loadtest ingest`: how many publishes one gateway accepts, and the server CPU each costs.
//!
//! No subscribers: every publisher keeps the gateway as busy as it can, over one of three paths
//! ([`Via`]): single REST publishes on keep-alive connections (each connection has one request
//! in flight, so `--connections` is how many are in flight), the batch endpoint (`--batch`
//! items per request), or WebSocket `publish` frames with up to `--in-flight` unacknowledged
//! per connection. A publish counts as accepted when the gateway acknowledged it (`200`, or an
//! `ack` frame); anything else is an error, by kind. Publishes go round robin over `--channels`
//! channels `{channel}-{i}`.
//!
//! After `--warmup` seconds the accepted count and the CPU time of the `--server-pid` and
//! `--bus-pid` processes (`/proc/PID/stat`) are sampled, and again `--duration` seconds later;
//! the figures are the differences.

use crate::procfs::{self, ProcSample};
use crate::ws::{self, Endpoint};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use waas_protocol::ServerFrame;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `POST /v1/apps/{app}/publish`, one message per request.
    Rest,
    /// `POST /v1/apps/{app}/batch`, `--batch` messages per request.
    Batch,
    /// `publish` frames over WebSocket connections opened with the API key.
    Ws,
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Gateway to publish to, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,

    /// WaaS app id.
    #[arg(long, env = "WAAS_APP_ID", default_value = "demo")]
    pub app: String,

    /// WaaS API key.
    #[arg(
        long,
        env = "WAAS_API_KEY",
        default_value = "demo-key",
        hide_env_values = true
    )]
    pub api_key: String,

    /// How to publish.
    #[arg(long, value_enum, default_value_t = Via::Rest)]
    pub via: Via,

    /// Connections. Default: 8 for `rest` and `batch`, 100 for `ws`.
    #[arg(long)]
    pub connections: Option<usize>,

    /// Unacknowledged publishes per connection: `publish` frames for `ws` (default 32),
    /// requests for `rest` and `batch` (default 1; above 1 they are pipelined, HTTP/1.1
    /// requests written back to back on the connection without waiting for the answers).
    #[arg(long)]
    pub in_flight: Option<usize>,

    /// Messages per batch request (`batch` only; the gateway's `max_batch_size` defaults to 100).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,

    /// Channels published to, round robin: `{channel}-0` ... .
    #[arg(long, default_value_t = 16)]
    pub channels: usize,

    /// Channel name prefix.
    #[arg(long, default_value = "ingest")]
    pub channel: String,

    /// Bytes of padding in each message's data.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,

    /// Seconds of publishing before the measured window.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Server process(es) whose CPU time per accepted publish is reported, summed.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Bus process(es) (nats-server) whose CPU time per publish is reported apart.
    #[arg(long, value_delimiter = ',')]
    pub bus_pid: Vec<u32>,

    /// Names the set-up in the table (e.g. "cluster, history on").
    #[arg(long)]
    pub label: Option<String>,

    /// Write the report as JSON to FILE too (`-`: stdout only, no table).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Counters every publisher task shares.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    stop: AtomicBool,
}

impl Counters {
    fn error(&self, kind: impl Into<String>) {
        *self
            .errors
            .lock()
            .expect("not poisoned")
            .entry(kind.into())
            .or_default() += 1;
    }
}

/// The result of one `ingest` run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestReport {
    pub via: Via,
    pub label: Option<String>,
    pub connections: usize,
    /// Unacknowledged publishes (`ws`) or requests (`rest`, `batch`) per connection.
    pub in_flight: usize,
    /// Messages per request (`batch`), else 1.
    pub batch: usize,
    pub channels: usize,
    pub payload: usize,
    pub duration_s: f64,
    /// Publishes acknowledged in the measured window.
    pub accepted: u64,
    pub accepted_per_s: f64,
    /// Server CPU (utime + stime) over the window per accepted publish, µs.
    pub server_cpu_us_per_publish: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    /// Bus CPU per accepted publish, µs.
    pub bus_cpu_us_per_publish: Option<f64>,
    pub bus_cpu_percent: Option<f64>,
    /// This client's CPU per accepted publish, µs.
    pub client_cpu_us_per_publish: f64,
    /// Errors over the whole run (warm-up included), by kind.
    pub errors: BTreeMap<String, u64>,
    pub loadavg_before: String,
    pub machine: String,
}

/// Runs the scenario and returns its report.
pub async fn run(args: &IngestArgs) -> Result<IngestReport> {
    let endpoint = Endpoint::resolve(&args.addr).await?;
    let connections = args.connections.unwrap_or(match args.via {
        Via::Ws => 100,
        Via::Rest | Via::Batch => 8,
    });
    let in_flight = args.in_flight.unwrap_or(match args.via {
        Via::Ws => 32,
        Via::Rest | Via::Batch => 1,
    });
    if args.channels == 0 || args.batch == 0 || in_flight == 0 || connections == 0 {
        bail!("--channels, --batch, --in-flight and --connections must be at least 1");
    }
    let loadavg_before = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let counters = Arc::new(Counters::default());
    let data = format!(
        r#"{{"pad":"{}"}}"#,
        "x".repeat(args.payload.saturating_sub(10))
    );
    let channels: Arc<Vec<String>> = Arc::new(
        (0..args.channels)
            .map(|i| serde_json::to_string(&format!("{}-{i}", args.channel)))
            .collect::<Result<_, _>>()?,
    );
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let w = Worker {
            endpoint: endpoint.clone(),
            app: args.app.clone(),
            api_key: args.api_key.clone(),
            channels: Arc::clone(&channels),
            data: data.clone(),
            counters: Arc::clone(&counters),
            first: i,
        };
        tasks.push(match args.via {
            Via::Rest => tokio::spawn(w.http(1, in_flight)),
            Via::Batch => tokio::spawn(w.http(args.batch, in_flight)),
            Via::Ws => tokio::spawn(w.ws(in_flight)),
        });
    }

    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let ticks = procfs::clock_ticks_per_sec();
    let me = std::process::id();
    let server_before = procfs::read_all(&args.server_pid, "before")?;
    let bus_before = procfs::read_all(&args.bus_pid, "before")?;
    let client_before = ProcSample::read(me)?;
    let accepted_before = counters.accepted.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    let accepted = counters.accepted.load(Ordering::Relaxed) - accepted_before;
    let elapsed = start.elapsed().as_secs_f64();
    let server_after = procfs::read_all(&args.server_pid, "after")?;
    let bus_after = procfs::read_all(&args.bus_pid, "after")?;
    let client_after = ProcSample::read(me)?;
    counters.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }

    let cpu = |before: &[ProcSample], after: &[ProcSample]| {
        let (Some(b), Some(a)) = (procfs::total(before), procfs::total(after)) else {
            return (None, None);
        };
        let s = procfs::cpu_between(b, a, ticks).as_secs_f64();
        (
            (accepted > 0).then(|| s * 1e6 / accepted as f64),
            Some(s * 100.0 / elapsed),
        )
    };
    let (server_us, server_pct) = cpu(&server_before, &server_after);
    let (bus_us, bus_pct) = cpu(&bus_before, &bus_after);
    let client_s = procfs::cpu_between(client_before, client_after, ticks).as_secs_f64();
    let errors = counters.errors.lock().expect("not poisoned").clone();
    Ok(IngestReport {
        via: args.via,
        label: args.label.clone(),
        connections,
        in_flight,
        batch: match args.via {
            Via::Batch => args.batch,
            Via::Rest | Via::Ws => 1,
        },
        channels: args.channels,
        payload: args.payload,
        duration_s: elapsed,
        accepted,
        accepted_per_s: accepted as f64 / elapsed,
        server_cpu_us_per_publish: server_us,
        server_cpu_percent: server_pct,
        bus_cpu_us_per_publish: bus_us,
        bus_cpu_percent: bus_pct,
        client_cpu_us_per_publish: client_s * 1e6 / (accepted.max(1) as f64),
        errors,
        loadavg_before,
        machine: crate::run::machine(),
    })
}

/// One publishing connection.
#[derive(Clone)]
struct Worker {
    endpoint: Endpoint,
    app: String,
    api_key: String,
    /// Channel names as JSON strings.
    channels: Arc<Vec<String>>,
    /// The `data` of every message (JSON).
    data: String,
    counters: Arc<Counters>,
    /// Index of the first channel this worker publishes to (spreads workers over channels).
    first: usize,
}

impl Worker {
    fn item(&self, n: usize) -> String {
        let channel = &self.channels[(self.first + n) % self.channels.len()];
        format!(
            r#"{{"channel":{channel},"event":"tick","data":{}}}"#,
            self.data
        )
    }

    /// Requests on one keep-alive HTTP/1.1 connection, one after another or `in_flight` at a
    /// time (pipelined): `batch == 1` single publishes, else batches of `batch` items.
    /// Reconnects after a connection error.
    async fn http(self, batch: usize, in_flight: usize) {
        while !self.counters.stop.load(Ordering::Relaxed) {
            let connection = if in_flight > 1 {
                self.http_pipelined(batch, in_flight).await
            } else {
                self.http_connection(batch).await
            };
            if let Err(e) = connection {
                self.counters.error(format!("http: {e:#}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn path(&self, batch: usize) -> String {
        if batch == 1 {
            format!("/v1/apps/{}/publish", self.app)
        } else {
            format!("/v1/apps/{}/batch", self.app)
        }
    }

    /// The body of the next request, `n` counting the messages so far.
    fn body(&self, batch: usize, n: &mut usize) -> String {
        if batch == 1 {
            *n += 1;
            self.item(*n)
        } else {
            let items: Vec<String> = (0..batch)
                .map(|_| {
                    *n += 1;
                    self.item(*n)
                })
                .collect();
            format!(r#"{{"batch":[{}]}}"#, items.join(","))
        }
    }

    async fn http_pipelined(&self, batch: usize, in_flight: usize) -> Result<()> {
        let stream = tokio::net::TcpStream::connect(self.endpoint.addr).await?;
        stream.set_nodelay(true)?;
        let (path, auth) = (self.path(batch), format!("Bearer {}", self.api_key));
        let me = self.clone();
        let mut n = 0;
        let next = move || {
            (!me.counters.stop.load(Ordering::Relaxed)).then(|| {
                let body = me.body(batch, &mut n);
                crate::pipeline::post(&me.endpoint.host, &path, &auth, &body)
            })
        };
        crate::pipeline::run(stream, in_flight, next, |status, body| {
            if (200..300).contains(&status) {
                self.counters
                    .accepted
                    .fetch_add(batch as u64, Ordering::Relaxed);
            } else {
                let status = hyper::StatusCode::from_u16(status)
                    .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                self.refused(status, body, batch);
            }
        })
        .await
    }

    async fn http_connection(&self, batch: usize) -> Result<()> {
        let stream = tokio::net::TcpStream::connect(self.endpoint.addr).await?;
        stream.set_nodelay(true)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let (path, auth) = (self.path(batch), format!("Bearer {}", self.api_key));
        let mut n = 0;
        while !self.counters.stop.load(Ordering::Relaxed) {
            let body = self.body(batch, &mut n);
            let req = Request::post(path.as_str())
                .header(HOST, &self.endpoint.host)
                .header(AUTHORIZATION, &auth)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))?;
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            if status.is_success() {
                self.counters
                    .accepted
                    .fetch_add(batch as u64, Ordering::Relaxed);
            } else {
                self.refused(status, &body, batch);
            }
        }
        Ok(())
    }

    /// Counts a refused request: its error code, and for a batch the items the answer lists as
    /// stored (`batch[i].offsets` without `error`).
    fn refused(&self, status: hyper::StatusCode, body: &[u8], batch: usize) {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let code = value["error"]["code"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        let stored = value["batch"].as_array().map_or(0, |items| {
            items.iter().filter(|i| i.get("error").is_none()).count()
        });
        self.counters
            .accepted
            .fetch_add(stored as u64, Ordering::Relaxed);
        self.counters.error(format!("publish {code}"));
        if batch > 1 && stored < batch {
            self.counters
                .error(format!("batch items not stored: {code}"));
        }
    }

    /// `publish` frames on one WebSocket, at most `in_flight` unacknowledged.
    async fn ws(self, in_flight: usize) {
        if let Err(e) = self.ws_connection(in_flight).await {
            if !self.counters.stop.load(Ordering::Relaxed) {
                self.counters.error(format!("ws: {e:#}"));
            }
        }
    }

    async fn ws_connection(&self, in_flight: usize) -> Result<()> {
        let path = format!("/v1/apps/{}/ws", self.app);
        let mut socket = ws::connect(&self.endpoint, None, &path, Some(&self.api_key)).await?;
        loop {
            let frame = socket.read_frame().await?;
            if frame.opcode == OpCode::Text {
                match ServerFrame::parse(std::str::from_utf8(&frame.payload)?)? {
                    ServerFrame::Ready { .. } => break,
                    other => bail!("expected ready, got {other:?}"),
                }
            }
        }
        let (mut read, mut write) = socket.split(tokio::io::split);
        let window = Arc::new(Semaphore::new(in_flight));
        let counters = Arc::clone(&self.counters);
        let acks = Arc::clone(&window);
        let reader = tokio::spawn(async move {
            if let Err(e) = count_acks(&mut read, &counters, &acks).await {
                if !counters.stop.load(Ordering::Relaxed) {
                    counters.error(format!("ws read: {e:#}"));
                }
            }
        });
        let result = self.ws_publish(&window, &mut write).await;
        reader.abort();
        result.context("publishing")
    }

    /// Writes `publish` frames whenever the window has room, until an error.
    async fn ws_publish<S: tokio::io::AsyncWrite + Unpin>(
        &self,
        window: &Semaphore,
        write: &mut fastwebsockets::WebSocketWrite<S>,
    ) -> Result<()> {
        let mut n = 0usize;
        loop {
            window.acquire().await?.forget();
            n += 1;
            let channel = &self.channels[(self.first + n) % self.channels.len()];
            let text = format!(
                r#"{{"op":"publish","id":{n},"channel":{channel},"event":"tick","data":{}}}"#,
                self.data
            );
            write
                .write_frame(Frame::text(Payload::Owned(text.into_bytes())))
                .await?;
        }
    }
}

/// Counts the `ack`s and `error`s of a publishing connection, each freeing a place in its window.
async fn count_acks<S: tokio::io::AsyncRead + Unpin>(
    read: &mut fastwebsockets::WebSocketRead<S>,
    counters: &Counters,
    window: &Semaphore,
) -> Result<()> {
    let mut ignore = |_: Frame<'_>| async { Ok::<(), Infallible>(()) };
    loop {
        let frame = read.read_frame(&mut ignore).await?;
        match frame.opcode {
            OpCode::Text => match ServerFrame::parse(std::str::from_utf8(&frame.payload)?)? {
                ServerFrame::Ack { .. } => {
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    window.add_permits(1);
                }
                ServerFrame::Error { code, .. } => {
                    counters.error(format!("publish {code}"));
                    window.add_permits(1);
                }
                _ => {}
            },
            OpCode::Close => bail!("closed"),
            _ => {}
        }
    }
}

/// The markdown table of one or more reports.
pub fn markdown_table(reports: &[IngestReport]) -> String {
    let mut out = String::from(
        "| set-up | via | conns × in flight | batch | accepted/s | server µs/publish | server CPU % | bus µs/publish | bus CPU % | client µs/publish | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for r in reports {
        let errors: u64 = r.errors.values().sum();
        out.push_str(&format!(
            "| {} | {:?} | {} × {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {} |\n",
            r.label.as_deref().unwrap_or("-"),
            r.via,
            r.connections,
            r.in_flight,
            r.batch,
            r.accepted_per_s,
            opt(r.server_cpu_us_per_publish, 1),
            opt(r.server_cpu_percent, 0),
            opt(r.bus_cpu_us_per_publish, 1),
            opt(r.bus_cpu_percent, 0),
            r.client_cpu_us_per_publish,
            errors,
        ));
    }
    out
}

/// Runs `loadtest ingest` and prints its table (and JSON when asked).
pub fn main(args: &IngestArgs) -> Result<()> {
    let report = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))?;
    let json = serde_json::to_string_pretty(&report)?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{json}"),
        other => {
            if let Some(path) = other {
                std::fs::write(path, format!("{json}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print!("{}", markdown_table(std::slice::from_ref(&report)));
            for (kind, n) in &report.errors {
                println!("error {kind}: {n}");
            }
            println!(
                "load before: {}; machine: {}",
                report.loadavg_before, report.machine
            );
        }
    }
    Ok(())
}
