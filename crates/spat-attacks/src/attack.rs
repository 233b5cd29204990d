//! The attacks: one small type each, sharing the gradient and projection steps.

use candle_core::{Tensor, Var};
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::losses;
use crate::Result;

/// The loss an attack maximises.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AttackLoss {
    /// Cross-entropy with the true label (PGD-CE).
    CrossEntropy,
    /// Label-smoothed cross-entropy (PGD-LS, thesis eq. 4.1–4.3); `alpha = 0` is PGD-CE.
    LabelSmoothed { alpha: f64 },
    /// KL divergence from the clean prediction (PGD-KL, the TRADES adversary).
    Kl,
    /// Carlini–Wagner margin with confidence `kappa` (CW∞ when optimised by PGD).
    CwMargin { kappa: f64 },
}

impl AttackLoss {
    /// Summed loss of a batch. `clean_probs` is needed by [`AttackLoss::Kl`] only.
    pub fn summed(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        clean_probs: Option<&Tensor>,
    ) -> Result<Tensor> {
        let per_example = match *self {
            AttackLoss::CrossEntropy => losses::cross_entropy(logits, labels)?,
            AttackLoss::LabelSmoothed { alpha } => {
                if !(0.0..=1.0).contains(&alpha) {
                    return Err(crate::Error::InvalidArgument(format!(
                        "label-smoothing alpha must lie in [0, 1], got {alpha}"
                    )));
                }
                losses::label_smoothed_cross_entropy(logits, labels, alpha)?
            }
            AttackLoss::Kl => {
                let clean = clean_probs.ok_or_else(|| {
                    crate::Error::InvalidArgument("the KL loss needs the clean prediction".into())
                })?;
                losses::kl_from_clean(logits, clean)?
            }
            AttackLoss::CwMargin { kappa } => losses::cw_margin(logits, labels, kappa)?,
        };
        Ok(per_example.sum_all()?)
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
    Gaussian { std: f64 },
}

/// An L∞ attack on a classifier.
pub trait Attack {
    /// Short name used in reports, e.g. `pgd20`.
    fn name(&self) -> String;
    /// Adversarial examples for `(x, y)`: detached, same shape, dtype and device as `x`, within the
    /// ε-ball around `x` and within `[0, 1]`. Random starts are drawn from `rng`.
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor>;
}

pub(crate) fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(crate::Error::InvalidArgument(format!(
            "eps must be finite and >= 0, got {eps}"
        )));
    }
    Ok(())
}

/// Gradient of `loss` w.r.t. the input at `x`. The model runs through
/// [`Classifier::logits_wrt_input`], so a model that supports it spends no work on weight
/// gradients; any it does compute stay in the temporary store dropped here.
fn input_gradient(
    model: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    loss: &AttackLoss,
    clean_probs: Option<&Tensor>,
    mode: Mode,
) -> Result<Tensor> {
    let xv = Var::from_tensor(x)?;
    let logits = model.logits_wrt_input(xv.as_tensor(), mode)?;
    let total = loss.summed(&logits, y, clean_probs)?;
    let grads = total.backward()?;
    match grads.get(xv.as_tensor()) {
        Some(g) => Ok(g.detach()),
        // The loss does not depend on the input (e.g. a constant model): no direction to move.
        None => Ok(x.zeros_like()?),
    }
}

/// Fast Gradient Sign Method: one signed step of size ε on the cross-entropy, no random start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fgsm {
    pub eps: f64,
    /// How the model runs during the attack (`Eval` in [`Fgsm::new`]; `TrainFrozenBn`, not
    /// `Train`, for batch statistics — see [`Pgd::mode`]).
    pub mode: Mode,
}

impl Fgsm {
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            mode: Mode::Eval,
        }
    }
}

impl Attack for Fgsm {
    fn name(&self) -> String {
        "fgsm".into()
    }

    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        _rng: &mut HostRng,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        let x = x.detach();
        let g = input_gradient(model, &x, y, &AttackLoss::CrossEntropy, None, self.mode)?;
        Ok((x + g.sign()?.affine(self.eps, 0.0)?)?.clamp(0f32, 1f32)?)
    }
}

