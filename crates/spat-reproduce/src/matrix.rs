//! The run matrix of every reproducible id at every scale: which models are trained, how, and what
//! is measured on them, each as one resumable cell (a run directory), with an estimated cost.
//!
//! Where a setting comes from — the thesis, the reference code it names, or spat's own choice —
//! is [`crate::protocol`]'s business; this module only lays out the runs.

use std::fmt;

use serde::Serialize;
use spat_policy::{PaperSettings, Step};
use spat_spec::run::files;
use spat_spec::{AttackSpec, Dataset, Method, Radius, Split};

use crate::paper;

/// Every id `cargo xtask reproduce` accepts (besides `all`), in the thesis's order.
pub const IDS: &[&str] = &[
    "fig4.1", "table5.1", "table5.2", "fig5.1", "fig5.2", "fig5.3", "table6.1", "table6.2",
    "table6.3", "table6.4", "fig6.1", "fig6.2",
];

/// How faithfully a reproduction follows the thesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// The thesis's setting; where it is silent, the reference code it names; what neither
    /// states is spat's choice, listed in the dry run and in results.md.
    Full,
    /// Every method, α and ε of the thesis, on PreAct-ResNet-18 (ResNet-18 for STL-10) for 15 epochs.
    Short,
    /// A pipeline check in minutes on a CPU: `tiny` model, the embedded CIFAR-10 sample.
    Smoke,
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scale::Full => "full",
            Scale::Short => "short",
            Scale::Smoke => "smoke",
        })
    }
}

/// Which weights of a finished training run an evaluation reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// The weights after the last epoch (`model.safetensors`): what the thesis's references
    /// report (TRADES, MART and RST evaluate their final checkpoints).
    Last,
    /// The epoch with the highest robust accuracy on the held-out validation split
    /// (`best.safetensors`).
    Best,
}

impl Checkpoint {
    /// Both checkpoints, last first.
    pub const BOTH: [Checkpoint; 2] = [Checkpoint::Last, Checkpoint::Best];

    /// The weights file of the checkpoint in a run directory.
    pub fn file(self) -> &'static str {
        match self {
            Checkpoint::Last => files::FINAL,
            Checkpoint::Best => files::BEST,
        }
    }

    /// `last` or `best`, as reports and cell names write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Checkpoint::Last => "last",
            Checkpoint::Best => "best",
        }
    }
}

/// Pixels per image relative to 32×32 (FLOPs of these convolutional nets scale with it).
fn pixel_factor(d: Dataset) -> f64 {
    let (_, h, w) = d.image_shape();
    (h * w) as f64 / (32.0 * 32.0)
}

/// One `spat train` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSpec {
    /// The data set trained on.
    pub dataset: Dataset,
    /// Model preset (`wrn-34-10`, `tiny`, ...).
    pub model: &'static str,
    /// The training method.
    pub method: Method,
    /// SPAT's α for the training adversary; `None`: the method's own.
    pub spat_alpha: Option<f64>,
    /// Training radius, as its source writes it (`8/255`, RST's `0.031`).
    pub eps: Radius,
    /// The training adversary's step where the run's reference sets one of its own (RST's
    /// 0.007); `None`: ε/4, the thesis's (§6.1.1).
    pub attack_step: Option<Radius>,
    /// Training epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Train on a seeded subset of this many images (`None`: all but the validation hold-out).
    pub train_subset: Option<usize>,
    /// Training images held out, never trained on: the per-epoch evaluation and the choice of
    /// `best.safetensors` use them.
    pub val_subset: Option<usize>,
    /// Test images of the trainer's own final evaluation (the tables' numbers come from the
    /// evaluation cells, on the whole test set).
    pub test_subset: Option<usize>,
    /// RST's 500k pseudo-labelled TinyImages mixed into every batch (Table 6.3).
    pub pseudo_labeled: bool,
    /// The run's seed.
    pub seed: u64,
}

