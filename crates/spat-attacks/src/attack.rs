//! The attacks: one small type each, sharing the gradient and projection steps.

use candle_core::{DType, Tensor, Var};
use rayon::prelude::*;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::losses;
use crate::Result;
pub use spat_spec::{evaluation_step_size, AttackLoss, Norm, RandomStart, CW_KAPPA};

/// An attack on a classifier, in the norm it was built for.
pub trait Attack {
    /// Adversarial examples for `(x, y)`: detached, same shape, dtype and device as `x`, within the
    /// ε-ball around `x` (in the attack's norm) and within `[0, 1]`. Random starts are drawn from
    /// `rng`.
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor>;

    /// Which examples of `(x, y)` the attack fails on: by default those whose adversarial
    /// example [`predictions`] classifies correctly. An attack that judges examples otherwise
    /// (over several iterates or restarts) says so here; the evaluator counts this.
    fn survivors(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Vec<bool>> {
        let x_adv = self.perturb(model, x, y, rng)?;
        correct(model, &x_adv, y)
    }
}

/// The class `model` (in `Mode::Eval`) predicts for each image of `x`: the arg-max of its logits.
pub fn predictions(model: &dyn Classifier, x: &Tensor) -> Result<Vec<u32>> {
    argmax(&model.logits_wrt_input(x, Mode::Eval)?)
}

/// The arg-max of each row of `logits`.
pub(crate) fn argmax(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?)
}

/// The labels of `y` on the host.
pub(crate) fn labels(y: &Tensor) -> Result<Vec<u32>> {
    Ok(y.to_dtype(DType::U32)?.to_vec1::<u32>()?)
}

/// Whether `model` (in `Mode::Eval`) classifies each image of `x` as its label in `y`.
pub fn correct(model: &dyn Classifier, x: &Tensor, y: &Tensor) -> Result<Vec<bool>> {
    correct_in(model, x, y, Mode::Eval)
}

/// [`correct`] with the model in `mode`.
pub(crate) fn correct_in(
    model: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    mode: Mode,
) -> Result<Vec<bool>> {
    let pred = argmax(&model.logits_wrt_input(x, mode)?)?;
    Ok(pred.iter().zip(labels(y)?).map(|(p, l)| *p == l).collect())
}

pub(crate) fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(crate::Error::InvalidArgument(format!(
            "eps must be finite and >= 0, got {eps}"
        )));
    }
    Ok(())
}

/// Images in each part of an evaluation-mode batch that is differentiated on its own: a
/// multiple of the group size of spat's convolutions on 4×4 images (16), so that no group of
/// small images is split.
const PART: usize = 16;

/// Gradient of `loss` w.r.t. the input at `x`, and the logits at `x` (detached). The model runs
/// through [`Classifier::logits_wrt_input`], so a model that supports it spends no work on weight
/// gradients; any it does compute stay in the temporary store dropped here.
///
/// In `Mode::Eval` every image's logits, and so its gradient of the summed loss, depend on that
/// image alone. A batch of 32 images or more is then differentiated in parts of 16, each with a
/// forward and backward pass of its own, side by side on the available threads: every
/// operation of a step runs in parallel, not only the convolutions, no thread waits for another
/// between operations, and a part's activations stay closer to the cache (on one thread too).
/// The parts do not depend on the number of threads, and a part's gradients are bit for bit
/// those of the whole batch (`tests/batch_parts.rs`).
pub(crate) fn input_gradient(
    model: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    loss: &AttackLoss,
    clean_probs: Option<&Tensor>,
    mode: Mode,
) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    if mode != Mode::Eval || n < 2 * PART {
        return whole_batch_gradient(model, x, y, loss, clean_probs, mode);
    }
    let starts: Vec<usize> = (0..n).step_by(PART).collect();
    let results: Vec<Result<(Tensor, Tensor)>> = starts
        .par_iter()
        .map(|&start| {
            let len = PART.min(n - start);
            let part = |t: &Tensor| t.narrow(0, start, len);
            let probs = clean_probs.map(part).transpose()?;
            whole_batch_gradient(model, &part(x)?, &part(y)?, loss, probs.as_ref(), mode)
        })
        .collect();
    let (grads, logits): (Vec<Tensor>, Vec<Tensor>) = results
        .into_iter()
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    Ok((Tensor::cat(&grads, 0)?, Tensor::cat(&logits, 0)?))
}

