//! One scenario, end to end:
//! 1. sample the server (RSS before any subscriber);
//! 2. connect and subscribe N subscribers, `--connect-concurrency` at a time, and wait for all;
//! 3. after `--settle`, sample the server's RSS again → RSS per connection;
//! 4. connect the publisher, sample server, bus and client CPU, publish `rate × duration` messages
//!    on schedule, wait until every accepted message reached every subscriber (bounded by
//!    `--drain-timeout`, or 2 s without progress), sample CPU again → CPU per delivery.
//!
//! Several `--server-pid`s (the gateways of a cluster) are summed; `--bus-pid`s (nats-server) are
//! sampled over the same window and reported apart.

use crate::config::{PublishVia, RunArgs, Target};
use crate::netns::NetNs;
use crate::procfs::{self, BoxSample, ProcSample};
use crate::report::{ProcessFigures, Report};
use crate::stats::Stats;
use crate::target::pusher::{self, PusherAuth};
use crate::target::{socketio, waas, Ctx, PublishCounters, Publisher, Ready};
use crate::ws::Endpoint;
use anyhow::{bail, ensure, Context, Result};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// The drain ends when nothing arrived for this long.
const DRAIN_IDLE: Duration = Duration::from_secs(2);

pub async fn run(args: &RunArgs) -> Result<Report> {
    ensure!(args.subscribers > 0, "--subscribers must be at least 1");
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(args.duration > 0.0, "--duration must be positive");
    ensure!(
        args.connect_concurrency > 0,
        "--connect-concurrency must be at least 1"
    );
    match (args.target, args.publish_via) {
        (Target::Socketio, PublishVia::Rest) => {
            bail!("--publish-via rest is for WaaS only (--target waas or pusher)")
        }
        (Target::Waas | Target::Socketio, PublishVia::PusherHttp) => {
            bail!("--publish-via pusher-http is for --target pusher only")
        }
        (Target::Pusher, PublishVia::Ws) => bail!(
            "--target pusher publishes with --publish-via pusher-http (or rest, for WaaS): \
             Pusher clients publish only client events on private channels"
        ),
        _ => {}
    }
    let pusher_auth = Arc::new(PusherAuth {
        key: args.pusher_key.clone().unwrap_or_else(|| args.app.clone()),
        app_id: args.app.clone(),
        secret: args.pusher_secret.clone(),
    });
    warn_on_fd_limit(args.subscribers);

    ensure!(!args.addr.is_empty(), "--addr needs at least one address");
    let netns = match &args.subscriber_netns {
        Some(name) => Some(Arc::new(NetNs::open(name)?)),
        None => None,
    };
    let mut endpoints = Vec::with_capacity(args.addr.len());
    for addr in &args.addr {
        let mut endpoint = Endpoint::resolve(addr).await?;
        endpoint.netns = netns.clone();
        endpoints.push(endpoint);
    }
    let publish_endpoint = match &args.publish_addr {
        Some(addr) => Endpoint::resolve(addr).await?,
        // The publisher connects from the process's namespace, whatever the subscribers' is.
        None => Endpoint {
            netns: None,
            ..endpoints[0].clone()
        },
    };
    let ctx = Arc::new(Ctx {
        endpoints,
        publish_endpoint,
        app: args.app.clone(),
        api_key: args.api_key.clone(),
        channel: args.channel.clone(),
        source_ips: args.source_ips.clone(),
        stats: Stats::new(),
        published: PublishCounters::default(),
    });
    let ticks_per_sec = procfs::clock_ticks_per_sec();
    let loadavg_before = loadavg();
    let server = |what: &str| procfs::read_all(&args.server_pid, &format!("server, {what}"));
    let bus = |what: &str| procfs::read_all(&args.bus_pid, &format!("bus, {what}"));

    // 1-3: subscribers.
    let server_idle = server("before subscribing")?;
    let bus_idle = bus("before subscribing")?;
    let connect_started = Instant::now();
    let mut subscribers = JoinSet::new();
    let subscribed = tokio::time::timeout(
        Duration::from_secs_f64(args.connect_timeout),
        connect_all(args, &ctx, &pusher_auth, &mut subscribers),
    )
    .await
    .with_context(|| {
        format!(
            "not every subscriber was subscribed within --connect-timeout {} s",
            args.connect_timeout
        )
    })??;
    let connect_s = connect_started.elapsed().as_secs_f64();
    ensure!(
        subscribed > 0,
        "no subscriber could subscribe: {:?}",
        ctx.stats.errors()
    );
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let server_subscribed = server("after subscribing")?;
    let bus_subscribed = bus("after subscribing")?;

    // 4: publish and drain.
    let window = match (args.target, args.publish_via) {
        // Refused above with the other mismatches.
        (Target::Waas, PublishVia::PusherHttp) => {
            bail!("--publish-via pusher-http is for --target pusher only")
        }
        (Target::Waas, PublishVia::Ws) => {
            let p = waas::WsPublisher::connect(ctx.clone()).await?;
            publish_and_drain(args, &ctx, p, subscribed, &server, &bus).await?
        }
        (Target::Waas | Target::Pusher, PublishVia::Rest) => {
            let p = waas::RestPublisher::new(ctx.clone())?;
            publish_and_drain(args, &ctx, p, subscribed, &server, &bus).await?
        }
        (Target::Pusher, _) => {
            let p = pusher::HttpPublisher::new(ctx.clone(), pusher_auth.clone())?;
            publish_and_drain(args, &ctx, p, subscribed, &server, &bus).await?
        }
        (Target::Socketio, _) => {
            let p = socketio::SioPublisher::connect(ctx.clone()).await?;
            publish_and_drain(args, &ctx, p, subscribed, &server, &bus).await?
        }
    };
    subscribers.abort_all();

    Ok(build_report(
        args,
        &ctx,
        Samples {
            subscribed,
            connect_s,
            server_idle,
            server_subscribed,
            bus_idle,
            bus_subscribed,
            window,
            ticks_per_sec,
            loadavg_before,
        },
    ))
}