impl TrainSpec {
    /// Directory name: every field that changes the run is in it, so equal runs share a directory.
    pub fn name(&self) -> String {
        let mut s = format!("train-{}-{}-{}", self.dataset, self.model, self.method);
        if let Some(a) = self.spat_alpha {
            s.push_str(&format!("-spat{a}"));
        }
        if self.pseudo_labeled {
            s.push_str("-ti500k");
        }
        s.push_str(&format!("-eps{}", self.eps.file_name()));
        if let Some(step) = self.attack_step {
            s.push_str(&format!("-step{}", step.file_name()));
        }
        s.push_str(&format!("-e{}-b{}", self.epochs, self.batch_size));
        if let Some(n) = self.train_subset {
            s.push_str(&format!("-n{n}"));
        }
        if let Some(n) = self.val_subset {
            s.push_str(&format!("-v{n}"));
        }
        if let Some(n) = self.test_subset {
            s.push_str(&format!("-t{n}"));
        }
        s.push_str(&format!("-s{}", self.seed));
        s
    }

    /// The row label of this run, in the thesis's naming ("TRADES + SPAT (α = 0.1)").
    pub fn label(&self) -> String {
        spat_spec::run::method_label(self.method, self.spat_alpha)
    }
}

/// What one cell does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// `spat train`.
    Train(TrainSpec),
    /// `spat eval` of a trained cell's last or best weights.
    Eval {
        /// The run whose weights are evaluated.
        train: TrainSpec,
        /// Its last or best weights.
        checkpoint: Checkpoint,
        /// The attacks, one column each.
        attacks: Vec<AttackSpec>,
        /// The radius of every attack that does not carry its own (`@eps=`).
        eps: Radius,
        /// Evaluate a seeded subset of this many test images (`None`: the whole test set).
        test_subset: Option<usize>,
    },
    /// `spat sweep-alpha`: PGD-LS over α, plus PGD-CE and PGD-KL.
    Sweep {
        /// The run whose weights are attacked.
        train: TrainSpec,
        /// Its last or best weights.
        checkpoint: Checkpoint,
        /// The label-smoothing αs of the PGD-LS rows.
        alphas: Vec<f64>,
        /// The attacks' radius.
        eps: Radius,
        /// Attack a seeded subset of this many test images (`None`: the whole test set).
        test_subset: Option<usize>,
    },
    /// `spat visualize` of the last weights: a PNG grid of originals and adversarial examples.
    Visualize {
        /// The run whose last weights are attacked.
        train: TrainSpec,
        /// One column of adversarial examples per attack (paired with `eps`).
        attacks: Vec<AttackSpec>,
        /// Each column's radius.
        eps: Vec<Radius>,
        /// The class of each row's test image, in row order (`--classes`).
        classes: Vec<&'static str>,
    },
    /// `spat gradients` of the last weights of several runs: originals and input gradients.
    Gradients {
        /// (column label, run), in column order.
        models: Vec<(String, TrainSpec)>,
        /// The class of each row's test image, in row order (`--classes`).
        classes: Vec<&'static str>,
    },
}

impl Job {
    /// The training run(s) the job measures.
    pub fn trains(&self) -> Vec<&TrainSpec> {
        match self {
            Job::Train(t) => vec![t],
            Job::Eval { train, .. } | Job::Sweep { train, .. } | Job::Visualize { train, .. } => {
                vec![train]
            }
            Job::Gradients { models, .. } => models.iter().map(|(_, t)| t).collect(),
        }
    }
}

/// One resumable unit of work: a directory under `<out>/runs/`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The cell's name, its directory under `<out>/runs/`.
    pub name: String,
    /// The paper row / curve this cell serves.
    pub label: String,
    /// What it runs.
    pub job: Job,
    /// Estimated cost in FLOPs (see [`COST_BASIS`]).
    pub flops: f64,
}

/// The cells of one id at one scale: training cells first, then measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The table or figure (`table6.1`, `fig5.3`).
    pub id: String,
    /// The scale it runs at.
    pub scale: Scale,
    /// Training cells first, then measurements.
    pub cells: Vec<Cell>,
}

impl Plan {
    /// The training runs of the plan, in order.
    pub fn trains(&self) -> Vec<&TrainSpec> {
        self.cells
            .iter()
            .filter_map(|c| match &c.job {
                Job::Train(t) => Some(t),
                _ => None,
            })
            .collect()
    }
}

/// Per-scale choice of model, schedule and subsets.
struct Setting {
    scale: Scale,
}

/// Assumed sustained throughput for GPU scales (full, short), FLOP/s.
pub const GPU_FLOPS_PER_SEC: f64 = 20e12;
/// Assumed sustained throughput for the smoke scale on a 2-core CPU, FLOP/s.
pub const CPU_FLOPS_PER_SEC: f64 = 50e9;