/// The gradient of the summed `loss` w.r.t. the input at `x`, and the logits at `x`
/// (detached), from one forward and backward pass over all of `x`. Attacks call it through
/// `input_gradient`, which splits evaluation-mode batches into parts.
pub fn whole_batch_gradient(
    model: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    loss: &AttackLoss,
    clean_probs: Option<&Tensor>,
    mode: Mode,
) -> Result<(Tensor, Tensor)> {
    let xv = Var::from_tensor(x)?;
    let logits = model.logits_wrt_input(xv.as_tensor(), mode)?;
    let total = losses::summed(loss, &logits, y, clean_probs)?;
    let grads = total.backward()?;
    let g = match grads.get(xv.as_tensor()) {
        Some(g) => g.detach(),
        // The loss does not depend on the input (e.g. a constant model): no direction to move.
        None => x.zeros_like()?,
    };
    Ok((g, logits.detach()))
}

/// Fast Gradient Sign Method: one signed step of size ε on the cross-entropy, from the clean image
/// (no random start), clipped to `[0, 1]`: `x + ε·sign(∇ₓ CE(f(x), y))`. In L2 it is FGM
/// (cleverhans' `fast_gradient_method` with `norm=2`): one step of length ε along the gradient,
/// `x + ε·g / √max(‖g‖², 10⁻¹²)`, clipped to `[0, 1]`.
///
/// Paper: I. J. Goodfellow, J. Shlens, C. Szegedy, "Explaining and Harnessing Adversarial Examples",
/// ICLR 2015, arXiv:1412.6572. Table 6.1's FGSM column.
///
/// # Arguments
///
/// - `eps`: radius and step, in pixel units (the spec `fgsm` takes the evaluation's `--eps`,
///   8/255 by default); `Fgsm::new(eps)`.
/// - `mode`: how the model runs (`Mode::Eval`).
///
/// # Input and output
///
/// `perturb(model, x, y, rng)`: `x` images `(N, C, H, W)` with values in `[0, 1]` (`f32`; the model
/// sees them as they are: wrap a model that expects normalised inputs in `spat_core::Normalized`),
/// `y` labels `(N,)` `u32` in `0..K`. Returns the adversarial images, detached, with the shape,
/// dtype and device of `x`, within the ε-ball (of the attack's norm) around `x` and within `[0, 1]`.
///
/// # Example
///
/// ```
/// use candle_core::{Device, Tensor};
/// use spat_attacks::Attack;
/// let dev = Device::Cpu;
/// let model = spat_models::build("tiny", 10, &dev, 0)?; // any spat_core::Classifier
/// let mut rng = spat_core::rng::host_rng(0, 0);
/// let x = spat_core::rng::uniform(&mut rng, (4, 3, 32, 32), 0.0, 1.0, &dev)?; // images in [0, 1]
/// let y = Tensor::new(&[0u32, 1, 2, 3], &dev)?; // labels
/// let fgsm = spat_attacks::Fgsm::new(8.0 / 255.0);
/// let x_adv = fgsm.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), &[4, 3, 32, 32]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fgsm {
    /// Radius of the ball and length of the one step, in `[0, 1]` pixel units; ≥ 0.
    pub eps: f64,
    /// How the model runs during the attack (`Eval` in [`Fgsm::new`]; see [`Pgd::mode`]).
    pub mode: Mode,
    /// The threat model: FGSM in [`Norm::Linf`] (the default of [`Fgsm::new`]), FGM in
    /// [`Norm::L2`].
    pub norm: Norm,
}

impl Fgsm {
    /// FGSM at radius `eps`, the model in `Mode::Eval`.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            mode: Mode::Eval,
            norm: Norm::Linf,
        }
    }

    /// FGM: FGSM's L2 form.
    pub fn fgm(eps: f64) -> Self {
        Self {
            norm: Norm::L2,
            ..Self::new(eps)
        }
    }
}

impl Attack for Fgsm {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        _rng: &mut HostRng,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        let x = x.detach();
        let (g, _) = input_gradient(model, &x, y, &AttackLoss::CrossEntropy, None, self.mode)?;
        let step = match self.norm {
            Norm::Linf => g.sign()?,
            Norm::L2 => {
                let norms = l2_norms(&g)?.maximum(1e-12)?.sqrt()?;
                g.broadcast_div(&per_row(&norms, &g)?)?
            }
        };
        Ok((x + step.affine(self.eps, 0.0)?)?.clamp(0f32, 1f32)?)
    }
}

