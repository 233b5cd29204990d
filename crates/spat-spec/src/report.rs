//! Schemas of what the `spat` commands print with `--json` and write besides a run directory:
//! `eval`, `sweep-alpha` (`sweep.json`), `visualize`, `data-info`, `model-info`
//! ([`crate::ModelSize`]) and `bench`; and of `results.json`, what `cargo xtask reproduce` writes
//! for one table or figure of the thesis ([`Results`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::{AttackSpec, AutoAttackVersion, Norm};

/// `spat eval --json`: accuracies in percent.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// Number of test images evaluated.
    pub examples: usize,
    /// The L∞ radius attacks ran at, in `[0, 1]` pixel units.
    pub eps: f64,
    /// The norm `eps` is measured in, that of every attack of the list (L∞ in reports written
    /// before norms existed).
    #[serde(default)]
    pub norm: Norm,
    /// Accuracy under each attack of the list, keyed by the attack's canonical spec
    /// ([`AttackSpec`]'s `Display`: `clean`, `pgd20`, `pgd20-kl`, ...).
    pub accuracy: BTreeMap<String, f64>,
    /// Examples classified correctly clean and under every attack of the list.
    pub worst_case: f64,
    /// What each AutoAttack of the list went through, keyed like `accuracy` (`autoattack`,
    /// `autoattack-rand`); its final robust accuracy is also its `accuracy` entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub autoattack: BTreeMap<String, AutoAttackReport>,
}

impl EvalReport {
    /// The accuracy under `spec`, if it was evaluated.
    pub fn accuracy_of(&self, spec: &AttackSpec) -> Option<f64> {
        self.accuracy.get(&spec.to_string()).copied()
    }
}

/// One AutoAttack run over a data set, as the reference's log reports it (percentages).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AutoAttackReport {
    /// `standard` or `rand`.
    pub version: AutoAttackVersion,
    /// Number of images attacked.
    pub examples: usize,
    /// The L∞ radius, in `[0, 1]` pixel units.
    pub eps: f64,
    /// The threat model's norm (`linf` when absent, as in reports written before norms existed).
    #[serde(default)]
    pub norm: Norm,
    /// Clean accuracy in percent (the images the ensemble starts from).
    pub clean: f64,
    /// The attacks in the order they ran, each with the robust accuracy after it (examples that
    /// it and every earlier attack failed to fool).
    pub stages: Vec<AutoAttackStage>,
    /// Robust accuracy under the whole ensemble (that after the last stage).
    pub robust: f64,
    /// Wall time of the whole ensemble, in seconds.
    pub seconds: f64,
    /// The reference's sanity checks that failed: randomised outputs, probabilities for logits,
    /// Square succeeding where the gradient attacks did not.
    pub warnings: Vec<String>,
}

/// One attack of an AutoAttack run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AutoAttackStage {
    /// The attack's canonical spec (`apgd-ce`, `apgd-t`, `fab-t`, `square`, `apgd-ce@eot=20`).
    pub attack: String,
    /// Robust accuracy after this attack, in percent.
    pub robust: f64,
    /// Wall time of this attack, in seconds.
    pub seconds: f64,
}

/// Which attack a row of an α sweep measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SweepAttack {
    /// PGD on label-smoothed cross-entropy at one α.
    #[serde(rename = "pgd-ls")]
    PgdLs,
    /// PGD on cross-entropy (α = 0, the baseline).
    #[serde(rename = "pgd-ce")]
    PgdCe,
    /// PGD on TRADES' KL divergence.
    #[serde(rename = "pgd-kl")]
    PgdKl,
}

impl SweepAttack {
    /// The name in `sweep.json` and tables (`pgd-ls`, `pgd-ce`, `pgd-kl`).
    pub fn as_str(self) -> &'static str {
        match self {
            SweepAttack::PgdLs => "pgd-ls",
            SweepAttack::PgdCe => "pgd-ce",
            SweepAttack::PgdKl => "pgd-kl",
        }
    }
}

