//! Attacks named by short strings, as on the command line: `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3`.

use std::fmt;
use std::str::FromStr;

use crate::attack::{evaluation_step_size, Attack, AttackLoss, Fgsm, Pgd, CW_KAPPA};
use crate::Error;

/// Step size rule of an evaluation PGD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    /// The TRADES/MART evaluation scripts' 0.003 at ε = 0.031, scaled with ε.
    EvaluationScripts,
    /// ε / 10 (Section 6.2).
    EpsOver10,
}

/// One entry of an attack list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttackSpec {
    /// No attack: clean accuracy.
    Clean,
    Fgsm,
    Pgd {
        steps: usize,
        loss: AttackLoss,
        step: StepRule,
    },
}

pub const SPEC_FORMS: &str = "clean, fgsm, pgdN (PGD-CE, e.g. pgd20), cwN (CW∞ by PGD, e.g. cw30), \
pgd-kl / pgdN-kl (PGD-KL), pgd-ls:A / pgdN-ls:A (PGD-LS with 0 <= A <= 1); append @eps/10 (or -eps10) \
to a PGD or CW form for step ε/10 instead of 0.003 at ε = 0.031";

impl AttackSpec {
    /// The attack at radius `eps`; `None` for [`AttackSpec::Clean`].
    pub fn build(&self, eps: f64) -> Option<Box<dyn Attack>> {
        match *self {
            AttackSpec::Clean => None,
            AttackSpec::Fgsm => Some(Box::new(Fgsm::new(eps))),
            AttackSpec::Pgd { steps, loss, step } => {
                let mut pgd = Pgd::evaluation(eps, steps, loss);
                pgd.step_size = match step {
                    StepRule::EvaluationScripts => evaluation_step_size(eps),
                    StepRule::EpsOver10 => eps / 10.0,
                };
                Some(Box::new(pgd))
            }
        }
    }

    /// Parses a comma-separated list.
    pub fn parse_list(list: &str) -> Result<Vec<AttackSpec>, Error> {
        let specs: Vec<AttackSpec> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        if specs.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "empty attack list; accepted: {SPEC_FORMS}"
            )));
        }
        Ok(specs)
    }
}

fn parse_steps(s: &str, default: usize) -> Option<usize> {
    if s.is_empty() {
        Some(default)
    } else {
        s.parse().ok().filter(|&n: &usize| n > 0)
    }
}

impl FromStr for AttackSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad =
            || Error::InvalidArgument(format!("unknown attack `{text}`; accepted: {SPEC_FORMS}"));
        let lower = text.trim().to_ascii_lowercase();
        let (body, step) = match lower
            .strip_suffix("@eps/10")
            .or_else(|| lower.strip_suffix("-eps10"))
        {
            Some(b) => (b, StepRule::EpsOver10),
            None => (lower.as_str(), StepRule::EvaluationScripts),
        };
        match body {
            "clean" if step == StepRule::EvaluationScripts => return Ok(AttackSpec::Clean),
            "fgsm" if step == StepRule::EvaluationScripts => return Ok(AttackSpec::Fgsm),
            _ => {}
        }
        let pgd = |steps, loss| Ok(AttackSpec::Pgd { steps, loss, step });
        if let Some(rest) = body.strip_prefix("cw") {
            return pgd(
                parse_steps(rest, 30).ok_or_else(bad)?,
                AttackLoss::CwMargin { kappa: CW_KAPPA },
            );
        }
        let rest = body.strip_prefix("pgd").ok_or_else(bad)?;
        if let Some((steps, alpha)) = rest.split_once("-ls:") {
            let alpha: f64 = alpha.parse().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&alpha) {
                return Err(Error::InvalidArgument(format!(
                    "attack `{text}`: alpha must lie in [0, 1], got {alpha}"
                )));
            }
            return pgd(
                parse_steps(steps, 20).ok_or_else(bad)?,
                AttackLoss::LabelSmoothed { alpha },
            );
        }
        if let Some(steps) = rest.strip_suffix("-kl") {
            return pgd(parse_steps(steps, 20).ok_or_else(bad)?, AttackLoss::Kl);
        }
        let steps = parse_steps(rest, 0).filter(|&n| n > 0).ok_or_else(bad)?;
        pgd(steps, AttackLoss::CrossEntropy)
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
                if step == StepRule::EpsOver10 {
                    write!(f, "@eps/10")?;
                }
                Ok(())
            }
        }
    }
}
