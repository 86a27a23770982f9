//! `mlstls-bench`: the comparison on its own (same as `mlstls bench compare`).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// MLS-TLS side by side with rustls on this machine.
#[derive(Debug, Parser)]
#[command(name = "mlstls-bench", version, about)]
struct Cli {
    #[command(flatten)]
    options: mlstls_bench::Options,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Memory is measured in a fresh copy of this program per stack.
    cli.options.child = std::env::current_exe()
        .ok()
        .map(|exe| vec![exe.into_os_string()]);
    match mlstls_bench::run(&cli.options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlstls-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
