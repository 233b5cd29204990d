//! The thesis's settings for every method and data set, each beside its source, and the run
//! configuration they make ([`paper_config`]). Each setting is decided in one function that
//! returns the value with its source, so that the trainer and the reproduction's listing of
//! settings read the same decision.

use std::path::PathBuf;

use spat_spec::{
    AttackLoss, AttackSpec, Dataset, LrSchedule, Method, Mode, Norm, Precision, PseudoLabeled,
    Radius, RandomStart, RunConfig, StepRule,
};

use crate::source::{Ref, Source, Sourced};

/// The thesis's perturbation limit (§6.1.1: "ε = 8/255").
pub const PAPER_EPS: Radius = Radius::over_255(8.0);
/// RST's radius and training step as its code writes them (semisup-adv `robust_self_training.py`
/// lines 115 and 121).
pub const RST_EPS: Radius = Radius::Decimal(0.031);
/// RST's training PGD step (semisup-adv `robust_self_training.py`).
pub const RST_STEP: Radius = Radius::Decimal(0.007);
/// Fraction of every RST batch drawn from the pseudo-labelled set (semisup-adv's
/// `--unsup_fraction`).
pub const RST_UNLABELED_FRACTION: f64 = 0.5;

/// SGD's momentum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Momentum {
    /// Momentum factor (0.9 in every reference).
    pub momentum: f64,
    /// Nesterov momentum (RST's; not TRADES' or MART's).
    pub nesterov: bool,
}

/// The initial learning rate and its schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct LearningRate {
    /// Initial learning rate (0.1 in every reference).
    pub lr: f64,
    /// How it decays: piecewise drops by epoch, or RST's cosine.
    pub schedule: LrSchedule,
}

/// The training adversary's PGD steps (0: no adversary) and step size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttackSteps {
    /// PGD iterations of the training adversary (0: standard training, no adversary).
    pub steps: usize,
    /// The step size rule.
    pub step: Step,
}

/// The training adversary's step size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// ε/4 (§6.1.1); an ε given by the user brings it along.
    EpsOver4,
    /// A step of the reference's own, whatever ε.
    Fixed(Radius),
}

impl AttackSteps {
    /// The step size at radius `eps` (0 without an adversary).
    pub fn step_size(&self, eps: f64) -> f64 {
        match (self.steps, self.step) {
            (0, _) => 0.0,
            (_, Step::EpsOver4) => eps / 4.0,
            (_, Step::Fixed(step)) => step.value(),
        }
    }
}

/// Where the training adversary starts, and how the model's batch norm runs while it is crafted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdversaryStart {
    /// Where PGD starts (uniform in the ball, or TRADES' small Gaussian).
    pub random_start: RandomStart,
    /// How batch norm runs while the adversary is crafted (train, train with frozen statistics, or
    /// eval).
    pub mode: Mode,
}

/// Every setting the thesis (or, where it is silent, its reference code, or spat) decides for a
/// run, with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperSettings {
    /// Training epochs.
    pub epochs: Sourced<usize>,
    /// Images per training batch.
    pub batch_size: Sourced<usize>,
    /// SGD momentum and whether it is Nesterov's.
    pub momentum: Sourced<Momentum>,
    /// Initial learning rate and schedule.
    pub learning_rate: Sourced<LearningRate>,
    /// Coupled L2 on every parameter.
    pub weight_decay: Sourced<f64>,
    /// The training adversary's L∞ radius.
    pub eps: Sourced<Radius>,
    /// The training adversary's PGD steps and step size (its source also names the loss).
    pub attack: Sourced<AttackSteps>,
    /// The adversary's start and batch-norm mode.
    pub adversary_start: Sourced<AdversaryStart>,
    /// TRADES' β, the weight of the KL term (6 in the thesis).
    pub trades_beta: Sourced<f64>,
    /// MART's λ, the weight of its KL term (5 in the thesis).
    pub mart_lambda: Sourced<f64>,
    /// Fraction of each batch from the pseudo-labelled set, when there is one.
    pub unlabeled_fraction: Sourced<f64>,
    /// The arithmetic (f32 in the references; spat's default on a GPU is TF32).
    pub precision: Sourced<Precision>,
}