/// How `--dry-run` estimates a cell's cost, in words (printed with the estimates).
pub const COST_BASIS: &str = "Estimated cost = forward FLOPs per image (spat model-info; ×9 for 96×96 STL-10) × \
forward-equivalents per image (a forward+backward pass counts 3: standard training 3, Madry PGD-10 33, \
TRADES/MART/RST 37 per training image; per-epoch evaluation of the validation split, clean + PGD-20, 62; \
PGD-N 3N+1, FGSM 4, RST's PGD-N with R restarts 3NR+R per test image) × images (CIFAR 49,000 trained on \
after the 1,000-image validation hold-out / 10,000 test, STL-10 4,500 / 8,000; an RST epoch is 196 batches \
of 256 = 50,176 images, half of them pseudo-labelled, as semisup-adv's robust_self_training.py lines \
234-240), divided by an ASSUMED sustained 20 TFLOP/s for full/short (one A100/H100-class GPU in \
f32/TF32, about a third of an H100's dense FP32 peak) and 50 GFLOP/s for smoke (measured on 2 CPU cores shared with other jobs: \
`spat train --model tiny --method madry` runs an epoch of 512 images, 33 forward-equivalents of 6.5 MFLOP each, plus its \
monitoring, in about 1.8 s, 68 GFLOP/s). These are planning figures, not measurements.";

/// Forward FLOPs of one 3×32×32 image: spat-spec's size table, which spat-models' tests check
/// against the construction code (what `spat model-info` prints).
fn forward_flops(model: &str) -> f64 {
    spat_spec::model_size(model)
        .unwrap_or_else(|| panic!("no size for preset {model}"))
        .flops as f64
}

/// Forward-pass equivalents of one training image under `method` with a 10-step attack.
fn train_passes(method: Method) -> f64 {
    match method {
        Method::Standard => 3.0,
        Method::Madry => 33.0,
        Method::Trades | Method::Mart | Method::Rst => 37.0,
    }
}

/// Forward-pass equivalents of evaluating one image under an attack: a forward and backward pass
/// (3) per gradient step, and the forward pass that classifies the result (one per restart).
pub fn attack_passes(spec: &AttackSpec) -> f64 {
    let classifications = match spec {
        AttackSpec::PgdRestarts { restarts, .. } => *restarts as f64,
        _ => 1.0,
    };
    3.0 * spec.steps() as f64 + classifications
}

