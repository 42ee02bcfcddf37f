//! The reconnect storm (`--scenario reconnect`, WaaS only): every subscriber's gateway goes away
//! while messages keep being published through another one, and every subscriber comes back.
//!
//! 1. connect and subscribe every subscriber (each on its `--channels-per-subscriber` channels),
//!    keeping each channel's `offset` and `epoch` from the `ack` and the messages;
//! 2. publish `--rate` msg/s for `--duration` s through `--publish-addr` (a gateway that stays
//!    up); one second in, write `--ready-file`, the caller's cue to kill the subscribers'
//!    gateway and start it again;
//! 3. a subscriber whose connection ends waits a random time up to `--reconnect-jitter-ms` (the
//!    SDKs' backoff jitter), connects again (again after as long at most, while refused) and
//!    resubscribes each channel with `since` = its last position: the server replays what was
//!    missed before the `ack`;
//! 4. wait until every subscriber that lost its connection has all its `ack`s back and every
//!    accepted message was delivered (bounded by `--reconnect-timeout` and `--drain-timeout`).
//!
//! Deliveries are counted once per subscriber and offset (a repeated offset is a duplicate), so
//! `lost` is what recovery did not bring back. `--server-pid` is not read (the subscribers'
//! gateway dies); `--restarted-pid-file` names the restarted gateway, whose whole CPU time up to
//! the end of recovery is divided by the subscribers that came back.

use crate::config::{PublishVia, RunArgs, Target};
use crate::procfs::{self, ProcSample};
use crate::report::{ReconnectFigures, Report};
use crate::run::{self, PerChannel, Point, Samples, Window};
use crate::spread::Spread;
use crate::stats::Stats;
use crate::target::{waas, Ctx, PublishCounters, Publisher};
use crate::tokens;
use crate::ws::{self, Endpoint, Ws};
use anyhow::{bail, ensure, Context, Result};
use fastwebsockets::{Frame, OpCode, Payload};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use waas_protocol::ServerFrame;

/// What every subscriber task reports about the outage.
#[derive(Default)]
struct Outage {
    disconnected: AtomicUsize,
    back: AtomicUsize,
    caught_up: AtomicUsize,
    /// On the stats clock; `u64::MAX` before any.
    first_disconnect_ns: AtomicU64,
    last_back_ns: AtomicU64,
    last_caught_up_ns: AtomicU64,
    unrecovered: AtomicU64,
    failed_attempts: AtomicU64,
    duplicates: AtomicU64,
}

/// The wait before attempt `attempt` of subscriber `i`: spread evenly over `0..jitter_ms`,
/// different for each subscriber and attempt, the same from run to run (splitmix64).
pub fn jitter(i: usize, attempt: u32, jitter_ms: u64) -> Duration {
    if jitter_ms == 0 {
        return Duration::ZERO;
    }
    let mut z = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(attempt).wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Duration::from_micros(z % (jitter_ms * 1000))
}

/// One subscriber's position in each of its channels: the last offset and the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub epoch: Option<String>,
}

/// What a text frame meant to a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A new message (offset above the channel's position).
    New,
    /// A message at or below the channel's position: already delivered.
    Duplicate,
    /// The `ack` of the subscription with this id; `false` when it says `recovered: false`.
    Ack {
        id: u64,
        recovered: bool,
    },
    /// A `gap`: messages may be missing.
    Gap,
    Error(String),
    Other,
}

