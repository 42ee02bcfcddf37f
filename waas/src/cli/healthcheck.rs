//! `waas healthcheck`: asks the server on this machine for `/healthz` (or `--path`) and exits 0
//! only on a 2xx answer. The container image has no shell or curl (distroless), so this is what
//! a Docker or Compose `HEALTHCHECK` runs; Kubernetes probes use HTTP directly.

use anyhow::{bail, Context};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The server's listen address; an unspecified IP (0.0.0.0, ::) is asked on loopback
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "WAAS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Path to ask: `/healthz` (alive) or, for a gateway, `/readyz` (connected to NATS).
    #[arg(long, default_value = "/healthz")]
    path: String,
    /// Give up after this long, ms.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// The URL asked: the listen address, with a wildcard IP replaced by loopback.
fn url(args: &HealthcheckArgs) -> anyhow::Result<String> {
    if !args.path.starts_with('/') {
        bail!("--path must start with '/', got {:?}", args.path);
    }
    let mut addr = args
        .listen
        .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(format!("http://{addr}{}", args.path))
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = url(&args)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    println!("{url}: {status}");
    Ok(())
}