impl Setting {
    fn model(&self, paper_model: &'static str, dataset: Dataset) -> &'static str {
        match self.scale {
            Scale::Full => paper_model,
            Scale::Short if dataset == Dataset::Stl10 => "resnet-18",
            Scale::Short => "preact-resnet-18",
            Scale::Smoke => "tiny",
        }
    }
    fn epochs(&self, paper_epochs: usize) -> usize {
        match self.scale {
            Scale::Full => paper_epochs,
            Scale::Short => SHORT_EPOCHS,
            Scale::Smoke => SMOKE_EPOCHS,
        }
    }
    fn batch_size(&self, paper_batch: usize) -> usize {
        match self.scale {
            Scale::Smoke => SMOKE_BATCH,
            _ => paper_batch,
        }
    }
    fn train_subset(&self) -> Option<usize> {
        match self.scale {
            Scale::Smoke => Some(SMOKE_TRAIN_IMAGES),
            _ => None,
        }
    }
    fn val_subset(&self, dataset: Dataset) -> usize {
        match (self.scale, dataset) {
            (Scale::Smoke, _) => SMOKE_VAL_IMAGES,
            (_, Dataset::Stl10) => VAL_IMAGES_STL10,
            _ => VAL_IMAGES,
        }
    }
    fn monitor_subset(&self) -> Option<usize> {
        match self.scale {
            Scale::Full => Some(1_000),
            Scale::Short => Some(500),
            Scale::Smoke => Some(SMOKE_MONITOR_IMAGES),
        }
    }
    /// Test images of the final measurements (`None` = the whole test set).
    fn eval_subset(&self) -> Option<usize> {
        match self.scale {
            Scale::Smoke => Some(SMOKE_EVAL_IMAGES),
            _ => None,
        }
    }
    fn sweep_subset(&self) -> Option<usize> {
        match self.scale {
            Scale::Smoke => Some(SMOKE_SWEEP_IMAGES),
            _ => None,
        }
    }

    /// The run of `method` (with SPAT's `spat_alpha`) trained as `runs` at this scale.
    fn train(&self, runs: &Runs, method: Method, spat_alpha: Option<f64>) -> TrainSpec {
        TrainSpec {
            dataset: runs.dataset,
            model: self.model(runs.model, runs.dataset),
            method,
            spat_alpha,
            eps: runs.eps,
            attack_step: runs.attack_step,
            epochs: self.epochs(runs.epochs),
            batch_size: self.batch_size(runs.batch_size),
            train_subset: self.train_subset(),
            val_subset: Some(self.val_subset(runs.dataset)),
            test_subset: self.monitor_subset(),
            pseudo_labeled: runs.pseudo_labeled,
            seed: 0,
        }
    }

    fn images(&self, full: usize, subset: Option<usize>) -> f64 {
        subset.map_or(full, |n| n.min(full)) as f64
    }

    fn train_flops(&self, t: &TrainSpec) -> f64 {
        let per_image = forward_flops(t.model) * pixel_factor(t.dataset);
        let whole = t.dataset.official_count(Split::Train);
        let val = t.val_subset.unwrap_or(0).min(whole);
        let epoch_images = if t.pseudo_labeled {
            // As many batches as the labelled set before the hold-out fills (spat-train's
            // load_data, after RST), each half pseudo-labelled.
            let labelled = self.images(whole, t.train_subset);
            (labelled / t.batch_size as f64).ceil() * t.batch_size as f64
        } else {
            self.images(whole - val, t.train_subset)
        };
        let monitor = val as f64 * 62.0;
        t.epochs as f64 * per_image * (epoch_images * train_passes(t.method) + monitor)
    }

    fn eval_flops(&self, t: &TrainSpec, attacks: &[AttackSpec], subset: Option<usize>) -> f64 {
        let per_image = forward_flops(t.model) * pixel_factor(t.dataset);
        let passes: f64 = attacks.iter().map(attack_passes).sum();
        per_image * passes * self.images(t.dataset.official_count(Split::Test), subset)
    }

    fn train_cell(&self, t: TrainSpec) -> Cell {
        Cell {
            name: t.name(),
            label: t.label(),
            flops: self.train_flops(&t),
            job: Job::Train(t),
        }
    }

    /// An evaluation cell per checkpoint (last, then best).
    fn eval_cells(
        &self,
        id: &str,
        label: &str,
        t: &TrainSpec,
        attacks: &[&str],
        eps: Radius,
    ) -> Vec<Cell> {
        let attacks = specs(attacks);
        let subset = self.eval_subset();
        Checkpoint::BOTH
            .iter()
            .map(|&checkpoint| Cell {
                name: format!(
                    "{id}-eval-{}-{}",
                    checkpoint.as_str(),
                    t.name().trim_start_matches("train-")
                ),
                label: label.to_string(),
                flops: self.eval_flops(t, &attacks, subset),
                job: Job::Eval {
                    train: t.clone(),
                    checkpoint,
                    attacks: attacks.clone(),
                    eps,
                    test_subset: subset,
                },
            })
            .collect()
    }
}

/// Epochs of the short scale.
pub const SHORT_EPOCHS: usize = 15;

// Smoke-scale knobs: sized so that `reproduce table6.1 --scale smoke` and `fig5.3 --scale smoke`
// each finish in a few minutes on 2 CPU cores.
/// Training epochs at the smoke scale.
pub const SMOKE_EPOCHS: usize = 30;
/// Images per training batch at the smoke scale.
pub const SMOKE_BATCH: usize = 64;
/// Training images held out for validation at the smoke scale.
pub const SMOKE_VAL_IMAGES: usize = 32;
/// The 480 training images of data/cifar-10-mini left after the validation hold-out.
pub const SMOKE_TRAIN_IMAGES: usize = 480;
/// Test images of the trainer's own final evaluation at the smoke scale.
pub const SMOKE_MONITOR_IMAGES: usize = 32;
/// Test images of a smoke evaluation cell.
pub const SMOKE_EVAL_IMAGES: usize = 256;
/// Test images of a smoke α sweep (13 PGD-20 attacks per model).
pub const SMOKE_SWEEP_IMAGES: usize = 128;

/// Training images held out for validation (CIFAR): Rice et al.'s 1,000
/// (locuslab/robust_overfitting `generate_validation.py` lines 5-9).
pub const VAL_IMAGES: usize = 1_000;
/// Training images held out for validation on STL-10 (5,000 training images: a tenth).
pub const VAL_IMAGES_STL10: usize = 500;

/// Evaluation radius of every table and figure: the thesis's 8/255 (§6.1.1, §6.2).
pub const EVAL_EPS: Radius = spat_policy::PAPER_EPS;
/// α grid of Figure 5.3 (§5.2: 0 to 1, stride 0.1).
pub const FIG_5_3_ALPHAS: &[f64] = &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// α grid of Figures 6.1/6.2 (§6.2: 0 to 1, stride 0.2; α = 0 is Madry).
pub const FIG_6_ALPHAS: &[f64] = &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
/// Training radii of Figures 6.1/6.2 (numerators over 255).
pub const FIG_6_TRAIN_EPS: &[f64] = &[4.0, 8.0, 16.0];
/// Evaluation attack of Figures 6.1/6.2: PGD-20, random start, step ε/10 (§6.2).
pub const FIG_6_ATTACK: &str = "pgd20@eps/10";
/// Radii of Figure 5.1's columns, left to right (numerators over 255).
pub const FIG_5_1_EPS: &[f64] = &[32.0, 16.0, 8.0];
/// Figure 5.1's rows are a ship, a horse, a bird, a horse and an automobile (its caption); the
/// first test images of those classes are shown. Figures 5.2 and 4.1 show the same images.
pub const FIG_5_ROWS: &[&str] = &["ship", "horse", "bird", "horse", "automobile"];
/// Figure 5.2's columns after the original: PGD-CE, PGD-LS (α = 0.2), PGD-LS (α = 0.8), at 32/255.
pub const FIG_5_2_ATTACKS: &[&str] = &["pgd20", "pgd-ls:0.2", "pgd-ls:0.8"];

/// Columns spat measures besides a table's own: Table 6.3 under chapter 6's PGD-20 too, since its
/// own PGD-20 column is RST's protocol (§6.1.2, "PGD-20 (settings in \[39\])").
pub fn extra_columns(id: &str) -> &'static [paper::Column] {
    const TABLE_6_3: &[paper::Column] = &[paper::Column {
        header: "PGD-20 (chapter 6 protocol, ε = 8/255)",
        attack: "pgd20",
    }];
    match id {
        "table6.3" => TABLE_6_3,
        _ => &[],
    }
}

