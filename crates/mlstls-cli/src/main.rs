//! `mlstls`: MLS-TLS from the command line, as `openssl s_client` /
//! `s_server`, `socat` and `stunnel` are for TLS.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

mod bench;
mod bench_conn;
mod bench_store;
mod client;
mod common;
mod demo;
mod keys;
mod pki;
mod plain;
mod relay;
mod report;
mod server;
mod sessions;
mod signals;
mod store_cli;
mod stream;
mod vectors;

/// MLS-TLS secure channels from the command line.
#[derive(Debug, Parser)]
#[command(name = "mlstls", version, about, arg_required_else_help = true)]
struct Cli {
    /// More logging on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// No connection summaries or banners on stderr, only warnings and
    /// errors (for scripts).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an identity (signature key and credential) in a file; with
    /// --x509, a certificate from a CA (`mlstls ca`) instead of a bare name.
    Keygen(keys::KeygenArgs),
    /// Create a test certificate authority (certificate and key, PEM) for
    /// `keygen --x509` and the `--ca` flag of peers.
    Ca(pki::CaArgs),
    /// Make an X.509 identity from an identity and a certificate chain for
    /// its key issued by another CA (leaf first, PEM).
    AttachChain(pki::AttachArgs),
    /// Print an identity's public line, for a peer's trust file (or, with
    /// --pem, its key for a CA).
    Pubkey(keys::PubkeyArgs),
    /// List the ciphersuites (both ends of a connection use the same one:
    /// the one their identity files were made for).
    Suites,
    /// Accept MLS-TLS connections and echo them or forward them to a TCP
    /// service.
    Server(server::ServerArgs),
    /// Connect to an MLS-TLS server: stdin/stdout, or a local TCP tunnel.
    Client(client::ClientArgs),
    /// Everything in one process on loopback: handshake, transfer, key
    /// updates, a cut connection, resumption with early data.
    Demo(demo::DemoArgs),
    /// List, delete or sweep the sessions of a session store.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Create or rotate a store key file (encryption of sessions at rest).
    #[command(subcommand)]
    StoreKey(store_cli::StoreKeyCommand),
    /// Measure this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Write MLS-TLS test vectors (JSON, one file per suite) for other
    /// implementations; the format is in docs/INTEROP.md.
    Vectors(vectors::VectorsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::init_logging(cli.verbose);
    report::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Keygen(args) => keys::keygen(args),
        Command::Ca(args) => pki::ca(args),
        Command::AttachChain(args) => pki::attach_chain(args),
        Command::Pubkey(args) => keys::pubkey(args),
        Command::Suites => keys::suites(),
        Command::Server(args) => server::run(args),
        Command::Client(args) => client::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Sessions(cmd) => sessions::run(cmd),
        Command::StoreKey(cmd) => store_cli::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Vectors(args) => vectors::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlstls: {e}");
            ExitCode::FAILURE
        }
    }
}
