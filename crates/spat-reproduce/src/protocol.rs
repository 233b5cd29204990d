//! Where every setting of a reproduction comes from: the thesis (its section and words), the
//! reference code the thesis names (repository, commit, file and lines), or spat's own choice
//! (and why). `cargo xtask reproduce <id> --dry-run` prints these lines and results.md repeats
//! them, so that a reader can check the runs line by line against the thesis and the references.
//!
//! The training values listed here mirror spat-train's policy (`RunRequest::configure`, which
//! `spat train` applies); `tests/protocol.rs` checks every line of every id against it, so the
//! listing cannot drift from what runs. Reference commits are those fetched when the settings were
//! read: YisenWang/MART 2d83e17, yaodongyu/TRADES 6e8e11b, yaircarmon/semisup-adv 3f05b28,
//! MadryLab/cifar10_challenge f15682d, locuslab/robust_overfitting c47a25c.

use std::fmt;

use spat_spec::report::SettingLine;
use spat_spec::{
    ApgdLoss, AttackLoss, AttackSpec, AutoAttackVersion, Dataset, LrSchedule, Method, Mode, Radius,
    StepRule,
};

use crate::markdown;
use crate::matrix::{self, Job, Plan, Scale, TrainSpec};
use crate::paper;

/// A place in a reference repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ref {
    pub repo: &'static str,
    pub commit: &'static str,
    pub file: &'static str,
    pub lines: &'static str,
}

fn mart(file: &'static str, lines: &'static str) -> Ref {
    Ref {
        repo: "YisenWang/MART",
        commit: "2d83e17",
        file,
        lines,
    }
}
fn trades(file: &'static str, lines: &'static str) -> Ref {
    Ref {
        repo: "yaodongyu/TRADES",
        commit: "6e8e11b",
        file,
        lines,
    }
}
fn rst(file: &'static str, lines: &'static str) -> Ref {
    Ref {
        repo: "yaircarmon/semisup-adv",
        commit: "3f05b28",
        file,
        lines,
    }
}
fn madry(file: &'static str, lines: &'static str) -> Ref {
    Ref {
        repo: "MadryLab/cifar10_challenge",
        commit: "f15682d",
        file,
        lines,
    }
}
fn rice(file: &'static str, lines: &'static str) -> Ref {
    Ref {
        repo: "locuslab/robust_overfitting",
        commit: "c47a25c",
        file,
        lines,
    }
}

/// Where a setting comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The thesis: its section and, quoted, its words.
    Thesis(&'static str),
    /// The reference code the thesis names (or follows), with what it says there.
    Code(Ref, &'static str),
    /// Both: the thesis states the setting and the code shows it.
    ThesisAndCode(&'static str, Ref),
    /// Neither states it: spat's choice, and why.
    Spat(String),
}

impl Source {
    pub fn is_spat(&self) -> bool {
        matches!(self, Source::Spat(_))
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let several = self.lines.contains([',', '-']);
        write!(
            f,
            "{}@{} `{}` line{} {}",
            self.repo,
            self.commit,
            self.file,
            if several { "s" } else { "" },
            self.lines
        )
    }
}

/// The thesis's name of a data set.
pub fn dataset_name(d: Dataset) -> &'static str {
    match d {
        Dataset::Cifar10 => "CIFAR-10",
        Dataset::Cifar100 => "CIFAR-100",
        Dataset::Stl10 => "STL-10",
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Thesis(s) => write!(f, "thesis {s}"),
            Source::Code(r, what) => write!(f, "{r} ({what})"),
            Source::ThesisAndCode(s, r) => write!(f, "thesis {s}; {r}"),
            Source::Spat(why) => write!(f, "spat's choice: {why}"),
        }
    }
}

/// One setting: what it is, its value in this reproduction, and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub key: String,
    pub value: String,
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
    Source::Spat(why.into())
}

/// The training settings of one run as spat-train's policy fills them in (a mirror of
/// `RunRequest::configure` for the arguments xtask passes, checked by `tests/protocol.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingClaims {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: LrSchedule,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub eps: f64,
    pub attack_steps: usize,
    pub attack_step_size: f64,
    /// The adversary's batch-norm mode (`None`: no adversary).
    pub adversary_mode: Option<Mode>,
    pub trades_beta: f64,
    pub mart_lambda: f64,
    /// Fraction of each batch from the pseudo-labelled set.
    pub unlabeled_fraction: Option<f64>,
    pub val_subset: Option<usize>,
    pub seed: u64,
}

