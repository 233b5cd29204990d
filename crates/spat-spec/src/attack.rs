//! Attacks named by short strings, as on the command line and in reports:
//! `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3,pgd20@eps/10`.
//!
//! # Grammar
//!
//! ```text
//! spec     = head ( "@" option )*
//! head     = family [ steps [ "x" restarts ] ] [ "-" variant ] [ ":" argument ]
//! option   = key [ "=" value ]
//! ```
//!
//! `family` is a run of letters (`pgd`, `cw`, `fgsm`), `steps` and `restarts` are positive
//! integers (`pgd50x5`), `variant` names a loss or flavour (`pgd-kl`, `pgd-ls:0.3`), and options
//! refine the attack (`@step=eps/10`, spelt `@eps/10` for short). Reading a spec is two stages: the
//! text is cut into these parts, then the parts are given a meaning. Only combinations that name an
//! attack spat can run are accepted; a new attack adds its meaning to [`AttackSpec::from_str`] and its
//! canonical spelling to `Display`.
//!
//! The norm is not part of a spec: it is the run's ([`crate::Norm`]), and every spec has a form in
//! each norm (`fgsm` is FGM in L2), so an accuracy is reported under the name given in both.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Radius};

/// The loss an attack maximises.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttackLoss {
    /// Cross-entropy with the true label (PGD-CE).
    CrossEntropy,
    /// Label-smoothed cross-entropy (PGD-LS, thesis eq. 4.1–4.3); `alpha = 0` is PGD-CE.
    LabelSmoothed {
        /// Smoothing α in `[0, 1]`: the target puts `1 - α` on the label and `α/(K-1)` on each
        /// other class.
        alpha: f64,
    },
    /// KL divergence from the clean prediction (PGD-KL, the TRADES adversary).
    Kl,
    /// Carlini–Wagner margin with confidence `kappa` (CW∞ when optimised by PGD).
    CwMargin {
        /// The margin κ ≥ 0 beyond which the loss stops growing ([`CW_KAPPA`] for `cwN`).
        kappa: f64,
    },
}

/// Confidence κ of the CW∞ loss (`cwloss`) that `cwN` specs use.
///
/// MART's repository (`YisenWang/MART`: `mart.py`, `train_*.py`) has no CW code. The `cwloss`
/// function that the TRADES/MART line of evaluation code shares (from the CAT repository; the
/// copies in FAT/GAIRAT-style `attack_generator.py` files) defaults to `confidence=50`; torchattacks'
/// `PGD_CWLinf` defaults to κ = 0. κ only matters where the margin `z_y − max_{k≠y} z_k` exceeds −κ:
/// with κ = 50 the hinge is active on practically every CIFAR example, so the attack is PGD on the
/// plain logit margin; with κ = 0 it stops pushing an example once it is misclassified.
pub const CW_KAPPA: f64 = 50.0;

/// Step size rule of an evaluation PGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    /// The TRADES/MART evaluation scripts' 0.003 at ε = 0.031, scaled with ε
    /// ([`evaluation_step_size`]).
    EvaluationScripts,
    /// ε / 10 (Section 6.2).
    EpsOver10,
    /// A step of its own, whatever the radius (`@step=0.01`: semisup-adv's evaluation).
    Fixed(Radius),
}

impl StepRule {
    /// The step at radius `eps`.
    pub fn size(self, eps: f64) -> f64 {
        match self {
            StepRule::EvaluationScripts => evaluation_step_size(eps),
            StepRule::EpsOver10 => eps / 10.0,
            StepRule::Fixed(step) => step.value(),
        }
    }
}

/// Step size of the evaluation attacks of Table 6.1, scaled linearly with ε.
///
/// TRADES' `pgd_attack_cifar10.py` evaluates with ε = 0.031, 20 steps of 0.003 and (in its later
/// versions, `--random` defaulting to true) a start uniform in the ε-ball; it does not clamp the
/// start to `[0, 1]`, spat does (the two differ only in where the first gradient is taken, for
/// pixels within ε of 0 or 1). MART's training scripts evaluate with ε/10 instead
/// ([`StepRule::EpsOver10`], Section 6.2).
pub fn evaluation_step_size(eps: f64) -> f64 {
    eps * 0.003 / 0.031
}

/// Where evaluation PGD on `loss` starts: uniform in the ε-ball, or for the KL loss TRADES'
/// `x + 0.001·N(0, 1)` (its gradient is exactly zero at the clean point, so it needs a start off
/// it; the small Gaussian is the one PGD-KL has in the reference code).
pub fn evaluation_start(loss: AttackLoss) -> RandomStart {
    match loss {
        AttackLoss::Kl => RandomStart::Gaussian { std: 0.001 },
        _ => RandomStart::Uniform,
    }
}

/// Where PGD starts inside the ball.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RandomStart {
    /// At the clean input.
    None,
    /// Uniform in the ε-ball (Madry et al.).
    Uniform,
    /// `x + std·N(0, 1)` (TRADES and MART use `std = 0.001`).
    Gaussian {
        /// Standard deviation of the noise, in pixel units.
        std: f64,
    },
    /// Uniform in the ε-ball and *not* clipped to `[0, 1]`: the first gradient is taken there, as
    /// in semisup-adv's `attack_pgd.py` and TRADES' `pgd_attack_cifar10.py`; every later iterate
    /// is projected onto the ball and `[0, 1]` as usual.
    UniformUnclipped,
}

