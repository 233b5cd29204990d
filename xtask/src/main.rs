//! `cargo xtask`: project automation that composes the `spat` binary (fetching data, reproducing
//! the paper's tables and figures, benchmarks). It links no ML code itself, so it builds in seconds.

use clap::{Parser, Subcommand};
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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::FetchData(a) => fetch::run(a),
    }
}
