//! `fault`: what a cluster loses when its parts fail under load (issue 11, "Also show"). See
//! `loadtest/README.md`, "Faults"; run by `loadtest/fault.sh`.
//!
//! Starts private services only — a `nats-server -js` and a PostgreSQL on free loopback ports
//! with their own directories, a control-plane and two gateways of the `waas` binary — and an
//! app with history and a webhook endpoint (a receiver inside this process) routing every
//! message of `faults.>`. Then, for each fault in turn, on a channel of its own: a subscriber
//! (Rust SDK) on each gateway, a REST publisher at a steady rate alternating between the
//! gateways, the fault (kill -9 gateway A and restart it; kill -9 the control-plane and restart
//! it; stop NATS and restart it; stop PostgreSQL and restart it), a few seconds to settle, and
//! a sentinel publish through each gateway. Only acknowledged publishes count. Printed per fault: acknowledged
//! offsets a subscriber never got (lost) or got twice (dup), whether it was told of a gap
//! (`Unrecovered`), and acknowledged publishes whose webhook never came (lost) or came more
//! than once (dup: webhooks are at least once, so duplicates are allowed).
//!
//! Exits non-zero if a subscriber lost an acknowledged message without being told, or a
//! webhook was lost. Every process and directory is removed on exit, Ctrl-C or panic (drop
//! guards).

mod load;
mod nodes;
mod postgres;

use anyhow::{bail, Context, Result};
use clap::Parser;
use load::{publish_sentinels, Publisher, Seen, Subscriber};
use nodes::Nodes;
use postgres::Postgres;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use waas_sdk::ServerClient;
use waas_test_support::nats::NatsServer;
use waas_test_support::receiver::Receiver;

#[derive(Parser)]
#[command(
    name = "fault",
    about = "Kill a gateway, the control-plane, NATS and PostgreSQL under load; count losses"
)]
struct Cli {
    /// The `waas` binary.
    #[arg(long, default_value = "target/debug/waas")]
    waas: String,
    /// Publishes per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds of load before each fault, and again after everything is back.
    #[arg(long, default_value_t = 3)]
    load_secs: u64,
    /// Seconds each part stays down.
    #[arg(long, default_value_t = 3)]
    down_secs: u64,
    /// The app's `history_size`. `0` turns recovery off: losses the subscribers are told of
    /// then show in the table, which checks that the script sees them.
    #[arg(long, default_value_t = 1000)]
    history_size: u32,
    /// How long to wait for the sentinel and for the webhooks after each fault, seconds.
    #[arg(long, default_value_t = 60)]
    settle_secs: u64,
}

#[derive(Clone, Copy)]
enum Fault {
    Gateway,
    ControlPlane,
    Nats,
    Postgres,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::Gateway,
        Fault::ControlPlane,
        Fault::Nats,
        Fault::Postgres,
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::Gateway => "kill -9 gateway A",
            Fault::ControlPlane => "kill -9 control-plane",
            Fault::Nats => "stop NATS",
            Fault::Postgres => "stop PostgreSQL",
        }
    }

    fn channel(self) -> &'static str {
        match self {
            Fault::Gateway => "faults.gateway",
            Fault::ControlPlane => "faults.control-plane",
            Fault::Nats => "faults.nats",
            Fault::Postgres => "faults.postgres",
        }
    }
}

/// Everything this run started; dropping it stops and removes all of it.
struct Services {
    // Drop order: the WaaS processes before the services they use.
    nodes: Nodes,
    nats: NatsServer,
    postgres: Postgres,
    receiver: Receiver,
}

/// One row of the table.
struct Row {
    fault: Fault,
    acked: usize,
    subs: [SubResult; 2],
    webhook_lost: usize,
    webhook_dup: usize,
}

struct SubResult {
    lost: usize,
    dup: usize,
    told: bool,
    sentinel: bool,
    dropped: u64,
    disconnects: u64,
}

