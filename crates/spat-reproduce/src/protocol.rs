//! Where every setting of a reproduction comes from: the thesis (its section and words), the
//! reference code the thesis names (repository, commit, file and lines), or spat's own choice
//! (and why). `cargo xtask reproduce <id> --dry-run` prints these lines and results.md repeats
//! them, so that a reader can check the runs line by line against the thesis and the references.
//!
//! A training run's values are those spat-policy configures from the request the harness makes
//! (the same request `spat train` configures from the harness's arguments), and their sources are
//! spat-policy's, except where the reproduction itself decides: the model, the held-out
//! validation split, a reduced scale, or an experiment the thesis gives fewer settings for. The
//! listing is a table of rows (`TRAINING`), each a key, the value it reads and its source.

use spat_policy::{PaperSettings, Ref, Source, TrainingAdversary};
use spat_spec::report::SettingLine;
use spat_spec::{
    ApgdLoss, AttackLoss, AttackSpec, AutoAttackVersion, Dataset, LrSchedule, Method, Mode,
    Precision, Radius, RandomStart, RunConfig, StepRule,
};

use crate::command::train_request;
use crate::markdown;
use crate::matrix::{self, Job, Plan, Scale, TrainSpec};
use crate::paper;

/// The thesis's name of a data set.
pub fn dataset_name(d: Dataset) -> &'static str {
    match d {
        Dataset::Cifar10 => "CIFAR-10",
        Dataset::Cifar100 => "CIFAR-100",
        Dataset::Stl10 => "STL-10",
    }
}

/// One setting: what it is, its value in this reproduction, and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What the setting is (`weight decay`, ...).
    pub key: String,
    /// Its value in this reproduction.
    pub value: String,
    /// Where the value comes from.
    pub source: Source,
}

fn line(key: impl Into<String>, value: impl Into<String>, source: Source) -> Line {
    Line {
        key: key.into(),
        value: value.into(),
        source,
    }
}

fn spat(why: impl Into<String>) -> Source {
    Source::spat(why)
}

/// The configuration `spat train` runs for `t`: spat-policy's, from the harness's request.
pub fn configured(t: &TrainSpec) -> RunConfig {
    train_request(t)
        .configure()
        .unwrap_or_else(|e| panic!("the harness's run {} does not configure: {e}", t.name()))
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The schedule as a reader checks it: the epochs at which the rate drops, or the cosine formula.
pub fn schedule_text(schedule: &LrSchedule, lr: f64, epochs: usize) -> String {
    match schedule {
        LrSchedule::Cosine => format!("cosine: {lr}·½(1 + cos(π(e − 1)/{epochs})) in epoch e"),
        LrSchedule::Constant => format!("constant {lr}"),
        LrSchedule::Piecewise { factor, .. } => {
            let drops = schedule.drops(epochs);
            let mut rate = lr;
            let parts: Vec<String> = drops
                .iter()
                .map(|e| {
                    rate *= factor;
                    format!("{} from epoch {e}", short(rate))
                })
                .collect();
            format!(
                "{lr} until epoch {}, {}",
                drops.first().map_or(epochs, |d| d - 1),
                parts.join(", ")
            )
        }
    }
}

/// A number without float noise (0.0010000000000000002 → 0.001).
fn short(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One training run of an id as the listing describes it: what the harness asks for, what the
/// policy makes of it, and the policy's settings with their sources.
struct Run<'a> {
    id: &'a str,
    scale: Scale,
    t: &'a TrainSpec,
    config: RunConfig,
    paper: PaperSettings,
    adversary: Option<TrainingAdversary>,
}

impl Run<'_> {
    /// spat's reason for a value a reduced scale changed; `None` at the full scale.
    fn reduced(&self, what: &str) -> Option<Source> {
        match self.scale {
            Scale::Full => None,
            Scale::Short => Some(spat(format!("short scale: {what}"))),
            Scale::Smoke => Some(spat(format!("smoke scale: {what}"))),
        }
    }

    /// Training images held out for validation, and those trained on.
    fn split(&self) -> (usize, usize) {
        let whole = self.t.dataset.official_count(spat_spec::Split::Train);
        let val = self.t.val_subset.unwrap_or(0);
        let trained = self
            .t
            .train_subset
            .map_or(whole - val, |n| n.min(whole - val));
        (val, trained)
    }
}

