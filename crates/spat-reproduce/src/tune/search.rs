//! One `cargo xtask tune` command line, validated and resolved: the search's definition (what a
//! resumed search must match, [`SearchDef`]) and where and on which devices it runs.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spat_policy::PaperSettings;
use spat_spec::dataset::{CIFAR100_RECORD_BYTES, CIFAR10_RECORD_BYTES};
use spat_spec::limits::{BATCH, EPOCHS, IMAGES, LIST};
use spat_spec::{AttackSpec, Dataset, Method, ModelName, Norm, Radius, Split};

use super::asha::Rungs;
use super::space::{self, Trial};
use super::{count, named, workers, Args};
use crate::data::{missing_files, DataDirs};
use crate::matrix::{Scale, SHORT_EPOCHS, VAL_IMAGES, VAL_IMAGES_STL10};
use crate::runner::device_name;
use crate::workspace::workspace_root;

/// The smoke scale's sizes: a `tiny` network on real CIFAR-10 images, on a CPU, as measured for
/// issue 28 (CPU seconds of TRADES + SPAT trials; the README's tune section): at 1,000 validation
/// images the paired image noise of a difference between trials is ~0.8 points, below the
/// training noise (1–1.6) and the gaps between training radii from rung 1 on (2–6), while the
/// reproduction's 32 images would give ~4.5; 2,000 training images keep a 12-trial search with
/// the winner's AutoAttack near 12 minutes (p50) at `--jobs 2`.
pub mod smoke {
    /// Training images of each trial.
    pub const TRAIN_IMAGES: usize = 2_000;
    /// Validation images the objective is measured on.
    pub const VAL_IMAGES: usize = 1_000;
    /// Training batch size.
    pub const BATCH: usize = 64;
    /// Epochs of the first rung.
    pub const MIN_EPOCHS: usize = 2;
    /// ASHA's reduction factor.
    pub const ETA: usize = 3;
    /// Rungs: 2, 6, 18 epochs.
    pub const RUNGS: usize = 3;
    /// Test images of the winner's evaluation (the shared data holds the first 1,000).
    pub const TEST_IMAGES: usize = 256;
    /// Test images of `spat train`'s own final evaluation.
    pub const MONITOR_IMAGES: usize = 100;
}

/// ASHA's reduction factor unless `--eta` says otherwise.
pub const DEFAULT_ETA: usize = 3;

/// Everything that defines a search: a search resumes only if this is unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDef {
    /// The training method.
    pub method: Method,
    /// The data set.
    pub dataset: Dataset,
    /// The network.
    pub model: String,
    /// The threat model's norm.
    pub norm: Norm,
    /// The radius the objective is measured at.
    pub eval_eps: Radius,
    /// The objective's attack, canonical (`pgd20`).
    pub objective: String,
    /// `smoke`, `short` or `full`.
    pub scale: String,
    /// Training images of each trial (`None`: all but the validation split).
    pub train_subset: Option<usize>,
    /// Validation images held out of the training set.
    pub val_subset: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Test images of `spat train`'s own final evaluation.
    pub monitor_images: usize,
    /// Test images of the winner's evaluation (`None`: the whole test set).
    pub test_images: Option<usize>,
    /// The rungs: R0, η and their count.
    pub rungs: Rungs,
    /// ASHA's workers: segments running at once.
    pub slots: usize,
    /// Seed of the trial order and draws (and of every run).
    pub seed: u64,
    /// The trials, in the order they start.
    pub trials: Vec<Trial>,
}

impl SearchDef {
    /// The options whose values differ between `self` (recorded) and `now`.
    pub fn changes(&self, now: &SearchDef) -> Vec<String> {
        let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
            (serde_json::to_value(self), serde_json::to_value(now))
        else {
            return vec!["the search".into()];
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| {
                let shown = |x: Option<&Value>| x.map_or("-".to_string(), Value::to_string);
                match k.as_str() {
                    "trials" => "--train-eps/--alpha/--samples/--seed (the trials)".to_string(),
                    "slots" => format!("--jobs ({} workers, now {})", v, shown(b.get(k))),
                    key => format!("--{} ({} -> {})", key.replace('_', "-"), v, shown(b.get(k))),
                }
            })
            .collect()
    }

