//! `rpc-bench`: request/response latency, plain HTTP against WaaS requests over the socket
//! (issue: "HTTP over WebSocket"). See `loadtest/README.md`, "Requests over the socket".
//!
//! Three processes: this load generator, a `waas dev` gateway (started from `--waas`), and a
//! backend (this binary again, `rpc-bench backend`) holding one echo handler served as HTTP and
//! as the SDK service `echo`. The app `demo` gets two routes: `/svc` → service `echo`, `/http` →
//! the backend as HTTP upstream. Each payload size is sent, sequentially and with `--in-flight`
//! at a time, four ways (see `clients.rs`), and the client-side latency of each request recorded.

mod backend;
mod clients;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use clients::{Mode, Target};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "rpc-bench",
    about = "HTTP vs WaaS requests over the socket: p50/p99 latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(Subcommand)]
enum Sub {
    /// Internal: the backend process (HTTP echo server and SDK responder).
    Backend {
        #[arg(long)]
        gateway: String,
        #[arg(long, default_value = "demo")]
        app: String,
        #[arg(long, default_value = "demo-key")]
        key: String,
        /// Address the HTTP server binds (port 0).
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
    },
}

#[derive(clap::Args)]
struct Args {
    /// The `waas` binary to run as the gateway (`waas dev`).
    #[arg(long, default_value = "target/release/waas")]
    waas: PathBuf,
    /// Payload sizes in bytes (the JSON body, both ways).
    #[arg(long, value_delimiter = ',', default_value = "100,1024,16384,65536")]
    sizes: Vec<usize>,
    /// Measured requests per case when sent one at a time.
    #[arg(long, default_value_t = 2000)]
    sequential: usize,
    /// Measured requests per case with `--in-flight` at a time.
    #[arg(long, default_value_t = 10000)]
    concurrent: usize,
    /// Requests in flight in the concurrent cases.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Times each case is measured; the round with the median p50 is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests sent before each measured case, not recorded.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Which modes to run: letters among `abcd`, and the references `p` (the SDK's `ping` to
    /// the gateway: one hop, the floor of a request's latency), `q` (the same with a bare
    /// WebSocket), `r` (a bare WebSocket client's request to the SDK server).
    #[arg(long, default_value = "abcdp")]
    modes: String,
    /// Before each case, wait (at most `--quiet-wait` seconds) until the box is at most this
    /// many percent busy: others' builds on a shared box skew latencies.
    #[arg(long, default_value_t = 30)]
    quiet_busy: u32,
    #[arg(long, default_value_t = 60)]
    quiet_wait: u64,
    /// Worker threads of this load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Run the gateway and the backend in this network namespace (`ip netns exec`), e.g.
    /// `waas-srv` from `loadtest/wan-link.py`, while this load generator runs in another: every
    /// request then crosses a link with a real round trip.
    #[arg(long)]
    server_netns: Option<String>,
    /// The address the gateway and the backend listen on (with `--server-netns`, the server
    /// side of the link, e.g. 10.77.0.2).
    #[arg(long, default_value = "127.0.0.1")]
    server_host: String,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    payload: usize,
    in_flight: usize,
    mode: char,
    /// Percent of the box busy just before the case.
    busy_before: u32,
    p50_us: f64,
    p99_us: f64,
    requests_per_s: f64,
}

#[derive(Serialize)]
struct Results {
    machine: String,
    rows: Vec<Row>,
}

/// Kills its child process on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a process and returns it with the rest of the first stdout line starting with `prefix`.
fn spawn(mut command: Command, prefix: &str) -> Result<(Process, String)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let child = Process(child);
    let mut lines = BufReader::new(stdout).lines();
    let value = loop {
        match lines.next() {
            Some(line) => {
                if let Some(rest) = line?.strip_prefix(prefix) {
                    break rest.trim().to_owned();
                }
            }
            None => bail!("{command:?} exited before printing {prefix:?}"),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, value))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Sub::Backend {
        gateway,
        app,
        key,
        bind,
    }) = cli.command
    {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?
            .block_on(backend::run(&gateway, &app, &key, &bind));
    }
    let args = cli.args;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(bench(args))
}