/// `Σ_i t_i²` over each example's elements, `(N,)` on `t`'s device.
pub(crate) fn l2_norms(t: &Tensor) -> Result<Tensor> {
    Ok(t.sqr()?.flatten_from(1)?.sum(1)?)
}

/// A `(N,)` tensor reshaped to `(N, 1, …, 1)` to broadcast over `like`.
pub(crate) fn per_row(values: &Tensor, like: &Tensor) -> Result<Tensor> {
    let mut shape = vec![1usize; like.rank()];
    shape[0] = like.dim(0)?;
    Ok(values.reshape(shape)?)
}

/// PGD-L2's start as torchattacks' `PGDL2` draws it: `x + δ·(r / ‖δ‖)·ε` per example, with `δ`
/// (`gaussian`, shape of `x`) standard normal and `r` (`fractions`, `(N,)`) uniform in `[0, 1)`,
/// clipped to `[0, 1]` unless `clip` is off. (A radius uniform in `[0, ε]`, not a point uniform
/// in the ball, which would take `r^{1/d}`.)
pub fn l2_start(
    x: &Tensor,
    gaussian: &Tensor,
    fractions: &Tensor,
    eps: f64,
    clip: bool,
) -> Result<Tensor> {
    let norms = l2_norms(gaussian)?.sqrt()?;
    let factor = fractions.div(&norms)?.affine(eps, 0.0)?;
    let start = (x + gaussian.broadcast_mul(&per_row(&factor, gaussian)?)?)?;
    Ok(if clip {
        start.clamp(0f32, 1f32)?
    } else {
        start
    })
}

/// The set an attack's iterates stay in: the ε-ball around `x` in the attack's norm, intersected
/// with `[0, 1]`.
pub(crate) enum Ball {
    /// L∞: the bounds of [`ball`], clipped to by [`project`].
    Linf { lo: Tensor, hi: Tensor },
    /// L2 around `x` (ε > 0): the perturbation rescaled onto the ball, then the point clipped to
    /// `[0, 1]`, as torchattacks' `PGDL2` (clipping moves each coordinate towards `x`, so the point
    /// stays in the ball).
    L2 { x: Tensor, eps: f64 },
}

impl Ball {
    pub(crate) fn new(x: &Tensor, eps: f64, norm: Norm) -> Result<Self> {
        Ok(match norm {
            // The L2 ball of radius 0 is the L∞ one: the point itself.
            Norm::L2 if eps > 0.0 => Ball::L2 { x: x.clone(), eps },
            _ => {
                let (lo, hi) = ball(x, eps)?;
                Ball::Linf { lo, hi }
            }
        })
    }

    /// The point of the set closest to `v` (L∞), or torchattacks' projection (L2):
    /// `clamp(x + δ·min(ε / ‖δ‖, 1), 0, 1)` with `δ = v − x`.
    pub(crate) fn project(&self, v: &Tensor) -> Result<Tensor> {
        match self {
            Ball::Linf { lo, hi } => project(v, lo, hi),
            Ball::L2 { x, eps } => {
                let delta = (v - x)?;
                let norms = l2_norms(&delta)?.sqrt()?;
                // ‖δ‖ = 0 gives ε/0 = ∞, and the minimum 1.
                let factor = norms
                    .ones_like()?
                    .affine(*eps, 0.0)?
                    .div(&norms)?
                    .minimum(1.0)?;
                let delta = delta.broadcast_mul(&per_row(&factor, &delta)?)?;
                Ok((x + delta)?.clamp(0f32, 1f32)?)
            }
        }
    }

    /// One ascent step of length `size` from `x_adv` along the gradient `g`, projected: signed in
    /// L∞, along `g / (‖g‖ + 10⁻¹⁰)` in L2 (torchattacks' `PGDL2`).
    pub(crate) fn step(&self, x_adv: &Tensor, g: &Tensor, size: f64) -> Result<Tensor> {
        let direction = match self {
            Ball::Linf { .. } => g.sign()?,
            Ball::L2 { .. } => {
                let norms = l2_norms(g)?.sqrt()?.affine(1.0, 1e-10)?;
                g.broadcast_div(&per_row(&norms, g)?)?
            }
        };
        self.project(&(x_adv + direction.affine(size, 0.0)?)?)
    }
}