impl Row {
    fn failed(&self) -> bool {
        self.webhook_lost > 0
            || self
                .subs
                .iter()
                .any(|s| (s.lost > 0 && !s.told) || !s.sentinel)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async {
        tokio::select! {
            rows = run(&cli) => rows,
            signal = interrupted() => bail!("interrupted by {signal}"),
        }
    })?;
    print_table(&rows);
    if rows.iter().any(Row::failed) {
        bail!("an acknowledged message was lost without its subscriber being told, or a webhook was lost");
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (`timeout`, `kill`): the run stops and the drop guards clean up.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn run(cli: &Cli) -> Result<Vec<Row>> {
    let postgres = Postgres::start().context("private PostgreSQL")?;
    let nats = NatsServer::start();
    let receiver = Receiver::start().await;
    let nodes =
        tokio::task::block_in_place(|| Nodes::start(&cli.waas, &nats.url(), &postgres.url()))?;
    let mut services = Services {
        nodes,
        nats,
        postgres,
        receiver,
    };
    eprintln!(
        "fault: NATS {}, PostgreSQL {}, control-plane {}, gateways {} and {}",
        services.nats.url(),
        services.postgres.url(),
        services.nodes.control_plane_url(),
        services.nodes.gateway_http(0),
        services.nodes.gateway_http(1)
    );
    let (app, api_key) = create_app(&services, cli.history_size).await?;
    let rest = [0, 1].map(|i| {
        ServerClient::new(services.nodes.gateway_http(i), &app, api_key.clone())
            .expect("REST client")
    });
    let mut subs = Vec::new();
    for i in 0..2 {
        subs.push(Subscriber::connect(services.nodes.gateway_ws(i), &app, &api_key).await?);
    }
    let mut rows = Vec::new();
    for fault in Fault::ALL {
        eprintln!("fault: {}", fault.name());
        rows.push(one_fault(cli, &mut services, &subs, &rest, fault).await?);
    }
    Ok(rows)
}

/// Creates the tenant, the app (history on, by default 1000 messages per channel: more than a
/// fault's backlog, under the 1024 a client's queue holds) and the webhook route; app id and
/// API key.
async fn create_app(services: &Services, history_size: u32) -> Result<(String, String)> {
    let http = reqwest::Client::new();
    let base = services.nodes.control_plane_url();
    let token = &services.nodes.operator_token;
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    post("/v1/admin/tenants", json!({"id": "fault", "name": "Fault"}))
        .await?
        .error_for_status()?;
    let app: Value = post(
        "/v1/admin/apps",
        json!({"id": "fault", "tenant_id": "fault", "limits": {"history_size": history_size}}),
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    let api_key = app["api_key"].as_str().context("api_key")?.to_owned();
    post(
        "/v1/admin/apps/fault/webhooks",
        json!({"url": services.receiver.url("/hook"), "events": ["message"], "channels": ["faults.>"]}),
    )
    .await?
    .error_for_status()?;
    Ok(("fault".into(), api_key))
}

async fn one_fault(
    cli: &Cli,
    services: &mut Services,
    subs: &[Subscriber],
    rest: &[ServerClient; 2],
    fault: Fault,
) -> Result<Row> {
    let channel = fault.channel();
    let mut follows = Vec::new();
    for sub in subs {
        follows.push(sub.follow(channel).await?);
    }
    let publisher = Publisher::start(rest.clone(), channel.into(), cli.rate);
    let load = Duration::from_secs(cli.load_secs);
    let down = Duration::from_secs(cli.down_secs);
    tokio::time::sleep(load).await;
    inject(services, fault, down).await?;
    for i in 0..2 {
        ready(&services.nodes.gateway_http(i)).await?;
    }
    tokio::time::sleep(load).await;
    let (attempts, mut acked) = publisher.finish().await;
    publish_sentinels(rest, channel).await?;
    acked.sort_unstable();
    eprintln!("fault: {attempts} publishes, {} acknowledged", acked.len());

    let settle = Duration::from_secs(cli.settle_secs);
    let started = std::time::Instant::now();
    let seen = futures_util::future::join_all(follows.into_iter().map(|f| f.collect(settle))).await;
    eprintln!("fault: subscribers done after {:?}", started.elapsed());
    let hooks = webhooks(&services.receiver, channel, &acked, settle).await;
    eprintln!("fault: webhooks done after {:?}", started.elapsed());
    let subs = [0, 1].map(|i| compare(&seen[i], &acked));
    let webhook_lost = acked.iter().filter(|o| !hooks.contains_key(o)).count();
    let webhook_dup = hooks.values().map(|n| n.saturating_sub(1)).sum();
    Ok(Row {
        fault,
        acked: acked.len(),
        subs,
        webhook_lost,
        webhook_dup,
    })
}

/// Breaks one part, keeps it down for `down` (the publisher goes on meanwhile), and brings it
/// back.
async fn inject(services: &mut Services, fault: Fault, down: Duration) -> Result<()> {
    match fault {
        Fault::Gateway => services.nodes.kill_gateway(0),
        Fault::ControlPlane => services.nodes.kill_control_plane(),
        Fault::Nats => services.nats.stop(),
        Fault::Postgres => services.postgres.stop()?,
    }
    tokio::time::sleep(down).await;
    tokio::task::block_in_place(|| -> Result<()> {
        match fault {
            Fault::Gateway => services.nodes.start_gateway(0),
            Fault::ControlPlane => services.nodes.start_control_plane(),
            Fault::Nats => services.nats.restart(),
            Fault::Postgres => services.postgres.restart()?,
        }
        Ok(())
    })
}

/// Waits until the gateway's `/readyz` answers 200 (NATS connected).
async fn ready(base: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ok = http
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{base} not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lost: acknowledged publishes never handed over; dup: publishes handed over more than once.
fn compare(seen: &Seen, acked: &[u64]) -> SubResult {
    let mut count: HashMap<u64, usize> = HashMap::new();
    for o in &seen.numbers {
        *count.entry(*o).or_default() += 1;
    }
    SubResult {
        lost: acked.iter().filter(|o| !count.contains_key(o)).count(),
        dup: count.values().map(|n| n - 1).sum(),
        told: seen.unrecovered,
        sentinel: seen.got_sentinel,
        dropped: seen.dropped,
        disconnects: seen.disconnects,
    }
}

/// Waits at most `limit` until a webhook of `channel` came for every acknowledged publish;
/// how many came for each (by `n`, the message's data, as published).
async fn webhooks(
    receiver: &Receiver,
    channel: &str,
    acked: &[u64],
    limit: Duration,
) -> BTreeMap<u64, usize> {
    let tally = |received: &[waas_test_support::receiver::Received]| {
        let mut by_n = BTreeMap::new();
        for r in received {
            let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
                continue;
            };
            if r.status == 200 && body["channel"] == channel {
                if let Some(n) = body["data"].as_u64() {
                    *by_n.entry(n).or_default() += 1;
                }
            }
        }
        by_n
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let by_n = tally(&receiver.received());
        if acked.iter().all(|o| by_n.contains_key(o)) || tokio::time::Instant::now() > deadline {
            return by_n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_table(rows: &[Row]) {
    println!("| fault | acked | lost (sub A/B) | dup (sub A/B) | told (sub A/B) | webhook lost | webhook dup |");
    println!("|---|---|---|---|---|---|---|");
    let yes = |b: bool| if b { "yes" } else { "no" };
    for r in rows {
        let [a, b] = &r.subs;
        println!(
            "| {} | {} | {} / {} | {} / {} | {} / {} | {} | {} |",
            r.fault.name(),
            r.acked,
            a.lost,
            b.lost,
            a.dup,
            b.dup,
            yes(a.told),
            yes(b.told),
            r.webhook_lost,
            r.webhook_dup
        );
    }
    println!();
    for r in rows {
        let [a, b] = &r.subs;
        println!(
            "{}: subscriber connections lost A {}, B {}",
            r.fault.name(),
            a.disconnects,
            b.disconnects
        );
        for (name, s) in ["A", "B"].iter().zip(&r.subs) {
            if !s.sentinel {
                println!(
                    "{}: subscriber {name} never received both sentinels within the settle time",
                    r.fault.name()
                );
            }
            if s.dropped > 0 {
                println!(
                    "{}: subscriber {name}'s SDK buffer dropped {} messages",
                    r.fault.name(),
                    s.dropped
                );
            }
        }
    }
}