/// A command for a server process: in `--server-netns` when given.
fn server_command(args: &Args, program: &std::ffi::OsStr) -> Command {
    match &args.server_netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

async fn bench(args: Args) -> Result<()> {
    let mut waas = server_command(&args, args.waas.as_os_str());
    let listen = format!("{}:0", args.server_host);
    waas.args(["dev", "--listen", &listen, "--store", ":memory:"])
        .args(["--max-frame-bytes", "262144"])
        // 64 requests of 64 KiB queued for the SDK server are over the default 4 MiB, past
        // which a connection is closed as a slow consumer (docs/rpc.md, limits).
        .args(["--max-queued-bytes", "67108864"])
        .args(["--max-inflight-requests-per-connection", "1024"])
        // Every client connects from one address; the benchmark is not about that limit.
        .args(["--max-connections-per-address", "0"])
        // With --server-netns the backend (an HTTP upstream) is on a private address
        // (10.77.0.2), which outbound requests may reach only when allowed.
        .args(["--outbound-allow-private", "true"])
        .env("WAAS_LOG", "warn");
    let (_gateway, addr) = spawn(waas, "listening on ")?;
    let gateway: SocketAddr = addr.parse()?;
    let ws = format!("ws://{gateway}");
    let mut backend = server_command(&args, std::env::current_exe()?.as_os_str());
    backend.args(["backend", "--gateway", &ws, "--bind", &args.server_host]);
    let (_backend, addr) = spawn(backend, "backend ")?;
    let backend: SocketAddr = addr.parse()?;

    let routes = serde_json::json!({"routes": [
        {"prefix": "/svc", "service": "echo"},
        {"prefix": "/http", "upstream": format!("http://{backend}")},
    ]});
    let r = reqwest::Client::new()
        .patch(format!("http://{gateway}/v1/admin/apps/demo"))
        .bearer_auth("dev-operator-token")
        .json(&routes)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("setting routes: {}", r.text().await.unwrap_or_default());
    }
    let client = waas_sdk::Client::builder()
        .url(&ws)
        .app("demo")
        .token("demo-key")
        .connect()
        .await?;
    let target = Target {
        backend,
        client,
        gateway,
    };
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .chain([Mode::SdkPing, Mode::RawPing, Mode::RawRpc])
        .filter(|m| args.modes.contains(m.letter()))
        .collect();

    let mut rows = Vec::new();
    for &size in &args.sizes {
        let payload = Bytes::from(format!("\"{}\"", "x".repeat(size.saturating_sub(2))));
        for (in_flight, requests) in [(1, args.sequential), (args.in_flight, args.concurrent)] {
            // Rounds interleave the modes, so a noisy moment does not fall on one mode only.
            let mut runs: Vec<Vec<Row>> = modes.iter().map(|_| Vec::new()).collect();
            for _ in 0..args.rounds {
                for (&mode, runs) in modes.iter().zip(&mut runs) {
                    let busy_before = wait_quiet(args.quiet_busy, args.quiet_wait).await;
                    clients::run(mode, &target, &payload, args.warmup, in_flight).await?;
                    let started = Instant::now();
                    let h = clients::run(mode, &target, &payload, requests, in_flight).await?;
                    let elapsed = started.elapsed().as_secs_f64();
                    let row = Row {
                        payload: size,
                        in_flight,
                        mode: mode.letter(),
                        busy_before,
                        p50_us: h.value_at_quantile(0.50) as f64 / 1000.0,
                        p99_us: h.value_at_quantile(0.99) as f64 / 1000.0,
                        requests_per_s: requests as f64 / elapsed,
                    };
                    eprintln!(
                        "{size:>6} B, {in_flight:>3} in flight, {} (box {busy_before}% busy before): p50 {:.1} us, p99 {:.1} us, {:.0} req/s",
                        mode.label(),
                        row.p50_us,
                        row.p99_us,
                        row.requests_per_s
                    );
                    runs.push(row);
                }
            }
            rows.extend(runs.into_iter().map(median));
        }
    }
    let results = Results {
        machine: loadtest::run::machine(),
        rows,
    };
    print!("{}", table(&results));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)? + "\n")?;
    }
    Ok(())
}