impl PaperSettings {
    /// The settings of `method` on `dataset`, with RST's pseudo-labelled data if `pseudo_labeled`
    /// and with SPAT's label-smoothed adversary if `spat` (which changes only the adversary's
    /// source).
    pub fn of(dataset: Dataset, method: Method, pseudo_labeled: bool, spat: bool) -> Self {
        let rst = pseudo_labeled;
        PaperSettings {
            epochs: epochs(dataset, rst),
            batch_size: batch_size(dataset, rst),
            momentum: momentum(rst),
            learning_rate: learning_rate(dataset, rst),
            weight_decay: weight_decay(dataset, method, rst),
            eps: eps(method, rst),
            attack: attack(method, rst, spat),
            adversary_start: adversary_start(method.objective(), rst),
            trades_beta: trades_beta(rst),
            mart_lambda: mart_lambda(),
            unlabeled_fraction: Sourced::new(
                RST_UNLABELED_FRACTION,
                Source::Code(
                    Ref::rst("robust_self_training.py", "131, 234-240"),
                    "--unsup_fraction 0.5; num_batches = ceil(50000 / batch_size)",
                ),
            ),
            precision: Sourced::new(
                Precision::Tf32,
                Source::spat("PyTorch's default on NVIDIA GPUs, which the references ran"),
            ),
        }
    }

    /// The settings the policy gives `config`'s method, data set and adversary.
    pub fn of_config(config: &RunConfig) -> Self {
        Self::of(
            config.dataset,
            config.method,
            config.is_semi_supervised(),
            config.spat_alpha.is_some(),
        )
    }
}

/// MART's `train_wideresnet.py`, which §6.1.1 follows ("we follow all the settings in MART").
fn mart_script(lines: &'static str) -> Ref {
    Ref::mart("train_wideresnet.py", lines)
}

fn rst_script(lines: &'static str) -> Ref {
    Ref::rst("robust_self_training.py", lines)
}

fn epochs(dataset: Dataset, rst: bool) -> Sourced<usize> {
    match (rst, dataset) {
        (true, _) => Sourced::new(200, Source::Code(rst_script("76"), "--epochs 200")),
        (_, Dataset::Stl10) => Sourced::new(
            200,
            Source::Thesis("§6.1.3: \"we train our models for 200 epochs\""),
        ),
        _ => Sourced::new(
            90,
            Source::Code(
                mart_script("25"),
                "--epochs 90; the thesis gives only the drops at 75 and 90 and follows \"all the \
                 settings in MART\" (§6.1.1)",
            ),
        ),
    }
}

fn batch_size(dataset: Dataset, rst: bool) -> Sourced<usize> {
    match (rst, dataset) {
        (true, _) => Sourced::new(256, Source::Code(rst_script("72"), "--batch_size 256")),
        (_, Dataset::Stl10) => Sourced::new(32, Source::Thesis("§6.1.3: \"batch size of 32\"")),
        _ => Sourced::new(
            128,
            Source::Code(
                mart_script("21"),
                "--batch-size 128 (not stated by the thesis)",
            ),
        ),
    }
}

fn momentum(rst: bool) -> Sourced<Momentum> {
    if rst {
        Sourced::new(
            Momentum {
                momentum: 0.9,
                nesterov: true,
            },
            Source::Code(rst_script("99-102, 439-442"), "nesterov=True"),
        )
    } else {
        Sourced::new(
            Momentum {
                momentum: 0.9,
                nesterov: false,
            },
            Source::Thesis("§6.1.1: \"SGD with momentum 0.9\""),
        )
    }
}

