//! A training run: its method, its one configuration (`config.json`), and the schemas of the other
//! files of a run directory.
//!
//! A run directory holds:
//!
//! * [`files::CONFIG`] — the [`RunConfig`], written before the first step: the run's identity;
//! * [`files::checkpoint`]`(n)`, [`files::optimizer`]`(n)` — weights and SGD momentum after
//!   epoch `n` (`checkpoint-0003.safetensors`, PyTorch `state_dict` names), the generation that
//!   `state.json` names;
//! * [`files::STATE`] — the [`RunState`]: the commit point of an epoch, written after that
//!   epoch's checkpoint files are durable and before anything derived from it;
//! * [`files::BEST`] — weights of the epoch with the best robust accuracy on the per-epoch
//!   evaluation set (the held-out validation split when [`RunConfig::val_subset`] is set), and
//!   [`files::METRICS`] — one [`EpochMetrics`] JSON object per line, per committed epoch: both
//!   written from `state.json` after it, and rewritten from it when a run resumes;
//! * [`files::CURVES_PNG`] and [`files::CURVES_JSON`] — the epochs so far as a picture, and the
//!   numbers it draws ([`crate::curves::Curves`]): derived from `state.json` like the metrics;
//! * [`files::FINAL`] and [`files::SUMMARY`] — final weights and the [`TrainSummary`];
//! * [`files::LOCK`] — locked by the process that writes the run, for as long as it runs.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{AttackSpec, Dataset, Error, Mode, Norm, Precision};

/// File names of a run directory.
pub mod files {
    /// The run's configuration, [`RunConfig`](super::RunConfig) as JSON.
    pub const CONFIG: &str = "config.json";
    /// One [`EpochMetrics`](super::EpochMetrics) JSON line per committed epoch.
    pub const METRICS: &str = "metrics.jsonl";
    /// [`RunState`](super::RunState): the commit point of the last durable epoch.
    pub const STATE: &str = "state.json";
    /// The weights of the epoch with the best robust accuracy on the per-epoch evaluation set.
    pub const BEST: &str = "best.safetensors";
    /// The final weights, written when the run finishes.
    pub const FINAL: &str = "model.safetensors";
    /// [`TrainSummary`](super::TrainSummary), written when the run finishes.
    pub const SUMMARY: &str = "summary.json";
    /// The run's training curves, redrawn at each epoch's commit.
    pub const CURVES_PNG: &str = "curves.png";
    /// The numbers of `curves.png` ([`Curves`](crate::curves::Curves)).
    pub const CURVES_JSON: &str = "curves.json";
    /// The lock file of the run's one writer (`spat_spec::fs::FolderLock`): empty, kept.
    pub const LOCK: &str = "run.lock";
    /// The files of fixed name that spat writes into a run directory.
    pub const FIXED: [&str; 8] = [
        CONFIG,
        METRICS,
        STATE,
        BEST,
        CURVES_JSON,
        CURVES_PNG,
        FINAL,
        SUMMARY,
    ];

    const CHECKPOINT_STEM: &str = "checkpoint";
    const OPTIMIZER_STEM: &str = "optimizer";
    const EXTENSION: &str = ".safetensors";

    /// Weights after `epoch`: `checkpoint-0003.safetensors`.
    pub fn checkpoint(epoch: usize) -> String {
        format!("{CHECKPOINT_STEM}-{epoch:04}{EXTENSION}")
    }

    /// SGD momentum after `epoch`: `optimizer-0003.safetensors`.
    pub fn optimizer(epoch: usize) -> String {
        format!("{OPTIMIZER_STEM}-{epoch:04}{EXTENSION}")
    }