/// Attack specs written as constants here and in [`paper`]; every one is spelt right (tested).
pub fn specs(names: &[&str]) -> Vec<AttackSpec> {
    names
        .iter()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("attack spec `{n}`: {e}"))
        })
        .collect()
}

/// The data set an id needs.
pub fn dataset_of(id: &str) -> Dataset {
    match id {
        "table6.2" | "fig6.2" => Dataset::Cifar100,
        "table6.4" => Dataset::Stl10,
        _ => Dataset::Cifar10,
    }
}

/// Whether an id needs RST's 500k pseudo-labelled images.
pub fn needs_pseudo_labeled(id: &str) -> bool {
    id == "table6.3"
}

/// How the thesis trains the runs of one experiment (before a scale shrinks them).
#[derive(Debug, Clone, Copy)]
struct Runs {
    dataset: Dataset,
    model: &'static str,
    epochs: usize,
    batch_size: usize,
    eps: Radius,
    /// The training step where the experiment's reference sets its own (RST's); `None`: ε/4.
    attack_step: Option<Radius>,
    pseudo_labeled: bool,
}

impl Runs {
    /// `model` trained on `dataset` (with RST's pseudo-labelled data if `pseudo_labeled`) with
    /// spat-policy's epochs, batch size, radius and step.
    fn of(dataset: Dataset, model: &'static str, pseudo_labeled: bool) -> Self {
        // None of these depends on the method.
        let p = PaperSettings::of(dataset, Method::Madry, pseudo_labeled, false);
        Runs {
            dataset,
            model,
            epochs: p.epochs.value,
            batch_size: p.batch_size.value,
            eps: p.eps.value,
            attack_step: match p.attack.value.step {
                Step::Fixed(step) => Some(step),
                Step::EpsOver4 => None,
            },
            pseudo_labeled,
        }
    }
}