/// The loss APGD maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApgdLoss {
    /// Cross-entropy (APGD-CE).
    CrossEntropy,
    /// Difference of logits ratio (APGD-DLR).
    Dlr,
}

/// The version of AutoAttack (fra31/auto-attack's `version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoAttackVersion {
    /// APGD-CE, APGD-T, FAB-T and Square: the version RobustBench reports.
    Standard,
    /// APGD-CE and APGD-DLR with 20 EOT passes, for randomised defences.
    Rand,
}

/// Iterations of APGD, APGD-T and FAB(-T) in the reference (`n_iter=100`).
pub const AUTOATTACK_STEPS: usize = 100;
/// Target classes of APGD-T and FAB-T in AutoAttack's standard version (`n_target_classes=9`).
pub const AUTOATTACK_TARGETS: usize = 9;
/// Queries of Square in AutoAttack's standard version (`n_queries=5000`).
pub const SQUARE_QUERIES: usize = 5000;
/// EOT passes per APGD step in AutoAttack's rand version (`eot_iter=20`).
pub const RAND_EOT: usize = 20;

/// One entry of an attack list. Serialised as its canonical string (`Display`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttackSpec {
    /// No attack: clean accuracy.
    Clean,
    /// FGSM on cross-entropy, no random start.
    Fgsm,
    /// PGD (with the CW margin loss: CW∞) from a random start.
    Pgd {
        /// PGD iterations (`pgd20`: 20).
        steps: usize,
        /// The loss maximised (`pgd20`: CE, `pgd-ls:0.3`: label-smoothed, `pgd-kl`, `cw30`: CW margin).
        loss: AttackLoss,
        /// The step size: the evaluation's default for the radius, or given (`@step=`, `@eps/N`).
        step: StepRule,
    },
    /// PGD-CE as semisup-adv (RST) evaluates with it (`attack_pgd.py`, `attack_evaluation.py`):
    /// `restarts` runs, each from a start uniform in the ε-ball and not clipped to `[0, 1]`, with a
    /// step and (if `eps` is set) a radius of its own. An example counts as robust only if it is
    /// classified correctly after every iterate of every restart (`every_iterate`), or else after
    /// the last iterate of every restart. Written `pgd20x5@step=0.01@eps=0.031@every-iterate`.
    PgdRestarts {
        /// PGD iterations per restart.
        steps: usize,
        /// Independent runs from fresh random starts (`x5`).
        restarts: usize,
        /// The step size (`@step=0.01`).
        step: StepRule,
        /// The attack's own radius; `None`: the radius the evaluation is run at.
        eps: Option<Radius>,
        /// Judge an example over every iterate of every restart (`@every-iterate`), not only the last.
        every_iterate: bool,
    },
    /// APGD (Croce & Hein 2020) with the CE or DLR loss: `apgd-ce`, `apgd-dlr`, with
    /// `apgdN[xR]-ce` for other iteration and restart counts and `@eot=K` for gradients averaged
    /// over `K` passes (randomised defences).
    Apgd {
        /// CE or DLR.
        loss: ApgdLoss,
        /// Iterations per restart (100 in AutoAttack).
        steps: usize,
        /// Restarts on the examples still robust (1 in AutoAttack's standard version).
        restarts: usize,
        /// Gradient passes averaged per step (expectation over transformation; 1: none).
        eot: usize,
    },
    /// APGD-T, targeted DLR against each of the `targets` most likely wrong classes in turn:
    /// `apgd-t`, `apgdN[xR]-t@targets=K`.
    ApgdTargeted {
        /// Iterations per restart and target (100 in AutoAttack).
        steps: usize,
        /// Restarts per target (1 in AutoAttack).
        restarts: usize,
        /// Number of target classes, the most likely wrong ones first (9 in AutoAttack).
        targets: usize,
    },
    /// FAB (Croce & Hein 2020), untargeted (`fab`) or against the `targets` most likely wrong
    /// classes (`fab-t`, `fabN[xR]-t@targets=K`).
    Fab {
        /// Iterations per restart (100 in AutoAttack).
        steps: usize,
        /// Restarts (1 in AutoAttack).
        restarts: usize,
        /// Target classes for FAB-T (9 in AutoAttack); `None`: untargeted FAB.
        targets: Option<usize>,
    },
    /// Square Attack (Andriushchenko et al. 2020), a score-based black-box attack with a budget
    /// of `queries` per restart: `square`, `squareQ[xR]`.
    Square {
        /// Model queries per restart (5,000 in AutoAttack).
        queries: usize,
        /// Restarts on the examples still robust (1 in AutoAttack).
        restarts: usize,
    },
    /// The AutoAttack ensemble: `autoattack` (standard) or `autoattack-rand`. Each attack runs
    /// only on the examples every earlier one failed to fool.
    AutoAttack {
        /// `standard` (APGD-CE, APGD-T, FAB-T, Square) or `rand` (APGD-CE and APGD-DLR with EOT).
        version: AutoAttackVersion,
    },
}

