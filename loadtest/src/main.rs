//! `loadtest`: see `loadtest --help` and `loadtest/README.md`.

use anyhow::{Context, Result};
use clap::Parser;
use loadtest::{repeats, report, Cli, Command, Report};
use std::io::Write;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Ingest(args)) => {
            loadtest::ingest::main(args)?;
            std::process::exit(0)
        }
        Some(Command::IngestTable { files }) => {
            let reports = files
                .iter()
                .map(|f| {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("reading {}", f.display()))?;
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", f.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            print!("{}", loadtest::ingest::markdown_table(&reports));
            return Ok(());
        }
        Some(Command::IngestCleanup { nats, prefix }) => {
            waas_test_support::jetstream::delete_streams(nats, prefix);
            return Ok(());
        }
        _ => {}
    }
    if let Some(Command::Table { files }) = cli.command {
        let reports = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                serde_json::from_str::<Report>(&text)
                    .with_context(|| format!("parsing {}", f.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        // Repeated runs of a scenario: the tables show the median one, then the spread.
        let groups = repeats::group_runs(&reports);
        let reports: Vec<Report> = groups
            .iter()
            .map(|g| repeats::median_run(g).clone())
            .collect();
        print!("{}", loadtest::tables::by_scenario(&reports));
        let setups = report::setup_table(&reports);
        if !setups.is_empty() {
            print!("\n{setups}");
        }
        let spread = repeats::spread_table(&groups);
        if !spread.is_empty() {
            print!(
                "\nRepeated runs (the tables above show the median run by server CPU):\n\n{spread}"
            );
        }
        let mut machines: Vec<&str> = reports.iter().map(|r| r.machine.as_str()).collect();
        machines.dedup();
        for machine in machines {
            println!("\nMachine: {machine}");
        }
        return Ok(());
    }

    let args = cli.run;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    let report = runtime
        .enable_all()
        .build()?
        .block_on(loadtest::run(&args))?;

    let json = serde_json::to_string_pretty(&report)?;
    match args.json.as_deref() {
        Some(path) if path.as_os_str() == "-" => println!("{json}"),
        other => {
            if let Some(path) = other {
                std::fs::write(path, format!("{json}\n"))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let mut out = std::io::stdout().lock();
            write!(
                out,
                "{}",
                loadtest::tables::by_scenario(std::slice::from_ref(&report))
            )?;
            write!(out, "\n{}", report::details(&report))?;
        }
    }
    // Subscriber tasks were aborted; don't wait for their sockets to close.
    std::process::exit(0)
}
