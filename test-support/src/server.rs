//! Servers for tests. Each binds port 0, so tests run in parallel without fighting over ports.

use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waas::settings::Settings;
use waas_control_plane::store::Store;
use waas_gateway::Gateway;

/// An in-process `waas dev` server (apps in an in-memory SQLite). Dropping it shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub store: Arc<dyn Store>,
    /// Dashboard accounts and sessions.
    pub accounts: Arc<dyn waas_control_plane::store::DashboardStore>,
    /// Bearer token of its admin API: the settings' `operator_token`, else `waas dev`'s default.
    operator_token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The default `waas dev` settings (app `demo`, key `demo-key`, secret `demo-secret`).
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// Default settings adjusted by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> TestServer {
        let mut settings = Settings {
            store: ":memory:".into(),
            ..Settings::default()
        };
        tweak(&mut settings);
        let operator_token = settings
            .operator_token
            .clone()
            .unwrap_or_else(|| waas::settings::DEV_OPERATOR_TOKEN.into());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let dev = waas::dev::start(&settings)
            .await
            .expect("valid test settings");
        let gateway = Arc::clone(&dev.gateway);
        let store = Arc::clone(&dev.store);
        let accounts = Arc::clone(&dev.control_plane.accounts);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            waas_gateway::server::serve(
                Arc::clone(&dev.gateway),
                listener,
                Some(dev.admin.clone()),
                shutdown,
            )
            .await
            .expect("server failed");
            drop(dev);
        });
        TestServer {
            addr,
            gateway,
            store,
            accounts,
            operator_token,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A call on the admin API with the operator token; returns the status and the body as
    /// JSON (null when empty, a JSON string when not JSON), like [`Cluster::admin`].
    ///
    /// [`Cluster::admin`]: crate::cluster::Cluster::admin
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        crate::cluster::reqwest_like::Client::new()
            .call(
                method,
                &format!("{}{path}", self.http_url()),
                &self.operator_token,
                body,
            )
            .await
    }

    /// Triggers the graceful shutdown and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The real `waas` binary running `dev` as a child process; killed on drop.
pub struct ChildServer {
    pub addr: SocketAddr,
    pub child: std::process::Child,
}

impl ChildServer {
    /// Starts `binary dev --listen 127.0.0.1:0 --store :memory: <extra>`.
    pub fn start(binary: &str, extra: &[&str]) -> ChildServer {
        let mut args = vec!["dev", "--listen", "127.0.0.1:0", "--store", ":memory:"];
        args.extend_from_slice(extra);
        Self::spawn(binary, &args)
    }

    /// Starts `binary <args>` (which must listen on port 0) and waits for its `listening on`
    /// line.
    pub fn spawn(binary: &str, args: &[&str]) -> ChildServer {
        let output = Arc::new(Mutex::new(String::new()));
        Self::spawn_inner(binary, args, &[("WAAS_LOG", "warn")], output)
    }

    /// Like [`spawn`](Self::spawn), with `env` set for the process, and everything it writes
    /// (stdout and stderr, logs included) collected into the returned buffer until it exits.
    pub fn spawn_logged(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (ChildServer, Arc<Mutex<String>>) {
        let output = Arc::new(Mutex::new(String::new()));
        let server = Self::spawn_inner(binary, args, env, Arc::clone(&output));
        (server, output)
    }

    fn spawn_inner(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
        // What the process wrote: shown when it exits before listening, so a test failing at
        // start-up says why.
        output: Arc<Mutex<String>>,
    ) -> ChildServer {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn waas");
        let mut stderr_reader = child.stderr.take().map(|stderr| {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    append(&output, &line);
                }
            })
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                let _ = child.wait();
                if let Some(reader) = stderr_reader.take() {
                    let _ = reader.join();
                }
                let said = output.lock().map(|o| o.clone()).unwrap_or_default();
                panic!("waas {args:?} exited before listening:\n{said}")
            };
            let line = line.expect("read stdout");
            append(&output, &line);
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().parse().expect("address");
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                append(&output, &line);
            }
        });
        ChildServer { addr, child }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        self.child.wait().expect("wait for waas")
    }
}

fn append(output: &Mutex<String>, line: &str) {
    let mut output = output.lock().expect("output poisoned");
    output.push_str(line);
    output.push('\n');
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