/// Projected gradient descent (ascent on the loss) under an L∞ or L2 ball: from a random start,
/// `steps` gradient steps of `step_size`, each projected onto the ε-ball around `x` and onto
/// `[0, 1]`. Signed steps in L∞; in L2 (PGD-L2, torchattacks' `PGDL2`) steps along the normalised
/// gradient, the perturbation rescaled onto the ball, then clipped. With the label-smoothed cross-entropy it is PGD-LS, SPAT's training adversary;
/// with TRADES' KL it is PGD-KL; with the CW margin, CW∞.
///
/// Paper: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning Models
/// Resistant to Adversarial Attacks", ICLR 2018, arXiv:1706.06083. Losses: PGD-LS from Lee et al.,
/// "Semantics-Preserving Adversarial Training", arXiv:2009.10978 (the thesis, eq. 4.1–4.3); the KL
/// of H. Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy"
/// (TRADES), ICML 2019, arXiv:1901.08573; the margin of N. Carlini, D. Wagner, "Towards Evaluating
/// the Robustness of Neural Networks", IEEE S&P 2017, arXiv:1608.04644.
///
/// # Arguments
///
/// - `eps`: radius in pixel units (8/255).
/// - `step_size`: ε/4 in [`Pgd::training`]; 0.003 at ε = 0.031 and 2/255 at 8/255 in
///   [`Pgd::evaluation`] ([`evaluation_step_size`]); ε/10 in [`Pgd::pgd20_step_eps_over_10`].
/// - `steps`: 10 in `training`, 20 in [`Pgd::pgd20`], 30 in [`Pgd::cw30`].
/// - `loss`: [`AttackLoss::CrossEntropy`], `LabelSmoothed { alpha }` (α in `[0, 1]`), `Kl`,
///   `CwMargin { kappa }` (κ = 50, [`CW_KAPPA`]).
/// - `random_start`: uniform in the ball, or TRADES' `x + 0.001·N(0, 1)` for the KL loss.
/// - `mode`: `Mode::Eval` to evaluate; see the field for training.
///
/// As a spec: `pgd20`, `pgd-ls:0.3`, `pgd-kl`, `cw30`, `pgd20@step=0.01`, `pgd20@eps/10`.
///
/// # Input and output
///
/// `perturb(model, x, y, rng)`: `x` images `(N, C, H, W)` with values in `[0, 1]` (`f32`; the model
/// sees them as they are: wrap a model that expects normalised inputs in `spat_core::Normalized`),
/// `y` labels `(N,)` `u32` in `0..K`. Returns the adversarial images, detached, with the shape,
/// dtype and device of `x`, within the ε-ball (of the attack's norm) around `x` and within `[0, 1]`.
///
/// # Example
///
/// ```
/// use candle_core::{Device, Tensor};
/// use spat_attacks::Attack;
/// let dev = Device::Cpu;
/// let model = spat_models::build("tiny", 10, &dev, 0)?; // any spat_core::Classifier
/// let mut rng = spat_core::rng::host_rng(0, 0);
/// let x = spat_core::rng::uniform(&mut rng, (4, 3, 32, 32), 0.0, 1.0, &dev)?; // images in [0, 1]
/// let y = Tensor::new(&[0u32, 1, 2, 3], &dev)?; // labels
/// use spat_attacks::{AttackLoss, Pgd};
/// use spat_core::Mode;
/// let pgd_ls = Pgd::training(8.0 / 255.0, AttackLoss::LabelSmoothed { alpha: 0.3 }, Mode::Eval);
/// let x_adv = pgd_ls.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// let gap = (x_adv - &x)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(gap <= 8.0 / 255.0 + 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pgd {
    /// Radius of the ball in the attack's norm, in `[0, 1]` pixel units (8/255 in the thesis); ≥ 0.
    pub eps: f64,
    /// Size of each signed gradient step, in pixel units (ε/4 for training, 2/255 or 0.003 for
    /// evaluation: [`evaluation_step_size`]).
    pub step_size: f64,
    /// Number of steps (10 for training, 20 for PGD-20).
    pub steps: usize,
    /// The loss ascended: cross-entropy, label-smoothed cross-entropy (PGD-LS), TRADES' KL or
    /// the CW margin.
    pub loss: AttackLoss,
    /// Where the first step starts.
    pub random_start: RandomStart,
    /// How the model runs while the adversary is crafted: `Eval` for evaluation. With batch
    /// statistics, `TrainFrozenBn` leaves the BN running statistics alone, while `Train` lets every
    /// one of the `steps` forward passes move them — what Madry-style training does when it
    /// attacks the model in `model.train()` (Rice et al.'s `train_cifar.py`), and spat-train's
    /// default for Madry.
    pub mode: Mode,
    /// L∞ unless set (`Pgd::in_norm`).
    #[serde(default)]
    pub norm: Norm,
}

