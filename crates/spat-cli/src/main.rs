//! `spat`: train, attack and evaluate adversarially robust image classifiers (SPAT thesis).
//!
//! Every command writes its results as files or prints them (`--json` for machines); logs go to
//! stderr through `tracing` (`RUST_LOG=info` for progress); a failure is one `error:` line on
//! stderr and exit status 1.
// The doc comments of this binary are clap's `--help` text, which writes optional parts as
// `name[-part]`: brackets there are not links.
#![allow(rustdoc::broken_intra_doc_links)]

mod commands;
mod malloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "spat",
    version,
    about = "Semantics-preserving adversarial training (SPAT) and robust evaluation",
    long_about = "Semantics-preserving adversarial training (SPAT) and robust evaluation.\n\n\
Defaults are the thesis's settings (section in brackets in each option's help). Data sets are read \
from their official binary files; `cargo xtask fetch-data <cifar10|cifar100|stl10|ti500k>` fetches \
them. Logs: RUST_LOG=info."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier: Madry, TRADES, MART or RST, optionally with SPAT's PGD-LS adversary.
    Train(commands::train::Args),
    /// Clean accuracy and accuracy under a list of attacks, in percent.
    Eval(commands::eval::Args),
    /// Robust accuracy under PGD-LS over a grid of α, with PGD-CE and PGD-KL (§5.2).
    SweepAlpha(commands::sweep_alpha::Args),
    /// PNG grid of test images and their adversarial examples (Figures 5.1 / 5.2).
    Visualize(commands::visualize::Args),
    /// PNG grid of test images and the input gradient of each model (Figure 4.1).
    Gradients(commands::gradients::Args),
    /// PNG of one metric of several training runs over epochs (robust accuracy by default), each
    /// labelled by method and α, its best epoch marked; the numbers drawn go beside it (.json).
    Plot(commands::plot::Args),
    /// Write a PyTorch checkpoint (.pt/.pth) as spat's safetensors, printing what was fitted
    /// (prefixes stripped, unused `sub_block1.*` dropped, `mu`/`sigma` kept).
    Convert(commands::convert::Args),
    /// Record counts, class balance and per-channel mean/std of a data set.
    DataInfo(commands::data_info::Args),
    /// Parameter, buffer and FLOP counts of a model preset.
    ModelInfo(commands::model_info::Args),
    /// Images/s of a standard step, a TRADES+SPAT PGD-10 step and PGD-20 evaluation, optionally
    /// against `bench/pytorch_reference.py`'s results for the same shapes.
    Bench(commands::bench::Args),
}

fn main() {
    malloc::retain_freed_memory();
    // candle's element-wise thread pool waits for its workers by spinning; on a machine whose
    // cores are shared with other jobs a descheduled worker turns that into whole time slices of
    // wasted CPU (5x the CPU time of a one-thread run, measured on a tiny training run). spat's
    // own kernels (convolutions, batch norm) use rayon's pool, which sleeps instead. Set before
    // the first tensor operation creates candle's pool; an explicit setting is kept.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or a Slurm output file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Kept alive for the whole process: it holds the fault points configured by FAILPOINTS.
    #[cfg(feature = "failpoints")]
    let _faults = fail::FailScenario::setup();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_usage_error(e),
    };
    let result = on_compute_pool(move || dispatch(cli.command));
    if let Err(e) = result {
        // One line, the whole cause chain: scripts grep it, people read it.
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(1);
    }
}

/// Runs `work` on one of rayon's worker threads. Every parallel kernel called from the main
/// thread is otherwise injected into the pool, the main thread sleeping on a latch until a worker
/// has run it: two thread wake-ups per kernel, thousands per training step, and with one thread
/// the whole step crossing between two threads (perf: 2.8 % of a one-thread ResNet-18 step in
/// `try_to_wake_up` alone). Called from a worker, a kernel runs its first part in place and the
/// other workers steal the rest, as OpenMP's calling thread does in PyTorch.
fn on_compute_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    // Deeper than the main thread's 8 MiB: candle's backward pass walks the graph recursively.
    const WORKER_STACK_BYTES: usize = 64 << 20;
    // Only fails when a global pool exists already, which nothing before this line creates; the
    // pool it would have been is then the one `scope` runs on.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK_BYTES)
        .build_global();
    rayon::scope(|_| work())
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::SweepAlpha(a) => commands::sweep_alpha::run(a),
        Command::Visualize(a) => commands::visualize::run(a),
        Command::Gradients(a) => commands::gradients::run(a),
        Command::Plot(a) => commands::plot::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::DataInfo(a) => commands::data_info::run(a),
        Command::ModelInfo(a) => commands::model_info::run(a),
        Command::Bench(a) => commands::bench::run(a),
    }
}

/// Help and version go to stdout as clap prints them; a usage error becomes one `error:` line
/// (clap's message without its usage block), exit status 2.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let line: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("{}", line.join(" "));
    std::process::exit(2);
}