    /// The epoch of a checkpoint or optimizer file name of [`checkpoint`] / [`optimizer`]'s form.
    pub fn generation_of(name: &str) -> Option<usize> {
        let rest = name
            .strip_prefix(CHECKPOINT_STEM)
            .or_else(|| name.strip_prefix(OPTIMIZER_STEM))?
            .strip_prefix('-')?
            .strip_suffix(EXTENSION)?;
        (rest.len() >= 4 && rest.bytes().all(|b| b.is_ascii_digit()))
            .then(|| rest.parse().ok())
            .flatten()
    }

    /// Whether spat writes a file of this name into a run directory.
    pub fn is_run_file(name: &str) -> bool {
        FIXED.contains(&name) || generation_of(name).is_some()
    }
}

/// The training method (thesis §4.3, §6.1), by the names `spat train --method` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// No adversary: cross-entropy on clean images (chapter 5's standard model).
    Standard,
    /// Madry et al.: `CE(p(x̂), y)`, adversary PGD-CE from a uniform start.
    Madry,
    /// TRADES: `CE(p(x), y) + β KL(p(x) || p(x̂))`, adversary PGD-KL from `x + 0.001 N(0, 1)`.
    Trades,
    /// MART: `BCE(p(x̂), y) + λ KL(p(x) || p(x̂)) (1 - p_y(x))`, adversary PGD-CE from
    /// `x + 0.001 N(0, 1)`. With pseudo-labelled data, RST's MART variant (Table 6.3).
    Mart,
    /// RST: TRADES' objective on batches that are part pseudo-labelled (needs
    /// [`RunConfig::pseudo_labeled`]).
    Rst,
}

impl Method {
    /// Every method, in the order `--help` lists them.
    pub const ALL: [Method; 5] = [
        Method::Standard,
        Method::Madry,
        Method::Trades,
        Method::Mart,
        Method::Rst,
    ];

    /// The name on the command line and in files (`standard`, `madry`, `trades`, `mart`, `rst`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Standard => "standard",
            Method::Madry => "madry",
            Method::Trades => "trades",
            Method::Mart => "mart",
            Method::Rst => "rst",
        }
    }

    /// The outer objective optimised: RST's is TRADES'.
    pub fn objective(self) -> Method {
        match self {
            Method::Rst => Method::Trades,
            m => m,
        }
    }

    /// Whether the method trains on adversarial examples.
    pub fn is_adversarial(self) -> bool {
        self != Method::Standard
    }

    /// The thesis's name of the method, e.g. `TRADES`.
    pub fn label(self) -> &'static str {
        match self {
            Method::Standard => "Standard",
            Method::Madry => "Madry",
            Method::Trades => "TRADES",
            Method::Mart => "MART",
            Method::Rst => "RST",
        }
    }
}

/// A run's name in the thesis's words, by method and SPAT's α: `TRADES + SPAT (α = 0.1)`.
pub fn method_label(method: Method, spat_alpha: Option<f64>) -> String {
    match spat_alpha {
        Some(a) => format!("{} + SPAT (α = {a})", method.label()),
        None => method.label().to_string(),
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim().to_ascii_lowercase();
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == t)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown training method `{s}`; expected standard, madry, trades, mart or rst"
                ))
            })
    }
}

/// Learning-rate schedule, evaluated once per epoch like the references' `adjust_learning_rate`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// Multiply by `factor` at each milestone. Milestones are 1-based epochs of a run of
    /// `reference_epochs` epochs and are scaled to the configured epoch count
    /// (`max(2, round(m * epochs / reference_epochs))`), so a schedule keeps its shape in short
    /// runs and the first epoch always uses the base rate; a run of `reference_epochs` epochs
    /// uses the milestones as they are.
    Piecewise {
        /// 1-based epochs from which the rate is multiplied by `factor` once more (`[75, 90]` in MART's
        /// 90-epoch run).
        milestones: Vec<usize>,
        /// The run length the milestones are written for.
        reference_epochs: usize,
        /// The factor applied at each milestone (0.1: a tenfold drop).
        factor: f64,
    },
    /// `lr * 0.5 * (1 + cos(π (e - 1) / epochs))` for 1-based epoch `e` (RST uses cosine decay).
    Cosine,
    /// The base learning rate throughout.
    Constant,
}

