//! The server commands: `waas dev`, `waas gateway`, `waas control-plane`, `waas migrate`.
//! Each reads its settings, binds, starts its service through the library's one entry point, and
//! says `listening on` only once that has succeeded.

use super::args::{CommonArgs, DevArgs};
use crate::settings::Settings;
use anyhow::Context;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use waas_sdk::token::TokenBuilder;

/// A token for the demo app that may do everything, valid a day: what `waas dev` prints.
fn demo_token(s: &Settings) -> anyhow::Result<String> {
    Ok(TokenBuilder::new("demo-user")
        .ttl(std::time::Duration::from_secs(86400))
        .audience(s.app_id.clone())
        .subscribe(">")
        .publish(">")
        .call("/")
        .share(">")
        .sign_hs256(s.jwt_secret.as_bytes())?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Binds the listener, after the process-wide settings read before anything starts (the
/// metrics' `region` label).
async fn bind(settings: &Settings) -> anyhow::Result<(TcpListener, SocketAddr)> {
    waas_core::metrics::set_region(&settings.region);
    let listener = crate::listen::bind(settings.listen, settings.limits.listen_backlog)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Every server command prints `listening on <addr>` only once it is ready to serve: socket
/// bound and everything it needs (store, bus) open. A command that fails to start never prints
/// it, so whatever waits for the line (a test harness, a script) sees the failure.
pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let started = crate::dev::start(&settings).await?;
    let app = &settings.app_id;
    let token = demo_token(&settings)?;
    println!(
        "WaaS dev server: in-process bus, apps in {}",
        settings.store.display()
    );
    println!("  app id      {app}");
    println!("  API key     {}", settings.api_key);
    println!("  JWT secret  {}", settings.jwt_secret);
    println!("  WebSocket   ws://{addr}/v1/apps/{app}/ws?token=<jwt>");
    println!(
        "  REST        http://{addr}/v1/apps/{app}/publish  (Authorization: Bearer <API key>)"
    );
    println!("  Pusher      key {app}  secret {}", settings.pusher_secret);
    println!("  demo token  {token}");
    println!("              (sub demo-user, may subscribe and publish everywhere, valid 24 h)");
    println!(
        "  admin API   http://{addr}/v1/admin/apps  (Authorization: Bearer {})",
        settings
            .operator_token
            .as_deref()
            .unwrap_or(crate::settings::DEV_OPERATOR_TOKEN)
    );
    println!("  dashboard   http://{addr}/dashboard");
    if let Some((email, password)) = started.dev_login {
        println!("              (dev sign-in: {email} / {password})");
    }
    let outbound = settings.outbound(true);
    let loopback = match (outbound.allow_loopback, settings.outbound_allow_loopback) {
        (true, None) => "loopback allowed (dev default)",
        (true, Some(_)) => "loopback allowed",
        (false, _) => "loopback refused",
    };
    let private = if outbound.allow_private {
        "private networks allowed"
    } else {
        "private networks refused"
    };
    println!("  outbound    webhooks and upstreams: {loopback}, {private}");
    println!("listening on {addr}");
    started.serve(listener, shutdown_signal()).await?;
    Ok(())
}

pub async fn gateway(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let node = crate::cluster::start_gateway(&settings).await?;
    println!("listening on {addr}");
    node.serve(listener, shutdown_signal()).await?;
    Ok(())
}

pub async fn control_plane(args: CommonArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let (listener, addr) = bind(&settings).await?;
    let started = crate::cluster::start_control_plane(&settings).await?;
    println!("listening on {addr}");
    started.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// Applies PostgreSQL migrations and exits.
pub async fn migrate(args: CommonArgs) -> anyhow::Result<()> {
    crate::cluster::migrate(&args.settings()?).await?;
    println!("migrations applied");
    Ok(())
}
