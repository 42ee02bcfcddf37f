//! NATS for tests: the machine's shared server for ordinary bus tests, and a private
//! `nats-server` process for tests that stop and restart NATS.
//!
//! Tests on the shared server keep apart by a random subject prefix ([`unique_prefix`]), so
//! they can run in parallel. A test that kills NATS must use its own [`NatsServer`]: stopping
//! the shared one would fail every other test running at the time.

use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a private server gets to accept connections after it is started.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// URL of the shared NATS: `WAAS_TEST_NATS_URL`, default `nats://127.0.0.1:4222` (the server
/// every dev machine and CI runs).
pub fn shared_url() -> String {
    std::env::var("WAAS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A fresh subject token (`t` and 16 hex digits) to put in front of a test's subjects, so
/// tests sharing one NATS never see each other's messages.
pub fn unique_prefix() -> String {
    format!("t{:016x}", RandomState::new().hash_one(unique_number()))
}

fn unique_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The `nats-server` binary: `WAAS_NATS_SERVER`, else Debian's `/usr/sbin/nats-server`, else
/// whatever `nats-server` is on `PATH`.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WAAS_NATS_SERVER") {
        return path.into();
    }
    let debian = Path::new("/usr/sbin/nats-server");
    if debian.exists() {
        debian.into()
    } else {
        "nats-server".into()
    }
}

/// A `nats-server` of this test alone, with JetStream and its own store directory, on a free
/// loopback port that stays the same across [`stop`](Self::stop) and
/// [`restart`](Self::restart), so clients reconnect to it by themselves. Killed, and its
/// directory removed, on drop.
///
/// Starting and stopping block the thread for the few milliseconds the process takes; that
/// is fine in tests and keeps `Drop` able to clean up.
pub struct NatsServer {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    /// A configuration file given with `-c` (authorization, TLS), kept across restarts.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a server and waits until it greets clients. Panics with the server's log if it
    /// does not come up, since a test cannot go on without it.
    pub fn start() -> NatsServer {
        Self::start_inner(None)
    }

    /// Like [`start`](Self::start), with `config` (nats-server configuration syntax, e.g.
    /// `authorization { user: a, password: b }` or a `tls { }` block) as its configuration
    /// file. Address, port, JetStream and store still come from flags, which take precedence.
    pub fn start_with_config(config: &str) -> NatsServer {
        Self::start_inner(Some(config))
    }

    fn start_inner(config: Option<&str>) -> NatsServer {
        let dir = std::env::temp_dir().join(format!(
            "waas-nats-{}-{}",
            std::process::id(),
            unique_number()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the NATS store directory");
        let config = config.map(|text| {
            let path = dir.join("nats-server.conf");
            std::fs::write(&path, text).expect("write the NATS configuration");
            path
        });
        let mut server = NatsServer {
            child: None,
            addr: free_port(),
            dir,
            config,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`, the same for the server's whole life.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The server's log so far, to show when a test fails.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nats-server.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: clients see the connection drop, as in a crash). Does
    /// nothing if it is already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store, stopping it first if it runs, and
    /// waits until it greets clients.
    pub fn restart(&mut self) {
        self.stop();
        let log = self.dir.join("nats-server.log");
        let mut command = Command::new(server_binary());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.join("store"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_binary().display()));
        self.child = Some(child);
        if !self.wait_for_greeting() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            self.stop();
            panic!(
                "nats-server on {} did not come up; its log:\n{log}",
                self.addr
            );
        }
    }

    /// True once a client that connects receives the server's `INFO` line: the port being
    /// open is not enough, the server must be serving.
    fn wait_for_greeting(&mut self) -> bool {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut greeting = [0u8; 4];
                if stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO" {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on now. Another process could take it before the server
/// binds it; on a test machine that is rare enough, and `restart` then panics with the log.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
}