    /// Epochs ASHA trains at most (every trial to rung 0, then ⌊n/η⌋ of the n trials of each
    /// rung on to the next), and the exhaustive grid's (every trial to the top rung).
    pub fn budget(&self) -> (usize, usize) {
        let r = &self.rungs;
        let (mut n, mut asha) = (self.trials.len(), 0);
        for k in 0..r.count {
            let from = if k == 0 { 0 } else { r.epochs(k - 1) };
            asha += n * (r.epochs(k) - from);
            n /= r.eta;
        }
        (asha, self.trials.len() * r.max_epochs())
    }

    /// Epochs of the top rung: every run's planned length.
    pub fn max_epochs(&self) -> usize {
        self.rungs.max_epochs()
    }
}

/// A resolved command line.
#[derive(Debug, Clone)]
pub struct Search {
    /// What the search is.
    pub def: SearchDef,
    /// The output directory.
    pub out: PathBuf,
    /// Where the data is read from.
    pub dirs: DataDirs,
    /// One device per worker.
    pub slots: Vec<String>,
}

impl Search {
    /// Validates every option and resolves the search (reading nothing but the data's presence).
    pub fn resolve(a: &Args) -> Result<Self> {
        ensure!(
            a.method != Method::Standard,
            "--method standard has no adversary to tune; expected trades, mart, madry or rst"
        );
        let eps = space::parse_eps(&a.train_eps)?;
        let alpha = space::parse_alpha(&a.alpha)?;
        let samples = opt_count("--samples", &a.samples, LIST)?;
        let trials = space::trials(&eps, &alpha, samples, a.seed)?;
        let model = model(a)?;
        let sizes = Sizes::of(a)?;
        let rungs = rungs(a)?;
        let slots = slots(a)?;
        let def = SearchDef {
            method: a.method,
            dataset: a.dataset,
            model,
            norm: a.norm,
            eval_eps: eval_eps(a)?,
            objective: objective(&a.objective)?,
            scale: a.scale.to_string(),
            train_subset: sizes.train,
            val_subset: sizes.val,
            batch_size: sizes.batch,
            monitor_images: sizes.monitor,
            test_images: sizes.test,
            rungs,
            slots: slots.len(),
            seed: a.seed,
            trials,
        };
        let out = a.out.clone().unwrap_or_else(|| {
            workspace_root()
                .join("results")
                .join(format!("tune-{}-{}-{}", a.method, a.dataset, a.scale))
        });
        spat_spec::fs::check_path("--out", &out)?;
        let dirs = data_dirs(a, &def)?;
        Ok(Search {
            def,
            out,
            dirs,
            slots,
        })
    }

    /// The run directory of trial `t`.
    pub fn trial_dir(&self, t: usize) -> PathBuf {
        self.out.join("trials").join(self.def.trials[t].name())
    }

    /// The folder of CIFAR-10/100/STL-10 the runs read.
    pub fn data_dir(&self) -> &Path {
        self.dirs.dir(self.def.dataset)
    }
}

fn opt_count(
    option: &str,
    v: &Option<String>,
    limit: spat_spec::limits::Limit,
) -> Result<Option<usize>> {
    v.as_deref().map(|t| count(option, t, limit)).transpose()
}

/// `--model`, or the scale's network for the data set.
fn model(a: &Args) -> Result<String> {
    let rst = a.method == Method::Rst;
    let name = match (&a.model, a.scale) {
        (Some(m), _) => m.clone(),
        (None, Scale::Smoke) => "tiny".into(),
        (None, _) if a.dataset == Dataset::Stl10 => "resnet-18".into(),
        (None, Scale::Short) => "preact-resnet-18".into(),
        (None, Scale::Full) if rst => "wrn-28-10".into(),
        (None, Scale::Full) => "wrn-34-10".into(),
    };
    named(&format!("--model {name}"), name.parse::<ModelName>())?;
    Ok(name)
}

