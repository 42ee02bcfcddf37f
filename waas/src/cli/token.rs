//! `waas token issue`: signs an end user's token locally with the app's secret, as an app's
//! backend would; no call to WaaS.

use anyhow::Context;
use clap::Subcommand;
use jsonwebtoken::{encode, EncodingKey, Header};
use waas_protocol::{CallSet, Caps, ChannelPattern, Claims, PathPrefix, PatternSet};

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
            let patterns = |list: &[String]| -> anyhow::Result<PatternSet> {
                Ok(PatternSet::new(
                    list.iter()
                        .map(|p| ChannelPattern::parse(p).with_context(|| format!("pattern {p:?}")))
                        .collect::<anyhow::Result<_>>()?,
                ))
            };
            waas_protocol::claims::check_sub(&sub).map_err(|m| {
                anyhow::anyhow!(
                    "--sub: {m}: a token with it is refused by the server (docs/auth.md)"
                )
            })?;
            let now = waas_core::time::now_ms() / 1000;
            let claims = Claims {
                sub,
                exp: now + ttl,
                iat: Some(now),
                aud: app,
                caps: Caps {
                    subscribe: patterns(&subscribe)?,
                    publish: patterns(&publish)?,
                    call: call
                        .iter()
                        .map(|p| PathPrefix::parse(p).with_context(|| format!("--call {p:?}")))
                        .collect::<anyhow::Result<Vec<_>>>()
                        .map(CallSet::new)?,
                    share: patterns(&share)?,
                },
                info: None,
            };
            let token = encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )?;
            println!("{token}");
            Ok(())
        }
    }
}