/// The runs of a chapter-6 table: §6.1's WRN-34-10 on CIFAR-10 and CIFAR-100, §6.1.2's
/// WRN-28-10 with RST's pseudo-labelled data, §6.1.3's ResNet-18 on STL-10.
fn table_runs(id: &str) -> Runs {
    match id {
        "table6.1" => Runs::of(Dataset::Cifar10, "wrn-34-10", false),
        "table6.2" => Runs::of(Dataset::Cifar100, "wrn-34-10", false),
        "table6.3" => Runs::of(Dataset::Cifar10, "wrn-28-10", true),
        _ => Runs::of(Dataset::Stl10, "resnet-18", false),
    }
}

/// The two models of chapter 5, whose architecture the thesis does not state: trained as Table 6.1's
/// Madry row (WRN-34-10, CIFAR-10, 90 epochs, batch 128), once without and once with PGD-10.
fn chapter5_models(s: &Setting) -> (TrainSpec, TrainSpec) {
    let runs = table_runs("table6.1");
    (
        s.train(&runs, Method::Standard, None),
        s.train(&runs, Method::Madry, None),
    )
}

/// The run matrix of `id` at `scale`; `None` for an unknown id.
pub fn plan(id: &str, scale: Scale) -> Option<Plan> {
    let s = Setting { scale };
    let cells = match id {
        "fig4.1" => fig_4_1(&s, id),
        "table5.1" | "table5.2" => table_5(&s, id),
        "fig5.1" | "fig5.2" => fig_5_images(&s, id),
        "fig5.3" => fig_5_3(&s, id),
        "table6.1" | "table6.2" | "table6.3" | "table6.4" => table_6(&s, id),
        "fig6.1" | "fig6.2" => fig_6(&s, id),
        _ => return None,
    };
    Some(Plan {
        id: id.to_string(),
        scale,
        cells,
    })
}

/// Figure 4.1: the input gradients of chapter 5's standard and Madry models.
fn fig_4_1(s: &Setting, id: &str) -> Vec<Cell> {
    let (standard, madry) = chapter5_models(s);
    let rows = FIG_5_ROWS.len() as f64;
    let flops = 2.0 * 4.0 * rows * forward_flops(standard.model) * pixel_factor(standard.dataset);
    vec![
        s.train_cell(standard.clone()),
        s.train_cell(madry.clone()),
        Cell {
            name: format!(
                "{id}-gradients-{}",
                madry.name().trim_start_matches("train-")
            ),
            label: "standard and Madry".into(),
            flops,
            job: Job::Gradients {
                models: vec![("standard".into(), standard), ("Madry".into(), madry)],
                classes: FIG_5_ROWS.to_vec(),
            },
        },
    ]
}

/// Tables 5.1 and 5.2: chapter 5's standard (5.1) or Madry (5.2) model under PGD-KL and PGD-LS.
fn table_5(s: &Setting, id: &str) -> Vec<Cell> {
    let (standard, madry) = chapter5_models(s);
    let (model, table) = if id == "table5.1" {
        (standard, &paper::TABLE_5_1)
    } else {
        (madry, &paper::TABLE_5_2)
    };
    let mut attacks = vec!["clean"];
    attacks.extend(table.columns.iter().map(|c| c.attack));
    let mut cells = vec![s.train_cell(model.clone())];
    cells.extend(s.eval_cells(id, table.rows[0].label, &model, &attacks, EVAL_EPS));
    cells
}

/// Figures 5.1 and 5.2: adversarial examples of chapter 5's Madry model.
fn fig_5_images(s: &Setting, id: &str) -> Vec<Cell> {
    let (_, madry) = chapter5_models(s);
    let (attacks, eps): (Vec<AttackSpec>, Vec<Radius>) = if id == "fig5.1" {
        (
            specs(&["cw30"]),
            FIG_5_1_EPS.iter().map(|&e| Radius::over_255(e)).collect(),
        )
    } else {
        (specs(FIG_5_2_ATTACKS), vec![Radius::over_255(32.0)])
    };
    let flops = s.eval_flops(&madry, &attacks, Some(FIG_5_ROWS.len())) * eps.len() as f64;
    vec![
        s.train_cell(madry.clone()),
        Cell {
            name: format!(
                "{id}-visualize-{}",
                madry.name().trim_start_matches("train-")
            ),
            label: "Madry".into(),
            flops,
            job: Job::Visualize {
                train: madry,
                attacks,
                eps,
                classes: FIG_5_ROWS.to_vec(),
            },
        },
    ]
}