impl LrSchedule {
    /// Thesis §6.1.1 ("divided by 10 at 75-th and 90-th epoch") in MART's WideResNet run:
    /// `adjust_learning_rate` of YisenWang/MART `train_wideresnet.py` (lines 109-117: ×0.1 from
    /// epoch 75, ×0.01 from epoch 90) over its 90 epochs (line 25), so the last epoch runs at
    /// lr/100.
    pub fn paper() -> Self {
        LrSchedule::Piecewise {
            milestones: vec![75, 90],
            reference_epochs: 90,
            factor: 0.1,
        }
    }

    /// The 1-based epochs at which the rate drops in a run of `epochs` epochs (none for cosine
    /// or constant schedules), after scaling.
    pub fn drops(&self, epochs: usize) -> Vec<usize> {
        match self {
            LrSchedule::Piecewise {
                milestones,
                reference_epochs,
                ..
            } => milestones
                .iter()
                .map(|&m| scaled_milestone(m, epochs, *reference_epochs))
                .filter(|&e| e <= epochs)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Learning rate of 1-based `epoch` in a run of `epochs`, with `warmup_epochs` of linear
    /// warm-up (`base * e / warmup` for `e <= warmup`) before the schedule takes over.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize, warmup_epochs: usize) -> f64 {
        if epoch <= warmup_epochs {
            return base * epoch as f64 / warmup_epochs as f64;
        }
        match self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                let t = (epoch - 1) as f64 / epochs.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Piecewise {
                milestones,
                reference_epochs,
                factor,
            } => {
                let passed = milestones
                    .iter()
                    .filter(|&&m| epoch >= scaled_milestone(m, epochs, *reference_epochs))
                    .count();
                base * factor.powi(passed as i32)
            }
        }
    }
}

/// Milestone `m` of a `reference`-epoch schedule in a run of `epochs`; never before epoch 2, so a
/// short run starts at the base rate.
fn scaled_milestone(m: usize, epochs: usize, reference: usize) -> usize {
    ((m as f64 * epochs as f64 / reference.max(1) as f64).round() as usize).max(2)
}

/// RST's pseudo-labelled images, mixed into every training batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PseudoLabeled {
    /// The pickle (`ti_500K_pseudo_labeled.pickle`). Where it was read; the data's identity is
    /// its fingerprint in `state.json`.
    pub path: PathBuf,
    /// Fraction of each batch drawn from it (RST: 0.5).
    pub fraction: f64,
}

/// Weights a run starts from instead of its seeded initialisation (`spat train --init`,
/// fine-tuning).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InitWeights {
    /// The weights file (safetensors or torch.save). Where it was read; what it was is `fnv1a64`.
    pub path: PathBuf,
    /// FNV-1a 64 of the file's bytes, hex: a run restarted from the beginning (killed before its
    /// first epoch was committed) must find the same file.
    pub fnv1a64: String,
}

