//! `spat eval`: clean accuracy and accuracy under a list of attacks, on the test set or on a
//! training run's held-out validation split.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use spat_attacks::AttackSpec;
use spat_data::ImageSet;
use spat_spec::report::EvalReport;
use spat_spec::run::{files, RunState};
use spat_spec::RunConfig;

use super::common::{
    eval_batches, eval_loader, parse_device, read_run_config, AttackRunArgs, CheckpointArgs,
    EVAL_BATCH_SIZE,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: CheckpointArgs,
    /// Comma-separated attacks: clean, fgsm, pgdN (PGD-CE), cwN (CW∞ by PGD), pgd-kl / pgdN-kl,
    /// pgd-ls:A / pgdN-ls:A (PGD-LS), any with @eps/10 for step ε/10 or @step=S; AutoAttack's
    /// apgd-ce, apgd-dlr, apgd-t, fab-t, square (apgdNxR-ce, squareQ, @targets=K, @eot=K), and
    /// autoattack (standard) / autoattack-rand. Default: §6.1.1's clean,fgsm,pgd20,cw30.
    #[arg(long, default_value = "clean,fgsm,pgd20,cw30")]
    pub attacks: String,
    #[command(flatten)]
    pub run: AttackRunArgs,
    /// Evaluate on the validation split that the training run in folder RUN held out (`spat
    /// train --val-subset`) instead of test images: rebuilt from RUN/config.json's size and seed
    /// out of the training images in --data-dir, which must be those RUN/state.json
    /// fingerprints. --dataset must be the run's; --seed and --batch-size default to the run's,
    /// so that clean and the run's evaluation attack (pgd20) at its --eps give its metrics.jsonl
    /// numbers for the same weights. Not with --test-subset.
    #[arg(long, value_name = "RUN", conflicts_with = "test_subset")]
    pub validation_of: Option<PathBuf>,
    /// Print one JSON object instead of a table: {"examples", "eps", "norm", "accuracy": {"ATTACK": %},
    /// "worst_case": %, "split"}, attacks by their canonical names (`pgd-kl` is `pgd20-kl`),
    /// "split" the images measured: "test", or "validation of RUN"; with an AutoAttack, also
    /// "autoattack": {"NAME": {"stages": [{"attack", "robust", "seconds"}], "robust", "seconds",
    /// "warnings", ...}}.
    #[arg(long)]
    pub json: bool,
}

/// `--json`'s object: the report and which images it measured.
#[derive(serde::Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a EvalReport,
    split: &'a str,
}

/// The images evaluated, what to call them, and the seed and batch size unless given.
struct Images {
    set: ImageSet,
    split: String,
    seed: u64,
    batch_size: usize,
}

pub fn run(a: Args) -> Result<()> {
    // Attack names are checked before anything slow happens.
    let specs = AttackSpec::parse_list(&a.attacks)?;
    let eps = a.run.eps(a.target.dataset)?;
    let device = parse_device(&a.run.device)?;
    // The run's configuration is checked before the model and the data are read.
    let validation_of = match &a.validation_of {
        Some(run) => Some((run, validated_run_config(run, a.target.dataset)?)),
        None => None,
    };
    let model = a.target.load_model(&device)?;
    let images = match validation_of {
        Some((run, config)) => validation_images(run, config, &a.target.data_dir)?,
        None => Images {
            set: a.target.load_test(a.run.test_subset)?,
            split: "test".into(),
            seed: 0,
            batch_size: EVAL_BATCH_SIZE,
        },
    };
    let loader = eval_loader(images.set, a.run.batch_size_or(images.batch_size));
    let report = spat_attacks::evaluate(
        &*model,
        eval_batches(&loader, &device),
        &specs,
        eps,
        a.run.norm,
        a.run.seed_or(images.seed),
        true,
    )?;
    tracing::info!(examples = report.examples, eps = report.eps, norm = %report.norm, split = %images.split, "evaluated");
    if a.json {
        let output = Output {
            report: &report,
            split: &images.split,
        };
        println!("{}", serde_json::to_string(&output)?);
    } else {
        print_table(&report, &images.split);
    }
    Ok(())
}