/// Spawns every subscriber task and waits for each to report; returns how many subscribed.
async fn connect_all(
    args: &RunArgs,
    ctx: &Arc<Ctx>,
    pusher_auth: &Arc<PusherAuth>,
    tasks: &mut JoinSet<()>,
) -> Result<usize> {
    let permits = Arc::new(Semaphore::new(args.connect_concurrency));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..args.subscribers {
        let ready = Ready::new(tx.clone(), permits.clone().acquire_owned().await?);
        match args.target {
            Target::Waas => tasks.spawn(waas::subscriber(ctx.clone(), i, ready)),
            Target::Socketio => tasks.spawn(socketio::subscriber(ctx.clone(), i, ready)),
            Target::Pusher => tasks.spawn(pusher::subscriber(
                ctx.clone(),
                pusher_auth.clone(),
                i,
                ready,
            )),
        };
    }
    drop(tx);
    let mut subscribed = 0;
    while let Some(result) = rx.recv().await {
        match result {
            Ok(()) => subscribed += 1,
            Err(e) => ctx.stats.error(format!("subscribe: {e:#}")),
        }
    }
    Ok(subscribed)
}

/// Samples around the publish window.
struct Window {
    published_at_ns: u64,
    wall: Duration,
    server_before: Vec<ProcSample>,
    server_after: Vec<ProcSample>,
    bus_before: Vec<ProcSample>,
    bus_after: Vec<ProcSample>,
    client_before: ProcSample,
    client_after: ProcSample,
    box_before: BoxSample,
    box_after: BoxSample,
}

