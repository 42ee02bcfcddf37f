//! E2EE overhead (`docs/e2ee.md`), two measurements:
//!
//! - `crypto`: encrypt + decrypt of one message's data at 100 B, 1 KiB and 64 KiB of JSON, as the
//!   Rust SDK does it (serialise, AES-256-GCM seal, envelope to JSON; parse, open, parse), in
//!   this process; and the RSA-OAEP costs of key sharing (device key generation, wrap, unwrap).
//! - `latency --url ws://HOST:PORT`: publish → deliver through a running gateway (`waas dev`
//!   started with `WAAS_PUBLISH_RATE=0`), one message at a time, plain and encrypted (the
//!   encrypted time includes encrypting before the publish and decrypting after the delivery).
//!
//! Run with a release build: `cargo run --release -p loadtest --bin e2ee-bench -- crypto`.

use anyhow::Context;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use waas_sdk::e2ee::{crypto, open_data, seal_data, DeviceKeyPair, E2ee, Keyring};
use waas_sdk::Client;

const SIZES: [usize; 3] = [100, 1024, 65536];

/// A JSON value whose text is `size` bytes.
fn data(size: usize) -> serde_json::Value {
    // {"text":"..."} is 11 bytes around the string.
    json!({ "text": "x".repeat(size.saturating_sub(11)) })
}

fn micros(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn crypto_bench(iterations: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("e2ee-bench-{}", std::process::id()));
    let started = Instant::now();
    let device = DeviceKeyPair::generate()?;
    let keygen = started.elapsed();
    let keyring = Keyring::open_with(&dir, device)?;
    let key = waas_sdk::e2ee::RoomKeyEntry {
        kid: crypto::new_key_id(),
        v: 1,
        key: crypto::random::<32>(),
    };
    keyring.insert("bench.room", [key.clone()])?;
    println!("| data (JSON) | envelope | encrypt p50 | decrypt p50 | encrypt+decrypt mean | p99 |");
    println!("|---|---|---|---|---|---|");
    for size in SIZES {
        let value = data(size);
        let n = if size > 10_000 {
            iterations / 10
        } else {
            iterations
        };
        let mut enc = Histogram::<u64>::new(3)?;
        let mut dec = Histogram::<u64>::new(3)?;
        let mut both = Histogram::<u64>::new(3)?;
        let mut total = Duration::ZERO;
        let mut envelope_len = 0;
        for _ in 0..n {
            let t0 = Instant::now();
            let envelope = seal_data(&key, "bench.room", "say", &value)?;
            let text = serde_json::to_string(&envelope)?;
            let t1 = Instant::now();
            let back = open_data(&keyring, "bench.room", "say", &text)?;
            let t2 = Instant::now();
            anyhow::ensure!(back == value, "round trip changed the data");
            envelope_len = text.len();
            enc.record((t1 - t0).as_nanos() as u64)?;
            dec.record((t2 - t1).as_nanos() as u64)?;
            both.record((t2 - t0).as_nanos() as u64)?;
            total += t2 - t0;
        }
        println!(
            "| {size} B | {envelope_len} B | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            micros(&enc, 0.5),
            micros(&dec, 0.5),
            total.as_secs_f64() * 1e6 / n as f64,
            micros(&both, 0.99),
        );
    }
    let public = keyring.device().public_key_b64();
    let rounds = 200;
    let t = Instant::now();
    let mut wrapped = String::new();
    for _ in 0..rounds {
        wrapped = crypto::wrap_key(&public, &key.key)?;
    }
    let wrap = t.elapsed() / rounds;
    let t = Instant::now();
    for _ in 0..rounds {
        keyring.device().unwrap_key(&wrapped)?;
    }
    let unwrap = t.elapsed() / rounds;
    println!();
    println!(
        "RSA-OAEP-3072: key generation {:.0} ms (one), wrap {:.0} µs, unwrap {:.0} µs",
        keygen.as_secs_f64() * 1e3,
        wrap.as_secs_f64() * 1e6,
        unwrap.as_secs_f64() * 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn latency_bench(url: &str, app: &str, api_key: &str, messages: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("e2ee-bench-{}", std::process::id()));
    let connect = || async {
        Client::builder()
            .url(url)
            .app(app)
            .token(api_key)
            .connect()
            .await
            .context("connect")
    };
    let (publisher, subscriber) = (connect().await?, connect().await?);
    let channel = format!("bench.e2ee-{}", std::process::id());
    let sender = E2ee::start(publisher.clone(), Arc::new(Keyring::open(dir.join("a"))?)).await?;
    let receiver = E2ee::start(subscriber.clone(), Arc::new(Keyring::open(dir.join("b"))?)).await?;
    let mut sub = subscriber.subscribe(&channel).await?;
    // Both connections are `server`: version 1 wrapped for both devices.
    sender.rotate(&channel, &["server".to_owned()]).await?;
    receiver.fetch(&channel).await?;
    println!("| data (JSON) | plain p50 | plain p99 | E2EE p50 | E2EE p99 | E2EE − plain p50 |");
    println!("|---|---|---|---|---|---|");
    for size in [100, 1024] {
        let value = data(size);
        // Plain and encrypted alternate, so drift in the machine's load hits both alike.
        let mut h = [Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?];
        for i in 0..messages + 100 {
            for encrypted in [false, true] {
                let t0 = Instant::now();
                if encrypted {
                    sender.publish(&channel, "say", &value).await?;
                } else {
                    publisher.publish(&channel, "say", &value).await?;
                }
                let m = loop {
                    let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
                        .await
                        .context("delivery in time")?
                        .context("subscription open")?;
                    // The rotation's notice comes first.
                    if m.event != waas_sdk::protocol::e2ee::ROOM_KEY_EVENT {
                        break m;
                    }
                };
                let got = if encrypted {
                    receiver.decrypt_local(&m.channel, &m.event, m.raw_data())?
                } else {
                    m.json()
                };
                let elapsed = t0.elapsed();
                anyhow::ensure!(got == value, "delivered data differs");
                if i >= 100 {
                    // The first 100 warm up connections and caches.
                    h[usize::from(encrypted)].record(elapsed.as_nanos() as u64)?;
                }
            }
        }
        let rows: Vec<(f64, f64)> = h
            .iter()
            .map(|h| (micros(h, 0.5), micros(h, 0.99)))
            .collect();
        println!(
            "| {size} B | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:+.0} µs |",
            rows[0].0,
            rows[0].1,
            rows[1].0,
            rows[1].1,
            rows[1].0 - rows[0].0
        );
    }
    publisher.close().await?;
    subscriber.close().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("crypto") => {
            let n = flag("--iterations").map_or(Ok(20_000), |v| v.parse())?;
            crypto_bench(n)
        }
        Some("latency") => {
            let url = flag("--url").context("--url ws://HOST:PORT is required")?;
            let app = flag("--app").unwrap_or_else(|| "demo".into());
            let key = flag("--api-key").unwrap_or_else(|| "demo-key".into());
            let n = flag("--messages").map_or(Ok(2000), |v| v.parse())?;
            latency_bench(&url, &app, &key, n).await
        }
        _ => anyhow::bail!(
            "usage: e2ee-bench crypto [--iterations N] | latency --url ws://HOST:PORT [--app A] [--api-key K] [--messages N]"
        ),
    }
}
