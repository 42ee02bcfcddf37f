//! Connect time of the Rust SDK's client, for the nearest-gateway option (`docs/regions.md`):
//! `--count` times in a row, builds a client with `--urls` (and `--nearest` or not), waits for
//! its `connect()` (the server's `ready`), records how long that took and which gateway it
//! chose, and closes it. Run it where the client would be, e.g. in a region's network namespace
//! (`ip netns exec NS nearest-bench ...`, as `loadtest/regions-bench.sh` does).
//!
//! With `--nearest` the SDK probes every URL at once (`--probe-samples` pings on a real
//! connection each) and keeps the fastest: a connect costs about the slowest gateway's
//! connection and pings, not the nearest's.
//!
//! Prints one JSON object: the URLs, the option, the connect times (median, p99, min, max in
//! ms) and how many connects ended on each URL.

use anyhow::{ensure, Context};
use clap::Parser;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use waas_sdk::Client;

#[derive(Debug, Parser)]
#[command(
    name = "nearest-bench",
    about = "Connect time of the Rust SDK, with and without `nearest`"
)]
struct Args {
    /// Gateway URLs (ws://HOST:PORT), comma-separated, in the order the client is given them.
    #[arg(long, value_delimiter = ',', required = true)]
    urls: Vec<String>,
    /// Probe for the nearest gateway (`ClientBuilder::nearest(true)`).
    #[arg(long)]
    nearest: bool,
    /// Pings per gateway when probing (the SDK's default is 3).
    #[arg(long, default_value_t = 3)]
    probe_samples: u32,
    /// WaaS app id.
    #[arg(long, env = "WAAS_APP_ID", default_value = "demo")]
    app: String,
    /// Credentials the client connects with (an API key or a token).
    #[arg(
        long,
        env = "WAAS_TOKEN",
        default_value = "demo-key",
        hide_env_values = true
    )]
    token: String,
    /// Connects measured.
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// Connects made first and not measured.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.count > 0, "--count must be at least 1");
    let mut times = Vec::with_capacity(args.count);
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..args.warmup + args.count {
        let started = Instant::now();
        let client = Client::builder()
            .urls(args.urls.clone())
            .app(&args.app)
            .token(&args.token)
            .nearest(args.nearest)
            .probe_samples(args.probe_samples)
            .connect()
            .await
            .with_context(|| format!("connect {i}"))?;
        let took = started.elapsed();
        let url = client.url().unwrap_or_default();
        client.close().await.ok();
        if i >= args.warmup {
            times.push(took);
            *chosen.entry(url).or_default() += 1;
        }
    }
    times.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    // Nearest-rank quantile of the sorted sample.
    let at =
        |q: f64| ms(times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1]);
    let out = json!({
        "urls": args.urls,
        "nearest": args.nearest,
        "probe_samples": args.probe_samples,
        "connects": times.len(),
        "median_ms": at(0.5),
        "p99_ms": at(0.99),
        "min_ms": ms(times[0]),
        "max_ms": ms(times[times.len() - 1]),
        "chosen": chosen,
    });
    println!("{out}");
    Ok(())
}
