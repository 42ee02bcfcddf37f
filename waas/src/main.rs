//! `waas`: sets up logging (and traces, with `--otel-endpoint`) and hands the command line to
//! [`waas::cli`]. See `waas --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let cli = waas::cli::Cli::parse();
    let json = cli.log_format == waas::cli::LogFormat::Json;
    let otel = match &cli.otel_endpoint {
        Some(endpoint) => Some(waas::telemetry::Otel::new(endpoint, cli.service_name())?),
        None => None,
    };
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
        .with(otel.as_ref().map(|o| o.layer()))
        .init();
    let result = waas::cli::run(cli).await;
    if let Some(otel) = otel {
        tokio::task::spawn_blocking(move || otel.shutdown()).await?;
    }
    result
}
