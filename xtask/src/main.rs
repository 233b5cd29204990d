//! `cargo xtask`: project automation that composes the `spat` binary (fetching data, reproducing
//! the paper's tables and figures, benchmarks). It links no ML code itself, so it builds in seconds.

use clap::{Parser, Subcommand};
use spat_reproduce::{reproduce, tune};
use xtask::fetch;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download an official data-set archive, verify its checksum and unpack it into `data/`.
    FetchData(fetch::Args),
    /// Run the experiments behind a table or figure of the thesis and write results.md beside
    /// the paper's numbers (see `--dry-run` for the run matrix and its cost).
    // Boxed: reproduce's options (Slurm's among them) dwarf fetch-data's.
    Reproduce(Box<reproduce::Args>),
    /// Search for the best training radius ε and SPAT α by asynchronous successive halving
    /// (ASHA) over resumable training runs, here (`--jobs`, `--devices`) or on Slurm; writes
    /// search.md / search.json / search.png (see `--dry-run` for the trials and budget).
    Tune(Box<tune::Args>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::FetchData(a) => fetch::run(a),
        Command::Reproduce(a) => reproduce::run(*a),
        Command::Tune(a) => tune::run(*a),
    }
}