/// One row of an α sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepRow {
    /// The attack the row measures.
    pub attack: SweepAttack,
    /// The label-smoothing α of a PGD-LS row.
    pub alpha: Option<f64>,
    /// Robust accuracy in percent.
    pub accuracy: f64,
}

/// `sweep.json` of `spat sweep-alpha`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepReport {
    /// Number of test images attacked.
    pub examples: usize,
    /// The L∞ radius, in `[0, 1]` pixel units.
    pub eps: f64,
    /// The threat model's norm (`linf` when absent, as in reports written before norms existed).
    #[serde(default)]
    pub norm: Norm,
    /// PGD iterations of every row.
    pub steps: usize,
    /// Clean accuracy in percent.
    pub clean_accuracy: f64,
    /// One PGD-LS row per α in the order given, then one PGD-CE row and one PGD-KL row.
    pub rows: Vec<SweepRow>,
}

impl SweepReport {
    /// Accuracy of the PGD-LS row with this α.
    pub fn pgd_ls(&self, alpha: f64) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| {
                r.attack == SweepAttack::PgdLs && r.alpha.is_some_and(|a| (a - alpha).abs() < 1e-9)
            })
            .map(|r| r.accuracy)
    }

    /// Accuracy of the first row of `attack` (PGD-CE and PGD-KL have one each).
    pub fn first(&self, attack: SweepAttack) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.attack == attack)
            .map(|r| r.accuracy)
    }
}

/// Size, class balance and per-channel statistics of one split: `count` images, `per_class`
/// examples per label, mean / standard deviation of the pixel values scaled to `[0, 1]`
/// (population statistics over every pixel of every image).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitStats {
    /// Number of images.
    pub count: usize,
    /// Images per label, indexed by label.
    pub per_class: Vec<usize>,
    /// Mean of each channel's pixel values in `[0, 1]`.
    pub mean: Vec<f64>,
    /// Population standard deviation of each channel's pixel values in `[0, 1]`.
    pub std: Vec<f64>,
}

/// `spat data-info --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataInfo {
    /// The training split.
    pub train: SplitStats,
    /// The test split.
    pub test: SplitStats,
}

/// One row of a `spat visualize` grid: a test image and the model's prediction under each column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GridRow {
    /// Index in the test set.
    pub index: usize,
    /// True class name.
    pub label: String,
    /// Predicted class name under each adversarial column, in column order.
    pub predictions: Vec<String>,
}

/// `spat visualize --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GridSummary {
    /// The PNG written.
    pub image: PathBuf,
    /// Its width in pixels.
    pub width: usize,
    /// Its height in pixels.
    pub height: usize,
    /// Column headers: `original`, then `<attack> <eps>` per adversarial column.
    pub columns: Vec<String>,
    /// One row per test image shown.
    pub rows: Vec<GridRow>,
}

/// One measurement of `spat bench` (and of `bench/pytorch_reference.py --json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchRecord {
    /// Model preset (`tiny`, `wrn-16-2`, `resnet-18`, ...).
    pub model: String,
    /// `standard` (one training step), `trades-spat-pgd10` (one TRADES+SPAT step with PGD-10) or
    /// `pgd20-eval` (a PGD-20 evaluation of a batch).
    pub workload: String,
    /// `fp32`, `tf32` or `bf16`.
    pub precision: String,
    /// Images per step.
    pub batch: usize,
    /// Untimed steps before the timed ones.
    pub warmup: usize,
    /// Timed steps.
    pub repeats: usize,
    /// Median wall time of one step, in milliseconds.
    pub median_ms: f64,
    /// `batch` over the median wall time.
    pub images_per_s: f64,
    /// Median CPU time (all threads, user + system) of one step: on a shared machine this
    /// depends far less on other jobs than the wall time does. Absent where not measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_cpu_ms: Option<f64>,
    /// How the reference ran (`bench/pytorch_reference.py --modes`: `default`, `channels-last`,
    /// `compile`, `compile-channels-last`); absent for spat and for older reference files
    /// (which ran PyTorch's default mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Wall seconds of a compiled reference's first step, compilation included (not part of
    /// `median_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile_s: Option<f64>,
}