/// Training, validation, batch and test sizes.
struct Sizes {
    train: Option<usize>,
    val: usize,
    batch: usize,
    monitor: usize,
    test: Option<usize>,
}

impl Sizes {
    fn of(a: &Args) -> Result<Self> {
        let smoke = a.scale == Scale::Smoke;
        let paper = PaperSettings::of(a.dataset, a.method, a.method == Method::Rst, false);
        let default_val = match a.dataset {
            _ if smoke => smoke::VAL_IMAGES,
            Dataset::Stl10 => VAL_IMAGES_STL10,
            _ => VAL_IMAGES,
        };
        let s = Sizes {
            train: opt_count("--train-subset", &a.train_subset, IMAGES)?
                .or(smoke.then_some(smoke::TRAIN_IMAGES)),
            val: opt_count("--val-subset", &a.val_subset, IMAGES)?.unwrap_or(default_val),
            batch: opt_count("--batch-size", &a.batch_size, BATCH)?.unwrap_or(if smoke {
                smoke::BATCH
            } else {
                paper.batch_size.value
            }),
            monitor: match a.scale {
                Scale::Smoke => smoke::MONITOR_IMAGES,
                Scale::Short => 500,
                Scale::Full => 1_000,
            },
            test: opt_count("--test-images", &a.test_images, IMAGES)?
                .or(smoke.then_some(smoke::TEST_IMAGES)),
        };
        let whole = a.dataset.official_count(Split::Train);
        ensure!(
            s.val + s.train.unwrap_or(1) <= whole,
            "--val-subset {} with --train-subset {}: {} holds {whole} training images",
            s.val,
            s.train.map_or("(the rest)".into(), |n| n.to_string()),
            a.dataset
        );
        Ok(s)
    }
}

/// The rungs: `--min-epochs`, `--eta`, `--rungs`, or the scale's. At short and full scale R0 is
/// the run's epochs (15, or the thesis's) over η^(rungs-1), rounded, so that the top rung is
/// that length whenever η^(rungs-1) divides it (CIFAR's 90 epochs: 10, 30, 90).
fn rungs(a: &Args) -> Result<Rungs> {
    let smoke = a.scale == Scale::Smoke;
    let eta =
        opt_count("--eta", &a.eta, EPOCHS)?.unwrap_or(if smoke { smoke::ETA } else { DEFAULT_ETA });
    ensure!(
        eta >= 2,
        "--eta {eta}: ASHA's reduction factor must be at least 2"
    );
    let count_ = opt_count("--rungs", &a.rungs, LIST)?.unwrap_or(match a.scale {
        Scale::Smoke => smoke::RUNGS,
        Scale::Short => 2,
        Scale::Full => 3,
    });
    let r0 = match opt_count("--min-epochs", &a.min_epochs, EPOCHS)? {
        Some(r) => r,
        None if smoke => smoke::MIN_EPOCHS,
        None => {
            let top = run_epochs(a.scale, a.dataset, a.method).unwrap_or(1);
            let steps = eta.checked_pow(count_ as u32 - 1).unwrap_or(usize::MAX);
            ((top as f64 / steps as f64).round() as usize).max(1)
        }
    };
    named("--min-epochs/--eta/--rungs", Rungs::new(r0, eta, count_))
}

/// The epochs of a run at `scale` (short: 15; full: the thesis's), which the top rung matches
/// when η^(rungs-1) divides it; `None` at the smoke scale.
fn run_epochs(scale: Scale, dataset: Dataset, method: Method) -> Option<usize> {
    match scale {
        Scale::Smoke => None,
        Scale::Short => Some(SHORT_EPOCHS),
        Scale::Full => {
            let paper = PaperSettings::of(dataset, method, method == Method::Rst, false);
            Some(paper.epochs.value)
        }
    }
}