/// Everything that defines a training run: what `config.json` holds and what `spat train
/// --resume` rebuilds the run from. spat-policy's `RunRequest::configure` fills it with the
/// thesis's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunConfig {
    /// Model preset (see [`crate::PRESETS`]); a library caller training its own network names it.
    pub model: String,
    /// The data set trained and evaluated on.
    pub dataset: Dataset,
    /// Folder the data set was read from. Where, not what: resuming may read the same data
    /// elsewhere, and the data's fingerprints in `state.json` say whether it is the same.
    pub data_dir: PathBuf,
    /// Train on a seeded random subset of this many training images (`None`: all).
    pub train_subset: Option<usize>,
    /// Hold out a seeded random subset of this many training images, never trained on (drawn
    /// before `train_subset`): the per-epoch evaluation runs on it instead of test images, and
    /// `best.safetensors` is chosen on it (Rice et al.'s validation split). `None`: no hold-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_subset: Option<usize>,
    /// RST's pseudo-labelled data (required by [`Method::Rst`], allowed with TRADES and MART).
    pub pseudo_labeled: Option<PseudoLabeled>,
    /// The training method (its outer objective; RST is TRADES' on mixed batches).
    pub method: Method,
    /// SPAT (thesis §4.2-4.3): craft training adversaries with PGD-LS(α) (label-smoothed CE,
    /// target `1 - α` on the label and `α/(K-1)` elsewhere) instead of the method's own loss.
    /// `None` trains the plain method.
    pub spat_alpha: Option<f64>,
    /// Epochs (90 for CIFAR as MART, 200 for STL-10 §6.1.3 and RST).
    pub epochs: usize,
    /// Mini-batch size (128 for CIFAR, 32 for STL-10, §6.1).
    pub batch_size: usize,
    /// Initial learning rate (0.1, §6.1).
    pub lr: f64,
    /// How the learning rate decays per epoch.
    pub schedule: LrSchedule,
    /// Linear warm-up epochs before `schedule` (0 in the paper).
    pub warmup_epochs: usize,
    /// SGD momentum (0.9, §6.1).
    pub momentum: f64,
    /// Nesterov momentum (RST's; false for TRADES and MART).
    pub nesterov: bool,
    /// Coupled L2 weight decay (CIFAR-10 7e-4 as MART, §6.1; CIFAR-100 per original code).
    pub weight_decay: f64,
    /// Weight-decay 1-D parameters (BN, biases) too; `true` as in the references.
    pub decay_1d_params: bool,
    /// Radius of the threat model, in `norm`: of training adversaries and of the per-epoch
    /// evaluation (8/255 in L∞, §6.1).
    pub eps: f64,
    /// The norm of the threat model (L∞ in the thesis). Absent from the `config.json` of an L∞
    /// run, so that a run written before norms existed reads back, and resumes, as L∞.
    #[serde(default, skip_serializing_if = "Norm::is_linf")]
    pub norm: Norm,
    /// PGD steps of the training adversary (10, §6.1; 0 for [`Method::Standard`]).
    pub attack_steps: usize,
    /// PGD step size of the training adversary (ε/4, §6.1).
    pub attack_step_size: f64,
    /// Batch-norm mode while crafting training adversaries (spat-policy decides it per method).
    pub adversary_mode: Mode,
    /// TRADES β (6, §6.1).
    pub trades_beta: f64,
    /// MART λ (5, §6.1).
    pub mart_lambda: f64,
    /// Test examples evaluated after each epoch (a fixed seeded subset; 0 = the whole test set);
    /// without `val_subset` also the final evaluation's subset when `final_full_eval` is off.
    pub eval_examples: usize,
    /// Evaluation attack after each epoch and at the end.
    pub eval_attack: AttackSpec,
    /// Images per evaluation batch.
    pub eval_batch_size: usize,
    /// Evaluate clean and robust accuracy on the whole test set at the end.
    pub final_full_eval: bool,
    /// The arithmetic of convolutions and matrix products.
    pub precision: Precision,
    /// Seed of every random draw: initialisation, subsets, data order, augmentation, attacks.
    pub seed: u64,
    /// Weights to start from instead of the seeded initialisation (fine-tuning); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitWeights>,
}

impl RunConfig {
    /// Whether the run mixes pseudo-labelled images into its batches (RST's regime).
    pub fn is_semi_supervised(&self) -> bool {
        self.pseudo_labeled.is_some()
    }

    /// The configuration with its locations (`data_dir`, the pseudo-label path) cleared: what
    /// must be equal for a run to be resumed.
    pub fn identity(&self) -> RunConfig {
        let mut c = self.clone();
        c.data_dir = PathBuf::new();
        if let Some(p) = &mut c.pseudo_labeled {
            p.path = PathBuf::new();
        }
        if let Some(i) = &mut c.init {
            i.path = PathBuf::new();
        }
        c
    }