/// `spat bench --json` and `bench/pytorch_reference.py --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// `spat` or `pytorch`.
    pub framework: String,
    /// Its version (spat's crate version, or `torch.__version__`).
    pub framework_version: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The CPU model or GPU name.
    pub device_name: String,
    /// One record per model × workload × precision.
    pub records: Vec<BenchRecord>,
}

/// `results.json` of `cargo xtask reproduce <id>`: spat's measurements beside the thesis's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Results {
    /// `table6.1`, `fig5.3`, ...
    pub id: String,
    /// `full`, `short` or `smoke`.
    pub scale: String,
    /// Where it is in the thesis (`Table 6.1, §6.1.1`).
    pub source: String,
    /// The thesis's caption.
    pub caption: String,
    /// What the scale means for the comparison, in words.
    pub setting: String,
    /// What was measured, by the kind of thesis item.
    #[serde(flatten)]
    pub measured: Measured,
    /// Every setting of the runs with its source (the thesis, a reference repository's file and
    /// lines, or spat's choice), as `cargo xtask reproduce <id> --dry-run` lists them.
    #[serde(default)]
    pub settings: Vec<SettingLine>,
    /// The thesis's qualitative claims about this table or figure, tested on this run's numbers.
    #[serde(default)]
    pub claims: Vec<Claim>,
    /// What ran: the commit that wrote the report and each cell's command and commit.
    #[serde(default)]
    pub provenance: Provenance,
}

/// One setting of a reproduction and where it comes from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SettingLine {
    /// The part of the reproduction it belongs to (`training (every run)`, `evaluation`, ...).
    pub section: String,
    /// The setting's name (`weight decay`, `PGD steps`, ...).
    pub key: String,
    /// Its value as written in the report.
    pub value: String,
    /// Where it comes from, in words.
    pub source: String,
    /// Whether neither the thesis nor a reference states it.
    pub spat_choice: bool,
}

/// A claim's outcome in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The numbers agree with the claim.
    Holds,
    /// The numbers contradict the claim.
    DoesNotHold,
    /// Smoke-scale numbers say nothing about the thesis.
    NotTestableAtThisScale,
}

impl Verdict {
    /// The verdict in words, as results.md prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::NotTestableAtThisScale => "not testable at this scale",
        }
    }
}

/// A qualitative claim of the thesis and its outcome on this run's numbers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The claim, in the thesis's words or close to them.
    pub statement: String,
    /// Where the thesis makes it.
    pub source: String,
    /// `last` or `best`: the checkpoint whose numbers were used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Whether the numbers bear it out.
    pub verdict: Verdict,
    /// The numbers the verdict rests on, in words.
    pub evidence: String,
}

/// The `DONE` marker of a finished reproduction cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellDone {
    /// The `spat` arguments that ran (the resumed form for a training run continued after a kill).
    pub command: Vec<String>,
    /// Wall time of the cell, in seconds.
    pub seconds: f64,
    /// `git describe`-style commit of the checkout that ran the cell (`-dirty` when it had
    /// uncommitted changes); absent for markers written before commits were recorded.
    #[serde(default)]
    pub commit: Option<String>,
    /// FNV-1a of each output file as the cell finished, by file name: a cell whose outputs changed
    /// since runs again.
    #[serde(default)]
    pub outputs: std::collections::BTreeMap<String, String>,
}

/// One cell of a reproduction as it ran.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellRecord {
    /// The cell's name (`train-madry`, `eval-madry-last`, ...).
    pub name: String,
    /// Its `DONE` marker.
    #[serde(flatten)]
    pub done: CellDone,
}

/// What ran a reproduction.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The commit of the checkout that wrote results.md / results.json.
    pub report_commit: Option<String>,
    /// Every cell of the reproduction, in matrix order.
    pub cells: Vec<CellRecord>,
}