/// Called with each PGD iterate and the model's logits at it (see `Pgd::iterate`).
pub(crate) type EachIterate<'a> = dyn FnMut(&Tensor, &Tensor) -> Result<()> + 'a;

impl Pgd {
    /// PGD-10 with step ε/4 (the thesis's training attack, §6.1) and a random start: TRADES'
    /// Gaussian 0.001 for the KL loss, uniform in the ball otherwise. spat-train's
    /// `training_adversary` is what its trainer uses: it also gives MART its reference's Gaussian
    /// start.
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
            norm: Norm::Linf,
        }
    }

    /// Evaluation PGD (`Mode::Eval`) with `steps` steps, [`evaluation_step_size`] and spat-spec's
    /// [`evaluation_start`](spat_spec::evaluation_start): uniform in the ball, or for the KL loss
    /// TRADES' `x + 0.001·N(0, 1)`.
    pub fn evaluation(eps: f64, steps: usize, loss: AttackLoss) -> Self {
        Self {
            eps,
            step_size: evaluation_step_size(eps),
            steps,
            loss,
            random_start: spat_spec::evaluation_start(loss),
            mode: Mode::Eval,
            norm: Norm::Linf,
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

    /// The same attack in `norm` (its radius and step then measured in that norm).
    pub fn in_norm(self, norm: Norm) -> Self {
        Self { norm, ..self }
    }

    pub(crate) fn start(&self, x: &Tensor, ball: &Ball, rng: &mut HostRng) -> Result<Tensor> {
        let uniform = matches!(
            self.random_start,
            RandomStart::Uniform | RandomStart::UniformUnclipped
        );
        if self.norm == Norm::L2 && uniform {
            let dev = x.device();
            let gaussian = spat_core::rng::normal(rng, x.shape(), 1.0, dev)?.to_dtype(x.dtype())?;
            let fractions =
                spat_core::rng::uniform(rng, x.dim(0)?, 0.0, 1.0, dev)?.to_dtype(x.dtype())?;
            let clip = self.random_start == RandomStart::Uniform;
            return l2_start(x, &gaussian, &fractions, self.eps, clip);
        }
        let noise = match self.random_start {
            RandomStart::None => return Ok(x.clone()),
            RandomStart::Uniform | RandomStart::UniformUnclipped => spat_core::rng::uniform(
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
        let start = (x + noise.to_dtype(x.dtype())?)?;
        match self.random_start {
            RandomStart::UniformUnclipped => Ok(start),
            _ => ball.project(&start),
        }
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
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        let x = x.detach();
        let ball = Ball::new(&x, self.eps, self.norm)?;
        let start = self.start(&x, &ball, rng)?;
        self.iterate(model, &x, y, start, &ball, None)
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
        let ball = Ball::new(&x, self.eps, self.norm)?;
        let start = ball.project(&start.detach())?;
        self.iterate(model, &x, y, start, &ball, None)
    }

    /// The PGD iterations from `start`. With `each_iterate`, it is called with every iterate
    /// after the first step, `x_1 … x_steps`, and the logits (in `self.mode`) at it: those of the
    /// next step's gradient pass, and one more forward pass for the last.
    pub(crate) fn iterate(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        start: Tensor,
        ball: &Ball,
        mut each_iterate: Option<&mut EachIterate<'_>>,
    ) -> Result<Tensor> {
        let clean_probs = match self.loss {
            AttackLoss::Kl => {
                Some(losses::softmax(&model.logits_wrt_input(x, self.mode)?)?.detach())
            }
            _ => None,
        };
        let mut x_adv = start;
        for k in 0..self.steps {
            let (g, logits) = input_gradient(
                model,
                &x_adv,
                y,
                &self.loss,
                clean_probs.as_ref(),
                self.mode,
            )?;
            if k > 0 {
                if let Some(f) = each_iterate.as_mut() {
                    f(&x_adv, &logits)?;
                }
            }
            x_adv = ball.step(&x_adv, &g, self.step_size)?;
        }
        let x_adv = x_adv.detach();
        if let (Some(f), true) = (each_iterate, self.steps > 0) {
            f(&x_adv, &model.logits_wrt_input(&x_adv, self.mode)?.detach())?;
        }
        Ok(x_adv)
    }
}
