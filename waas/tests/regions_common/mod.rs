//! Shared by the regions tests (`regions.rs`: two regions, `regions3.rs`: three): regions as
//! real processes (`docs/regions.md`). A region other than this test's own namespace is a
//! network namespace (`ip netns`) with its own nats-server (JetStream) and `waas gateway`;
//! regions are joined by links that delay every packet by `RTT / 2` each way and that a test
//! can cut (`loadtest/wan-link.py`, TUN devices, no netem). Clients "in" a region run on a
//! Tokio runtime whose threads entered its namespace, so every socket they open is that
//! region's.

#![allow(dead_code)]

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use waas_sdk::{Backoff, ConnectionEvent, Events, Subscription};
use waas_test_support::cluster::{TestApp, OPERATOR};
use waas_test_support::pg::PgSchema;
use waas_test_support::server::ChildServer;

pub const WAAS: &str = env!("CARGO_BIN_EXE_waas");
/// A region's gateway port inside its own namespace (a fresh namespace has every port free).
pub const NS_GATEWAY_PORT: u16 = 8080;
/// A region's nats-server's monitoring port inside its own namespace.
pub const NS_MONITOR_PORT: u16 = 8222;

// ---- the machine ----

/// Whether this machine lets the test make network namespaces and TUN devices.
pub fn netns_usable() -> Result<(), String> {
    let ok = |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status();
    match ok(Command::new("ip").args(["netns", "list"])) {
        Ok(s) if s.success() => {}
        other => return Err(format!("`ip netns list` failed: {other:?}")),
    }
    if !PathBuf::from("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing".into());
    }
    match ok(Command::new("python3").arg("--version")) {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!(
            "python3 is needed for loadtest/wan-link.py: {other:?}"
        )),
    }
}

pub fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}

/// Five hex digits, different for every call in this process (and most likely from every
/// other test process): namespaces and TUN devices are machine-wide.
pub fn unique_tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:05x}",
        (std::process::id() ^ rand_u32()).wrapping_add(n) & 0xfffff
    )
}

/// A third address octet (100–249) for a test's links, different for each call in this
/// process (up to 150 calls), so tests of one binary running at once never share addresses.
pub fn link_octet() -> u8 {
    static BASE: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(rand_u32);
    (100 + (base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))) % 150) as u8
}

pub fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

// ---- links ----

/// `loadtest/wan-link.py` joining two namespaces; stopped when dropped, and with it whatever
/// it made (a namespace of its own, its TUN devices).
pub struct Link {
    child: Child,
    /// Side A's namespace, `None` for this test's own.
    pub ns_a: Option<String>,
    pub ns_b: String,
    pub a: Ipv4Addr,
    pub b: Ipv4Addr,
}

impl Link {
    /// Joins this test's namespace (address `a`) to a new namespace `ns_b` (address `b`),
    /// which the link deletes when dropped.
    pub fn to_new_namespace(rtt_ms: u64, ns_b: &str, a: Ipv4Addr, b: Ipv4Addr) -> Link {
        Self::start(rtt_ms, None, ns_b, a, b)
    }

    /// Joins two namespaces that exist already (made by other links): drop this link before
    /// those, so its devices go before their namespaces do. A region may have the same
    /// address on each of its links (point-to-point devices), so every region is reached at
    /// one address from everywhere.
    pub fn between(rtt_ms: u64, ns_a: &str, ns_b: &str, a: Ipv4Addr, b: Ipv4Addr) -> Link {
        Self::start(rtt_ms, Some(ns_a), ns_b, a, b)
    }