fn learning_rate(dataset: Dataset, rst: bool) -> Sourced<LearningRate> {
    let rate = |schedule| LearningRate { lr: 0.1, schedule };
    match (rst, dataset) {
        (true, _) => Sourced::new(
            rate(LrSchedule::Cosine),
            Source::Code(rst_script("94-96, 413"), "--lr 0.1, --lr_schedule cosine"),
        ),
        (_, Dataset::Stl10) => Sourced::new(
            rate(LrSchedule::Piecewise {
                milestones: vec![150, 180],
                reference_epochs: 200,
                factor: 0.1,
            }),
            Source::spat(
                "§6.1.3 gives 200 epochs but no drops; ÷10 at 150 and 180, §6.1.1's drops at 75 \
                 and 90 read as 0.75 and 0.9 of the run",
            ),
        ),
        _ => Sourced::new(
            rate(LrSchedule::paper()),
            Source::ThesisAndCode(
                "§6.1.1: \"initial learning rate is 0.1 and divided by 0.1 at 75-th and 90-th \
                 epoch\"",
                mart_script("109-117"),
            ),
        ),
    }
}

fn weight_decay(dataset: Dataset, method: Method, rst: bool) -> Sourced<f64> {
    match (rst, dataset, method) {
        (true, ..) => Sourced::new(5e-4, Source::Code(rst_script("93"), "--weight_decay 5e-4")),
        (_, Dataset::Cifar100, Method::Mart) => Sourced::new(
            7e-4,
            Source::Code(
                mart_script("27"),
                "§6.1.1: CIFAR-100 weight decay \"follow[s] their original implementations\"; \
                 MART's WideResNet script (Table 6.2 trains WRN-34-10), not its ResNet-18 \
                 script's 3.5e-3 (train_resnet.py line 27, with lr 0.01 and 120 epochs)",
            ),
        ),
        (_, Dataset::Cifar100, Method::Trades) => Sourced::new(
            2e-4,
            Source::Code(
                Ref::trades("train_trades_cifar10.py", "22"),
                "§6.1.1: CIFAR-100 weight decay follows the original implementation",
            ),
        ),
        (_, Dataset::Cifar100, _) => Sourced::new(
            2e-4,
            Source::Code(
                Ref::madry("config.json", "17"),
                "§6.1.1: CIFAR-100 weight decay follows the original implementation (Madry et \
                 al.'s)",
            ),
        ),
        (_, Dataset::Stl10, _) => Sourced::new(
            7e-4,
            Source::Thesis("§6.1.3 \"similar settings as in previous experiments\": §6.1.1's 7e-4"),
        ),
        _ => Sourced::new(7e-4, Source::Thesis("§6.1.1: \"weight decay 7e-4\"")),
    }
}

fn eps(method: Method, rst: bool) -> Sourced<Radius> {
    match (rst, method) {
        (true, _) => Sourced::new(
            RST_EPS,
            Source::Code(
                rst_script("115"),
                "--epsilon 0.031 (README line 45), not 8/255",
            ),
        ),
        (_, Method::Standard) => Sourced::new(
            PAPER_EPS,
            Source::Thesis(
                "§6.1.1's 8/255 (the standard model has no adversary; used only for its \
                 per-epoch evaluation)",
            ),
        ),
        _ => Sourced::new(
            PAPER_EPS,
            Source::Thesis("§6.1.1: \"The perturbation limit is ε = 8/255\""),
        ),
    }
}

fn attack(method: Method, rst: bool, spat: bool) -> Sourced<AttackSteps> {
    const PGD_10: &str = "§6.1.1: \"PGD-10 with random start and step size is ε/4\"";
    let steps = if method.is_adversarial() { 10 } else { 0 };
    match (rst, spat) {
        (true, _) => Sourced::new(
            AttackSteps {
                steps,
                step: Step::Fixed(RST_STEP),
            },
            Source::Code(
                rst_script("119, 121"),
                "--pgd_num_steps 10, --pgd_step_size 0.007; SPAT's loss per thesis §4.3",
            ),
        ),
        (false, spat) => Sourced::new(
            AttackSteps {
                steps,
                step: Step::EpsOver4,
            },
            Source::Thesis(if spat {
                "§6.1.1: \"PGD-10 with random start and step size is ε/4\"; §4.3: \"all the \
                 adversarial examples x̂′ are generated by PGD-LS\""
            } else {
                PGD_10
            }),
        ),
    }
}