async fn publish_and_drain<P: Publisher>(
    args: &RunArgs,
    ctx: &Ctx,
    mut publisher: P,
    subscribed: usize,
    server: &impl Fn(&str) -> Result<Vec<ProcSample>>,
    bus: &impl Fn(&str) -> Result<Vec<ProcSample>>,
) -> Result<Window> {
    let me = std::process::id();
    let total = ((args.rate * args.duration).round() as u64).max(1);
    let pad = "x".repeat(args.payload);
    let mut data = String::with_capacity(args.payload + 32);

    let box_before = BoxSample::read()?;
    let client_before = ProcSample::read(me)?;
    let server_before = server("before publishing")?;
    let bus_before = bus("before publishing")?;
    let started = Instant::now();
    let published_at_ns = ctx.stats.now_ns();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        data.clear();
        write!(data, r#"{{"t":{},"pad":"{pad}"}}"#, ctx.stats.now_ns())?;
        if let Err(e) = publisher.publish(n + 1, &data).await {
            ctx.stats.error(format!("publisher: {e:#}"));
            break;
        }
        ctx.published.sent.fetch_add(1, Ordering::Relaxed);
    }

    // Drain: every sent message answered, and every accepted one delivered everywhere.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    let mut last_progress = (Instant::now(), 0, 0);
    loop {
        let (delivered, accepted) = (ctx.stats.delivered(), ctx.published.accepted());
        let (sent, rejected) = (ctx.published.sent(), ctx.published.rejected());
        if accepted + rejected >= sent && delivered >= (sent - rejected) * subscribed as u64 {
            break;
        }
        let now = Instant::now();
        if (delivered, accepted) != (last_progress.1, last_progress.2) {
            last_progress = (now, delivered, accepted);
        } else if now - last_progress.0 > DRAIN_IDLE || now > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = started.elapsed();
    let server_after = server("after publishing")?;
    let bus_after = bus("after publishing")?;
    let client_after = ProcSample::read(me)?;
    let box_after = BoxSample::read()?;
    publisher.close().await;
    Ok(Window {
        published_at_ns,
        wall,
        server_before,
        server_after,
        bus_before,
        bus_after,
        client_before,
        client_after,
        box_before,
        box_after,
    })
}

struct Samples {
    subscribed: usize,
    connect_s: f64,
    server_idle: Vec<ProcSample>,
    server_subscribed: Vec<ProcSample>,
    bus_idle: Vec<ProcSample>,
    bus_subscribed: Vec<ProcSample>,
    window: Window,
    ticks_per_sec: u64,
    loadavg_before: f64,
}

fn build_report(args: &RunArgs, ctx: &Ctx, s: Samples) -> Report {
    let stats = &ctx.stats;
    let delivered = stats.delivered();
    let accepted = ctx.published.accepted();
    // Messages neither acknowledged nor refused by the end still count: they are missing if they
    // were not delivered.
    let expected = ctx
        .published
        .sent()
        .saturating_sub(ctx.published.rejected())
        * s.subscribed as u64;
    let w = &s.window;
    let delivering_s =
        Duration::from_nanos(stats.last_delivery_ns().saturating_sub(w.published_at_ns))
            .as_secs_f64()
            .max(args.duration);
    let per_delivery_us = |cpu_s: f64| {
        if delivered == 0 {
            0.0
        } else {
            cpu_s * 1e6 / delivered as f64
        }
    };
    let latency = stats.latency();
    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;

    let cpu_s = |before: &[ProcSample], after: &[ProcSample]| match (
        procfs::total(before),
        procfs::total(after),
    ) {
        (Some(a), Some(b)) => Some(procfs::cpu_between(a, b, s.ticks_per_sec).as_secs_f64()),
        _ => None,
    };
    let server_cpu_s = cpu_s(&w.server_before, &w.server_after);
    let bus_cpu_s = cpu_s(&w.bus_before, &w.bus_after);
    let percent = |cpu: f64| cpu * 100.0 / w.wall.as_secs_f64();
    let ticks_s = |t: u64| t as f64 / s.ticks_per_sec as f64;
    let client_cpu_s =
        procfs::cpu_between(w.client_before, w.client_after, s.ticks_per_sec).as_secs_f64();
    // See `BoxSample` for why softirq time is in `busy` and ksoftirqd's is taken out.
    let (a, b) = (w.box_after, w.box_before);
    let others_s = ticks_s(a.busy_ticks.saturating_sub(b.busy_ticks))
        - ticks_s(a.softirqd_ticks.saturating_sub(b.softirqd_ticks))
        - client_cpu_s
        - server_cpu_s.unwrap_or(0.0)
        - bus_cpu_s.unwrap_or(0.0);
    let irq_s = ticks_s(a.irq_ticks.saturating_sub(b.irq_ticks));
    let server_idle = procfs::total(&s.server_idle);
    let server_subscribed = procfs::total(&s.server_subscribed);
    let rss_per_conn = match (server_idle, server_subscribed) {
        (Some(a), Some(b)) => {
            Some(b.rss_kib.saturating_sub(a.rss_kib) as f64 / s.subscribed as f64)
        }
        _ => None,
    };
    let each = |pids: &[u32],
                idle: &[ProcSample],
                subscribed: &[ProcSample],
                before: &[ProcSample],
                after: &[ProcSample]| {
        (0..pids.len())
            .map(|i| ProcessFigures {
                pid: pids[i],
                cpu_s: procfs::cpu_between(before[i], after[i], s.ticks_per_sec).as_secs_f64(),
                rss_idle_kib: idle[i].rss_kib,
                rss_subscribed_kib: subscribed[i].rss_kib,
            })
            .collect::<Vec<_>>()
    };

    Report {
        target: args
            .name
            .clone()
            .unwrap_or_else(|| args.target.name().into()),
        label: args.label.clone(),
        addrs: args.addr.clone(),
        publish_addr: args
            .publish_addr
            .clone()
            .unwrap_or_else(|| args.addr[0].clone()),
        subscriber_netns: args.subscriber_netns.clone(),
        publish_via: match args.publish_via {
            PublishVia::Ws => "ws".into(),
            PublishVia::Rest => "rest".into(),
            PublishVia::PusherHttp => "pusher-http".into(),
        },
        subscribers: args.subscribers,
        subscribed: s.subscribed,
        rate: args.rate,
        payload: args.payload,
        duration_s: args.duration,
        connect_s: s.connect_s,
        published: ctx.published.sent(),
        accepted,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        delivered_per_s: delivered as f64 / delivering_s,
        latency_p50_us: us(0.5),
        latency_p99_us: us(0.99),
        latency_p999_us: us(0.999),
        latency_max_us: latency.max() as f64 / 1000.0,
        servers: each(
            &args.server_pid,
            &s.server_idle,
            &s.server_subscribed,
            &w.server_before,
            &w.server_after,
        ),
        server_cpu_s,
        server_cpu_us_per_delivery: server_cpu_s.map(per_delivery_us),
        server_cpu_percent: server_cpu_s.map(percent),
        server_rss_idle_kib: server_idle.map(|p| p.rss_kib),
        server_rss_subscribed_kib: server_subscribed.map(|p| p.rss_kib),
        server_rss_kib_per_conn: rss_per_conn,
        bus: each(
            &args.bus_pid,
            &s.bus_idle,
            &s.bus_subscribed,
            &w.bus_before,
            &w.bus_after,
        ),
        bus_cpu_s,
        bus_cpu_us_per_delivery: bus_cpu_s.map(per_delivery_us),
        bus_cpu_percent: bus_cpu_s.map(percent),
        client_cpu_s,
        client_cpu_us_per_delivery: per_delivery_us(client_cpu_s),
        others_cpu_percent: percent(others_s.max(0.0)),
        irq_cpu_percent: percent(irq_s),
        errors: stats.errors(),
        machine: machine(),
        loadavg_before: s.loadavg_before,
    }
}

/// Warns when the open-file limit cannot hold the subscribers (raise it with `ulimit -n`).
fn warn_on_fd_limit(subscribers: usize) {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<usize>().ok())
        });
    if let Some(limit) = limit {
        if subscribers + 64 > limit {
            eprintln!(
                "warning: open-file limit {limit} < {} subscribers + 64; run under `ulimit -n 65536`",
                subscribers
            );
        }
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// "CPU model, N cores, M GiB RAM, Linux release".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: f64 = m.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / (1024.0 * 1024.0))
        })
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}
