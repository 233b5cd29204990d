//! `spat`: train, attack and evaluate adversarially robust image classifiers.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spat",
    version,
    about = "Semantics-preserving adversarial training (SPAT) and robust evaluation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record counts, class balance and per-channel mean/std of a data set.
    DataInfo(commands::data_info::Args),
    /// Parameter, buffer and FLOP counts of a model preset.
    ModelInfo(commands::model_info::Args),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::DataInfo(a) => commands::data_info::run(a),
        Command::ModelInfo(a) => commands::model_info::run(a),
    };
    if let Err(e) = result {
        // One line, the whole cause chain: scripts grep it, people read it.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
