//! One scenario, end to end:
//! 1. sample the server (RSS before any subscriber);
//! 2. connect and subscribe N subscribers, `--connect-concurrency` at a time, and wait for all;
//!    sample its CPU → CPU per connection (`--scenario storm` ends here: its measured window is
//!    this connect phase);
//! 3. after `--settle`, sample the server's RSS again → RSS per connection;
//! 4. `--scenario fanout`: connect the publisher, sample server, bus and client CPU, publish
//!    `rate × duration` messages on schedule (spread over `--channels`), wait until every
//!    accepted message reached every subscriber of its channel (bounded by `--drain-timeout`, or
//!    2 s without progress), sample CPU again → CPU per delivery. `--scenario idle`: sample,
//!    wait `--idle-secs` with nothing published, sample again → CPU % while idle.
//!
//! `--scenario reconnect` is [`crate::reconnect`].
//!
//! Several `--server-pid`s (the gateways of a cluster) are summed; `--bus-pid`s (nats-server) are
//! sampled over the same window and reported apart.

use crate::config::{Auth, PublishVia, RunArgs, Scenario, Target};
use crate::netns::NetNs;
use crate::procfs::{self, BoxSample, ProcSample};
use crate::report::{ProcessFigures, Report};
use crate::spread::Spread;
use crate::stats::Stats;
use crate::target::pusher::{self, PusherAuth};
use crate::target::{socketio, waas, Ctx, PublishCounters, Publisher, Ready};
use crate::tokens;
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
    ensure!(args.idle_secs > 0.0, "--idle-secs must be positive");
    ensure!(
        args.connect_concurrency() > 0,
        "--connect-concurrency must be at least 1"
    );
    ensure!(
        args.auth == Auth::ApiKey || args.target == Target::Waas,
        "--auth {} is for --target waas (Pusher and Socket.IO subscribers join public channels)",
        args.auth.name()
    );
    if args.scenario == Scenario::Reconnect {
        return crate::reconnect::run(args).await;
    }
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
    let tokens =
        match tokens::signing_key(args.auth, &args.jwt_secret, args.jwt_rsa_key.as_deref())? {
            Some(key) => tokens::mint(&key, &args.app, args.subscribers)?,
            None => Vec::new(),
        };
    let ctx = Arc::new(Ctx {
        endpoints,
        publish_endpoint,
        app: args.app.clone(),
        api_key: args.api_key.clone(),
        spread: Spread::new(&args.channel, args.channels, args.channels_per_subscriber)?,
        tokens,
        source_ips: args.source_ips.clone(),
        stats: Stats::new(),
        published: PublishCounters::default(),
    });
    let ticks_per_sec = procfs::clock_ticks_per_sec();
    let loadavg_before = loadavg();

    // 1-3: subscribers.
    let server_idle = Point::read(args, "before subscribing")?;
    let connect_started = Instant::now();
    let mut subscribers = JoinSet::new();
    let per_channel = tokio::time::timeout(
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
    let connect_wall = connect_started.elapsed();
    let server_connected = Point::read(args, "after subscribing")?;
    let subscribed = per_channel.subscribed;
    ensure!(
        subscribed > 0,
        "no subscriber could subscribe: {:?}",
        ctx.stats.errors()
    );
    let connect_window = Window {
        published_at_ns: 0,
        wall: connect_wall,
        expected_sent: 0,
        before: server_idle.clone(),
        after: server_connected.clone(),
    };
    if args.scenario == Scenario::Storm {
        subscribers.abort_all();
        return Ok(build_report(
            args,
            &ctx,
            Samples {
                subscribed,
                per_channel_avg: per_channel.average(),
                connect: connect_window.clone(),
                server_subscribed: server_connected.clone(),
                window: connect_window,
                ticks_per_sec,
                loadavg_before,
            },
        ));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let server_subscribed = Point::read(args, "after settling")?;

    // 4: publish and drain, or idle.
    let window = match (args.scenario, args.target, args.publish_via) {
        (Scenario::Idle, ..) => {
            let before = Point::read(args, "before idling")?;
            let started = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(args.idle_secs)).await;
            Window {
                published_at_ns: 0,
                wall: started.elapsed(),
                expected_sent: 0,
                before,
                after: Point::read(args, "after idling")?,
            }
        }
        // Refused above with the other mismatches.
        (_, Target::Waas, PublishVia::PusherHttp) => {
            bail!("--publish-via pusher-http is for --target pusher only")
        }
        (_, Target::Waas, PublishVia::Ws) => {
            let p = waas::WsPublisher::connect(ctx.clone()).await?;
            publish_and_drain(args, &ctx, p, &per_channel).await?
        }
        (_, Target::Waas | Target::Pusher, PublishVia::Rest) => {
            let p = waas::RestPublisher::new(ctx.clone())?;
            publish_and_drain(args, &ctx, p, &per_channel).await?
        }
        (_, Target::Pusher, _) => {
            let p = pusher::HttpPublisher::new(ctx.clone(), pusher_auth.clone())?;
            publish_and_drain(args, &ctx, p, &per_channel).await?
        }
        (_, Target::Socketio, _) => {
            let p = socketio::SioPublisher::connect(ctx.clone()).await?;
            publish_and_drain(args, &ctx, p, &per_channel).await?
        }
    };
    subscribers.abort_all();

    Ok(build_report(
        args,
        &ctx,
        Samples {
            subscribed,
            per_channel_avg: per_channel.average(),
            connect: connect_window,
            server_subscribed,
            window,
            ticks_per_sec,
            loadavg_before,
        },
    ))
}