/// The accepted forms, for error messages and `--help`.
pub const SPEC_FORMS: &str =
    "clean, fgsm, pgdN (PGD-CE, e.g. pgd20), cwN (CW∞ by PGD, e.g. cw30), \
pgd-kl / pgdN-kl (PGD-KL), pgd-ls:A / pgdN-ls:A (PGD-LS with 0 <= A <= 1); append @eps/10 (also \
@step=eps/10 or -eps10) to a PGD or CW form for step ε/10, or @step=S (as 0.01 or 2/255) for a \
step of its own, instead of 0.003 at ε = 0.031; pgdNxR (PGD-CE with R restarts, RST's \
evaluation) also takes @eps=E (a radius of its own) and @every-iterate (robust only if correct \
after every iterate of every restart); AutoAttack's attacks: apgd-ce, apgd-dlr, apgd-t, fab, fab-t, \
square, with apgdNxR-ce / fabNxR-t (N iterations, R restarts; default 100x1) and squareQxR (Q \
queries; default 5000x1), @targets=K for apgd-t and fab-t (default 9), @eot=K for apgd-ce and \
apgd-dlr (default 1); autoattack (standard: apgd-ce, apgd-t, fab-t, square) and autoattack-rand \
(apgd-ce and apgd-dlr with @eot=20)";

impl AttackSpec {
    /// Parses a comma-separated list; an empty list is an error.
    pub fn parse_list(list: &str) -> Result<Vec<AttackSpec>, Error> {
        let specs: Vec<AttackSpec> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        if specs.is_empty() {
            return Err(Error::Invalid(format!(
                "empty attack list; accepted: {SPEC_FORMS}"
            )));
        }
        crate::limits::check_count("attack list: attacks", specs.len(), crate::limits::LIST)?;
        Ok(specs)
    }

    /// Gradient steps of the attack (0 for clean, 1 for FGSM).
    pub fn steps(&self) -> usize {
        match *self {
            AttackSpec::Clean => 0,
            AttackSpec::Fgsm => 1,
            AttackSpec::Pgd { steps, .. } => steps,
            AttackSpec::PgdRestarts {
                steps, restarts, ..
            } => steps.saturating_mul(restarts),
            AttackSpec::Apgd {
                steps,
                restarts,
                eot,
                ..
            } => steps.saturating_mul(restarts).saturating_mul(eot),
            AttackSpec::ApgdTargeted {
                steps,
                restarts,
                targets,
            } => steps.saturating_mul(restarts).saturating_mul(targets),
            AttackSpec::Fab {
                steps,
                restarts,
                targets,
            } => steps
                .saturating_mul(restarts)
                .saturating_mul(targets.unwrap_or(1)),
            // Queries are forward passes, not gradient steps.
            AttackSpec::Square { .. } => 0,
            AttackSpec::AutoAttack { version } => autoattack_parts(version)
                .iter()
                .map(AttackSpec::steps)
                .fold(0, usize::saturating_add),
        }
    }
}

impl AttackSpec {
    /// The spec if each of its counts, and the passes per example they multiply to, are within
    /// [`crate::limits`]; `text` is the spec as written, for the message.
    fn within_limits(self, text: &str) -> Result<Self, Error> {
        use crate::limits::{check_count, ATTACK_PASSES, ATTACK_REPEATS, ATTACK_STEPS, RESTARTS};
        let (iterations, restarts, repeats) = match self {
            AttackSpec::Clean | AttackSpec::Fgsm | AttackSpec::AutoAttack { .. } => {
                return Ok(self)
            }
            AttackSpec::Pgd { steps, .. } => (steps, 1, 1),
            AttackSpec::PgdRestarts {
                steps, restarts, ..
            } => (steps, restarts, 1),
            AttackSpec::Apgd {
                steps,
                restarts,
                eot,
                ..
            } => (steps, restarts, eot),
            AttackSpec::ApgdTargeted {
                steps,
                restarts,
                targets,
            } => (steps, restarts, targets),
            AttackSpec::Fab {
                steps,
                restarts,
                targets,
            } => (steps, restarts, targets.unwrap_or(1)),
            AttackSpec::Square { queries, restarts } => (queries, restarts, 1),
        };
        let what = |part: &str| format!("attack `{text}`: {part}");
        check_count(&what("iterations"), iterations, ATTACK_STEPS)?;
        check_count(&what("restarts"), restarts, RESTARTS)?;
        check_count(&what("targets or EOT passes"), repeats, ATTACK_REPEATS)?;
        let passes = iterations.saturating_mul(restarts).saturating_mul(repeats);
        check_count(&what("passes per image"), passes, ATTACK_PASSES)?;
        Ok(self)
    }
}