/// What spat-train's policy gives the run `t` (xtask passes model, data, method, α, ε, the
/// training step where the reference sets one, epochs, batch size, subsets and seed).
pub fn training_claims(t: &TrainSpec) -> TrainingClaims {
    let adversarial = t.method.is_adversarial();
    let mut schedule = LrSchedule::paper();
    let mut weight_decay = 7e-4;
    let mut momentum_nesterov = false;
    if t.dataset == Dataset::Cifar100 {
        weight_decay = match t.method {
            Method::Mart => 7e-4,
            _ => 2e-4,
        };
    }
    if t.dataset == Dataset::Stl10 {
        schedule = LrSchedule::Piecewise {
            milestones: vec![150, 180],
            reference_epochs: 200,
            factor: 0.1,
        };
    }
    if t.pseudo_labeled {
        schedule = LrSchedule::Cosine;
        weight_decay = 5e-4;
        momentum_nesterov = true;
    }
    let eps = t.eps.value();
    let attack_step_size = match (adversarial, t.attack_step) {
        (false, _) => 0.0,
        (true, Some(step)) => step.value(),
        (true, None) => eps / 4.0,
    };
    TrainingClaims {
        epochs: t.epochs,
        batch_size: t.batch_size,
        lr: 0.1,
        schedule,
        momentum: 0.9,
        nesterov: momentum_nesterov,
        weight_decay,
        eps,
        attack_steps: if adversarial { 10 } else { 0 },
        attack_step_size,
        adversary_mode: match t.method {
            Method::Standard => None,
            Method::Madry => Some(Mode::Train),
            _ => Some(Mode::Eval),
        },
        trades_beta: 6.0,
        mart_lambda: 5.0,
        unlabeled_fraction: t.pseudo_labeled.then_some(0.5),
        val_subset: t.val_subset,
        seed: t.seed,
    }
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

/// The training settings of run `t` of `id` at `scale`, each with its source.
pub fn training(id: &str, scale: Scale, t: &TrainSpec) -> Vec<Line> {
    let c = training_claims(t);
    let full = scale == Scale::Full;
    let reduced = |what: &str| match scale {
        Scale::Full => unreachable!("full scale is not reduced"),
        Scale::Short => spat(format!("short scale: {what}")),
        Scale::Smoke => spat(format!("smoke scale: {what}")),
    };
    let mut v = Vec::new();
    let table_model = match id {
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
    v.push(line(
        "model",
        t.model,
        match (full, table_model) {
            (true, Some(s)) => s,
            (true, None) => spat(
                "the thesis does not state chapter 4's and 5's models; Table 6.1's WRN-34-10, \
                 trained as its Madry row (the standard model without an adversary)",
            ),
            (false, _) => reduced("a smaller network in place of the thesis's"),
        },
    ));
    let whole = t.dataset.official_count(spat_spec::Split::Train);
    let val = t.val_subset.unwrap_or(0);
    let trained = t.train_subset.map_or(whole - val, |n| n.min(whole - val));
    v.push(line(
        "training data",
        format!(
            "{} training images less a seeded validation split of {}: {} trained on",
            dataset_name(t.dataset),
            thousands(val),
            thousands(trained)
        ),
        if full {
            spat(
                "the thesis and its references train on the whole training set and choose no \
                 checkpoint; holding out a validation split, as Rice et al. hold out 1,000 \
                 (locuslab/robust_overfitting@c47a25c `generate_validation.py` lines 5-26), lets \
                 best.safetensors be chosen on images no reported accuracy is measured on",
            )
        } else {
            reduced("subsets of the training data")
        },
    ));
    if t.pseudo_labeled {
        // spat-train's load_data: as many batches as the whole training set fills (RST's 50,000
        // images), or the train subset if there is one.
        let labelled = if t.train_subset.is_some() {
            trained
        } else {
            whole
        };
        let batches = labelled.div_ceil(t.batch_size);
        let epoch = batches * t.batch_size;
        v.push(line(
            "pseudo-labelled data",
            format!(
                "RST's 500k pseudo-labelled TinyImages; half of every batch \
                 ({} pseudo-labelled of {}); an epoch is {} batches = {} images",
                (t.batch_size as f64 * 0.5) as usize,
                t.batch_size,
                batches,
                thousands(epoch)
            ),
            Source::Code(
                rst("robust_self_training.py", "131, 234-240"),
                "--unsup_fraction 0.5; num_batches = ceil(50000 / batch_size)",
            ),
        ));
    }
    v.push(line(
        "augmentation",
        match t.dataset {
            Dataset::Stl10 => "random crop with 12-pixel zero padding, random horizontal flip",
            _ => "random crop with 4-pixel zero padding, random horizontal flip",
        },
        match t.dataset {
            Dataset::Stl10 => spat(
                "the thesis states CIFAR's 4-pixel padding (§6.1.1); on 96×96 STL-10 images spat \
                 pads 12 pixels, the same fraction of the image",
            ),
            _ => Source::Thesis(
                "§6.1.1: \"random horizontal flipping and random crop with 4 pixel padding\"",
            ),
        },
    ));
    v.push(line(
        "epochs",
        c.epochs.to_string(),
        if !full {
            reduced("fewer epochs")
        } else if t.pseudo_labeled {
            Source::Code(rst("robust_self_training.py", "76"), "--epochs 200")
        } else if t.dataset == Dataset::Stl10 {
            Source::Thesis("§6.1.3: \"we train our models for 200 epochs\"")
        } else if matches!(id, "table6.1" | "table6.2") {
            Source::Code(
                mart("train_wideresnet.py", "25"),
                "--epochs 90; the thesis gives only the drops at 75 and 90 and follows \"all the \
                 settings in MART\" (§6.1.1)",
            )
        } else {
            spat("not stated for this experiment; Table 6.1's 90 (MART's train_wideresnet.py line 25)")
        },
    ));
    v.push(line(
        "batch size",
        c.batch_size.to_string(),
        if scale == Scale::Smoke {
            reduced("small batches")
        } else if t.pseudo_labeled {
            Source::Code(rst("robust_self_training.py", "72"), "--batch_size 256")
        } else if t.dataset == Dataset::Stl10 {
            Source::Thesis("§6.1.3: \"batch size of 32\"")
        } else {
            Source::Code(
                mart("train_wideresnet.py", "21"),
                "--batch-size 128 (not stated by the thesis)",
            )
        },
    ));
    v.push(line(
        "optimizer",
        format!(
            "SGD, {}momentum {}",
            if c.nesterov { "Nesterov " } else { "" },
            c.momentum
        ),
        if t.pseudo_labeled {
            Source::Code(
                rst("robust_self_training.py", "99-102, 439-442"),
                "nesterov=True",
            )
        } else {
            Source::Thesis("§6.1.1: \"SGD with momentum 0.9\"")
        },
    ));
    v.push(line(
        "learning rate",
        schedule_text(&c.schedule, c.lr, c.epochs),
        if !full && !t.pseudo_labeled {
            reduced("the drops at 75 and 90 of 90 epochs scaled to the epochs run")
        } else if t.pseudo_labeled {
            Source::Code(
                rst("robust_self_training.py", "94-96, 413"),
                "--lr 0.1, --lr_schedule cosine",
            )
        } else if t.dataset == Dataset::Stl10 {
            spat("§6.1.3 gives 200 epochs but no drops; ÷10 at 150 and 180, §6.1.1's drops at 75 and 90 read as 0.75 and 0.9 of the run")
        } else {
            Source::ThesisAndCode(
                "§6.1.1: \"initial learning rate is 0.1 and divided by 0.1 at 75-th and 90-th epoch\"",
                mart("train_wideresnet.py", "109-117"),
            )
        },
    ));
    v.push(line(
        "weight decay",
        format!("{:e} (coupled L2, all parameters)", c.weight_decay),
        match (t.pseudo_labeled, t.dataset, t.method) {
            (true, ..) => Source::Code(rst("robust_self_training.py", "93"), "--weight_decay 5e-4"),
            (_, Dataset::Cifar100, Method::Mart) => Source::Code(
                mart("train_wideresnet.py", "27"),
                "§6.1.1: CIFAR-100 weight decay \"follow[s] their original implementations\"; \
                 MART's WideResNet script (Table 6.2 trains WRN-34-10), not its ResNet-18 \
                 script's 3.5e-3 (train_resnet.py line 27, with lr 0.01 and 120 epochs)",
            ),
            (_, Dataset::Cifar100, Method::Trades) => Source::Code(
                trades("train_trades_cifar10.py", "22"),
                "§6.1.1: CIFAR-100 weight decay follows the original implementation",
            ),
            (_, Dataset::Cifar100, _) => Source::Code(
                madry("config.json", "17"),
                "§6.1.1: CIFAR-100 weight decay follows the original implementation (Madry et al.'s)",
            ),
            (_, Dataset::Stl10, _) => Source::Thesis(
                "§6.1.3 \"similar settings as in previous experiments\": §6.1.1's 7e-4",
            ),
            _ => Source::Thesis("§6.1.1: \"weight decay 7e-4\""),
        },
    ));
    v.push(line(
        "training radius ε",
        t.eps.to_string(),
        if t.pseudo_labeled {
            Source::Code(
                rst("robust_self_training.py", "115"),
                "--epsilon 0.031 (README line 45), not 8/255",
            )
        } else if id.starts_with("fig6") {
            Source::Thesis("§6.2: \"ε = 4/255, 8/255, 16/255\" for training")
        } else if t.method == Method::Standard {
            Source::Thesis("§6.1.1's 8/255 (the standard model has no adversary; used only for its per-epoch evaluation)")
        } else {
            Source::Thesis("§6.1.1: \"The perturbation limit is ε = 8/255\"")
        },
    ));
    if t.method.is_adversarial() {
        let loss = match (t.spat_alpha, t.method.objective()) {
            (Some(a), _) => format!("label-smoothed cross-entropy, α = {a} (SPAT)"),
            (None, Method::Trades) => "KL(p(x) ‖ p(x̂)) (TRADES' PGD-KL)".into(),
            (None, _) => "cross-entropy".into(),
        };
        v.push(line(
            "training adversary",
            format!(
                "PGD-{} on {loss}, step {}",
                c.attack_steps,
                match t.attack_step {
                    Some(s) => s.to_string(),
                    None => format!("ε/4 = {}", short(c.attack_step_size)),
                }
            ),
            match (t.pseudo_labeled, t.spat_alpha.is_some()) {
                (true, _) => Source::Code(
                    rst("robust_self_training.py", "119, 121"),
                    "--pgd_num_steps 10, --pgd_step_size 0.007; SPAT's loss per thesis §4.3",
                ),
                (false, true) => Source::Thesis(
                    "§6.1.1: \"PGD-10 with random start and step size is ε/4\"; §4.3: \"all the \
                     adversarial examples x̂′ are generated by PGD-LS\"",
                ),
                (false, false) => {
                    Source::Thesis("§6.1.1: \"PGD-10 with random start and step size is ε/4\"")
                }
            },
        ));
        v.push(line(
            "adversary start and batch norm",
            match t.method.objective() {
                Method::Madry => "uniform in the ε-ball; batch norm in train mode (running statistics move on every attack step)",
                _ => "x + 0.001·N(0, 1); batch norm in eval mode while the adversary is crafted",
            },
            match (t.method.objective(), t.pseudo_labeled) {
                (Method::Madry, _) => Source::Code(
                    rice("train_cifar.py", "294, 316"),
                    "model.train() then attack_pgd with a uniform start (lines 76-78); Madry et \
                     al.'s config.json line 29 \"random_start\": true",
                ),
                (Method::Mart, _) => Source::Code(mart("mart.py", "17, 20"), "model.eval(); 0.001 * randn"),
                (_, true) => Source::Code(rst("losses.py", "46, 52"), "model.eval(); 0.001 * randn"),
                _ => Source::Code(trades("trades.py", "28, 31"), "model.eval(); 0.001 * randn"),
            },
        ));
        let (objective, source) = match t.method.objective() {
            Method::Trades if t.pseudo_labeled => (
                format!("CE(x) + β·KL(p(x) ‖ p(x̂)), β = {}", c.trades_beta),
                Source::Code(rst("robust_self_training.py", "123"), "--beta 6.0"),
            ),
            Method::Trades => (
                format!("CE(x) + β·KL(p(x) ‖ p(x̂)), β = {}", c.trades_beta),
                Source::Thesis("§6.1.1: \"λ = 6 for TRADES and TRADES + SPAT\""),
            ),
            Method::Mart => (
                format!("BCE(x̂) + λ·KL(p(x) ‖ p(x̂))·(1 − p_y(x)), λ = {}", c.mart_lambda),
                Source::Thesis(
                    "§6.1.1: \"λ = 5 for MART and MART + SPAT\" (MART's train_wideresnet.py line 41 \
                     has 6.0, its train_resnet.py line 41 5.0)",
                ),
            ),
            _ => (
                "CE(x̂)".to_string(),
                Source::Thesis("§4.3: \"Madry + SPAT Loss function is formulated as CE(p(x̂′, θ), y)\""),
            ),
        };
        v.push(line("objective", objective, source));
    } else {
        v.push(line(
            "objective",
            "CE(x): standard training, no adversary",
            spat("chapter 5's \"standard model\", trained as the Madry row without its adversary"),
        ));
    }
    v.push(line(
        "seed",
        format!("{} (one run per row)", c.seed),
        spat("the thesis reports one number per row and states no seed"),
    ));
    v.push(line(
        "checkpoints reported",
        format!(
            "last (model.safetensors, epoch {}) and best (best.safetensors: the epoch with the \
             highest PGD-20 accuracy on the {}-image validation split; a tie keeps the earlier)",
            c.epochs,
            thousands(val)
        ),
        spat(
            "TRADES, MART and RST report their last epoch and choose no best (TRADES issue #9 is \
             a reader who could not reproduce from the last); the rule is Rice et al.'s \
             (locuslab/robust_overfitting@c47a25c `train_cifar.py` line 421) on held-out data",
        ),
    ));
    v.push(line(
        "arithmetic",
        "TF32 convolutions and matrix products on CUDA, f32 weights (fp32 on the CPU)",
        spat("PyTorch's default on NVIDIA GPUs, which the references ran"),
    ));
    v
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
        StepRule::EvaluationScripts => {
            format!("0.003·ε/0.031 = {:.7}", eps * 0.003 / 0.031)
        }
        StepRule::EpsOver10 => format!("ε/10 = {:.7}", eps / 10.0),
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
            match loss {
                AttackLoss::Kl => "x + 0.001·N(0, 1)",
                _ => "uniform in the ε-ball, clipped to [0, 1]",
            }
        ),
        AttackSpec::PgdRestarts {
            steps,
            restarts,
            step,
            eps: own,
            every_iterate,
        } => {
            let e = own.unwrap_or(eps);
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
        AttackSpec::AutoAttack { version } => format!(
            "AutoAttack ({}, fra31/auto-attack): {} in turn, each only on the examples every \
             earlier one failed to fool",
            match version {
                AutoAttackVersion::Standard => "standard",
                AutoAttackVersion::Rand => "rand",
            },
            spat_spec::autoattack_parts(version)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The source of an evaluation column of `id`.
fn column_source(id: &str, header: &str, spec: &AttackSpec) -> Source {
    match (id, spec) {
        (_, AttackSpec::Clean) => Source::Thesis("§6.1: natural accuracy"),
        ("table6.3", AttackSpec::PgdRestarts { .. }) => Source::ThesisAndCode(
            "§6.1.2: \"PGD-20 (settings in [39])\", [39] = RST; 20 steps per the thesis (the \
             script's default is 40, line 128); ε 0.031 (line 123), step 0.01 (line 130), 5 \
             restarts (line 132), random start (lines 134-136), robust only if correct at every \
             iterate of every restart (lines 58-60; attack_pgd.py lines 24-26, 46-48)",
            rst("attack_evaluation.py", "58-60, 123-136"),
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
             those of TRADES' evaluation (yaodongyu/TRADES@6e8e11b `pgd_attack_cifar10.py` lines \
             20-28: 0.003 at ε = 0.031, random start) scaled to 8/255"
        )),
        _ => spat(
            "§6.1.1 names PGD-20 at ε = 8/255 without step or start; TRADES' evaluation \
             (yaodongyu/TRADES@6e8e11b `pgd_attack_cifar10.py` lines 20-28: 20 steps of 0.003 at \
             ε = 0.031, uniform random start) scaled to 8/255, its start clipped to [0, 1] (the \
             script does not clip it, lines 63-65)",
        ),
    }
}

/// The evaluation settings of `plan`, each with its source.
pub fn evaluation(plan: &Plan) -> Vec<Line> {
    let id = plan.id.as_str();
    let mut v = Vec::new();
    let first_eval = plan.cells.iter().find_map(|c| match &c.job {
        Job::Eval {
            eps, test_subset, ..
        }
        | Job::Sweep {
            eps, test_subset, ..
        } => Some((*eps, *test_subset, c.job.trains()[0].dataset)),
        _ => None,
    });
    if let Some((eps, subset, dataset)) = first_eval {
        let n = dataset.official_count(spat_spec::Split::Test);
        v.push(line(
            "test images",
            match subset {
                Some(k) => format!(
                    "the first {} of the {} test set",
                    thousands(k.min(n)),
                    dataset_name(dataset)
                ),
                None => format!("all {} {} test images", thousands(n), dataset_name(dataset)),
            },
            match subset {
                Some(_) => spat("smoke scale: a subset"),
                None => spat("the thesis does not say; the whole official test set"),
            },
        ));
        v.push(line(
            "checkpoints evaluated",
            "last (model.safetensors) and best (best.safetensors), each evaluated separately",
            spat("see the training lines"),
        ));
        if let Some(table) = paper::table(id) {
            for c in table.columns.iter().chain(matrix::extra_columns(id)) {
                let spec: AttackSpec = c.attack.parse().expect("paper specs parse");
                v.push(line(
                    format!("{} (`{spec}`)", c.header),
                    attack_text(&spec, eps),
                    column_source(id, c.header, &spec),
                ));
            }
        } else if id == "fig5.3" {
            for (header, spec) in [
                ("PGD-LS(α), α = 0, 0.1, …, 1", "pgd-ls:0.1"),
                ("PGD-CE", "pgd20"),
                ("PGD-KL", "pgd-kl"),
            ] {
                let spec: AttackSpec = spec.parse().expect("constant spec");
                v.push(line(
                    header,
                    attack_text(&spec, eps),
                    column_source(id, header, &spec),
                ));
            }
        } else if id.starts_with("fig6") {
            let spec: AttackSpec = matrix::FIG_6_ATTACK.parse().expect("constant spec");
            v.push(line(
                "robust accuracy",
                attack_text(&spec, eps),
                column_source(id, "PGD-20", &spec),
            ));
        }
    }
    for c in &plan.cells {
        match &c.job {
            Job::Visualize {
                attacks,
                eps,
                classes,
                ..
            } => {
                for spec in attacks {
                    let radii: Vec<String> = eps.iter().map(ToString::to_string).collect();
                    v.push(line(
                        format!("`{spec}` at {}", radii.join(", ")),
                        attack_text(spec, eps[0]),
                        if id == "fig5.1" {
                            Source::Thesis("§5.1: C&W∞ at ε = 32/255, 16/255, 8/255 (30 PGD steps as Table 6.1's)")
                        } else {
                            Source::Thesis("§5.1: PGD-CE, PGD-LS (α = 0.2), PGD-LS (α = 0.8) at ε = 32/255 (20 steps: spat's choice)")
                        },
                    ));
                }
                v.push(line(
                    "images",
                    format!(
                        "the first test images of the classes {} (last checkpoint)",
                        classes.join(", ")
                    ),
                    Source::Thesis("Figure 5.1's caption: ship, horse, bird, horse, automobile"),
                ));
            }
            Job::Gradients { models, classes } => {
                let labels: Vec<&str> = models.iter().map(|(l, _)| l.as_str()).collect();
                v.push(line(
                    "gradients",
                    format!(
                        "∂CE/∂x of the {} models' last checkpoints, eval mode, each image shown \
                         clipped to its mean ± 3 standard deviations and mapped onto black..white",
                        labels.join(" and ")
                    ),
                    spat("Figure 4.1 shows gradients of a standard and an adversarially trained model after [25] (Tsipras et al.), whose normalisation this is"),
                ));
                v.push(line(
                    "images",
                    format!(
                        "the first test images of the classes {}",
                        classes.join(", ")
                    ),
                    spat("Figure 4.1 does not say which images; Figure 5.1's rows"),
                ));
            }
            _ => {}
        }
    }
    v
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
}
