//! `waas`: sets up logging and hands the command line to [`waas::cli`]. See `waas --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with(waas::cli::secret_safe_caps())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    waas::cli::run(waas::cli::Cli::parse()).await
}