/// The attacks of an AutoAttack version, in the order they run (fra31/auto-attack's
/// `set_version`): standard is APGD-CE, APGD-T, FAB-T and Square with one restart each; rand is
/// APGD-CE and APGD-DLR with 20 EOT passes.
pub fn autoattack_parts(version: AutoAttackVersion) -> Vec<AttackSpec> {
    match version {
        AutoAttackVersion::Standard => vec![
            AttackSpec::Apgd {
                loss: ApgdLoss::CrossEntropy,
                steps: AUTOATTACK_STEPS,
                restarts: 1,
                eot: 1,
            },
            AttackSpec::ApgdTargeted {
                steps: AUTOATTACK_STEPS,
                restarts: 1,
                targets: AUTOATTACK_TARGETS,
            },
            AttackSpec::Fab {
                steps: AUTOATTACK_STEPS,
                restarts: 1,
                targets: Some(AUTOATTACK_TARGETS),
            },
            AttackSpec::Square {
                queries: SQUARE_QUERIES,
                restarts: 1,
            },
        ],
        AutoAttackVersion::Rand => [ApgdLoss::CrossEntropy, ApgdLoss::Dlr]
            .into_iter()
            .map(|loss| AttackSpec::Apgd {
                loss,
                steps: AUTOATTACK_STEPS,
                restarts: 1,
                eot: RAND_EOT,
            })
            .collect(),
    }
}

/// A spec's text cut into the parts of the grammar, before any meaning is given to them.
#[derive(Debug, PartialEq)]
struct Parts<'a> {
    family: &'a str,
    steps: Option<usize>,
    restarts: Option<usize>,
    variant: Option<&'a str>,
    argument: Option<&'a str>,
    options: Vec<(&'a str, Option<&'a str>)>,
}

/// Leading ASCII digits of `s` as a positive count, and the rest; `Err` for a zero. A number
/// too large for `usize` is `usize::MAX`, which the limits then refuse by name.
fn count(s: &str) -> Result<(Option<usize>, &str), ()> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return Ok((None, s));
    }
    let digits = &s[..end];
    if digits.bytes().all(|b| b == b'0') {
        return Err(());
    }
    Ok((Some(digits.parse().unwrap_or(usize::MAX)), &s[end..]))
}

/// Refuses an option given twice (`@step` spelt any of its ways counts once): the last would
/// silently win.
fn once<'a>(seen: &mut Vec<&'a str>, key: &'a str, text: &str) -> Result<(), Error> {
    let key = if key == "eps/10" { "step" } else { key };
    if seen.contains(&key) {
        return Err(Error::Invalid(format!(
            "attack `{text}`: @{key} is given twice; give each option once"
        )));
    }
    seen.push(key);
    Ok(())
}

impl<'a> Parts<'a> {
    /// Cuts lower-cased, trimmed `text`; `None` if it does not follow the grammar.
    fn cut(text: &'a str) -> Option<Self> {
        let mut sections = text.split('@');
        let mut head = sections.next().unwrap_or("");
        let mut options: Vec<(&str, Option<&str>)> = Vec::new();
        // `-eps10` is the older spelling of `@eps/10`.
        if let Some(h) = head.strip_suffix("-eps10") {
            head = h;
            options.push(("eps/10", None));
        }
        for option in sections {
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (option, None),
            };
            if key.is_empty() || value == Some("") {
                return None;
            }
            options.push((key, value));
        }
        let family_end = head
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(head.len());
        let (family, rest) = head.split_at(family_end);
        if family.is_empty() {
            return None;
        }
        let (steps, mut rest) = count(rest).ok()?;
        let mut restarts = None;
        if steps.is_some() {
            if let Some(r) = rest.strip_prefix('x') {
                let (n, after) = count(r).ok()?;
                restarts = Some(n?);
                rest = after;
            }
        }
        let (head_rest, argument) = match rest.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (rest, None),
        };
        let variant = match head_rest {
            "" => None,
            v => Some(v.strip_prefix('-').filter(|v| !v.is_empty())?),
        };
        Some(Parts {
            family,
            steps,
            restarts,
            variant,
            argument,
            options,
        })
    }
}

impl FromStr for AttackSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        meaning(text)?.within_limits(text)
    }
}