fn eval_eps(a: &Args) -> Result<Radius> {
    let text = a.eval_eps.clone().unwrap_or_else(|| match a.norm {
        Norm::L2 => "0.5".into(),
        _ => "8/255".into(),
    });
    let r: Radius = named("--eval-eps", text.parse())?;
    ensure!(
        r.value() > 0.0,
        "--eval-eps {text}: the radius must be positive"
    );
    Ok(r)
}

/// `--objective` as one attack spec, in its canonical form.
fn objective(text: &str) -> Result<String> {
    let spec: AttackSpec = named(&format!("--objective {text}"), text.parse())?;
    ensure!(
        spec != AttackSpec::Clean,
        "--objective clean: the objective is a robust accuracy; name an attack (pgd20, autoattack)"
    );
    Ok(spec.to_string())
}

/// One device per worker: `--devices`, else `--jobs` times `--device`.
fn slots(a: &Args) -> Result<Vec<String>> {
    if !a.devices.is_empty() {
        let d: Vec<String> = a
            .devices
            .iter()
            .map(|d| device_name(d))
            .collect::<Result<_>>()?;
        count(
            "--devices",
            &d.len().to_string(),
            spat_spec::limits::WORKERS,
        )?;
        return Ok(d);
    }
    let device = match &a.device {
        Some(d) => device_name(d)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--devices", "--device")))?,
        None if a.scale == Scale::Smoke => "cpu".into(),
        None => "cuda:0".into(),
    };
    Ok(vec![device; workers(&a.jobs)?])
}

