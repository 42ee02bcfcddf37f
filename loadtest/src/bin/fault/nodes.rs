//! The WaaS processes of the run: one control-plane and two gateways of the `waas` binary, each
//! on a loopback port of its own that stays the same across restarts (so SDK clients reconnect
//! to the gateway they had), killed on drop (`ChildServer`).

use anyhow::Result;
use std::net::{SocketAddr, TcpListener};
use waas_test_support::server::ChildServer;

/// Subject prefix of the run: the NATS server is private, so any fixed token will do.
const PREFIX: &str = "fault";

pub struct Nodes {
    binary: String,
    nats_url: String,
    database_url: String,
    pub operator_token: String,
    cp_addr: SocketAddr,
    gw_addrs: [SocketAddr; 2],
    control_plane: Option<ChildServer>,
    gateways: [Option<ChildServer>; 2],
}

fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Nodes {
    pub fn start(binary: &str, nats_url: &str, database_url: &str) -> Result<Nodes> {
        let mut nodes = Nodes {
            binary: binary.into(),
            nats_url: nats_url.into(),
            database_url: database_url.into(),
            operator_token: format!("fault-operator-{:016x}", rand_token()),
            cp_addr: free_addr()?,
            gw_addrs: [free_addr()?, free_addr()?],
            control_plane: None,
            gateways: [None, None],
        };
        nodes.start_control_plane();
        nodes.start_gateway(0);
        nodes.start_gateway(1);
        Ok(nodes)
    }

    pub fn control_plane_url(&self) -> String {
        format!("http://{}", self.cp_addr)
    }

    pub fn gateway_http(&self, i: usize) -> String {
        format!("http://{}", self.gw_addrs[i])
    }

    pub fn gateway_ws(&self, i: usize) -> String {
        format!("ws://{}", self.gw_addrs[i])
    }

    /// Starts the control-plane and waits until it is listening (database open, NATS
    /// connected). Webhook attempts time out after 3 s, so that the leases a killed
    /// control-plane leaves behind end after 11 s (`2 × timeout_ms + 5 s`) rather than 25 s.
    pub fn start_control_plane(&mut self) {
        let listen = self.cp_addr.to_string();
        let cp = ChildServer::spawn(
            &self.binary,
            &[
                "control-plane",
                "--listen",
                &listen,
                "--nats",
                &self.nats_url,
                "--database-url",
                &self.database_url,
                "--operator-token",
                &self.operator_token,
                "--subject-prefix",
                PREFIX,
                "--outbound-allow-loopback",
                "true",
                "--webhook-timeout-ms",
                "3000",
            ],
        );
        self.control_plane = Some(cp);
    }

    /// SIGKILL, as a crash.
    pub fn kill_control_plane(&mut self) {
        self.control_plane = None;
    }

    pub fn start_gateway(&mut self, i: usize) {
        let listen = self.gw_addrs[i].to_string();
        let gw = ChildServer::spawn(
            &self.binary,
            &[
                "gateway",
                "--listen",
                &listen,
                "--nats",
                &self.nats_url,
                "--subject-prefix",
                PREFIX,
                "--outbound-allow-loopback",
                "true",
            ],
        );
        self.gateways[i] = Some(gw);
    }

    /// SIGKILL, as a crash.
    pub fn kill_gateway(&mut self, i: usize) {
        self.gateways[i] = None;
    }
}

/// A random number for the operator token; this run's services listen on loopback only.
fn rand_token() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}