/// A row of the training listing: its key, its value for a run (`None`: the row does not apply to
/// the run) and its source.
struct Row {
    key: &'static str,
    value: fn(&Run<'_>) -> Option<String>,
    source: fn(&Run<'_>) -> Source,
}

/// The training settings, in the listing's order.
const TRAINING: &[Row] = &[
    Row {
        key: "model",
        value: |r| Some(r.t.model.into()),
        source: model_source,
    },
    Row {
        key: "training data",
        value: |r| {
            let (val, trained) = r.split();
            Some(format!(
                "{} training images less a seeded validation split of {}: {} trained on",
                dataset_name(r.t.dataset),
                thousands(val),
                thousands(trained)
            ))
        },
        source: |r| {
            r.reduced("subsets of the training data")
                .unwrap_or_else(held_out_source)
        },
    },
    Row {
        key: "pseudo-labelled data",
        value: pseudo_labelled_text,
        source: |r| r.paper.unlabeled_fraction.source.clone(),
    },
    Row {
        key: "augmentation",
        value: |r| Some(augmentation(r.t.dataset).0.into()),
        source: |r| augmentation(r.t.dataset).1,
    },
    Row {
        key: "epochs",
        value: |r| Some(r.config.epochs.to_string()),
        source: |r| {
            // The thesis states the epochs of chapter 6's tables only.
            let stated = r.t.pseudo_labeled
                || r.t.dataset == Dataset::Stl10
                || matches!(r.id, "table6.1" | "table6.2");
            r.reduced("fewer epochs").unwrap_or_else(|| {
                if stated {
                    r.paper.epochs.source.clone()
                } else {
                    spat("not stated for this experiment; Table 6.1's 90 (MART's train_wideresnet.py line 25)")
                }
            })
        },
    },
    Row {
        key: "batch size",
        value: |r| Some(r.config.batch_size.to_string()),
        source: |r| match r.scale {
            Scale::Smoke => spat("smoke scale: small batches"),
            _ => r.paper.batch_size.source.clone(),
        },
    },
    Row {
        key: "optimizer",
        value: |r| {
            let nesterov = if r.config.nesterov { "Nesterov " } else { "" };
            Some(format!("SGD, {nesterov}momentum {}", r.config.momentum))
        },
        source: |r| r.paper.momentum.source.clone(),
    },
    Row {
        key: "learning rate",
        value: |r| {
            Some(schedule_text(
                &r.config.schedule,
                r.config.lr,
                r.config.epochs,
            ))
        },
        source: |r| match r.reduced("the drops at 75 and 90 of 90 epochs scaled to the epochs run")
        {
            Some(reduced) if !r.t.pseudo_labeled => reduced,
            _ => r.paper.learning_rate.source.clone(),
        },
    },
    Row {
        key: "weight decay",
        value: |r| {
            Some(format!(
                "{:e} (coupled L2, all parameters)",
                r.config.weight_decay
            ))
        },
        source: |r| r.paper.weight_decay.source.clone(),
    },
    Row {
        key: "training radius ε",
        value: |r| Some(r.t.eps.to_string()),
        source: |r| {
            if r.id.starts_with("fig6") && !r.t.pseudo_labeled {
                Source::Thesis("§6.2: \"ε = 4/255, 8/255, 16/255\" for training")
            } else {
                r.paper.eps.source.clone()
            }
        },
    },
    Row {
        key: "training adversary",
        value: |r| {
            let a = r.adversary.as_ref()?;
            let step = match r.t.attack_step {
                Some(s) => s.to_string(),
                None => format!("ε/4 = {}", short(a.step_size)),
            };
            Some(format!(
                "PGD-{} on {}, step {step}",
                a.steps,
                adversary_loss_text(&a.loss)
            ))
        },
        source: |r| r.paper.attack.source.clone(),
    },
    Row {
        key: "adversary start and batch norm",
        value: |r| {
            let a = r.adversary.as_ref()?;
            let mode = match a.mode {
                Mode::Train => {
                    "batch norm in train mode (running statistics move on every attack step)"
                }
                _ => "batch norm in eval mode while the adversary is crafted",
            };
            Some(format!(
                "{}; {mode}",
                start_text(a.random_start, "in the ε-ball")
            ))
        },
        source: |r| r.paper.adversary_start.source.clone(),
    },
    Row {
        key: "objective",
        value: |r| Some(objective(r).0),
        source: |r| objective(r).1,
    },
    Row {
        key: "seed",
        value: |r| Some(format!("{} (one run per row)", r.config.seed)),
        source: |_| spat("the thesis reports one number per row and states no seed"),
    },
    Row {
        key: "checkpoints reported",
        value: |r| {
            Some(format!(
                "last (model.safetensors, epoch {}) and best (best.safetensors: the epoch with the \
                 highest PGD-20 accuracy on the {}-image validation split; a tie keeps the earlier)",
                r.config.epochs,
                thousands(r.split().0)
            ))
        },
        source: |_| {
            spat(format!(
                "TRADES, MART and RST report their last epoch and choose no best (TRADES issue #9 \
                 is a reader who could not reproduce from the last); the rule is Rice et al.'s \
                 ({}) on held-out data",
                Ref::rice("train_cifar.py", "421")
            ))
        },
    },
    Row {
        key: "arithmetic",
        value: |r| Some(precision_text(r.config.precision).into()),
        source: |r| r.paper.precision.source.clone(),
    },
];

/// The training settings of run `t` of `id` at `scale`, each with its source.
pub fn training(id: &str, scale: Scale, t: &TrainSpec) -> Vec<Line> {
    let config = configured(t);
    let run = Run {
        id,
        scale,
        t,
        paper: PaperSettings::of_config(&config),
        adversary: spat_policy::training_adversary(&config),
        config,
    };
    TRAINING
        .iter()
        .filter_map(|row| Some(line(row.key, (row.value)(&run)?, (row.source)(&run))))
        .collect()
}

/// The thesis's words on the model of `id`'s runs, or spat's reason for another.
fn model_source(r: &Run<'_>) -> Source {
    let stated = match r.id {
        "table6.1" | "table6.2" => Some(Source::Thesis(
            "§6.1: \"We train WideResNet-34-10 on CIFAR-10 and CIFAR-100\"",
        )),
        "table6.3" => Some(Source::Thesis(
            "§6.1.2: \"we train RST + SPAT and MART + SPAT on WideResNet-28-10\"",
        )),
        "table6.4" => Some(Source::Thesis("§6.1: \"we train ResNet-18 on STL-10\"")),
        "fig6.1" | "fig6.2" => Some(Source::Thesis("§6.2: \"we train ResNet-50\"")),
        _ => None,
    };
    match (
        r.reduced("a smaller network in place of the thesis's"),
        stated,
    ) {
        (Some(reduced), _) => reduced,
        (None, Some(s)) => s,
        (None, None) => spat(
            "the thesis does not state chapter 4's and 5's models; Table 6.1's WRN-34-10, \
             trained as its Madry row (the standard model without an adversary)",
        ),
    }
}

/// Why every run holds out a validation split, which the references do not.
fn held_out_source() -> Source {
    spat(format!(
        "the thesis and its references train on the whole training set and choose no checkpoint; \
         holding out a validation split, as Rice et al. hold out 1,000 ({}), lets \
         best.safetensors be chosen on images no reported accuracy is measured on",
        Ref::rice("generate_validation.py", "5-26")
    ))
}

/// RST's pseudo-labelled half of every batch, and how long an epoch is (spat-train's load_data:
/// as many batches as the whole training set fills, RST's 50,000 images, or the train subset).
fn pseudo_labelled_text(r: &Run<'_>) -> Option<String> {
    let fraction = r.config.pseudo_labeled.as_ref()?.fraction;
    let whole = r.t.dataset.official_count(spat_spec::Split::Train);
    let labelled = match r.t.train_subset {
        Some(_) => r.split().1,
        None => whole,
    };
    let batch = r.config.batch_size;
    let batches = labelled.div_ceil(batch);
    Some(format!(
        "RST's 500k pseudo-labelled TinyImages; half of every batch ({} pseudo-labelled of {}); an \
         epoch is {} batches = {} images",
        (batch as f64 * fraction) as usize,
        batch,
        batches,
        thousands(batches * batch)
    ))
}

/// The training augmentation of a data set (spat-data's `Augmentation::for_dataset`) and its
/// source.
fn augmentation(d: Dataset) -> (&'static str, Source) {
    match d {
        Dataset::Stl10 => (
            "random crop with 12-pixel zero padding, random horizontal flip",
            spat(
                "the thesis states CIFAR's 4-pixel padding (§6.1.1); on 96×96 STL-10 images spat \
                 pads 12 pixels, the same fraction of the image",
            ),
        ),
        _ => (
            "random crop with 4-pixel zero padding, random horizontal flip",
            Source::Thesis(
                "§6.1.1: \"random horizontal flipping and random crop with 4 pixel padding\"",
            ),
        ),
    }
}

/// The training adversary's loss, in words.
fn adversary_loss_text(loss: &AttackLoss) -> String {
    match loss {
        AttackLoss::LabelSmoothed { alpha } => {
            format!("label-smoothed cross-entropy, α = {alpha} (SPAT)")
        }
        AttackLoss::Kl => "KL(p(x) ‖ p(x̂)) (TRADES' PGD-KL)".into(),
        other => loss_text(other),
    }
}

/// Where PGD starts, in words (`ball` says which ball and how a uniform start is clipped).
fn start_text(start: RandomStart, ball: &str) -> String {
    match start {
        RandomStart::None => "the clean input".into(),
        RandomStart::Uniform => format!("uniform {ball}"),
        RandomStart::Gaussian { std } => format!("x + {std}·N(0, 1)"),
        RandomStart::UniformUnclipped => "uniform in the ε-ball, NOT clipped to [0, 1]".into(),
    }
}

fn precision_text(p: Precision) -> &'static str {
    match p {
        Precision::Tf32 => {
            "TF32 convolutions and matrix products on CUDA, f32 weights (fp32 on the CPU)"
        }
        Precision::Fp32 => "f32 everywhere (TF32 off)",
        Precision::Bf16 => {
            "bf16 convolutions and matrix products, f32 weights, batch norm and loss"
        }
    }
}

/// The outer objective of a run in words, and its source.
fn objective(r: &Run<'_>) -> (String, Source) {
    let c = &r.config;
    match (r.adversary.is_some(), r.t.method.objective()) {
        (false, _) => (
            "CE(x): standard training, no adversary".into(),
            spat("chapter 5's \"standard model\", trained as the Madry row without its adversary"),
        ),
        (true, Method::Trades) => (
            format!("CE(x) + β·KL(p(x) ‖ p(x̂)), β = {}", c.trades_beta),
            r.paper.trades_beta.source.clone(),
        ),
        (true, Method::Mart) => (
            format!(
                "BCE(x̂) + λ·KL(p(x) ‖ p(x̂))·(1 − p_y(x)), λ = {}",
                c.mart_lambda
            ),
            r.paper.mart_lambda.source.clone(),
        ),
        (true, _) => (
            "CE(x̂)".into(),
            Source::Thesis("§4.3: \"Madry + SPAT Loss function is formulated as CE(p(x̂′, θ), y)\""),
        ),
    }
}

/// The loss an attack maximises, in words.
fn loss_text(loss: &AttackLoss) -> String {
    match loss {
        AttackLoss::CrossEntropy => "cross-entropy".into(),
        AttackLoss::LabelSmoothed { alpha } => {
            format!("label-smoothed cross-entropy (α = {alpha})")
        }
        AttackLoss::Kl => "KL(p(x) ‖ p(x̂))".into(),
        AttackLoss::CwMargin { kappa } => format!("the CW margin (κ = {kappa})"),
    }
}

fn step_text(step: StepRule, eps: f64) -> String {
    match step {
        StepRule::EvaluationScripts => format!("0.003·ε/0.031 = {:.7}", step.size(eps)),
        StepRule::EpsOver10 => format!("ε/10 = {:.7}", step.size(eps)),
        StepRule::Fixed(r) => r.to_string(),
    }
}

/// Exactly what an attack spec does at radius `eps` (as spat-attacks' `build` makes it).
pub fn attack_text(spec: &AttackSpec, eps: Radius) -> String {
    match *spec {
        AttackSpec::Clean => "no attack".into(),
        AttackSpec::Fgsm => format!(
            "FGSM on cross-entropy: one signed step of ε = {eps}, no random start, clipped to [0, 1]"
        ),
        AttackSpec::Pgd { steps, loss, step } => format!(
            "PGD on {}: {steps} signed steps of {} at ε = {eps}, start {}, every iterate projected \
             onto the ε-ball and [0, 1]; judged at the last iterate; model in eval mode",
            loss_text(&loss),
            step_text(step, eps.value()),
            start_text(
                spat_spec::evaluation_start(loss),
                "in the ε-ball, clipped to [0, 1]"
            )
        ),
        AttackSpec::PgdRestarts {
            steps,
            restarts,
            step,
            eps: own,
            every_iterate,
        } => pgd_restarts_text(steps, restarts, step, own.unwrap_or(eps), every_iterate),
        AttackSpec::Apgd {
            loss,
            steps,
            restarts,
            eot,
        } => format!(
            "APGD-{} (Croce & Hein 2020, fra31/auto-attack): {restarts} restart(s) of {steps} \
             iterations at ε = {eps}, step 2ε with momentum 0.75, halved at the checkpoint \
             schedule, restarting from the best point; gradients averaged over {eot} pass(es); \
             model in eval mode",
            match loss {
                ApgdLoss::CrossEntropy => "CE",
                ApgdLoss::Dlr => "DLR",
            }
        ),
        AttackSpec::ApgdTargeted {
            steps,
            restarts,
            targets,
        } => format!(
            "APGD-T (fra31/auto-attack): targeted DLR against each of the {targets} most likely \
             wrong classes, {restarts} restart(s) of {steps} iterations each at ε = {eps}; model in \
             eval mode"
        ),
        AttackSpec::Fab {
            steps,
            restarts,
            targets,
        } => format!(
            "FAB{} (fra31/auto-attack): {restarts} restart(s) of {steps} iterations at ε = {eps}{}; \
             model in eval mode",
            if targets.is_some() { "-T" } else { "" },
            targets
                .map(|k| format!(", against each of the {k} most likely wrong classes"))
                .unwrap_or_default()
        ),
        AttackSpec::Square { queries, restarts } => format!(
            "Square Attack (fra31/auto-attack): {restarts} restart(s) of {queries} queries at \
             ε = {eps}, margin loss; model in eval mode"
        ),
        AttackSpec::AutoAttack { version } => autoattack_text(version),
    }
}

/// semisup-adv's PGD with restarts, in words.
fn pgd_restarts_text(
    steps: usize,
    restarts: usize,
    step: StepRule,
    e: Radius,
    every_iterate: bool,
) -> String {
    format!(
        "PGD on cross-entropy: {restarts} restart(s) of {steps} signed steps of {} at ε = {e}, \
         each from a start uniform in the ε-ball NOT clipped to [0, 1]; an example counts as \
         robust only if classified correctly {} of every restart; model in eval mode",
        step_text(step, e.value()),
        if every_iterate {
            "after every iterate"
        } else {
            "after the last iterate"
        }
    )
}

/// AutoAttack, in words: its parts in turn.
fn autoattack_text(version: AutoAttackVersion) -> String {
    format!(
        "AutoAttack ({}, fra31/auto-attack): {} in turn, each only on the examples every earlier \
         one failed to fool",
        match version {
            AutoAttackVersion::Standard => "standard",
            AutoAttackVersion::Rand => "rand",
        },
        spat_spec::autoattack_parts(version)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// TRADES' evaluation script, whose PGD-20 spat's evaluation follows.
const TRADES_EVAL: Ref = Ref::trades("pgd_attack_cifar10.py", "20-28");

/// The source of an evaluation column of `id`.
fn column_source(id: &str, header: &str, spec: &AttackSpec) -> Source {
    match (id, spec) {
        (_, AttackSpec::Clean) => Source::Thesis("§6.1: natural accuracy"),
        ("table6.3", AttackSpec::PgdRestarts { .. }) => Source::ThesisAndCode(
            "§6.1.2: \"PGD-20 (settings in [39])\", [39] = RST; 20 steps per the thesis (the \
             script's default is 40, line 128); ε 0.031 (line 123), step 0.01 (line 130), 5 \
             restarts (line 132), random start (lines 134-136), robust only if correct at every \
             iterate of every restart (lines 58-60; attack_pgd.py lines 24-26, 46-48)",
            Ref::rst("attack_evaluation.py", "58-60, 123-136"),
        ),
        ("table6.3", _) => spat(
            "chapter 6's PGD-20 of Tables 6.1/6.2 at the thesis's 8/255, measured beside RST's \
             protocol so the two can be compared",
        ),
        (_, AttackSpec::Fgsm) => Source::Thesis("§6.1.1: \"FGSM (w/o random start)\" at ε = 8/255"),
        (id, AttackSpec::Pgd { step: StepRule::EpsOver10, .. }) if id.starts_with("fig6") => {
            Source::Thesis("§6.2: \"For evaluation, we use PGD-20 with random start and step size is ε/10\" at ε = 8/255")
        }
        (_, AttackSpec::Pgd { loss: AttackLoss::CwMargin { .. }, .. }) => spat(
            "§6.1.1 names \"C&W∞ (optimized by PGD for 30 steps)\" and no κ or step; κ = 50 is the \
             cwloss default of the TRADES/MART line of evaluation code, the step as PGD-20's",
        ),
        (id, AttackSpec::Pgd { .. }) if id.starts_with("table5") || id.starts_with("fig5") => spat(format!(
            "{header}: §5.2 gives 20 steps (\"PGD-20 acc\") and α but no step size or start; \
             those of TRADES' evaluation ({TRADES_EVAL}: 0.003 at ε = 0.031, random start) scaled \
             to 8/255"
        )),
        _ => spat(format!(
            "§6.1.1 names PGD-20 at ε = 8/255 without step or start; TRADES' evaluation \
             ({TRADES_EVAL}: 20 steps of 0.003 at ε = 0.031, uniform random start) scaled to \
             8/255, its start clipped to [0, 1] (the script does not clip it, lines 63-65)",
        )),
    }
}

/// The evaluation settings of `plan`, each with its source.
pub fn evaluation(plan: &Plan) -> Vec<Line> {
    let mut v = measurement_lines(plan);
    for c in &plan.cells {
        v.extend(image_lines(&plan.id, &c.job));
    }
    v
}

/// The test images, checkpoints and attacks of a plan's evaluations and α sweeps.
fn measurement_lines(plan: &Plan) -> Vec<Line> {
    let id = plan.id.as_str();
    let first = plan.cells.iter().find_map(|c| match &c.job {
        Job::Eval {
            eps, test_subset, ..
        }
        | Job::Sweep {
            eps, test_subset, ..
        } => Some((*eps, *test_subset, c.job.trains()[0].dataset)),
        _ => None,
    });
    let Some((eps, subset, dataset)) = first else {
        return Vec::new();
    };
    let n = dataset.official_count(spat_spec::Split::Test);
    let name = dataset_name(dataset);
    let mut v = vec![
        match subset {
            Some(k) => line(
                "test images",
                format!("the first {} of the {name} test set", thousands(k.min(n))),
                spat("smoke scale: a subset"),
            ),
            None => line(
                "test images",
                format!("all {} {name} test images", thousands(n)),
                spat("the thesis does not say; the whole official test set"),
            ),
        },
        line(
            "checkpoints evaluated",
            "last (model.safetensors) and best (best.safetensors), each evaluated separately",
            spat("see the training lines"),
        ),
    ];
    for (key, header, spec) in measured_attacks(id) {
        v.push(line(
            key,
            attack_text(&spec, eps),
            column_source(id, &header, &spec),
        ));
    }
    v
}

/// The attacks `id` measures: (listing key, the column's header, spec).
fn measured_attacks(id: &str) -> Vec<(String, String, AttackSpec)> {
    let parse = |s: &str| -> AttackSpec { s.parse().expect("specs written here parse") };
    if let Some(table) = paper::table(id) {
        table
            .columns
            .iter()
            .chain(matrix::extra_columns(id))
            .map(|c| {
                let spec = parse(c.attack);
                (format!("{} (`{spec}`)", c.header), c.header.into(), spec)
            })
            .collect()
    } else if id == "fig5.3" {
        [
            ("PGD-LS(α), α = 0, 0.1, …, 1", "pgd-ls:0.1"),
            ("PGD-CE", "pgd20"),
            ("PGD-KL", "pgd-kl"),
        ]
        .map(|(header, spec)| (header.into(), header.into(), parse(spec)))
        .to_vec()
    } else if id.starts_with("fig6") {
        let spec = parse(matrix::FIG_6_ATTACK);
        vec![("robust accuracy".into(), "PGD-20".into(), spec)]
    } else {
        Vec::new()
    }
}

/// The attacks and images of a figure's image cell (none for other cells).
fn image_lines(id: &str, job: &Job) -> Vec<Line> {
    match job {
        Job::Visualize {
            attacks,
            eps,
            classes,
            ..
        } => {
            let radii: Vec<String> = eps.iter().map(ToString::to_string).collect();
            let mut v: Vec<Line> = attacks
                .iter()
                .map(|spec| {
                    line(
                        format!("`{spec}` at {}", radii.join(", ")),
                        attack_text(spec, eps[0]),
                        if id == "fig5.1" {
                            Source::Thesis("§5.1: C&W∞ at ε = 32/255, 16/255, 8/255 (30 PGD steps as Table 6.1's)")
                        } else {
                            Source::Thesis("§5.1: PGD-CE, PGD-LS (α = 0.2), PGD-LS (α = 0.8) at ε = 32/255 (20 steps: spat's choice)")
                        },
                    )
                })
                .collect();
            v.push(line(
                "images",
                format!(
                    "the first test images of the classes {} (last checkpoint)",
                    classes.join(", ")
                ),
                Source::Thesis("Figure 5.1's caption: ship, horse, bird, horse, automobile"),
            ));
            v
        }
        Job::Gradients { models, classes } => {
            let labels: Vec<&str> = models.iter().map(|(l, _)| l.as_str()).collect();
            vec![
                line(
                    "gradients",
                    format!(
                        "∂CE/∂x of the {} models' last checkpoints, eval mode, each image shown \
                         clipped to its mean ± 3 standard deviations and mapped onto black..white",
                        labels.join(" and ")
                    ),
                    spat("Figure 4.1 shows gradients of a standard and an adversarially trained model after [25] (Tsipras et al.), whose normalisation this is"),
                ),
                line(
                    "images",
                    format!("the first test images of the classes {}", classes.join(", ")),
                    spat("Figure 4.1 does not say which images; Figure 5.1's rows"),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

/// Every setting of `plan`: its training runs (lines shared by every run once, the others per
/// run) and its evaluation.
pub fn listing(plan: &Plan) -> Vec<(String, Vec<Line>)> {
    let trains = plan.trains();
    let per_run: Vec<Vec<Line>> = trains
        .iter()
        .map(|t| training(&plan.id, plan.scale, t))
        .collect();
    let mut sections = Vec::new();
    if let Some(first) = per_run.first() {
        let shared: Vec<Line> = first
            .iter()
            .filter(|l| per_run.iter().all(|r| r.contains(l)))
            .cloned()
            .collect();
        sections.push(("training (every run)".to_string(), shared.clone()));
        for (t, lines) in trains.iter().zip(&per_run) {
            let own: Vec<Line> = lines
                .iter()
                .filter(|l| !shared.contains(l))
                .cloned()
                .collect();
            if !own.is_empty() {
                sections.push((format!("training: {} ({})", t.label(), t.name()), own));
            }
        }
    }
    sections.push(("evaluation".to_string(), evaluation(plan)));
    sections
}

/// The markdown table of a listing.
pub fn markdown(sections: &[(String, Vec<Line>)]) -> String {
    let mut md = String::new();
    for (title, lines) in sections {
        let rows = lines
            .iter()
            .map(|l| [l.key.clone(), l.value.clone(), l.source.to_string()]);
        md.push_str(&format!(
            "\n#### {title}\n\n{}",
            markdown::table(&["setting", "value", "source"], rows)
        ));
    }
    md
}

/// The settings of `plan` as results.json lists them.
pub fn setting_lines(sections: &[(String, Vec<Line>)]) -> Vec<SettingLine> {
    sections
        .iter()
        .flat_map(|(section, lines)| {
            lines.iter().map(move |l| SettingLine {
                section: section.clone(),
                key: l.key.clone(),
                value: l.value.clone(),
                source: l.source.to_string(),
                spat_choice: l.source.is_spat(),
            })
        })
        .collect()
}

/// spat's own choices in a listing, each once.
pub fn spat_choices(sections: &[(String, Vec<Line>)]) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, lines) in sections {
        for l in lines {
            if let Source::Spat(why) = &l.source {
                let s = format!("{}: {} — {why}", l.key, l.value);
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_read_as_the_references_write_them() {
        assert_eq!(
            schedule_text(&LrSchedule::paper(), 0.1, 90),
            "0.1 until epoch 74, 0.01 from epoch 75, 0.001 from epoch 90"
        );
        assert_eq!(
            schedule_text(&LrSchedule::paper(), 0.1, 15),
            "0.1 until epoch 12, 0.01 from epoch 13, 0.001 from epoch 15"
        );
        assert!(schedule_text(&LrSchedule::Cosine, 0.1, 200).starts_with("cosine"));
        assert_eq!(thousands(49_000), "49,000");
        assert_eq!(thousands(500), "500");
    }

    #[test]
    fn rst_attack_reads_its_own_radius() {
        let spec: AttackSpec = paper::RST_PGD20.attack.parse().unwrap();
        let text = attack_text(&spec, Radius::over_255(8.0));
        assert!(
            text.contains("5 restart(s) of 20 signed steps of 0.01 at ε = 0.031")
                && text.contains("after every iterate")
                && text.contains("NOT clipped"),
            "{text}"
        );
        let text = attack_text(&"pgd20".parse().unwrap(), Radius::over_255(8.0));
        assert!(
            text.contains("0.003·ε/0.031 = 0.0030361") && text.contains("ε = 8/255"),
            "{text}"
        );
    }

    #[test]
    fn every_full_scale_id_lists_its_sources_and_choices() {
        for id in matrix::IDS {
            let plan = matrix::plan(id, Scale::Full).unwrap();
            let sections = listing(&plan);
            let lines: Vec<&Line> = sections.iter().flat_map(|(_, l)| l).collect();
            assert!(lines.len() > 10, "{id}");
            assert!(
                !spat_choices(&sections).is_empty(),
                "{id}: spat's choices are listed"
            );
            for l in &lines {
                assert!(!l.value.is_empty(), "{id}: {l:?}");
            }
        }
        let plan = matrix::plan("table6.2", Scale::Full).unwrap();
        let md = markdown(&listing(&plan));
        assert!(
            md.contains("| weight decay | 7e-4 (coupled L2, all parameters) | YisenWang/MART@2d83e17 `train_wideresnet.py` line 27"),
            "{md}"
        );
    }

    /// The thesis's and the references' numbers, where the listing states them, as spat-policy
    /// configures the full-scale runs.
    #[test]
    fn full_scale_settings_are_the_references() {
        let table = |id: &str| matrix::plan(id, Scale::Full).unwrap();
        for t in table("table6.1").trains() {
            let c = configured(t);
            assert_eq!((c.epochs, c.batch_size, c.weight_decay), (90, 128, 7e-4));
            assert_eq!(c.schedule.drops(c.epochs), [75, 90]);
        }
        for t in table("table6.2").trains() {
            let c = configured(t);
            let wd = match t.method {
                Method::Mart => 7e-4,
                _ => 2e-4,
            };
            assert_eq!(c.weight_decay, wd, "{}", t.name());
        }
        for t in table("table6.3").trains() {
            let c = configured(t);
            assert_eq!((c.eps, c.attack_step_size), (0.031, 0.007));
            assert_eq!((c.epochs, c.batch_size, c.weight_decay), (200, 256, 5e-4));
            assert!(c.nesterov);
        }
        for t in table("table6.4").trains() {
            let c = configured(t);
            assert_eq!((c.epochs, c.batch_size), (200, 32));
        }
    }

    #[test]
    fn each_training_row_applies_where_it_should() {
        let keys = |id: &str, scale: Scale| -> Vec<Vec<String>> {
            let plan = matrix::plan(id, scale).unwrap();
            plan.trains()
                .iter()
                .map(|t| training(id, scale, t).into_iter().map(|l| l.key).collect())
                .collect()
        };
        for scale in [Scale::Full, Scale::Short, Scale::Smoke] {
            for runs in keys("table6.3", scale) {
                assert!(runs.contains(&"pseudo-labelled data".to_string()));
            }
            let chapter5 = keys("table5.1", scale);
            assert!(!chapter5[0].contains(&"training adversary".to_string()));
            for runs in keys("table6.1", scale) {
                assert_eq!(
                    runs.len(),
                    TRAINING.len() - 1,
                    "all but pseudo-labelled data"
                );
            }
        }
    }
}
