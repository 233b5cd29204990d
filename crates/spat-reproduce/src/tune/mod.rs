//! `cargo xtask tune`: a budgeted search for the best training radius ε and SPAT weight α of an
//! adversarial-training method, by asynchronous successive halving ([`asha`]) over resumable
//! `spat train` runs, reported as a table and a heat map ([`report`]).
//!
//! A trial is one (ε, α) pair ([`space`]), trained in `<out>/trials/<name>/` as one run planned
//! for the top rung's epochs; a segment trains it to its next rung and measures the objective on
//! the run's held-out validation split ([`worker`]). Which segments run is decided by
//! [`asha::schedule`] in virtual time, from the recorded results alone, so a killed and resumed
//! search, `--jobs 2` and Slurm array tasks make the same decisions. The state is one file,
//! `<out>/state.json` ([`state`]), written atomically after each result. When the search is
//! finished the winner is evaluated on the test set and the report written ([`finish`]).

pub mod asha;
pub mod finish;
pub mod report;
pub mod search;
pub mod space;
pub mod state;
pub mod submit;
pub mod worker;

use std::path::PathBuf;

use anyhow::Result;
use spat_spec::{Dataset, Method, Norm};

use crate::matrix::Scale;
use crate::slurm::{self, SlurmArgs};

/// The options of `cargo xtask tune`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Training method: trades | mart | madry | rst (rst reads the pseudo-labelled file from
    /// --data-dir).
    #[arg(long)]
    pub method: Method,
    /// Data set: cifar10 | cifar100 | stl10.
    #[arg(long, default_value = "cifar10")]
    pub dataset: Dataset,
    /// Network (default: the scale's: tiny at smoke, preact-resnet-18 at short, the thesis's at
    /// full).
    #[arg(long)]
    pub model: Option<String>,
    /// The threat model's radius the objective is measured at (default 8/255 in linf, 0.5 in l2).
    #[arg(long)]
    pub eval_eps: Option<String>,
    /// The threat model's norm: linf | l2 (training and evaluation).
    #[arg(long, default_value = "linf")]
    pub norm: Norm,
    /// Training radii: a list (`4/255,6/255,8/255`) or, with --samples, a range (`4/255..10/255`).
    #[arg(long)]
    pub train_eps: String,
    /// SPAT's α values in [0, 1]: a list (`0,0.1,0.3`; `none` = the method's own adversary, no
    /// SPAT) or, with --samples, a range (`0..0.6`).
    #[arg(long)]
    pub alpha: String,
    /// Draw this many (ε, α) pairs from the ranges instead of a grid.
    #[arg(long)]
    pub samples: Option<String>,
    /// Seed of the trial order (the grid is shuffled: ASHA starts trials in order) and draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// smoke = `tiny` on a CPU in minutes (needs the real CIFAR-10); short = PreAct-ResNet-18
    /// (ResNet-18 on STL-10), top rung 15 epochs; full = the thesis's model and epochs.
    #[arg(long, value_enum, default_value_t = Scale::Full)]
    pub scale: Scale,
    /// The attack whose robust accuracy on the validation split ranks trials (ties: clean
    /// accuracy): pgd20 | autoattack | any attack spec of `spat eval --attacks`.
    #[arg(long, default_value = "pgd20")]
    pub objective: String,
    /// ASHA's reduction factor η: the top 1/η of a rung is promoted (default 3).
    #[arg(long)]
    pub eta: Option<String>,
    /// Epochs of the first rung R0 (rung k trains to R0·η^k; default: the scale's).
    #[arg(long)]
    pub min_epochs: Option<String>,
    /// Number of rungs (default: the scale's).
    #[arg(long)]
    pub rungs: Option<String>,
    /// Training images of each trial (default: the scale's; smoke 2,000; otherwise all but the
    /// validation split).
    #[arg(long)]
    pub train_subset: Option<String>,
    /// Validation images held out of the training set: the objective is measured on them
    /// (default: the scale's).
    #[arg(long)]
    pub val_subset: Option<String>,
    /// Training batch size (default: the scale's).
    #[arg(long)]
    pub batch_size: Option<String>,
    /// Test images of the winner's final evaluation (default: smoke 256, otherwise all).
    #[arg(long)]
    pub test_images: Option<String>,
    /// Run up to N segments at once (threads here; with --slurm, N array tasks). The search's
    /// decisions depend on N (ASHA's workers), so a search resumes only with the same N.
    #[arg(long, default_value = "1", conflicts_with = "devices")]
    pub jobs: String,
    /// One worker per device: CUDA ordinals (`0,1`) or device names.
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
    /// Device of every `spat` command: cpu | cuda:N (default: cpu at smoke, cuda:0 otherwise).
    #[arg(long)]
    pub device: Option<String>,
    /// Folder holding the data sets (default: $SPAT_DATA_DIR, else data/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output directory (default: results/tune-METHOD-DATASET-SCALE).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the trials, rungs, epoch budget against the exhaustive grid's and the `spat`
    /// commands, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run one worker and exit (what each Slurm array task runs).
    #[arg(long, hide = true, conflicts_with_all = ["dry_run", "devices"])]
    pub worker: bool,
    /// The Slurm options (`--slurm` and what it takes).
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// `cargo xtask tune`: a dry run, a Slurm submission, one worker (a Slurm task), or the whole
/// search run here.
pub fn run(args: Args) -> Result<()> {
    let s = search::Search::resolve(&args)?;
    if args.dry_run {
        return search::dry_run(&s);
    }
    state::open(&s)?;
    if args.slurm.slurm {
        return submit::submit(&args, &s);
    }
    let spat = crate::workspace::spat_binary(s.slots.iter().any(|d| d.starts_with("cuda")))?;
    if args.worker {
        worker::run_one(&s, &spat, &s.slots[0])?;
        return finish::finish(&s, &spat, &s.slots[0], finish::Waiting::Leave);
    }
    worker::run_all(&s, &spat)?;
    finish::finish(&s, &spat, &s.slots[0], finish::Waiting::Wait)
}

/// A count option: positive and within `limit`, naming the option when not.
pub(crate) fn count(option: &str, text: &str, limit: spat_spec::limits::Limit) -> Result<usize> {
    Ok(spat_spec::limits::parse_count(option, text, limit)?)
}

/// `result` with its error on one line after `option` (`--eval-eps: bad radius ...`).
pub(crate) fn named<T, E: std::fmt::Display>(option: &str, result: Result<T, E>) -> Result<T> {
    result.map_err(|e| anyhow::anyhow!("{option}: {e:#}"))
}

/// `--jobs` as a count of workers.
pub(crate) fn workers(text: &str) -> Result<usize> {
    slurm::workers(text)
        .map(|n| n as usize)
        .map_err(|e| anyhow::anyhow!("--jobs: {e}"))
}