    fn start(rtt_ms: u64, ns_a: Option<&str>, ns_b: &str, a: Ipv4Addr, b: Ipv4Addr) -> Link {
        let tag = unique_tag();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../loadtest/wan-link.py");
        let mut cmd = Command::new("python3");
        cmd.args([script, "--rtt-ms", &rtt_ms.to_string()])
            .args(["--ns-a", ns_a.unwrap_or("-"), "--ns-b", ns_b])
            .args(["--addr-a", &a.to_string(), "--addr-b", &b.to_string()])
            .args([
                "--dev-a",
                &format!("wra{tag}"),
                "--dev-b",
                &format!("wrb{tag}"),
            ]);
        if ns_a.is_some() {
            cmd.arg("--existing");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wan-link.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read wan-link.py");
        assert!(line.starts_with("wan-link up"), "wan-link.py: {line:?}");
        Link {
            child,
            ns_a: ns_a.map(str::to_owned),
            ns_b: ns_b.to_owned(),
            a,
            b,
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Every packet dropped, both ways, until [`heal`](Self::heal).
    pub fn cut(&self) {
        self.signal("-USR1");
    }

    pub fn heal(&self) {
        self.signal("-USR2");
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // SIGTERM: the script deletes what it made on the way out.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

// ---- NATS ----

/// A nats-server with JetStream in a one-server cluster (with a route to itself: nats-server
/// 2.9 refuses JetStream in a cluster with a `gateway {}` block and no routes) and a gateway
/// connection to every other region.
pub struct Nats {
    child: Child,
    dir: tempfile::TempDir,
}

/// A nats-server's `ping_interval` and `ping_max`: how soon it closes a connection (the gateway
/// connections between the regions included) whose peer stopped answering.
#[derive(Clone, Copy)]
pub struct Pings {
    pub interval: &'static str,
    pub max: u32,
}

pub struct NatsPorts {
    pub client: u16,
    pub cluster: u16,
    pub monitor: u16,
    pub gateway: SocketAddr,
}

impl NatsPorts {
    /// The ports of a region in a namespace of its own (every port free there), its gateway
    /// connections on `addr`.
    pub fn in_namespace(addr: Ipv4Addr) -> NatsPorts {
        NatsPorts {
            client: 4222,
            cluster: 6222,
            monitor: NS_MONITOR_PORT,
            gateway: SocketAddr::from((addr, 7222)),
        }
    }

    /// The ports of this test's own region: free ones, its gateway connections on `addr`.
    pub fn here(addr: Ipv4Addr) -> NatsPorts {
        NatsPorts {
            client: free_port(Ipv4Addr::LOCALHOST),
            cluster: free_port(Ipv4Addr::LOCALHOST),
            monitor: free_port(Ipv4Addr::LOCALHOST),
            gateway: SocketAddr::from((addr, free_port(addr))),
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client)
    }
}

impl Nats {
    /// Region `name`'s server (`{name}1`), in namespace `ns` (`None`: this test's), with a
    /// gateway connection to each of `others` (region name, gateway address).
    pub fn start(
        ns: Option<&str>,
        name: &str,
        ports: &NatsPorts,
        others: &[(&str, SocketAddr)],
        pings: Option<Pings>,
    ) -> Nats {
        let dir = tempfile::tempdir().expect("tempdir");
        let pings = pings.map_or(String::new(), |p| {
            format!("ping_interval: \"{}\"\nping_max: {}\n", p.interval, p.max)
        });
        let gateways = others
            .iter()
            .map(|(other, addr)| format!("{{ name: {other}, url: \"nats://{addr}\" }}"))
            .collect::<Vec<_>>()
            .join(", ");
        let conf = format!(
            r#"{pings}server_name: {name}1
listen: 127.0.0.1:{client}
http: 127.0.0.1:{monitor}
jetstream {{ store_dir: "{store}" }}
cluster {{ name: {name}, listen: 127.0.0.1:{cluster}, routes: [nats-route://127.0.0.1:{cluster}] }}
gateway {{ name: {name}, listen: "{gateway}", gateways: [ {gateways} ] }}
"#,
            client = ports.client,
            monitor = ports.monitor,
            cluster = ports.cluster,
            gateway = ports.gateway,
            store = dir.path().join("js").display(),
        );
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, conf).expect("write nats.conf");
        let server = waas_test_support::nats::server_binary();
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&server);
                c
            }
            None => Command::new(&server),
        };
        let child = cmd
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        Nats { child, dir }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

/// The JetStream meta group as the nats-server whose monitoring port is `monitor` (in the
/// caller's namespace) sees it: its leader's name (empty while there is none) and its size;
/// `None` when the server does not answer.
pub async fn meta_group(monitor: u16) -> Option<(String, u64)> {
    let v: Value = reqwest::get(format!("http://127.0.0.1:{monitor}/jsz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let leader = v["meta_cluster"]["leader"].as_str().unwrap_or_default();
    let size = v["meta_cluster"]["cluster_size"].as_u64().unwrap_or(0);
    Some((leader.to_owned(), size))
}

/// Waits for the JetStream meta leader of a supercluster of `servers` servers (5–14 s on a
/// slow box): until then history cannot be created or read anywhere. Returns its name.
pub async fn wait_meta_leader(monitor: u16, servers: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some((leader, size)) = meta_group(monitor).await {
            if !leader.is_empty() && size == servers {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no JetStream meta leader within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the nats-server whose monitoring port is `monitor` (in the caller's namespace) has a
/// gateway connection, either way, to region `other`; `None` when it does not answer.
pub async fn gateway_up(monitor: u16, other: &str) -> Option<bool> {
    let v: Value = reqwest::get(format!("http://127.0.0.1:{monitor}/gatewayz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(v["outbound_gateways"].get(other).is_some() || v["inbound_gateways"].get(other).is_some())
}

// ---- the services ----

/// A Tokio runtime whose every thread entered network namespace `ns`: what runs on it is "in"
/// that region.
pub fn runtime_in(ns: &str) -> tokio::runtime::Runtime {
    let path = format!("/run/netns/{ns}");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&f),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("enter the namespace");
        })
        .build()
        .expect("runtime")
}

/// Runs `f` on `rt` (a region's runtime) and waits for it.
pub async fn run_in<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.spawn(f).await.expect("task in another region")
}

/// The home region's control-plane, on this test's NATS server `nats_url`, with a database
/// schema of its own. Returns the process, its URL and the schema (dropped after it).
pub async fn start_control_plane(nats_url: &str, prefix: &str) -> (ChildServer, String, PgSchema) {
    let schema = PgSchema::create().await;
    let db = schema.url();
    let control_plane = ChildServer::spawn(
        WAAS,
        &[
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--nats",
            nats_url,
            "--database-url",
            &db,
            "--operator-token",
            OPERATOR,
            "--subject-prefix",
            prefix,
        ],
    );
    let url = format!("http://{}", control_plane.addr);
    (control_plane, url, schema)
}

/// What a process wrote (for a gateway, its log at [`GATEWAY_LOG`]), for a failing test to show.
pub type Output = std::sync::Arc<std::sync::Mutex<String>>;

/// Everything `output` holds so far.
pub fn said(output: &Output) -> String {
    output.lock().map(|o| o.clone()).unwrap_or_default()
}

/// The gateways' log filter. A failover that goes wrong is told by the gateways' debug lines
/// (connections, resubscriptions, catching up), which the tests print when they fail.
const GATEWAY_LOG: &str = "warn,waas_gateway=debug,waas_core=debug";

/// The clients' log (moves, losses, reconnects, at debug) into the test's captured output,
/// which the test harness prints when the test fails.
pub fn log_clients() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn,waas_sdk=debug")
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// A `waas gateway` of region `region`, in namespace `ns` (`None`: this test's), listening on
/// `listen`, on its region's NATS `nats_url`, with `extra` arguments. Returns it and what it
/// writes.
pub fn start_gateway(
    ns: Option<&str>,
    listen: &str,
    nats_url: &str,
    prefix: &str,
    region: &str,
    extra: &[&str],
) -> (ChildServer, Output) {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        args.extend(["netns", "exec", ns, WAAS]);
    }
    args.extend([
        "gateway",
        "--listen",
        listen,
        "--nats",
        nats_url,
        "--subject-prefix",
        prefix,
        "--region",
        region,
    ]);
    args.extend_from_slice(extra);
    let binary = if ns.is_some() { "ip" } else { WAAS };
    ChildServer::spawn_logged(
        binary,
        &args,
        &[("WAAS_LOG", GATEWAY_LOG), ("NO_COLOR", "1")],
    )
}

/// A region's gateway inside its namespace `ns`, on [`NS_GATEWAY_PORT`]. After a cut, catching
/// up waits for JetStream to answer again; on a CI box running every test at once that took
/// over the default 10 s once in eight runs (a reported gap). What the tests check is that
/// nothing is lost, so it may take 30 s.
pub fn start_region_gateway(
    ns: &str,
    nats_url: &str,
    prefix: &str,
    region: &str,
) -> (ChildServer, Output) {
    start_gateway(
        Some(ns),
        &format!("127.0.0.1:{NS_GATEWAY_PORT}"),
        nats_url,
        prefix,
        region,
        &["--resync-timeout-ms", "30000"],
    )
}

/// Makes tenant `t` (if need be) and app `id` with `fields` through the control-plane's
/// admin API.
pub async fn create_app(control_plane: &str, id: &str, fields: Value) -> TestApp {
    let http = waas_test_support::cluster::reqwest_like::Client::new();
    let (s, _) = http
        .call(
            "POST",
            &format!("{control_plane}/v1/admin/tenants"),
            OPERATOR,
            Some(json!({"id": "t", "name": "Tenant"})),
        )
        .await;
    assert!(s == 201 || s == 409, "tenant: {s}");
    let mut app = json!({"id": id, "tenant_id": "t"});
    app.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let (s, body) = http
        .call(
            "POST",
            &format!("{control_plane}/v1/admin/apps"),
            OPERATOR,
            Some(app),
        )
        .await;
    assert_eq!(s, 201, "app: {body}");
    TestApp {
        id: id.into(),
        api_key: body["api_key"].as_str().unwrap().into(),
        jwt_secret: body["jwt_secret"].as_str().unwrap().into(),
    }
}

// ---- clients ----

pub fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        multiplier: 2.0,
    }
}

/// After a cut link heals: publishes `n`, `n + 1`, ... on `channel` through the gateway at
/// `base`, one every 500 ms, until the subscriber `sub` across the link gets something, then
/// reads it up to the last number published. Returns what `sub` got and that number.
pub async fn publish_until_delivered(
    base: &str,
    app: &TestApp,
    channel: &str,
    mut n: u64,
    sub: &mut Subscription,
) -> (Vec<u64>, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, body) = app.publish(base, channel, "n", json!(n)).await;
        assert_eq!(s, 200, "{body}");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
            let mut got = vec![m.data::<u64>().unwrap()];
            while !got.contains(&n) {
                got.push(next_n(sub, "after the cut").await);
            }
            return (got, n);
        }
        assert!(
            Instant::now() < deadline,
            "cross-region delivery did not resume"
        );
        n += 1;
    }
}

/// What `events` reported so far.
pub async fn reported(events: &mut Events) -> Vec<ConnectionEvent> {
    let mut all = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::ZERO, events.next()).await {
        all.push(e);
    }
    all
}

/// No channel reported `unrecovered` (a gap) and the client never lost its gateway.
pub fn assert_no_gap_nor_disconnect(events: &[ConnectionEvent]) {
    for e in events {
        assert!(
            !matches!(
                e,
                ConnectionEvent::Unrecovered { .. } | ConnectionEvent::Disconnected { .. }
            ),
            "after the cut: {e:?}"
        );
    }
}

pub async fn next_n(sub: &mut Subscription, what: &str) -> u64 {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 20 s"))
        .expect("subscription open")
        .data::<u64>()
        .unwrap()
}

pub async fn connected_to(events: &mut Events, want: &str) {
    waas_test_support::sdk::wait_connected_to(events, want).await
}

/// Held by each regions test for its whole run. Regions are many processes and delayed links
/// (three regions: nine processes, three links): on a 2-core machine a file's tests run one
/// after the other, or their cuts, elections and probes time each other out.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