/// Figure 5.3: the α sweep of chapter 5's standard and Madry models, last and best checkpoints.
fn fig_5_3(s: &Setting, id: &str) -> Vec<Cell> {
    let (standard, madry) = chapter5_models(s);
    let mut cells = vec![s.train_cell(standard.clone()), s.train_cell(madry.clone())];
    let subset = s.sweep_subset();
    let names: Vec<String> = std::iter::once("clean".to_string())
        .chain(FIG_5_3_ALPHAS.iter().map(|a| format!("pgd-ls:{a}")))
        .chain(["pgd20".to_string(), "pgd-kl".to_string()])
        .collect();
    let attacks = specs(&names.iter().map(String::as_str).collect::<Vec<_>>());
    for t in [standard, madry] {
        for checkpoint in Checkpoint::BOTH {
            cells.push(Cell {
                name: format!(
                    "{id}-sweep-{}-{}",
                    checkpoint.as_str(),
                    t.name().trim_start_matches("train-")
                ),
                label: t.label(),
                flops: s.eval_flops(&t, &attacks, subset),
                job: Job::Sweep {
                    train: t.clone(),
                    checkpoint,
                    alphas: FIG_5_3_ALPHAS.to_vec(),
                    eps: EVAL_EPS,
                    test_subset: subset,
                },
            });
        }
    }
    cells
}

/// Tables 6.1 to 6.4: a run per row, each evaluated under the table's columns.
fn table_6(s: &Setting, id: &str) -> Vec<Cell> {
    let table = paper::table(id).expect("every table id has paper data");
    let runs = table_runs(id);
    let attacks: Vec<&str> = table
        .columns
        .iter()
        .chain(extra_columns(id))
        .map(|c| c.attack)
        .collect();
    let mut cells = Vec::new();
    let mut evals = Vec::new();
    for row in table.rows {
        let r = row.recipe.expect("chapter 6 rows are trained models");
        let t = s.train(&runs, r.method, r.spat_alpha);
        evals.extend(s.eval_cells(id, row.label, &t, &attacks, EVAL_EPS));
        cells.push(s.train_cell(t));
    }
    cells.extend(evals);
    cells
}

/// Figures 6.1 and 6.2: Madry + SPAT over α and the training ε on ResNet-50.
fn fig_6(s: &Setting, id: &str) -> Vec<Cell> {
    let mut cells = Vec::new();
    let mut evals = Vec::new();
    for &eps in FIG_6_TRAIN_EPS {
        // §6.2 states the model, method, α, ε and attacks; the schedule is Table 6.1's (spat's
        // choice).
        let runs = Runs {
            eps: Radius::over_255(eps),
            ..Runs::of(dataset_of(id), "resnet-50", false)
        };
        for &alpha in FIG_6_ALPHAS {
            let spat_alpha = if alpha == 0.0 { None } else { Some(alpha) };
            let t = s.train(&runs, Method::Madry, spat_alpha);
            let label = format!("train ε = {eps}/255, α = {alpha}");
            evals.extend(s.eval_cells(id, &label, &t, &["clean", FIG_6_ATTACK], EVAL_EPS));
            cells.push(s.train_cell(t));
        }
    }
    cells.extend(evals);
    cells
}