/// The adversary's start and batch-norm mode follow each method's reference: `Eval` and TRADES'
/// `x + 0.001·N(0, 1)` for TRADES, MART and RST (their code wraps generation in `model.eval()`),
/// `Train` and a uniform start for Madry (Rice et al.'s `train_cifar.py` attacks the model in
/// `model.train()`, so the running statistics also move on every attack step).
fn adversary_start(objective: Method, rst: bool) -> Sourced<AdversaryStart> {
    let gaussian = AdversaryStart {
        random_start: RandomStart::Gaussian { std: 0.001 },
        mode: Mode::Eval,
    };
    const EVAL_RANDN: &str = "model.eval(); 0.001 * randn";
    match (objective, rst) {
        (Method::Madry, _) => Sourced::new(
            AdversaryStart {
                random_start: RandomStart::Uniform,
                mode: Mode::Train,
            },
            Source::Code(
                Ref::rice("train_cifar.py", "294, 316"),
                "model.train() then attack_pgd with a uniform start (lines 76-78); Madry et \
                 al.'s config.json line 29 \"random_start\": true",
            ),
        ),
        (Method::Mart, _) => Sourced::new(
            gaussian,
            Source::Code(Ref::mart("mart.py", "17, 20"), EVAL_RANDN),
        ),
        (_, true) => Sourced::new(
            gaussian,
            Source::Code(Ref::rst("losses.py", "46, 52"), EVAL_RANDN),
        ),
        _ => Sourced::new(
            gaussian,
            Source::Code(Ref::trades("trades.py", "28, 31"), EVAL_RANDN),
        ),
    }
}

fn trades_beta(rst: bool) -> Sourced<f64> {
    if rst {
        Sourced::new(6.0, Source::Code(rst_script("123"), "--beta 6.0"))
    } else {
        Sourced::new(
            6.0,
            Source::Thesis("§6.1.1: \"λ = 6 for TRADES and TRADES + SPAT\""),
        )
    }
}

fn mart_lambda() -> Sourced<f64> {
    Sourced::new(
        5.0,
        Source::Thesis(
            "§6.1.1: \"λ = 5 for MART and MART + SPAT\" (MART's train_wideresnet.py line 41 \
             has 6.0, its train_resnet.py line 41 5.0)",
        ),
    )
}

/// The thesis's configuration of `method` on `dataset` ([`PaperSettings`]), seed 0, evaluated
/// after each epoch under PGD-20 on 1,000 test images.
pub fn paper_config(
    model: &str,
    dataset: Dataset,
    data_dir: PathBuf,
    method: Method,
    pseudo_labeled: Option<PseudoLabeled>,
) -> RunConfig {
    let p = PaperSettings::of(dataset, method, pseudo_labeled.is_some(), false);
    let eps = p.eps.value.value();
    RunConfig {
        model: model.to_string(),
        dataset,
        data_dir,
        train_subset: None,
        val_subset: None,
        pseudo_labeled,
        method,
        spat_alpha: None,
        epochs: p.epochs.value,
        batch_size: p.batch_size.value,
        lr: p.learning_rate.value.lr,
        schedule: p.learning_rate.value.schedule,
        warmup_epochs: 0,
        momentum: p.momentum.value.momentum,
        nesterov: p.momentum.value.nesterov,
        weight_decay: p.weight_decay.value,
        decay_1d_params: true,
        eps,
        norm: Norm::Linf,
        attack_steps: p.attack.value.steps,
        attack_step_size: p.attack.value.step_size(eps),
        adversary_mode: p.adversary_start.value.mode,
        trades_beta: p.trades_beta.value,
        mart_lambda: p.mart_lambda.value,
        eval_examples: 1000,
        eval_attack: AttackSpec::Pgd {
            steps: 20,
            loss: AttackLoss::CrossEntropy,
            step: StepRule::EvaluationScripts,
        },
        eval_batch_size: 200,
        final_full_eval: true,
        precision: p.precision.value,
        seed: 0,
        init: None,
    }
}