/// Projected gradient descent (ascent on the loss) under an L∞ ball, projected onto the ball and
/// onto `[0, 1]` after every step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pgd {
    pub eps: f64,
    pub step_size: f64,
    pub steps: usize,
    pub loss: AttackLoss,
    pub random_start: RandomStart,
    /// How the model runs while the adversary is crafted: `Eval` for evaluation; a trainer that
    /// wants batch statistics (PyTorch `model.train()` during the attack, as TRADES' code) must use
    /// `TrainFrozenBn`, never `Train` — with `Train` every one of the `steps` forward passes of
    /// adversarial batches would move the BN running statistics.
    pub mode: Mode,
}

/// Step size of the evaluation attacks of Table 6.1, scaled linearly with ε.
///
/// TRADES' `pgd_attack_cifar10.py` evaluates with ε = 0.031, 20 steps of 0.003 and (in its later
/// versions, `--random` defaulting to true) a start uniform in the ε-ball; it does not clamp the
/// start to `[0, 1]`, we do (the two differ only in where the first gradient is taken, for pixels
/// within ε of 0 or 1).
/// MART's training scripts evaluate with ε/10 instead — that is
/// [`Pgd::pgd20_step_eps_over_10`] (Section 6.2).
pub fn evaluation_step_size(eps: f64) -> f64 {
    eps * 0.003 / 0.031
}

/// Confidence κ of the CW∞ loss (`cwloss`).
///
/// MART's repository (`YisenWang/MART`: `mart.py`, `train_*.py`) has no CW code. The `cwloss`
/// function that the TRADES/MART line of evaluation code shares (from the CAT repository; the
/// copies in FAT/GAIRAT-style `attack_generator.py` files) defaults to `confidence=50`; torchattacks'
/// `PGD_CWLinf` defaults to κ = 0. κ only matters where the margin `z_y − max_{k≠y} z_k` exceeds −κ:
/// with κ = 50 the hinge is active on practically every CIFAR example, so the attack is PGD on the
/// plain logit margin; with κ = 0 it stops pushing an example once it is misclassified.
pub const CW_KAPPA: f64 = 50.0;

impl Pgd {
    /// The paper's training adversary (Section 6.1): PGD-10, step ε/4, random start — TRADES'
    /// Gaussian 0.001 start for the KL loss, uniform in the ball otherwise.
    pub fn training(eps: f64, loss: AttackLoss, mode: Mode) -> Self {
        let random_start = match loss {
            AttackLoss::Kl => RandomStart::Gaussian { std: 0.001 },
            _ => RandomStart::Uniform,
        };
        Self {
            eps,
            step_size: eps / 4.0,
            steps: 10,
            loss,
            random_start,
            mode,
        }
    }

    /// Evaluation PGD (`Mode::Eval`) with `steps` steps, [`evaluation_step_size`] and a start uniform
    /// in the ball — or, for the KL loss, TRADES' `x + 0.001·N(0, 1)` (its gradient is exactly zero
    /// at the clean point, so it needs a start off it; the small Gaussian is the one PGD-KL has in
    /// the reference code).
    pub fn evaluation(eps: f64, steps: usize, loss: AttackLoss) -> Self {
        let random_start = match loss {
            AttackLoss::Kl => RandomStart::Gaussian { std: 0.001 },
            _ => RandomStart::Uniform,
        };
        Self {
            eps,
            step_size: evaluation_step_size(eps),
            steps,
            loss,
            random_start,
            mode: Mode::Eval,
        }
    }

    /// PGD-20 on cross-entropy as in Table 6.1 (step 0.003 at ε = 0.031, uniform start).
    pub fn pgd20(eps: f64) -> Self {
        Self::evaluation(eps, 20, AttackLoss::CrossEntropy)
    }