/// The attack `text` names, its counts not yet bounded.
fn meaning(text: &str) -> Result<AttackSpec, Error> {
    let bad = || Error::Invalid(format!("unknown attack `{text}`; accepted: {SPEC_FORMS}"));
    let lower = text.trim().to_ascii_lowercase();
    let parts = Parts::cut(&lower).ok_or_else(bad)?;
    if let Some(spec) = autoattack_family(&parts, text)? {
        return Ok(spec);
    }
    let mut step = StepRule::EvaluationScripts;
    let mut own_eps = None;
    let mut every_iterate = false;
    let mut seen = Vec::new();
    for &(key, value) in &parts.options {
        once(&mut seen, key, text)?;
        let radius = |v: &str| {
            v.parse::<Radius>()
                .map_err(|e| Error::Invalid(format!("attack `{text}`: {e}")))
        };
        match (key, value) {
            ("eps/10", None) | ("step", Some("eps/10")) => step = StepRule::EpsOver10,
            ("step", Some(v)) => step = StepRule::Fixed(radius(v)?),
            ("eps", Some(v)) => own_eps = Some(radius(v)?),
            ("every-iterate", None) => every_iterate = true,
            _ => {
                return Err(Error::Invalid(format!(
                    "attack `{text}`: unknown option `@{key}{}`; accepted: {SPEC_FORMS}",
                    value.map(|v| format!("={v}")).unwrap_or_default()
                )))
            }
        }
    }
    // Restarts, a radius of its own or the every-iterate rule make the spec RST's PGD, which
    // spat runs on cross-entropy only.
    if parts.restarts.is_some() || every_iterate || own_eps.is_some() {
        if (parts.family, parts.variant, parts.argument) != ("pgd", None, None) {
            return Err(Error::Invalid(format!(
                "attack `{text}`: restarts, @eps=E and @every-iterate are supported by PGD-CE \
                 (pgdNxR) only; accepted: {SPEC_FORMS}"
            )));
        }
        return Ok(AttackSpec::PgdRestarts {
            steps: parts.steps.ok_or_else(bad)?,
            restarts: parts.restarts.unwrap_or(1),
            step,
            eps: own_eps,
            every_iterate,
        });
    }
    let plain = parts.steps.is_none() && parts.variant.is_none() && parts.argument.is_none();
    let pgd = |steps: Option<usize>, default: Option<usize>, loss| {
        let steps = steps.or(default).ok_or_else(bad)?;
        Ok(AttackSpec::Pgd { steps, loss, step })
    };
    match (parts.family, parts.variant, parts.argument) {
        ("clean", ..) if plain && parts.options.is_empty() => Ok(AttackSpec::Clean),
        ("fgsm", ..) if plain && parts.options.is_empty() => Ok(AttackSpec::Fgsm),
        ("cw", None, None) => pgd(
            parts.steps,
            Some(30),
            AttackLoss::CwMargin { kappa: CW_KAPPA },
        ),
        ("pgd", None, None) => pgd(parts.steps, None, AttackLoss::CrossEntropy),
        ("pgd", Some("kl"), None) => pgd(parts.steps, Some(20), AttackLoss::Kl),
        ("pgd", Some("ls"), Some(alpha)) => {
            let alpha: f64 = alpha.parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&alpha) {
                return Err(Error::Invalid(format!(
                    "attack `{text}`: alpha must lie in [0, 1], got {alpha}"
                )));
            }
            pgd(parts.steps, Some(20), AttackLoss::LabelSmoothed { alpha })
        }
        _ => Err(bad()),
    }
}