/// The configuration of the run in `run`, refused unless it trained on `dataset` and held out a
/// validation split.
fn validated_run_config(run: &Path, dataset: spat_spec::Dataset) -> Result<RunConfig> {
    let option = "--validation-of";
    let config = read_run_config(option, run, "not a spat training run")?;
    let config_path = run.join(files::CONFIG);
    if config.dataset != dataset {
        bail!(
            "--dataset {dataset}: the run {} trained on {} ({}); give --dataset {}",
            run.display(),
            config.dataset,
            config_path.display(),
            config.dataset
        );
    }
    if config.val_subset.is_none() {
        bail!(
            "{option} {}: the run holds out no validation split (no val_subset in {}); train \
             with --val-subset N to have one",
            run.display(),
            config_path.display()
        );
    }
    Ok(config)
}

/// The validation split the run in `run` (configured as `config`) held out, read from
/// `data_dir`'s training images.
fn validation_images(run: &Path, mut config: RunConfig, data_dir: &Path) -> Result<Images> {
    let trained_from = std::mem::replace(&mut config.data_dir, data_dir.to_path_buf());
    let split = spat_train::training_split(&config)
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    check_training_data(run, &config, &split, &trained_from)?;
    let set = split.validation.context("val_subset is set")?;
    Ok(Images {
        set,
        split: format!("validation of {}", run.display()),
        seed: config.seed,
        batch_size: config.eval_batch_size,
    })
}

/// Refuses `config.data_dir` (where `split` was read) if the images the run trained on are not
/// those `state.json` fingerprints: another copy or version of the data set would give another
/// validation split without a word. The run fingerprints only the images it trains on, so this
/// is the check there is for the held-out ones. A run that has committed no epoch has no record
/// to check against; for RST the record fingerprints the labelled images together with the
/// pseudo-labelled ones, which are not read here, so it cannot be checked either.
fn check_training_data(
    run: &Path,
    config: &RunConfig,
    split: &spat_train::TrainingSplit,
    trained_from: &Path,
) -> Result<()> {
    let state_path = run.join(files::STATE);
    if config.is_semi_supervised()
        || !spat_spec::fs::present(&state_path)
            .with_context(|| format!("--validation-of {}", state_path.display()))?
    {
        return Ok(());
    }
    let state: RunState = spat_spec::fs::read_json(&state_path, "a run state")?;
    let found = split.train.fingerprint();
    if found != state.identity.train_data {
        bail!(
            "--data-dir {}: its {} training images are not those the run trained on \
             (fingerprint {found}, {} records {}); give the --data-dir the run read, {} when it started",
            config.data_dir.display(),
            config.dataset,
            state_path.display(),
            state.identity.train_data,
            trained_from.display()
        );
    }
    Ok(())
}

fn print_table(report: &EvalReport, split: &str) {
    let images = match split {
        "test" => "test images".to_string(),
        other => format!("images ({other})"),
    };
    println!(
        "{} {images}, {} eps {:.5}:",
        report.examples, report.norm, report.eps
    );
    for (name, acc) in &report.accuracy {
        println!("  {name:<16} {acc:>6.2} %");
    }
    println!("  {:<16} {:>6.2} %", "worst case", report.worst_case);
    for (name, aa) in &report.autoattack {
        println!(
            "{name} ({:.1} s), robust accuracy after each attack:",
            aa.seconds
        );
        for stage in &aa.stages {
            println!(
                "  {:<16} {:>6.2} %  ({:.1} s)",
                stage.attack, stage.robust, stage.seconds
            );
        }
        for w in &aa.warnings {
            println!("  warning: {w}");
        }
    }
}