/// What a reproduction measured, by the kind of its thesis item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measured {
    /// A table: one row per thesis row, the thesis's values beside spat's.
    Table {
        /// The thesis's columns, then any spat measures besides them (`spat_only_columns`).
        columns: Vec<String>,
        /// The attacks of the columns, in order.
        attacks: Vec<AttackSpec>,
        /// What each attack does exactly, by column.
        attack_settings: Vec<String>,
        /// Columns without a thesis value (Table 6.3 under chapter 6's protocol).
        #[serde(default)]
        spat_only_columns: Vec<String>,
        /// Evaluation radius as given (`8/255`); an attack with a radius of its own says so.
        eps: String,
        /// One row per thesis row.
        rows: Vec<TableRow>,
        /// Remarks printed under the table (substitutions, scale caveats).
        notes: Vec<String>,
        /// The picture of the rows' runs' per-epoch robust accuracy (on their validation split),
        /// with its numbers beside it ([`crate::curves::Curves`], the same name ending `.json`).
        #[serde(default)]
        curves: Option<PathBuf>,
    },
    /// Figure 5.3: an α sweep per model and checkpoint (the text's statements are `claims`).
    Sweep {
        /// What the thesis's text says about the figure.
        paper_statements: Vec<String>,
        /// One sweep per model and checkpoint.
        models: Vec<SweepModel>,
        /// The PNG drawn.
        plot: PathBuf,
    },
    /// Figures 6.1/6.2: clean and robust accuracy over training ε × SPAT α, per checkpoint;
    /// `checks` sets the text's stated values beside spat's.
    AlphaGrid {
        /// What the thesis's text says about the figure.
        paper_statements: Vec<String>,
        /// The attack robust accuracy is measured under.
        eval_attack: AttackSpec,
        /// One point per trained model and checkpoint.
        points: Vec<GridPoint>,
        /// The text's statements set beside spat's values.
        checks: Vec<Check>,
        /// The PNG drawn.
        plot: PathBuf,
    },
    /// Figures 4.1, 5.1 and 5.2: a grid of images (input gradients or adversarial examples).
    Images {
        /// What the thesis's text says about the figure.
        paper_statements: Vec<String>,
        /// The `spat visualize` job that drew it (xtask's matrix cell, as JSON).
        job: serde_json::Value,
        /// The run directory of the model drawn.
        run: PathBuf,
        /// The PNG drawn.
        image: PathBuf,
    },
}

/// One row of a reproduced table: accuracies in percent by column header.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableRow {
    /// The row's label (`Madry`, `TRADES + SPAT (α = 0.1)`, ...).
    pub label: String,
    /// The training run directory.
    pub run: PathBuf,
    /// The thesis's values by column header.
    pub paper: BTreeMap<String, f64>,
    /// spat's values from the last checkpoint.
    pub last: CheckpointValues,
    /// spat's values from the best checkpoint.
    pub best: CheckpointValues,
}

/// Accuracies of one checkpoint of a run, by column header.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointValues {
    /// `model.safetensors` or `best.safetensors`.
    pub weights: PathBuf,
    /// The epoch the weights are from, where the run says.
    pub epoch: Option<usize>,
    /// The [`EvalReport`] the values come from.
    pub eval: PathBuf,
    /// Accuracy in percent by column header.
    pub values: BTreeMap<String, f64>,
    /// Number of test images evaluated.
    pub examples: usize,
}

/// One model's α sweep in Figure 5.3.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepModel {
    /// The model's label (`standard`, `Madry`).
    pub model: String,
    /// `last` or `best`.
    pub checkpoint: String,
    /// The epoch the weights are from, where the run says.
    pub epoch: Option<usize>,
    /// The training run directory.
    pub run: PathBuf,
    /// The [`SweepReport`] the values come from.
    pub sweep: PathBuf,
    /// Clean accuracy in percent.
    pub clean: f64,
    /// Robust accuracy under PGD-LS, one entry per α.
    pub pgd_ls: Vec<AlphaAccuracy>,
    /// Robust accuracy under PGD-CE, in percent.
    pub pgd_ce: f64,
    /// Robust accuracy under PGD-KL, in percent.
    pub pgd_kl: f64,
    /// Number of test images attacked.
    pub examples: usize,
}