/// How many subscribers each channel got.
pub(crate) struct PerChannel {
    pub(crate) subscribed: usize,
    pub(crate) counts: Vec<u64>,
}

impl PerChannel {
    /// Subscribers per channel, on average: what a refused publish would have been delivered to.
    pub(crate) fn average(&self) -> f64 {
        self.counts.iter().sum::<u64>() as f64 / self.counts.len().max(1) as f64
    }
}

/// Spawns every subscriber task and waits for each to report; returns how many subscribed to
/// each channel.
async fn connect_all(
    args: &RunArgs,
    ctx: &Arc<Ctx>,
    pusher_auth: &Arc<PusherAuth>,
    tasks: &mut JoinSet<()>,
) -> Result<PerChannel> {
    let permits = Arc::new(Semaphore::new(args.connect_concurrency()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..args.subscribers {
        let ready = Ready::new(i, tx.clone(), permits.clone().acquire_owned().await?);
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
    let mut per_channel = PerChannel {
        subscribed: 0,
        counts: vec![0; ctx.spread.channels()],
    };
    while let Some((i, result)) = rx.recv().await {
        match result {
            Ok(()) => {
                per_channel.subscribed += 1;
                for c in ctx.spread.channels_of(i) {
                    per_channel.counts[c] += 1;
                }
            }
            Err(e) => ctx.stats.error(format!("subscribe: {e:#}")),
        }
    }
    Ok(per_channel)
}

/// Servers, bus, this client and the machine, read at one moment.
#[derive(Clone)]
pub(crate) struct Point {
    pub(crate) server: Vec<ProcSample>,
    pub(crate) bus: Vec<ProcSample>,
    pub(crate) client: ProcSample,
    pub(crate) machine: BoxSample,
}

impl Point {
    pub(crate) fn read(args: &RunArgs, what: &str) -> Result<Point> {
        Ok(Point {
            server: procfs::read_all(&args.server_pid, &format!("server, {what}"))?,
            bus: procfs::read_all(&args.bus_pid, &format!("bus, {what}"))?,
            client: ProcSample::read(std::process::id())?,
            machine: BoxSample::read()?,
        })
    }
}

/// The measured window: publishing (fan-out), connecting (storm) or idling.
#[derive(Clone)]
pub(crate) struct Window {
    /// When the first message was published, on the stats clock (0: nothing published).
    pub(crate) published_at_ns: u64,
    pub(crate) wall: Duration,
    /// Deliveries the sent messages owe: the sum of their channels' subscribers.
    pub(crate) expected_sent: u64,
    pub(crate) before: Point,
    pub(crate) after: Point,
}

async fn publish_and_drain<P: Publisher>(
    args: &RunArgs,
    ctx: &Ctx,
    mut publisher: P,
    per_channel: &PerChannel,
) -> Result<Window> {
    let total = ((args.rate * args.duration).round() as u64).max(1);
    let pad = "x".repeat(args.payload);
    let mut data = String::with_capacity(args.payload + 32);
    let names: Vec<String> = (0..ctx.spread.channels())
        .map(|c| ctx.spread.name(c))
        .collect();
    let mut expected_sent = 0u64;

    let before = Point::read(args, "before publishing")?;
    let started = Instant::now();
    let published_at_ns = ctx.stats.now_ns();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        data.clear();
        write!(data, r#"{{"t":{},"pad":"{pad}"}}"#, ctx.stats.now_ns())?;
        let c = ctx.spread.channel_of_message(n);
        if let Err(e) = publisher.publish(n + 1, &names[c], &data).await {
            ctx.stats.error(format!("publisher: {e:#}"));
            break;
        }
        ctx.published.sent.fetch_add(1, Ordering::Relaxed);
        expected_sent += per_channel.counts[c];
    }

    // Drain: every sent message answered, and every accepted one delivered everywhere.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    let mut last_progress = (Instant::now(), 0, 0);
    loop {
        let (delivered, accepted) = (ctx.stats.delivered(), ctx.published.accepted());
        let (sent, rejected) = (ctx.published.sent(), ctx.published.rejected());
        let expected = expected_deliveries(expected_sent, rejected, per_channel.average());
        if accepted + rejected >= sent && delivered >= expected {
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
    let after = Point::read(args, "after publishing")?;
    publisher.close().await;
    Ok(Window {
        published_at_ns,
        wall,
        expected_sent,
        before,
        after,
    })
}

/// Deliveries owed: those of every sent message, less those of the refused ones (counted at the
/// average channel's subscribers, since a refusal does not say its channel; exact with one
/// channel or evenly spread subscribers).
pub(crate) fn expected_deliveries(expected_sent: u64, rejected: u64, per_channel_avg: f64) -> u64 {
    expected_sent.saturating_sub((rejected as f64 * per_channel_avg).round() as u64)
}

pub(crate) struct Samples {
    pub(crate) subscribed: usize,
    pub(crate) per_channel_avg: f64,
    /// The connect phase: before the first subscriber, after the last subscribed.
    pub(crate) connect: Window,
    pub(crate) server_subscribed: Point,
    pub(crate) window: Window,
    pub(crate) ticks_per_sec: u64,
    pub(crate) loadavg_before: f64,
}

pub(crate) fn build_report(args: &RunArgs, ctx: &Ctx, s: Samples) -> Report {
    let stats = &ctx.stats;
    let delivered = stats.delivered();
    let accepted = ctx.published.accepted();
    // Messages neither acknowledged nor refused by the end still count: they are missing if they
    // were not delivered.
    let expected = expected_deliveries(
        s.window.expected_sent,
        ctx.published.rejected(),
        s.per_channel_avg,
    );
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
    let server_cpu_s = cpu_s(&w.before.server, &w.after.server);
    let bus_cpu_s = cpu_s(&w.before.bus, &w.after.bus);
    let connect_server_cpu_s = cpu_s(&s.connect.before.server, &s.connect.after.server);
    let percent = |cpu: f64| cpu * 100.0 / w.wall.as_secs_f64();
    let ticks_s = |t: u64| t as f64 / s.ticks_per_sec as f64;
    let client_cpu_s =
        procfs::cpu_between(w.before.client, w.after.client, s.ticks_per_sec).as_secs_f64();
    // See `BoxSample` for why softirq time is in `busy` and ksoftirqd's is taken out.
    let (a, b) = (w.after.machine, w.before.machine);
    let others_s = ticks_s(a.busy_ticks.saturating_sub(b.busy_ticks))
        - ticks_s(a.softirqd_ticks.saturating_sub(b.softirqd_ticks))
        - client_cpu_s
        - server_cpu_s.unwrap_or(0.0)
        - bus_cpu_s.unwrap_or(0.0);
    let irq_s = ticks_s(a.irq_ticks.saturating_sub(b.irq_ticks));
    let server_idle = procfs::total(&s.connect.before.server);
    let server_subscribed = procfs::total(&s.server_subscribed.server);
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
        scenario: report_scenario(args),
        channels: args.channels,
        channels_per_subscriber: args.channels_per_subscriber,
        auth: report_auth(args),
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
        connect_s: s.connect.wall.as_secs_f64(),
        connect_server_cpu_s,
        server_cpu_us_per_connect: connect_server_cpu_s
            .map(|cpu| cpu * 1e6 / s.subscribed.max(1) as f64),
        idle_s: (args.scenario == Scenario::Idle).then_some(w.wall.as_secs_f64()),
        reconnect: None,
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
            &s.connect.before.server,
            &s.server_subscribed.server,
            &w.before.server,
            &w.after.server,
        ),
        server_cpu_s,
        server_cpu_us_per_delivery: server_cpu_s.map(per_delivery_us),
        server_cpu_percent: server_cpu_s.map(percent),
        server_rss_idle_kib: server_idle.map(|p| p.rss_kib),
        server_rss_subscribed_kib: server_subscribed.map(|p| p.rss_kib),
        server_rss_kib_per_conn: rss_per_conn,
        bus: each(
            &args.bus_pid,
            &s.connect.before.bus,
            &s.server_subscribed.bus,
            &w.before.bus,
            &w.after.bus,
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

/// The scenario's name in the report: fan-out over more than one channel is "many-channels".
pub(crate) fn report_scenario(args: &RunArgs) -> String {
    match args.scenario {
        Scenario::Fanout if args.channels > 1 => "many-channels".into(),
        other => other.name().into(),
    }
}

/// How the subscribers authenticated: the `--auth` for WaaS, "public" for a public channel
/// without credentials (Pusher, Socket.IO).
pub(crate) fn report_auth(args: &RunArgs) -> String {
    match args.target {
        Target::Waas => args.auth.name().into(),
        Target::Pusher | Target::Socketio => "public".into(),
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

pub(crate) fn loadavg() -> f64 {
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
