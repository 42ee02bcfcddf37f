//! `waas`: sets up logging (and traces, with `--otel-endpoint`) and hands the command line to
//! [`waas::cli`]. See `waas --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = waas::cli::Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if cli.workers > 0 {
        runtime.worker_threads(cli.workers.into());
    }
    runtime.build()?.block_on(serve(cli))
}

async fn serve(cli: waas::cli::Cli) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let json = cli.log_format == waas::cli::LogFormat::Json;
    let otel = match &cli.otel_endpoint {
        Some(endpoint) => Some(waas::telemetry::Otel::new(endpoint, cli.service_name())?),
        None => None,
    };
    if otel.is_some() {
        // Spans and trace context over the bus from now on; without it neither is made.
        waas_core::trace::enable();
    }
    // `WAAS_LOG` filters the log lines only: traces take the spans at `info` and above whatever
    // the log level.
    let log_filter = || {
        tracing_subscriber::EnvFilter::try_from_env("WAAS_LOG").unwrap_or_else(|_| "info".into())
    };
    tracing_subscriber::registry()
        .with(waas::cli::secret_safe_caps())
        .with((!json).then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(log_filter())
        }))
        .with(json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_writer(std::io::stderr)
                .with_filter(log_filter())
        }))
        .with(otel.as_ref().map(|o| {
            o.layer()
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        }))
        .init();
    if cli.serves() {
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        tracing::info!(workers, "runtime started");
    }
    let result = waas::cli::run(cli).await;
    if let Some(otel) = otel {
        tokio::task::spawn_blocking(move || otel.shutdown()).await?;
    }
    result
}