    /// Checks values that would otherwise fail late, silently, or be recorded in a form that
    /// cannot be read back (JSON has no NaN): every number finite and in its range, and no
    /// setting that the method would ignore.
    pub fn validate(&self) -> Result<(), Error> {
        use crate::limits::{check_count, ATTACK_STEPS, BATCH, EPOCHS, IMAGES};
        let bad = |m: String| Err(Error::Invalid(m));
        check_count("epochs", self.epochs, EPOCHS)?;
        check_count("batch_size", self.batch_size, BATCH)?;
        check_count("eval_batch_size", self.eval_batch_size, BATCH)?;
        for (name, n) in [
            ("train_subset", self.train_subset),
            ("val_subset", self.val_subset),
        ] {
            if let Some(n) = n {
                check_count(name, n, IMAGES)?;
            }
        }
        if self.eval_examples > IMAGES.max {
            check_count("eval_examples", self.eval_examples, IMAGES)?;
        }
        if self.warmup_epochs > self.epochs {
            return bad(format!(
                "warmup_epochs ({}) exceeds epochs ({})",
                self.warmup_epochs, self.epochs
            ));
        }
        let finite = |name: &str, v: f64, ok: bool, range: &str| -> Result<(), Error> {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::Invalid(format!("{name} must be {range}, got {v}")))
            }
        };
        finite("learning rate (lr)", self.lr, self.lr > 0.0, "positive")?;
        finite(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            "a number >= 0",
        )?;
        finite(
            "momentum",
            self.momentum,
            (0.0..1.0).contains(&self.momentum),
            "in [0, 1)",
        )?;
        let (c, h, w) = self.dataset.image_shape();
        self.norm.check_radius("eps", self.eps, c * h * w)?;
        finite(
            "trades_beta",
            self.trades_beta,
            self.trades_beta >= 0.0,
            "a number >= 0",
        )?;
        finite(
            "mart_lambda",
            self.mart_lambda,
            self.mart_lambda >= 0.0,
            "a number >= 0",
        )?;
        if let LrSchedule::Piecewise { factor, .. } = &self.schedule {
            finite("the schedule's factor", *factor, *factor > 0.0, "positive")?;
        }
        if self.method.is_adversarial() {
            if self.attack_steps == 0 {
                return bad(format!(
                    "method {} trains on adversarial examples: attack_steps must be positive",
                    self.method
                ));
            }
            check_count("attack_steps", self.attack_steps, ATTACK_STEPS)?;
            finite(
                "attack_step_size",
                self.attack_step_size,
                self.attack_step_size > 0.0,
                "positive",
            )?;
            self.norm
                .check_radius("attack_step_size", self.attack_step_size, c * h * w)?;
        }
        if let Some(a) = self.spat_alpha {
            finite("spat_alpha", a, (0.0..=1.0).contains(&a), "in [0, 1]")?;
            if !self.method.is_adversarial() {
                return bad(
                    "SPAT (spat_alpha, --spat-alpha) changes the training adversary: it needs an \
                     adversarial method (madry, trades, mart or rst), not standard"
                        .into(),
                );
            }
        }
        match (self.method, &self.pseudo_labeled) {
            (Method::Rst, None) => {
                return bad(
                    "method rst needs pseudo-labelled data (`spat train --pseudo-labeled FILE`; \
                     `cargo xtask fetch-data ti500k` tells where to get \
                     ti_500K_pseudo_labeled.pickle)"
                        .into(),
                )
            }
            (Method::Standard | Method::Madry, Some(_)) => {
                return bad(format!(
                    "pseudo-labelled data needs method rst, trades or mart (RST's objectives), \
                     not {}",
                    self.method
                ))
            }
            (_, Some(p)) if !(p.fraction > 0.0 && p.fraction < 1.0) => {
                return bad(format!(
                    "the pseudo-labelled fraction of each batch must lie strictly between 0 and 1 \
                     (0 would ignore the pseudo-labelled data, 1 the labelled), got {}",
                    p.fraction
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

/// One finished epoch (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's examples.
    pub loss: f64,
    /// Clean accuracy (percent) on the per-epoch evaluation set: the validation split if the run
    /// holds one out, else the seeded test subset.
    pub clean_acc: f64,
    /// Accuracy (percent) under the evaluation attack on the per-epoch evaluation set.
    pub robust_acc: f64,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Training throughput (adversary + update), evaluation excluded.
    pub images_per_sec: f64,
    /// Wall time of the epoch, evaluation and checkpointing included.
    pub seconds: f64,
    /// Number of images `clean_acc` and `robust_acc` were measured on.
    pub eval_examples: usize,
}

/// What a run must find again to be resumed: FNV-1a fingerprints, as 16 hex digits, of its
/// configuration ([`RunConfig::identity`] as JSON), of its network's variables (names, shapes and
/// kinds) and of its training and test data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunIdentity {
    /// FNV-1a of the configuration's identity as JSON.
    pub config: String,
    /// FNV-1a of the network's variable names, shapes and kinds.
    pub model: String,
    /// FNV-1a of the training images and labels.
    pub train_data: String,
    /// FNV-1a of the test images and labels.
    pub test_data: String,
}

/// A file of a run directory as committed: its name and its FNV-1a checksum (16 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommittedFile {
    /// The file's name in the run directory.
    pub file: String,
    /// FNV-1a of its bytes, 16 hex digits.
    pub fnv1a64: String,
}

/// `state.json`: where a run stands. Replacing it commits an epoch: it names the checkpoint files
/// of that epoch (written and made durable before it), and `best.safetensors` and `metrics.jsonl`
/// are written from it afterwards.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// Epochs committed.
    pub epochs_done: usize,
    /// Steps taken so far: the counter of the adversary's RNG stream.
    pub global_step: u64,
    /// The best robust accuracy (percent) of any committed epoch on the per-epoch evaluation set.
    pub best_robust_acc: Option<f64>,
    /// The epoch that reached it.
    pub best_epoch: Option<usize>,
    /// Fingerprints a resume must find again.
    pub identity: RunIdentity,
    /// `checkpoint-<epochs_done>.safetensors` as committed.
    pub checkpoint: CommittedFile,
    /// `optimizer-<epochs_done>.safetensors` as committed.
    pub optimizer: CommittedFile,
    /// FNV-1a of `best.safetensors`: the checkpoint of `best_epoch`.
    pub best_fnv1a64: Option<String>,
    /// The record of every committed epoch, in order: what `metrics.jsonl` holds.
    pub history: Vec<EpochMetrics>,
}