/// The round with the median p50 (its p99 and rate with it).
fn median(mut runs: Vec<Row>) -> Row {
    runs.sort_by(|a, b| a.p50_us.total_cmp(&b.p50_us));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

/// Percent of all cores busy over `window`, from `/proc/stat`.
async fn busy_percent(window: std::time::Duration) -> u32 {
    fn sample() -> Vec<u64> {
        std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect()
    }
    let a = sample();
    tokio::time::sleep(window).await;
    let b = sample();
    let total: u64 = b.iter().zip(&a).map(|(y, x)| y.saturating_sub(*x)).sum();
    let idle: u64 = [3, 4]
        .iter()
        .map(|&i| {
            b.get(i)
                .unwrap_or(&0)
                .saturating_sub(*a.get(i).unwrap_or(&0))
        })
        .sum();
    (100 * total.saturating_sub(idle))
        .checked_div(total)
        .unwrap_or(0) as u32
}

/// Waits, at most `max_wait_s`, for the box to be at most `busy`% busy; returns the last figure.
async fn wait_quiet(busy: u32, max_wait_s: u64) -> u32 {
    let started = Instant::now();
    loop {
        let now = busy_percent(std::time::Duration::from_millis(500)).await;
        if now <= busy || started.elapsed().as_secs() >= max_wait_s {
            if now > busy {
                eprintln!("warning: box {now}% busy after {max_wait_s} s; measuring anyway");
            }
            return now;
        }
    }
}

fn find(results: &Results, payload: usize, in_flight: usize, mode: char) -> Option<&Row> {
    results
        .rows
        .iter()
        .find(|r| r.payload == payload && r.in_flight == in_flight && r.mode == mode)
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Latency per case, then the ratios of (c) to (a) and (b).
fn table(results: &Results) -> String {
    let mut out = String::from(
        "| payload | in flight | (a) new conn p50 / p99 | (b) keep-alive p50 / p99 | (c) WaaS → SDK p50 / p99 | (d) WaaS → HTTP p50 / p99 |\n|---|---|---|---|---|---|\n",
    );
    let mut cases: Vec<(usize, usize)> = results
        .rows
        .iter()
        .map(|r| (r.payload, r.in_flight))
        .collect();
    cases.dedup();
    for &(payload, in_flight) in &cases {
        out.push_str(&format!("| {} | {in_flight} |", size(payload)));
        for mode in ['a', 'b', 'c', 'd'] {
            match find(results, payload, in_flight, mode) {
                Some(r) => out.push_str(&format!(" {:.0} / {:.0} µs |", r.p50_us, r.p99_us)),
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    out.push_str("\n| payload | in flight | (c)/(a) p50 | (c)/(b) p50 | (c)/(a) p99 | (c)/(b) p99 |\n|---|---|---|---|---|---|\n");
    for &(payload, in_flight) in &cases {
        let ratio = |num: char, den: char, p99: bool| -> String {
            match (
                find(results, payload, in_flight, num),
                find(results, payload, in_flight, den),
            ) {
                (Some(n), Some(d)) => {
                    let (n, d) = if p99 {
                        (n.p99_us, d.p99_us)
                    } else {
                        (n.p50_us, d.p50_us)
                    };
                    format!("{:.0}%", 100.0 * n / d)
                }
                _ => "—".into(),
            }
        };
        out.push_str(&format!(
            "| {} | {in_flight} | {} | {} | {} | {} |\n",
            size(payload),
            ratio('c', 'a', false),
            ratio('c', 'b', false),
            ratio('c', 'a', true),
            ratio('c', 'b', true)
        ));
    }
    out.push_str(&format!("\nMachine: {}\n", results.machine));
    out
}