/// The meaning of a spec of AutoAttack's families (`apgd`, `fab`, `square`, `autoattack`);
/// `None` for any other family.
fn autoattack_family(parts: &Parts<'_>, text: &str) -> Result<Option<AttackSpec>, Error> {
    let bad = || Error::Invalid(format!("unknown attack `{text}`; accepted: {SPEC_FORMS}"));
    let family = parts.family;
    if !matches!(family, "apgd" | "fab" | "square" | "autoattack") {
        return Ok(None);
    }
    if parts.argument.is_some() {
        return Err(bad());
    }
    let mut targets = None;
    let mut eot = None;
    let mut seen = Vec::new();
    for &(key, value) in &parts.options {
        once(&mut seen, key, text)?;
        let count = |v: Option<&str>| {
            match v {
                Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    match v.parse::<usize>() {
                        Ok(0) => Err(()),
                        Ok(n) => Ok(n),
                        Err(_) => Ok(usize::MAX),
                    }
                }
                _ => Err(()),
            }
            .map_err(|()| {
                Error::Invalid(format!(
                    "attack `{text}`: @{key} needs a positive whole number"
                ))
            })
        };
        match key {
            "targets" => targets = Some(count(value)?),
            "eot" => eot = Some(count(value)?),
            _ => {
                return Err(Error::Invalid(format!(
                    "attack `{text}`: unknown option `@{key}{}`; accepted: {SPEC_FORMS}",
                    value.map(|v| format!("={v}")).unwrap_or_default()
                )))
            }
        }
    }
    let refuse = |option: &str, what: &str| {
        Err(Error::Invalid(format!(
            "attack `{text}`: @{option} applies to {what} only"
        )))
    };
    let steps = parts.steps.unwrap_or(AUTOATTACK_STEPS);
    let restarts = parts.restarts.unwrap_or(1);
    let spec = match (family, parts.variant) {
        ("apgd", Some(v @ ("ce" | "dlr"))) => {
            if targets.is_some() {
                return refuse("targets", "apgd-t and fab-t");
            }
            AttackSpec::Apgd {
                loss: if v == "ce" {
                    ApgdLoss::CrossEntropy
                } else {
                    ApgdLoss::Dlr
                },
                steps,
                restarts,
                eot: eot.unwrap_or(1),
            }
        }
        ("apgd", Some("t")) => AttackSpec::ApgdTargeted {
            steps,
            restarts,
            targets: targets.unwrap_or(AUTOATTACK_TARGETS),
        },
        ("fab", None) if targets.is_none() => AttackSpec::Fab {
            steps,
            restarts,
            targets: None,
        },
        ("fab", None) => return refuse("targets", "apgd-t and fab-t"),
        ("fab", Some("t")) => AttackSpec::Fab {
            steps,
            restarts,
            targets: Some(targets.unwrap_or(AUTOATTACK_TARGETS)),
        },
        ("square", None) if targets.is_none() => AttackSpec::Square {
            queries: parts.steps.unwrap_or(SQUARE_QUERIES),
            restarts,
        },
        ("autoattack", variant) if parts.steps.is_none() && parts.options.is_empty() => {
            match variant {
                None | Some("standard") => AttackSpec::AutoAttack {
                    version: AutoAttackVersion::Standard,
                },
                Some("rand") => AttackSpec::AutoAttack {
                    version: AutoAttackVersion::Rand,
                },
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    if eot.is_some() && !matches!(spec, AttackSpec::Apgd { .. }) {
        return refuse("eot", "apgd-ce and apgd-dlr");
    }
    Ok(Some(spec))
}

/// `N` or `NxR` of a head whose defaults are `default` iterations and one restart: nothing at
/// the defaults, `N` with one restart.
fn write_budget(
    f: &mut fmt::Formatter<'_>,
    n: usize,
    restarts: usize,
    default: usize,
) -> fmt::Result {
    match (n == default, restarts == 1) {
        (true, true) => Ok(()),
        (_, true) => write!(f, "{n}"),
        _ => write!(f, "{n}x{restarts}"),
    }
}

fn write_step(f: &mut fmt::Formatter<'_>, step: StepRule) -> fmt::Result {
    match step {
        StepRule::EvaluationScripts => Ok(()),
        StepRule::EpsOver10 => write!(f, "@eps/10"),
        StepRule::Fixed(r) => write!(f, "@step={r}"),
    }
}

impl fmt::Display for AttackSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AttackSpec::Clean => write!(f, "clean"),
            AttackSpec::Fgsm => write!(f, "fgsm"),
            AttackSpec::Pgd { steps, loss, step } => {
                match loss {
                    AttackLoss::CrossEntropy => write!(f, "pgd{steps}")?,
                    AttackLoss::LabelSmoothed { alpha } => write!(f, "pgd{steps}-ls:{alpha}")?,
                    AttackLoss::Kl => write!(f, "pgd{steps}-kl")?,
                    AttackLoss::CwMargin { .. } => write!(f, "cw{steps}")?,
                }
                write_step(f, step)
            }
            AttackSpec::PgdRestarts {
                steps,
                restarts,
                step,
                eps,
                every_iterate,
            } => {
                write!(f, "pgd{steps}x{restarts}")?;
                write_step(f, step)?;
                if let Some(r) = eps {
                    write!(f, "@eps={r}")?;
                }
                if every_iterate {
                    write!(f, "@every-iterate")?;
                }
                Ok(())
            }
            AttackSpec::Apgd {
                loss,
                steps,
                restarts,
                eot,
            } => {
                write!(f, "apgd")?;
                write_budget(f, steps, restarts, AUTOATTACK_STEPS)?;
                match loss {
                    ApgdLoss::CrossEntropy => write!(f, "-ce")?,
                    ApgdLoss::Dlr => write!(f, "-dlr")?,
                }
                if eot != 1 {
                    write!(f, "@eot={eot}")?;
                }
                Ok(())
            }
            AttackSpec::ApgdTargeted {
                steps,
                restarts,
                targets,
            } => {
                write!(f, "apgd")?;
                write_budget(f, steps, restarts, AUTOATTACK_STEPS)?;
                write!(f, "-t")?;
                if targets != AUTOATTACK_TARGETS {
                    write!(f, "@targets={targets}")?;
                }
                Ok(())
            }
            AttackSpec::Fab {
                steps,
                restarts,
                targets,
            } => {
                write!(f, "fab")?;
                write_budget(f, steps, restarts, AUTOATTACK_STEPS)?;
                match targets {
                    None => Ok(()),
                    Some(AUTOATTACK_TARGETS) => write!(f, "-t"),
                    Some(k) => write!(f, "-t@targets={k}"),
                }
            }
            AttackSpec::Square { queries, restarts } => {
                write!(f, "square")?;
                write_budget(f, queries, restarts, SQUARE_QUERIES)
            }
            AttackSpec::AutoAttack { version } => match version {
                AutoAttackVersion::Standard => write!(f, "autoattack"),
                AutoAttackVersion::Rand => write!(f, "autoattack-rand"),
            },
        }
    }
}