/// `summary.json`: the outcome of a finished run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainSummary {
    /// Epochs committed when the run ended.
    pub epochs_done: usize,
    /// Epochs that were already done when this call started (resume).
    pub resumed_from: Option<usize>,
    /// Whether training stopped before the configured epoch count (`stop_after_epochs`).
    pub stopped_early: bool,
    /// The best robust accuracy (percent) of any epoch on the per-epoch evaluation set.
    pub best_robust_acc: Option<f64>,
    /// The epoch that reached it (the weights in `best.safetensors`).
    pub best_epoch: Option<usize>,
    /// Final clean / robust accuracy (percent) on the whole test set (or the evaluation subset if
    /// `final_full_eval` is off); `None` when stopped early.
    pub final_clean_acc: Option<f64>,
    /// Final robust accuracy (percent) under the evaluation attack; `None` when stopped early.
    pub final_robust_acc: Option<f64>,
    /// Images the final accuracies were measured on; `None` when stopped early.
    pub final_eval_examples: Option<usize>,
    /// Every epoch's record, in order.
    pub history: Vec<EpochMetrics>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed run reads its history back from JSON and must get the same bits: serde_json's
    /// default parser can be one unit in the last place off (this loss, from a real run, came
    /// back as 2.286426782608032), hence its `float_roundtrip` feature.
    #[test]
    fn epoch_metrics_survive_json_bit_for_bit() {
        let m = EpochMetrics {
            epoch: 1,
            loss: 2.2864267826080322,
            clean_acc: 9.375,
            robust_acc: 6.25,
            lr: 0.1,
            images_per_sec: 1_234.567_890_123_456_7,
            seconds: 0.1 + 0.2,
            eval_examples: 32,
        };
        let back: EpochMetrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        for (a, b) in [
            (m.loss, back.loss),
            (m.images_per_sec, back.images_per_sec),
            (m.seconds, back.seconds),
        ] {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} came back as {b}");
        }
    }

    #[test]
    fn piecewise_matches_mart_adjust_learning_rate_and_scales() {
        let s = LrSchedule::paper();
        // MART train_wideresnet.py: epoch >= 75 -> lr/10, >= 90 -> lr/100, over 90 epochs.
        assert_eq!(s.lr(0.1, 74, 90, 0), 0.1);
        assert!((s.lr(0.1, 75, 90, 0) - 0.01).abs() < 1e-12);
        assert!((s.lr(0.1, 89, 90, 0) - 0.01).abs() < 1e-12);
        assert!((s.lr(0.1, 90, 90, 0) - 0.001).abs() < 1e-12);
        assert_eq!(s.drops(90), [75, 90]);
        // 15 epochs: milestones 12.5 -> 13 and 15; 180 epochs: 150 and 180.
        assert_eq!(s.drops(15), [13, 15]);
        assert_eq!(s.drops(180), [150, 180]);
        assert!((s.lr(0.1, 150, 180, 0) - 0.01).abs() < 1e-12);
        // A 1-epoch run is not decayed from the start; 10 epochs: milestones 8 and 10.
        assert_eq!(s.lr(0.1, 1, 1, 0), 0.1);
        assert_eq!(s.lr(0.1, 7, 10, 0), 0.1);
        assert!((s.lr(0.1, 10, 10, 0) - 0.001).abs() < 1e-12);
        assert!(LrSchedule::Cosine.drops(200).is_empty());
    }

    #[test]
    fn cosine_and_warmup() {
        let c = LrSchedule::Cosine;
        assert_eq!(c.lr(0.2, 1, 10, 0), 0.2);
        assert!((c.lr(0.2, 6, 10, 0) - 0.1).abs() < 1e-12);
        assert!((c.lr(0.2, 2, 10, 2) - 0.2).abs() < 1e-12);
        assert!((c.lr(0.2, 1, 10, 2) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn generation_files_are_named_by_epoch() {
        assert_eq!(files::checkpoint(3), "checkpoint-0003.safetensors");
        assert_eq!(files::optimizer(12345), "optimizer-12345.safetensors");
        assert_eq!(files::generation_of("checkpoint-0003.safetensors"), Some(3));
        assert_eq!(
            files::generation_of("optimizer-12345.safetensors"),
            Some(12345)
        );
        for not_ours in [
            "checkpoint.safetensors",
            "checkpoint-3.safetensors",
            "checkpoint-000x.safetensors",
            "best-0003.safetensors",
            "checkpoint-0003.safetensors.1.2.tmp",
        ] {
            assert_eq!(files::generation_of(not_ours), None, "{not_ours}");
        }
        assert!(files::is_run_file("state.json") && !files::is_run_file("notes.txt"));
    }

    #[test]
    fn methods_parse_and_resolve() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{m}\""));
        }
        assert_eq!("MART".parse::<Method>().unwrap(), Method::Mart);
        assert_eq!(Method::Rst.objective(), Method::Trades);
        assert!(!Method::Standard.is_adversarial());
        let e = "sgd".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("`sgd`") && e.contains("standard"), "{e}");
    }
}