/// Seconds the estimate gives for `flops` at `scale`.
pub fn estimated_seconds(flops: f64, scale: Scale) -> f64 {
    match scale {
        Scale::Smoke => flops / CPU_FLOPS_PER_SEC,
        _ => flops / GPU_FLOPS_PER_SEC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_table_6_1_is_the_papers_five_wrn_34_10_runs() {
        let p = plan("table6.1", Scale::Full).unwrap();
        let t = p.trains();
        let recipes: Vec<(Method, Option<f64>)> =
            t.iter().map(|t| (t.method, t.spat_alpha)).collect();
        let paper: Vec<(Method, Option<f64>)> = paper::TABLE_6_1
            .rows
            .iter()
            .map(|r| (r.recipe.unwrap().method, r.recipe.unwrap().spat_alpha))
            .collect();
        assert_eq!(recipes, paper);
        for t in t {
            assert_eq!(
                (t.model, t.epochs, t.batch_size, t.eps),
                ("wrn-34-10", 90, 128, Radius::over_255(8.0))
            );
            assert_eq!((t.dataset, t.train_subset), (Dataset::Cifar10, None));
            assert_eq!((t.val_subset, t.attack_step), (Some(1000), None));
        }
    }

    #[test]
    fn table_6_3_trains_with_rsts_radius_and_step_and_evaluates_both_protocols() {
        let p = plan("table6.3", Scale::Full).unwrap();
        for t in p.trains() {
            assert_eq!(t.eps.to_string(), "0.031");
            assert_eq!(
                t.attack_step.map(|s| s.to_string()).as_deref(),
                Some("0.007")
            );
            assert!(t.pseudo_labeled);
        }
        let evals: Vec<&Cell> = p
            .cells
            .iter()
            .filter(|c| matches!(c.job, Job::Eval { .. }))
            .collect();
        assert_eq!(evals.len(), 8, "4 rows x (last, best)");
        let Job::Eval { attacks, .. } = &evals[0].job else {
            unreachable!()
        };
        let names: Vec<String> = attacks.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "clean",
                "pgd20x5@step=0.01@eps=0.031@every-iterate",
                "pgd20"
            ]
        );
    }

    #[test]
    fn figure_6_grid_is_alpha_by_eps() {
        let p = plan("fig6.1", Scale::Full).unwrap();
        let t = p.trains();
        assert_eq!(t.len(), 18);
        assert!(t
            .iter()
            .all(|t| t.model == "resnet-50" && t.method == Method::Madry));
        let names: std::collections::BTreeSet<String> = t.iter().map(|t| t.name()).collect();
        assert_eq!(names.len(), 18, "every (α, ε) has its own run directory");
    }

    #[test]
    fn every_measurement_reads_the_last_and_the_best_checkpoint() {
        for id in IDS {
            let p = plan(id, Scale::Full).unwrap();
            let mut last = 0;
            let mut best = 0;
            for c in &p.cells {
                match &c.job {
                    Job::Eval { checkpoint, .. } | Job::Sweep { checkpoint, .. } => {
                        match checkpoint {
                            Checkpoint::Last => last += 1,
                            Checkpoint::Best => best += 1,
                        }
                    }
                    _ => {}
                }
            }
            assert_eq!(last, best, "{id}");
            assert!(
                p.trains().iter().all(|t| t.val_subset.is_some()),
                "{id}: every run holds out a validation split to choose its best epoch on"
            );
        }
    }

    #[test]
    fn short_and_smoke_keep_every_run_but_shrink_them() {
        for id in IDS {
            let full = plan(id, Scale::Full).unwrap();
            for scale in [Scale::Short, Scale::Smoke] {
                let p = plan(id, scale).unwrap();
                assert_eq!(p.cells.len(), full.cells.len(), "{id} {scale}");
                for (a, b) in full.trains().iter().zip(p.trains()) {
                    assert_eq!(
                        (a.method, a.spat_alpha, a.eps, a.attack_step),
                        (b.method, b.spat_alpha, b.eps, b.attack_step)
                    );
                    assert!(b.epochs < a.epochs);
                }
            }
        }
    }

    #[test]
    fn attack_costs() {
        let passes = |s: &str| attack_passes(&s.parse().unwrap());
        assert_eq!(passes("clean"), 1.0);
        assert_eq!(passes("fgsm"), 4.0);
        assert_eq!(passes("pgd20"), 61.0);
        assert_eq!(passes("cw30"), 91.0);
        assert_eq!(passes("pgd-ls:0.1"), 61.0);
        assert_eq!(passes("pgd20@eps/10"), 61.0);
        assert_eq!(passes("pgd20x5@every-iterate"), 305.0);
    }

    #[test]
    fn an_rst_epoch_is_50k_images_not_100k() {
        let p = plan("table6.3", Scale::Full).unwrap();
        let t = p.trains()[0];
        let s = Setting { scale: Scale::Full };
        let per_epoch = s.train_flops(t) / t.epochs as f64;
        let per_image = forward_flops(t.model);
        let images = (per_epoch - 1000.0 * 62.0 * per_image) / (37.0 * per_image);
        assert!((images - 50_176.0).abs() < 1e-6, "{images}");
    }

    #[test]
    fn every_attack_named_here_or_in_the_paper_parses() {
        let mut names: Vec<&str> = vec![FIG_6_ATTACK, "cw30"];
        names.extend(FIG_5_2_ATTACKS);
        for t in paper::TABLES {
            names.extend(t.columns.iter().map(|c| c.attack));
            names.extend(extra_columns(t.id).iter().map(|c| c.attack));
        }
        assert_eq!(specs(&names).len(), names.len());
        assert_eq!(pixel_factor(Dataset::Stl10), 9.0);
    }
}