impl serde::Serialize for AttackSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AttackSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_rules_give_their_steps() {
        let eps = 8.0 / 255.0;
        // TRADES' evaluation: 0.003 at ε = 0.031, scaled with ε (0.0030361 at 8/255).
        assert!((StepRule::EvaluationScripts.size(0.031) - 0.003).abs() < 1e-15);
        assert!((StepRule::EvaluationScripts.size(eps) - 0.003_036_1).abs() < 1e-7);
        assert_eq!(
            evaluation_step_size(eps),
            StepRule::EvaluationScripts.size(eps)
        );
        assert_eq!(StepRule::EpsOver10.size(eps), eps / 10.0);
        assert_eq!(StepRule::Fixed(Radius::Decimal(0.01)).size(eps), 0.01);
    }

    #[test]
    fn evaluation_pgd_starts_off_the_clean_point_for_kl_only_by_a_gaussian() {
        assert_eq!(
            evaluation_start(AttackLoss::Kl),
            RandomStart::Gaussian { std: 0.001 }
        );
        for loss in [
            AttackLoss::CrossEntropy,
            AttackLoss::LabelSmoothed { alpha: 0.3 },
            AttackLoss::CwMargin { kappa: CW_KAPPA },
        ] {
            assert_eq!(evaluation_start(loss), RandomStart::Uniform);
        }
    }

    #[test]
    fn random_starts_read_back_from_json() {
        for start in [
            RandomStart::None,
            RandomStart::Uniform,
            RandomStart::Gaussian { std: 0.001 },
            RandomStart::UniformUnclipped,
        ] {
            let json = serde_json::to_string(&start).unwrap();
            assert_eq!(serde_json::from_str::<RandomStart>(&json).unwrap(), start);
        }
        assert_eq!(
            serde_json::to_string(&RandomStart::Gaussian { std: 0.001 }).unwrap(),
            r#"{"kind":"gaussian","std":0.001}"#
        );
    }

    #[test]
    fn grammar_cuts_every_part() {
        let p = Parts::cut("pgd50x5-ls:0.3@step=eps/10@targeted").unwrap();
        assert_eq!(
            p,
            Parts {
                family: "pgd",
                steps: Some(50),
                restarts: Some(5),
                variant: Some("ls"),
                argument: Some("0.3"),
                options: vec![("step", Some("eps/10")), ("targeted", None)],
            }
        );
        let p = Parts::cut("autoattack-rand").unwrap();
        assert_eq!(
            (p.family, p.variant, p.steps),
            ("autoattack", Some("rand"), None)
        );
        for bad in [
            "",
            "20",
            "pgd0",
            "pgd20x0",
            "pgd-",
            "pgd@",
            "pgd@step=",
            "pgd20y",
        ] {
            assert!(Parts::cut(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn specs_parse_to_their_meaning_and_print_canonically() {
        let cases = [
            ("clean", "clean"),
            ("FGSM", "fgsm"),
            ("pgd20", "pgd20"),
            ("cw", "cw30"),
            ("cw30", "cw30"),
            ("pgd-kl", "pgd20-kl"),
            ("pgd10-kl", "pgd10-kl"),
            ("pgd-ls:0.3", "pgd20-ls:0.3"),
            ("pgd7-ls:1", "pgd7-ls:1"),
            ("pgd20@eps/10", "pgd20@eps/10"),
            ("pgd20-eps10", "pgd20@eps/10"),
            ("cw30@step=eps/10", "cw30@eps/10"),
            ("pgd20@step=2/255", "pgd20@step=2/255"),
            ("pgd-kl@step=0.007", "pgd20-kl@step=0.007"),
            ("pgd20x5", "pgd20x5"),
            ("pgd20x1@eps/10", "pgd20x1@eps/10"),
            (
                "PGD20x5@every-iterate@eps=0.031@step=0.01",
                "pgd20x5@step=0.01@eps=0.031@every-iterate",
            ),
            ("pgd40@eps=8/255", "pgd40x1@eps=8/255"),
        ];
        for (text, canonical) in cases {
            let spec: AttackSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<AttackSpec>().unwrap(), spec);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(json, format!("\"{canonical}\""));
            assert_eq!(serde_json::from_str::<AttackSpec>(&json).unwrap(), spec);
        }
        assert_eq!(
            "pgd-ls:0.25".parse::<AttackSpec>().unwrap(),
            AttackSpec::Pgd {
                steps: 20,
                loss: AttackLoss::LabelSmoothed { alpha: 0.25 },
                step: StepRule::EvaluationScripts
            }
        );
    }

    #[test]
    fn what_cannot_run_is_refused_by_name() {
        for (text, needle) in [
            ("fgsm9", "unknown attack `fgsm9`"),
            ("pgd", "unknown attack `pgd`"),
            ("clean@eps/10", "unknown attack"),
            ("pgd-ls", "unknown attack"),
            ("pgd-ls:x", "unknown attack"),
            ("pgd-ls:1.5", "alpha must lie in [0, 1]"),
            ("cw30x5", "PGD-CE (pgdNxR) only"),
            ("pgd-kl@every-iterate", "PGD-CE (pgdNxR) only"),
            ("pgd-ls:0.1@eps=0.031", "PGD-CE (pgdNxR) only"),
            ("pgdx5", "unknown attack"),
            ("pgd20@eps=9/0", "bad radius `9/0`"),
            ("pgd20@step=x", "bad radius `x`"),
            ("pgd20@every-iterate=1", "unknown option `@every-iterate=1`"),
            ("pgd20@eps=", "unknown attack"),
            ("apgd", "unknown attack `apgd`"),
            ("apgd-kl", "unknown attack"),
            ("apgd-ce:0.3", "unknown attack"),
            (
                "apgd-ce@targets=3",
                "@targets applies to apgd-t and fab-t only",
            ),
            ("fab@targets=3", "@targets applies to apgd-t and fab-t only"),
            ("apgd-t@eot=2", "@eot applies to apgd-ce and apgd-dlr only"),
            ("square@eot=2", "@eot applies to apgd-ce and apgd-dlr only"),
            ("apgd-t@targets=0", "@targets needs a positive whole number"),
            ("apgd-t@targets", "@targets needs a positive whole number"),
            ("apgd-ce@step=0.01", "unknown option `@step=0.01`"),
            ("autoattack100", "unknown attack"),
            ("autoattack-fast", "unknown attack"),
            ("autoattack@eot=2", "unknown attack"),
            ("square-t", "unknown attack"),
            ("pgd4294967296", "iterations: 4294967296 is above the limit"),
            ("pgd99999999999999999999999", "is above the limit"),
            ("pgd20x5000", "restarts: 5000 is above the limit"),
            ("square200000", "iterations: 200000 is above the limit"),
            ("apgd-t@targets=100000", "above the limit"),
            ("apgd-ce@eot=99999999999999999999", "above the limit"),
            ("pgd100000x100", "passes per image"),
            ("pgd20@step=0.01@step=0.02", "@step is given twice"),
            ("pgd20@eps/10@step=0.01", "@step is given twice"),
            ("pgd20-eps10@eps/10", "@step is given twice"),
            ("pgd20x5@eps=0.03@eps=0.031", "@eps is given twice"),
            ("apgd-ce@eot=2@eot=3", "@eot is given twice"),
        ] {
            let e = text.parse::<AttackSpec>().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        assert!(AttackSpec::parse_list(" , ").is_err());
        assert_eq!(AttackSpec::parse_list("clean, pgd20").unwrap().len(), 2);
        assert!(serde_json::from_str::<AttackSpec>("\"pgd0\"").is_err());
    }

    #[test]
    fn autoattack_specs_carry_the_reference_defaults() {
        let cases = [
            ("apgd-ce", "apgd-ce"),
            ("APGD100-ce", "apgd-ce"),
            ("apgd100x1-ce", "apgd-ce"),
            ("apgd100x5-ce", "apgd100x5-ce"),
            ("apgd50-dlr", "apgd50-dlr"),
            ("apgd-ce@eot=20", "apgd-ce@eot=20"),
            ("apgd-ce@eot=1", "apgd-ce"),
            ("apgd-t", "apgd-t"),
            ("apgd-t@targets=9", "apgd-t"),
            ("apgd20x2-t@targets=3", "apgd20x2-t@targets=3"),
            ("fab", "fab"),
            ("fab-t", "fab-t"),
            ("fab100x1-t@targets=4", "fab-t@targets=4"),
            ("square", "square"),
            ("square5000", "square"),
            ("square1000x2", "square1000x2"),
            ("autoattack", "autoattack"),
            ("autoattack-standard", "autoattack"),
            ("AutoAttack-Rand", "autoattack-rand"),
        ];
        for (text, canonical) in cases {
            let spec: AttackSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), canonical, "{text}");
            assert_eq!(canonical.parse::<AttackSpec>().unwrap(), spec);
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<AttackSpec>(&json).unwrap(), spec);
        }
        assert_eq!(
            "apgd-t".parse::<AttackSpec>().unwrap(),
            AttackSpec::ApgdTargeted {
                steps: 100,
                restarts: 1,
                targets: 9
            }
        );
        assert_eq!(
            "square".parse::<AttackSpec>().unwrap(),
            AttackSpec::Square {
                queries: 5000,
                restarts: 1
            }
        );
        // The standard version's parts print as the reference names them in its log.
        let names = |v| {
            autoattack_parts(v)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(AutoAttackVersion::Standard),
            ["apgd-ce", "apgd-t", "fab-t", "square"]
        );
        assert_eq!(
            names(AutoAttackVersion::Rand),
            ["apgd-ce@eot=20", "apgd-dlr@eot=20"]
        );
        assert_eq!("apgd100x5-ce".parse::<AttackSpec>().unwrap().steps(), 500);
        assert_eq!(
            "autoattack".parse::<AttackSpec>().unwrap().steps(),
            100 + 900 + 900
        );
    }

    #[test]
    fn rst_evaluation_spec_keeps_every_setting() {
        let spec: AttackSpec = "pgd20x5@step=0.01@eps=0.031@every-iterate".parse().unwrap();
        assert_eq!(
            spec,
            AttackSpec::PgdRestarts {
                steps: 20,
                restarts: 5,
                step: StepRule::Fixed(Radius::Decimal(0.01)),
                eps: Some(Radius::Decimal(0.031)),
                every_iterate: true,
            }
        );
        assert_eq!(spec.steps(), 100, "gradient steps over all restarts");
        assert_ne!(
            "pgd20x1".parse::<AttackSpec>().unwrap(),
            "pgd20".parse::<AttackSpec>().unwrap(),
            "one restart from RST's start is not the evaluation scripts' PGD-20"
        );
    }
}
