//! A trusted server process connected under a name: it shows on the dashboard's Servers page
//! (`docs/dashboard.md#servers`) and in `GET /v1/admin/apps/{app}/servers` with its gateway,
//! region and ping latency, until it goes away.
//!
//! Start a server with `waas dev`, then:
//!
//! ```sh
//! cargo run -p waas-sdk --example named_server [SERVER_URL] [NAME]
//! ```
//!
//! The server URL comes from the first argument or `WAAS_URL` (default `http://127.0.0.1:8080`),
//! the name from the second (default `api-1`); `WAAS_APP_ID` and `WAAS_API_KEY` default to
//! `waas dev`'s `demo` and `demo-key`. It prints `connected <connection id>` and stays connected
//! until its standard input closes (Ctrl-D), then closes the connection.

use std::io::Read;
use waas_sdk::Client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("WAAS_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let name = args.next().unwrap_or_else(|| "api-1".into());
    let app = std::env::var("WAAS_APP_ID").unwrap_or_else(|_| "demo".into());
    let key = std::env::var("WAAS_API_KEY").unwrap_or_else(|_| "demo-key".into());

    let client = Client::builder()
        .url(url)
        .app(app)
        .token(key)
        .server_name(name)
        .connect()
        .await?;
    println!("connected {}", client.connection_id().unwrap_or_default());
    // Blocking read on a thread of its own: the client's task keeps answering pings meanwhile.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    client.close().await?;
    println!("closed");
    Ok(())
}
