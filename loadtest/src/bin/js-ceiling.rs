//! JetStream's own ingest ceiling on this machine, without WaaS: how many messages per second
//! one stream stores, and nats-server's CPU per stored message, when a single client publishes
//! as fast as acknowledgements allow (`--in-flight` unacknowledged at a time, as the gateway
//! pipelines them). It bounds what any gateway in front of it can accept into one app's history
//! (`loadtest/RESULTS.md`, ingest).
//!
//! `--config waas` gives the stream the settings of an app's history stream
//! (`core/src/history/jetstream/streams.rs`: file storage, a per-subject limit, direct gets,
//! republish to the channel subjects); `--config plain` a file stream with none of them, to
//! see what those settings cost. The stream, `jsceiling_{pid}`, is deleted at the end.
//!
//! Prints one JSON object: published, stored per second, nats-server and client CPU µs per
//! message.

use anyhow::{ensure, Context};
use async_nats::jetstream::{self, stream};
use clap::{Parser, ValueEnum};
use futures_util::stream::{FuturesOrdered, StreamExt};
use loadtest::procfs;
use serde_json::json;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Config {
    /// An app's history stream, as WaaS makes it.
    Waas,
    /// A file stream without limits per subject or republishing.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Setting {
    /// `max_messages_per_subject` (the channel's history size).
    Limit,
    /// `allow_direct` (direct gets).
    Direct,
    /// Republishing to the channel subjects.
    Republish,
}

#[derive(Debug, Parser)]
#[command(
    name = "js-ceiling",
    about = "JetStream's ingest ceiling, without WaaS"
)]
struct Args {
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The nats-server process, for its CPU time (default: the oldest `nats-server`).
    #[arg(long)]
    nats_pid: Option<u32>,
    #[arg(long, value_enum, default_value = "waas")]
    config: Config,
    /// With `--config waas`: settings left out, to see what each costs.
    #[arg(long, value_enum, value_delimiter = ',')]
    without: Vec<Setting>,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unacknowledged publishes at a time.
    #[arg(long, default_value_t = 512)]
    in_flight: usize,
    /// Subjects the messages go round robin over (channels).
    #[arg(long, default_value_t = 1000)]
    subjects: usize,
    /// Messages kept per subject with `--config waas` (an app's `history_size`).
    #[arg(long, default_value_t = 100)]
    history_size: i64,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nats_pid = match args.nats_pid {
        Some(pid) => pid,
        None => oldest("nats-server").context("no nats-server process; pass --nats-pid")?,
    };
    let client = async_nats::connect(&args.nats).await?;
    let js = jetstream::new(client);
    let name = format!("jsceiling_{}", std::process::id());
    let root = format!("{name}.h");
    let mut config = stream::Config {
        name: name.clone(),
        subjects: vec![format!("{root}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    };
    if let Config::Waas = args.config {
        let with = |s| !args.without.contains(&s);
        config.max_age = Duration::from_secs(24 * 3600);
        config.discard = stream::DiscardPolicy::Old;
        if with(Setting::Limit) {
            config.max_messages_per_subject = args.history_size;
        }
        config.allow_direct = with(Setting::Direct);
        if with(Setting::Republish) {
            config.republish = Some(stream::Republish {
                source: format!("{root}.>"),
                destination: format!("{name}.live.>"),
                headers_only: false,
            });
        }
    }
    js.create_stream(config).await?;
    let subjects: Vec<String> = (0..args.subjects).map(|i| format!("{root}.c{i}")).collect();
    let payload = bytes::Bytes::from(vec![b'x'; args.payload]);

    let ticks = procfs::clock_ticks_per_sec();
    let self_pid = std::process::id();
    // The stream is deleted however the run ends.
    let run = async {
        let before = (
            procfs::ProcSample::read(nats_pid)?,
            procfs::ProcSample::read(self_pid)?,
        );
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(args.duration);
        let mut acks = FuturesOrdered::new();
        let (mut published, mut stored) = (0u64, 0u64);
        while Instant::now() < until {
            while acks.len() < args.in_flight {
                let subject = subjects[published as usize % subjects.len()].clone();
                acks.push_back(js.publish(subject, payload.clone()).await?.into_future());
                published += 1;
            }
            if let Some(ack) = acks.next().await {
                ack?;
                stored += 1;
            }
        }
        while let Some(ack) = acks.next().await {
            ack?;
            stored += 1;
        }
        let wall = started.elapsed().as_secs_f64();
        let after = (
            procfs::ProcSample::read(nats_pid)?,
            procfs::ProcSample::read(self_pid)?,
        );
        anyhow::Ok((published, stored, wall, before, after))
    }
    .await;
    js.delete_stream(&name).await?;
    let (published, stored, wall, (server_before, client_before), (server_after, client_after)) =
        run?;
    ensure!(
        stored == published,
        "{published} published, {stored} acknowledged"
    );

    let us = |before, after| {
        procfs::cpu_between(before, after, ticks).as_secs_f64() * 1e6 / stored as f64
    };
    let report = json!({
        "config": format!("{:?}", args.config).to_lowercase(),
        "without": args.without.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
        "in_flight": args.in_flight,
        "subjects": args.subjects,
        "history_size": args.history_size,
        "payload": args.payload,
        "stored": stored,
        "stored_per_s": (stored as f64 / wall).round(),
        "nats_server_cpu_us_per_message": (us(server_before, server_after) * 100.0).round() / 100.0,
        "nats_server_cpu_percent": (procfs::cpu_between(server_before, server_after, ticks).as_secs_f64() * 100.0 / wall).round(),
        "client_cpu_us_per_message": (us(client_before, client_after) * 100.0).round() / 100.0,
    });
    println!("{report}");
    Ok(())
}

/// The oldest process named `name`, as `pgrep -o -x` finds it.
fn oldest(name: &str) -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-o", "-x", name])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}