    /// CW∞: the CW margin (κ = 50) optimised by PGD for 30 steps, as in Table 6.1.
    pub fn cw30(eps: f64) -> Self {
        Self::evaluation(eps, 30, AttackLoss::CwMargin { kappa: CW_KAPPA })
    }

    /// PGD-20 with step ε/10 and random start, the evaluation attack of Section 6.2.
    pub fn pgd20_step_eps_over_10(eps: f64) -> Self {
        Self {
            step_size: eps / 10.0,
            ..Self::pgd20(eps)
        }
    }

    fn start(&self, x: &Tensor, lo: &Tensor, hi: &Tensor, rng: &mut HostRng) -> Result<Tensor> {
        let noise = match self.random_start {
            RandomStart::None => return Ok(x.clone()),
            RandomStart::Uniform => spat_core::rng::uniform(
                rng,
                x.shape(),
                -self.eps as f32,
                self.eps as f32,
                x.device(),
            )?,
            RandomStart::Gaussian { std } => {
                spat_core::rng::normal(rng, x.shape(), std as f32, x.device())?
            }
        };
        project(&(x + noise.to_dtype(x.dtype())?)?, lo, hi)
    }
}

/// The bounds of the ε-ball around `x` intersected with `[0, 1]`: `max(x − ε, 0)` and
/// `min(x + ε, 1)`. For `x` in `[0, 1]` the two boxes intersect, so clipping to these bounds
/// ([`project`]) selects exactly the value the reference's `clamp(min(max(v, x − ε), x + ε), 0, 1)`
/// selects, in two operations instead of four (min and max round nothing).
pub(crate) fn ball(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    Ok((
        x.affine(1.0, -eps)?.maximum(&x.zeros_like()?)?,
        x.affine(1.0, eps)?.minimum(&x.ones_like()?)?,
    ))
}

/// `v` clipped to the bounds of [`ball`].
pub(crate) fn project(v: &Tensor, lo: &Tensor, hi: &Tensor) -> Result<Tensor> {
    Ok(v.maximum(lo)?.minimum(hi)?)
}

impl Attack for Pgd {
    fn name(&self) -> String {
        match self.loss {
            AttackLoss::CrossEntropy => format!("pgd{}", self.steps),
            AttackLoss::LabelSmoothed { alpha } => format!("pgd{}-ls:{alpha}", self.steps),
            AttackLoss::Kl => format!("pgd{}-kl", self.steps),
            AttackLoss::CwMargin { .. } => format!("cw{}", self.steps),
        }
    }

    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        let x = x.detach();
        let (lo, hi) = ball(&x, self.eps)?;
        let start = self.start(&x, &lo, &hi, rng)?;
        self.iterate(model, &x, y, start, &lo, &hi)
    }
}

impl Pgd {
    /// Runs the PGD iterations from a given starting point (projected first), instead of a random
    /// start: for warm starts, and for replaying a reference implementation's start noise.
    pub fn perturb_from(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        start: &Tensor,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        let x = x.detach();
        let (lo, hi) = ball(&x, self.eps)?;
        let start = project(&start.detach(), &lo, &hi)?;
        self.iterate(model, &x, y, start, &lo, &hi)
    }

    fn iterate(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        start: Tensor,
        lo: &Tensor,
        hi: &Tensor,
    ) -> Result<Tensor> {
        let clean_probs = match self.loss {
            AttackLoss::Kl => {
                Some(losses::softmax(&model.logits_wrt_input(x, self.mode)?)?.detach())
            }
            _ => None,
        };
        let mut x_adv = start;
        for _ in 0..self.steps {
            let g = input_gradient(
                model,
                &x_adv,
                y,
                &self.loss,
                clean_probs.as_ref(),
                self.mode,
            )?;
            x_adv = project(&(x_adv + g.sign()?.affine(self.step_size, 0.0)?)?, lo, hi)?;
        }
        Ok(x_adv.detach())
    }
}