/// Applies a server frame to the positions of a subscriber's `channels`.
pub fn apply(frame: ServerFrame, channels: &[String], positions: &mut [Position]) -> Seen {
    match frame {
        ServerFrame::Message {
            channel, offset, ..
        } => {
            let Some(k) = channels.iter().position(|c| *c == channel) else {
                return Seen::Other;
            };
            if offset <= positions[k].offset {
                return Seen::Duplicate;
            }
            positions[k].offset = offset;
            Seen::New
        }
        ServerFrame::Ack {
            id,
            offset,
            epoch,
            recovered,
            ..
        } => {
            if let Some(k) = (id as usize).checked_sub(1).filter(|&k| k < channels.len()) {
                let p = &mut positions[k];
                match (offset, epoch) {
                    // Same epoch: offsets go on from where this subscriber was.
                    (Some(offset), Some(epoch)) if p.epoch.as_ref() == Some(&epoch) => {
                        p.offset = p.offset.max(offset);
                    }
                    // New epoch: offsets start again.
                    (Some(offset), Some(epoch)) => {
                        *p = Position {
                            offset,
                            epoch: Some(epoch),
                        };
                    }
                    _ => {}
                }
            }
            Seen::Ack {
                id,
                recovered: recovered != Some(false),
            }
        }
        ServerFrame::Gap {
            channel,
            offset,
            epoch,
        } => {
            if let Some(k) = channels.iter().position(|c| *c == channel) {
                positions[k] = Position {
                    offset,
                    epoch: Some(epoch),
                };
            }
            Seen::Gap
        }
        ServerFrame::Error { code, .. } => Seen::Error(code.to_string()),
        _ => Seen::Other,
    }
}

/// The `subscribe` frame of channel `k` (id `k + 1`), with `since` once a position is known.
pub fn subscribe_frame(k: usize, channel: &str, position: &Position) -> Result<String> {
    let mut frame = format!(
        r#"{{"op":"subscribe","id":{},"channel":{}"#,
        k + 1,
        serde_json::to_string(channel)?
    );
    if let Some(epoch) = &position.epoch {
        write!(
            frame,
            r#","since":{{"offset":{},"epoch":{}}}"#,
            position.offset,
            serde_json::to_string(epoch)?
        )?;
    }
    frame.push('}');
    Ok(frame)
}

struct Sub {
    ctx: Arc<Ctx>,
    outage: Arc<Outage>,
    i: usize,
    channels: Vec<String>,
    positions: Vec<Position>,
}

