//! `mlstls`: the MLS-TLS command-line tool.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod bench_conn;

/// MLS-TLS secure channels from the command line.
#[derive(Debug, Parser)]
#[command(name = "mlstls", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure this machine: record-layer throughput and more.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlstls: {e}");
            ExitCode::FAILURE
        }
    }
}