/// Robust accuracy under PGD-LS at one α.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaAccuracy {
    /// The label-smoothing α in `[0, 1]`.
    pub alpha: f64,
    /// Accuracy in percent.
    pub accuracy: f64,
}

/// One trained model of Figures 6.1/6.2.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GridPoint {
    /// Training radius in units of 1/255.
    pub train_eps: f64,
    /// SPAT's α of the training run (0: plain adversarial training).
    pub alpha: f64,
    /// `last` or `best`.
    pub checkpoint: String,
    /// The epoch the weights are from, where the run says.
    pub epoch: Option<usize>,
    /// Clean accuracy in percent.
    pub clean: f64,
    /// Robust accuracy in percent under the figure's attack.
    pub robust: f64,
    /// The training run directory.
    pub run: PathBuf,
}

/// A statement of the thesis's text, checked on spat's numbers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// The model it is checked on, where the figure has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The statement checked.
    pub statement: String,
    /// The thesis's value, where it states one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paper: Option<serde_json::Value>,
    /// spat's value or a sentence about it.
    pub spat: serde_json::Value,
    /// Whether the statement holds on spat's numbers, where that is a yes or no.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_by_canonical_names() {
        let json = r#"{"examples": 8, "eps": 0.03, "accuracy": {"clean": 50.0, "pgd20-kl": 25.0},
            "worst_case": 12.5}"#;
        let r: EvalReport = serde_json::from_str(json).unwrap();
        assert_eq!(r.accuracy_of(&"pgd-kl".parse().unwrap()), Some(25.0));
        assert_eq!(r.accuracy_of(&"pgd20".parse().unwrap()), None);
        assert!(r.autoattack.is_empty());
        assert!(!serde_json::to_string(&r).unwrap().contains("autoattack"));

        let json = r#"{"examples": 4, "eps": 0.03, "accuracy": {"clean": 75.0, "autoattack": 25.0},
            "worst_case": 25.0, "autoattack": {"autoattack": {"version": "standard",
            "examples": 4, "eps": 0.03, "clean": 75.0, "stages": [
            {"attack": "apgd-ce", "robust": 50.0, "seconds": 1.5},
            {"attack": "apgd-t", "robust": 25.0, "seconds": 2.0}],
            "robust": 25.0, "seconds": 3.5, "warnings": []}}}"#;
        let r: EvalReport = serde_json::from_str(json).unwrap();
        let aa = &r.autoattack["autoattack"];
        assert_eq!(aa.version, AutoAttackVersion::Standard);
        // Written before norms existed: L∞.
        assert_eq!((r.norm, aa.norm), (Norm::Linf, Norm::Linf));
        assert_eq!(aa.stages[1].attack, "apgd-t");
        assert_eq!(
            serde_json::from_str::<EvalReport>(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );

        let json = r#"{"examples": 8, "eps": 0.03, "steps": 20, "clean_accuracy": 50.0, "rows": [
            {"attack": "pgd-ls", "alpha": 0.1, "accuracy": 30.0},
            {"attack": "pgd-ce", "alpha": null, "accuracy": 10.0}]}"#;
        let s: SweepReport = serde_json::from_str(json).unwrap();
        assert_eq!(s.norm, Norm::Linf);
        assert_eq!(s.pgd_ls(0.1), Some(30.0));
        assert_eq!(s.first(SweepAttack::PgdCe), Some(10.0));
        assert_eq!(s.first(SweepAttack::PgdKl), None);
        assert!(serde_json::from_str::<SweepRow>(
            r#"{"attack": "pgd", "alpha": null, "accuracy": 1}"#
        )
        .is_err());
    }
}