impl Sub {
    /// Handles one text frame; returns what it was.
    fn on_text(&mut self, payload: &[u8]) -> Seen {
        let stats = &self.ctx.stats;
        let frame = match std::str::from_utf8(payload).map(ServerFrame::parse) {
            Ok(Ok(frame)) => frame,
            _ => {
                stats.error("unreadable frame");
                return Seen::Other;
            }
        };
        let seen = apply(frame, &self.channels, &mut self.positions);
        match &seen {
            Seen::New => {
                stats.record_delivery(payload);
            }
            Seen::Duplicate => {
                self.outage.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Seen::Gap => {
                self.outage.unrecovered.fetch_add(1, Ordering::Relaxed);
            }
            Seen::Error(code) => stats.error(format!("error frame {code}")),
            Seen::Ack { .. } | Seen::Other => {}
        }
        seen
    }

    /// Connects and subscribes every channel (with `since` once known), handling the replayed
    /// messages, until every `ack` is in.
    async fn session(&mut self, endpoint: &Endpoint) -> Result<Ws> {
        let source = ws::source_for(&self.ctx.source_ips, self.i);
        let path = format!("/v1/apps/{}/ws", self.ctx.app);
        let mut ws = ws::connect(endpoint, source, &path, Some(self.ctx.bearer(self.i))).await?;
        self.outage_back_if_reconnecting();
        for k in 0..self.channels.len() {
            let frame = subscribe_frame(k, &self.channels[k], &self.positions[k])?;
            ws.write_frame(Frame::text(Payload::Owned(frame.into_bytes())))
                .await?;
        }
        let mut acked = 0;
        while acked < self.channels.len() {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Text => match self.on_text(&frame.payload) {
                    Seen::Ack { recovered, .. } => {
                        acked += 1;
                        if !recovered {
                            self.outage.unrecovered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Seen::Error(code) => bail!("subscribe refused: {code}"),
                    _ => {}
                },
                OpCode::Close => bail!("closed {}", crate::target::close_code(&frame.payload)),
                _ => {}
            }
        }
        Ok(ws)
    }

    fn reconnecting(&self) -> bool {
        self.positions.iter().any(|p| p.epoch.is_some())
    }

    fn outage_back_if_reconnecting(&self) {
        if self.reconnecting() {
            let now = self.ctx.stats.now_ns();
            self.outage.last_back_ns.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Reads until the connection ends.
    async fn receive(&mut self, ws: &mut Ws) {
        loop {
            match ws.read_frame().await {
                Ok(frame) => match frame.opcode {
                    OpCode::Text => {
                        self.on_text(&frame.payload);
                    }
                    OpCode::Close => return,
                    _ => {}
                },
                Err(_) => return,
            }
        }
    }
}

/// Subscriber `i`: subscribes, reports, then receives and reconnects until aborted.
async fn subscriber(mut sub: Sub, ready: crate::target::Ready, jitter_ms: u64) {
    let endpoint = sub.ctx.subscriber_endpoint(sub.i).clone();
    let mut ws = match sub.session(&endpoint).await {
        Ok(ws) => {
            ready.report(Ok(()));
            ws
        }
        Err(e) => {
            ready.report(Err(e));
            return;
        }
    };
    let mut outages = 0;
    loop {
        sub.receive(&mut ws).await;
        outages += 1;
        if outages == 1 {
            let now = sub.ctx.stats.now_ns();
            sub.outage.disconnected.fetch_add(1, Ordering::Relaxed);
            sub.outage
                .first_disconnect_ns
                .fetch_min(now, Ordering::Relaxed);
        }
        let mut attempt = 0;
        ws = loop {
            attempt += 1;
            tokio::time::sleep(jitter(sub.i, attempt, jitter_ms)).await;
            match sub.session(&endpoint).await {
                Ok(ws) => break ws,
                Err(_) => {
                    sub.outage.failed_attempts.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let now = sub.ctx.stats.now_ns();
        sub.outage
            .last_caught_up_ns
            .fetch_max(now, Ordering::Relaxed);
        if outages == 1 {
            sub.outage.back.fetch_add(1, Ordering::Relaxed);
            sub.outage.caught_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(args: &RunArgs) -> Result<Report> {
    ensure!(
        args.target == Target::Waas,
        "--scenario reconnect is for --target waas (it recovers with `since`)"
    );
    ensure!(
        args.publish_via != PublishVia::PusherHttp,
        "--scenario reconnect publishes with --publish-via ws or rest"
    );
    // The subscribers' gateway dies: its pid cannot be read after.
    let mut args = args.clone();
    args.server_pid.clear();
    let args = &args;

    let mut endpoints = Vec::new();
    for addr in &args.addr {
        endpoints.push(Endpoint::resolve(addr).await?);
    }
    ensure!(!endpoints.is_empty(), "--addr needs at least one address");
    let publish_endpoint = match &args.publish_addr {
        Some(addr) => Endpoint::resolve(addr).await?,
        None => endpoints[0].clone(),
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
    let outage = Arc::new(Outage {
        first_disconnect_ns: AtomicU64::new(u64::MAX),
        ..Outage::default()
    });
    let ticks_per_sec = procfs::clock_ticks_per_sec();
    let loadavg_before = run::loadavg();

    // 1: subscribe.
    let before_connect = Point::read(args, "before subscribing")?;
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(args.connect_concurrency()));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for i in 0..args.subscribers {
        let ready =
            crate::target::Ready::new(i, tx.clone(), permits.clone().acquire_owned().await?);
        let sub = Sub {
            ctx: ctx.clone(),
            outage: outage.clone(),
            i,
            channels: ctx.spread.names_of(i),
            positions: vec![Position::default(); ctx.spread.per_subscriber()],
        };
        tasks.spawn(subscriber(sub, ready, args.reconnect_jitter_ms));
    }
    drop(tx);
    let mut per_channel = PerChannel {
        subscribed: 0,
        counts: vec![0; ctx.spread.channels()],
    };
    let collect = async {
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
    };
    tokio::time::timeout(Duration::from_secs_f64(args.connect_timeout), collect)
        .await
        .context("not every subscriber was subscribed within --connect-timeout")?;
    let connect_wall = started.elapsed();
    let connected = Point::read(args, "after subscribing")?;
    ensure!(
        per_channel.subscribed > 0,
        "no subscriber could subscribe: {:?}",
        ctx.stats.errors()
    );

    // 2-4: publish, let the caller kill the gateway, wait for everyone to come back.
    let before = Point::read(args, "before publishing")?;
    let published_at_ns = ctx.stats.now_ns();
    let window_started = Instant::now();
    let expected_sent = match args.publish_via {
        PublishVia::Rest => {
            let p = waas::RestPublisher::new(ctx.clone())?;
            publish_through_outage(args, &ctx, p, &per_channel).await?
        }
        _ => {
            let p = waas::WsPublisher::connect(ctx.clone()).await?;
            publish_through_outage(args, &ctx, p, &per_channel).await?
        }
    };
    let wait_started = Instant::now();
    let disconnect_deadline = wait_started + Duration::from_secs_f64(args.reconnect_timeout);
    loop {
        let disconnected = outage.disconnected.load(Ordering::Relaxed);
        let caught_up = outage.caught_up.load(Ordering::Relaxed);
        let expected = run::expected_deliveries(
            expected_sent,
            ctx.published.rejected(),
            per_channel.average(),
        );
        if disconnected > 0 && caught_up >= disconnected && ctx.stats.delivered() >= expected {
            break;
        }
        if Instant::now() > disconnect_deadline {
            if disconnected == 0 {
                bail!("no subscriber lost its connection: was the gateway killed?");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted_cpu = args
        .restarted_pid_file
        .as_deref()
        .map(|path| -> Result<ProcSample> {
            let pid = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ProcSample::read(pid.trim().parse().context("pid in --restarted-pid-file")?)
        })
        .transpose()?;
    let after = Point::read(args, "after recovery")?;
    tasks.abort_all();

    let window = Window {
        published_at_ns,
        wall: window_started.elapsed(),
        expected_sent,
        before,
        after,
    };
    let mut report = run::build_report(
        args,
        &ctx,
        Samples {
            subscribed: per_channel.subscribed,
            per_channel_avg: per_channel.average(),
            connect: Window {
                published_at_ns: 0,
                wall: connect_wall,
                expected_sent: 0,
                before: before_connect,
                after: connected.clone(),
            },
            server_subscribed: connected,
            window,
            ticks_per_sec,
            loadavg_before,
        },
    );
    let first = outage.first_disconnect_ns.load(Ordering::Relaxed);
    let since_first = |ns: u64| Duration::from_nanos(ns.saturating_sub(first)).as_secs_f64();
    let back = outage.back.load(Ordering::Relaxed);
    report.reconnect = Some(ReconnectFigures {
        disconnected: outage.disconnected.load(Ordering::Relaxed),
        all_back_s: since_first(outage.last_back_ns.load(Ordering::Relaxed)),
        all_caught_up_s: since_first(outage.last_caught_up_ns.load(Ordering::Relaxed)),
        unrecovered: outage.unrecovered.load(Ordering::Relaxed),
        failed_attempts: outage.failed_attempts.load(Ordering::Relaxed),
        duplicates: outage.duplicates.load(Ordering::Relaxed),
        server_cpu_us_per_reconnect: restarted_cpu.map(|s| {
            let cpu = procfs::cpu_between(
                ProcSample {
                    cpu_ticks: 0,
                    rss_kib: 0,
                },
                s,
                ticks_per_sec,
            );
            cpu.as_secs_f64() * 1e6 / back.max(1) as f64
        }),
    });
    if back < outage.disconnected.load(Ordering::Relaxed) {
        ctx.stats.error(format!(
            "only {back} of {} subscribers back within --reconnect-timeout",
            outage.disconnected.load(Ordering::Relaxed)
        ));
        report.errors = ctx.stats.errors();
    }
    Ok(report)
}

/// Publishes `rate × duration` messages over the channels, writing `--ready-file` one second
/// in; returns the deliveries the sent messages owe.
async fn publish_through_outage<P: Publisher>(
    args: &RunArgs,
    ctx: &Ctx,
    mut publisher: P,
    per_channel: &PerChannel,
) -> Result<u64> {
    let total = ((args.rate * args.duration).round() as u64).max(1);
    let pad = "x".repeat(args.payload);
    let names: Vec<String> = (0..ctx.spread.channels())
        .map(|c| ctx.spread.name(c))
        .collect();
    let mut data = String::new();
    let mut expected_sent = 0;
    let mut ready_written = args.ready_file.is_none();
    let started = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        if !ready_written && started.elapsed() >= Duration::from_secs(1) {
            if let Some(path) = &args.ready_file {
                std::fs::write(path, "ready\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            ready_written = true;
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
    publisher.close().await;
    Ok(expected_sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_spreads() {
        let waits: Vec<Duration> = (0..1000).map(|i| jitter(i, 1, 1000)).collect();
        assert!(waits.iter().all(|w| *w < Duration::from_secs(1)));
        let early = waits
            .iter()
            .filter(|w| **w < Duration::from_millis(500))
            .count();
        assert!(
            (400..600).contains(&early),
            "{early} of 1000 in the first half"
        );
        assert_ne!(jitter(7, 1, 1000), jitter(7, 2, 1000));
        assert_eq!(jitter(7, 1, 0), Duration::ZERO);
    }

    fn parse(text: &str) -> ServerFrame {
        ServerFrame::parse(text).unwrap()
    }

    #[test]
    fn positions_follow_acks_and_messages_and_repeats_are_duplicates() {
        let channels = vec!["a".to_string(), "b".to_string()];
        let mut pos = vec![Position::default(); 2];
        let ack = parse(r#"{"op":"ack","id":2,"offset":5,"epoch":"e1"}"#);
        assert_eq!(
            apply(ack, &channels, &mut pos),
            Seen::Ack {
                id: 2,
                recovered: true
            }
        );
        assert_eq!(
            pos[1],
            Position {
                offset: 5,
                epoch: Some("e1".into())
            }
        );
        let msg = |o: u64| {
            parse(&format!(
                r#"{{"op":"message","channel":"b","event":"tick","data":{{"t":1}},"offset":{o},"ts":1}}"#
            ))
        };
        assert_eq!(apply(msg(6), &channels, &mut pos), Seen::New);
        assert_eq!(apply(msg(6), &channels, &mut pos), Seen::Duplicate);
        assert_eq!(apply(msg(4), &channels, &mut pos), Seen::Duplicate);
        assert_eq!(pos[1].offset, 6);
        let unrecovered = parse(r#"{"op":"ack","id":1,"offset":9,"epoch":"e2","recovered":false}"#);
        assert_eq!(
            apply(unrecovered, &channels, &mut pos),
            Seen::Ack {
                id: 1,
                recovered: false
            }
        );
        assert_eq!(
            pos[0],
            Position {
                offset: 9,
                epoch: Some("e2".into())
            }
        );
    }

    #[test]
    fn subscribe_asks_for_since_once_a_position_is_known() {
        let fresh = subscribe_frame(0, "bench-1", &Position::default()).unwrap();
        assert_eq!(fresh, r#"{"op":"subscribe","id":1,"channel":"bench-1"}"#);
        let known = Position {
            offset: 41,
            epoch: Some("17f3".into()),
        };
        let again = subscribe_frame(2, "bench-1", &known).unwrap();
        assert_eq!(
            again,
            r#"{"op":"subscribe","id":3,"channel":"bench-1","since":{"offset":41,"epoch":"17f3"}}"#
        );
        // What the server reads.
        let v: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(v["since"]["offset"], 41);
    }
}
