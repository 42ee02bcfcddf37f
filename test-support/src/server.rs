//! Servers for tests. Each binds port 0, so tests run in parallel without fighting over ports.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use waas::settings::Settings;
use waas_gateway::Gateway;

/// An in-process `waas dev` server. Dropping it shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
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
        let mut settings = Settings::default();
        tweak(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let gateway = waas::dev::build(&settings).expect("valid test settings");
        let (stop, stopped) = oneshot::channel::<()>();
        let gw = Arc::clone(&gateway);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            waas_gateway::server::serve(gw, listener, shutdown)
                .await
                .expect("server failed");
        });
        TestServer {
            addr,
            gateway,
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
    /// Starts `binary dev --listen 127.0.0.1:0 <extra>` and waits for its `listening on` line.
    pub fn start(binary: &str, extra: &[&str]) -> ChildServer {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(binary)
            .args(["dev", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn waas");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("waas exited before listening")
                .expect("read stdout");
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().parse().expect("address");
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
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

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
