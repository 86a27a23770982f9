//! `mlstls vectors`: writes the MLS-TLS test vectors, one JSON file per
//! suite (format: `docs/INTEROP.md`).

use std::path::PathBuf;

use clap::Args;
use mls_tls::bench_support::vectors;
use mls_tls::crypto::CipherSuite;

/// Options of `mlstls vectors`.
#[derive(Debug, Args)]
pub(crate) struct VectorsArgs {
    /// Directory to write `mls-tls-0xNNNN.json` files into (created if
    /// missing; existing files of the same name are replaced).
    #[arg(long, default_value = "docs/test-vectors")]
    out: PathBuf,
    /// Ciphersuites, by name or code point; repeat for several.
    #[arg(long = "suite", default_values = ["0x0001", "0x004F"])]
    suites: Vec<String>,
}

pub(crate) fn run(args: VectorsArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for name in &args.suites {
        let suite: CipherSuite = name.parse().map_err(|e| format!("--suite {name}: {e}"))?;
        let text = vectors::generate(suite).map_err(|e| format!("{suite}: {e}"))?;
        let path = args
            .out
            .join(format!("mls-tls-0x{:04x}.json", suite.code_point()));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
