//! `waas`: sets up logging and hands the command line to [`waas::cli`]. See `waas --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let cli = waas::cli::Cli::parse();
    let json = cli.log_format == waas::cli::LogFormat::Json;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with(waas::cli::secret_safe_caps())
        .with((!json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr)))
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_writer(std::io::stderr)
        }))
        .init();
    waas::cli::run(cli).await
}
