//! `waas token issue`: signs an end user's token locally with the app's secret, as an app's
//! backend would; no call to WaaS.

use clap::Subcommand;
use std::time::Duration;
use waas_sdk::token::TokenBuilder;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Sign an HS256 token locally with an app's secret (no call to WaaS).
    Issue {
        #[arg(long, env = "WAAS_JWT_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long)]
        sub: String,
        /// App id, written to `aud`.
        #[arg(long)]
        app: Option<String>,
        /// Channel pattern the holder may subscribe to; repeat for more.
        #[arg(long)]
        subscribe: Vec<String>,
        /// Channel pattern the holder may publish to; repeat for more.
        #[arg(long)]
        publish: Vec<String>,
        /// Path prefix the holder may send requests to (docs/rpc.md); repeat for more.
        #[arg(long)]
        call: Vec<String>,
        /// Channel pattern the holder may share end-to-end encryption keys for (docs/e2ee.md);
        /// repeat for more.
        #[arg(long)]
        share: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue {
            secret,
            sub,
            app,
            subscribe,
            publish,
            call,
            share,
            ttl,
        } => {
            // The SDK's builder: the same claims, checks (patterns, paths, `sub`) and signing
            // an app's Rust backend gets.
            let mut token = TokenBuilder::new(sub).ttl(Duration::from_secs(ttl));
            if let Some(app) = app {
                token = token.audience(app);
            }
            token = subscribe.into_iter().fold(token, TokenBuilder::subscribe);
            token = publish.into_iter().fold(token, TokenBuilder::publish);
            token = call.into_iter().fold(token, TokenBuilder::call);
            token = share.into_iter().fold(token, TokenBuilder::share);
            println!("{}", token.sign_hs256(secret.as_bytes())?);
            Ok(())
        }
    }
}