/// The data folders, checked: the data set is there with enough training images for the
/// validation split and the training subset (the embedded data/cifar-10-mini's 512 images are
/// too few for the smoke scale's split), and RST's pseudo-labelled file.
fn data_dirs(a: &Args, def: &SearchDef) -> Result<DataDirs> {
    let root = a
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("SPAT_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("data"));
    let dirs = DataDirs::resolve(Some(&root), Scale::Full);
    if a.dry_run {
        return Ok(dirs);
    }
    // The smoke scale's files: CIFAR-10's first training file suffices when it holds enough.
    let missing = missing_files(def.dataset, Scale::Smoke, &dirs);
    ensure!(
        missing.is_empty(),
        "--data-dir {}: {} is not here: missing {}; get it with `cargo xtask fetch-data {}` or \
         point --data-dir or SPAT_DATA_DIR at it",
        root.display(),
        def.dataset,
        missing.join(", "),
        def.dataset
    );
    let have = training_images(def.dataset, dirs.dir(def.dataset));
    let need = def.val_subset + def.train_subset.unwrap_or(1);
    ensure!(
        need <= have,
        "--data-dir {}: holds {have} {} training images; the search needs {} for its \
         validation split and {} to train on (the smoke scale needs the real CIFAR-10: `cargo \
         xtask fetch-data cifar10`, or --data-dir/SPAT_DATA_DIR pointing at it)",
        root.display(),
        def.dataset,
        def.val_subset,
        def.train_subset
            .map_or("some".to_string(), |n| n.to_string())
    );
    if def.method == Method::Rst && !dirs.pseudo_labeled().is_file() {
        bail!(
            "--method rst needs {} (`cargo xtask fetch-data ti500k` says where to get it)",
            dirs.pseudo_labeled().display()
        );
    }
    Ok(dirs)
}

/// Training images in the data set's files under `dir` (or its official folder): counted from
/// CIFAR's record sizes; STL-10's official count.
fn training_images(d: Dataset, dir: &Path) -> usize {
    let record = match d {
        Dataset::Cifar10 => CIFAR10_RECORD_BYTES,
        Dataset::Cifar100 => CIFAR100_RECORD_BYTES,
        Dataset::Stl10 => return d.official_count(Split::Train),
    };
    let size = |base: &Path| -> u64 {
        d.files(Split::Train)
            .iter()
            .filter_map(|f| std::fs::metadata(base.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let bytes = size(dir).max(size(&dir.join(d.dir_name())));
    (bytes / record as u64) as usize
}

/// `--dry-run`: the trials, the rungs, the epoch budget against the exhaustive grid's, and the
/// `spat` commands of a trial's segments.
pub fn dry_run(s: &Search) -> Result<()> {
    let d = &s.def;
    let r = &d.rungs;
    let rungs: Vec<String> = (0..r.count).map(|k| r.epochs(k).to_string()).collect();
    println!(
        "tune {} on {} ({}, {} scale): {} trials, rungs at {} epochs (R0 {}, η {}), {} workers, \
         objective {} at {} ({}) on {} validation images",
        d.method,
        d.dataset,
        d.model,
        d.scale,
        d.trials.len(),
        rungs.join(", "),
        r.min_epochs,
        r.eta,
        d.slots,
        d.objective,
        d.eval_eps,
        d.norm,
        d.val_subset
    );
    let scale: Scale = clap::ValueEnum::from_str(&d.scale, false).unwrap_or(Scale::Full);
    if let Some(e) = run_epochs(scale, d.dataset, d.method).filter(|&e| e != d.max_epochs()) {
        println!(
            "(the top rung is {} epochs where the scale's run is {e}: R0·η^(rungs-1) cannot \
             equal it; --min-epochs, --eta and --rungs choose another)",
            d.max_epochs()
        );
    }
    println!();
    print!(
        "{}",
        crate::markdown::table(
            &["trial", "ε", "α", "run directory"],
            d.trials.iter().map(|t| {
                [
                    t.id.to_string(),
                    t.eps.to_string(),
                    t.alpha.map_or("none (no SPAT)".into(), |a| a.to_string()),
                    s.trial_dir(t.id).display().to_string(),
                ]
            }),
        )
    );
    let (asha, grid) = d.budget();
    println!();
    println!(
        "Epochs: at most {asha} for ASHA (every trial at rung 0, the top 1/η promoted at each \
         rung), against {grid} for the exhaustive grid ({} trials × {} epochs).",
        d.trials.len(),
        d.max_epochs()
    );
    println!();
    println!("The segments of trial 0 (others alike):");
    for k in 0..r.count {
        let seg = super::worker::SegmentPlan::new(s, 0, k);
        for args in seg.commands() {
            println!("  spat {}", crate::command::quote(&args));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(trials: usize, rungs: Rungs) -> SearchDef {
        let t = |id| Trial {
            id,
            eps: Radius::over_255(8.0),
            alpha: Some(0.1),
        };
        SearchDef {
            method: Method::Trades,
            dataset: Dataset::Cifar10,
            model: "tiny".into(),
            norm: Norm::Linf,
            eval_eps: Radius::over_255(8.0),
            objective: "pgd20".into(),
            scale: "smoke".into(),
            train_subset: Some(2_000),
            val_subset: 1_000,
            batch_size: 64,
            monitor_images: 100,
            test_images: Some(256),
            rungs,
            slots: 2,
            seed: 0,
            trials: (0..trials).map(t).collect(),
        }
    }

    #[test]
    fn the_budget_is_each_rungs_survivors_times_its_epochs() {
        // 12 trials to 2 epochs, 4 from 2 to 6, 1 from 6 to 18; the grid: 12 × 18.
        let d = def(12, Rungs::new(2, 3, 3).unwrap());
        assert_eq!(d.budget(), (12 * 2 + 4 * 4 + 12, 216));
        // Two trials and η 3: nobody is promoted.
        assert_eq!(def(2, Rungs::new(1, 3, 2).unwrap()).budget(), (2, 6));
    }

    #[test]
    fn changes_name_the_options_that_differ() {
        let a = def(4, Rungs::new(2, 3, 3).unwrap());
        assert!(a.changes(&a.clone()).is_empty());
        let mut b = a.clone();
        b.slots = 1;
        b.val_subset = 500;
        b.trials.pop();
        let c = a.changes(&b).join("; ");
        assert!(c.contains("--jobs (2 workers, now 1)"), "{c}");
        assert!(c.contains("--val-subset (1000 -> 500)"), "{c}");
        assert!(c.contains("(the trials)"), "{c}");
        assert_eq!(a.changes(&b).len(), 3, "{c}");
    }
}
