//! Auto-PGD (Croce & Hein, 2020): PGD with momentum and a step size that halves at checkpoints
//! where the loss stopped improving, restarting from the best point found; on cross-entropy
//! (APGD-CE), on the DLR loss (APGD-DLR) and on the targeted DLR loss (APGD-T).
//!
//! Every detail follows `autoattack/autopgd_base.py` of fra31/auto-attack, for L∞ and L2: start
//! `x + ε·t/‖t‖∞` with `t` uniform in `[−1, 1]` (L2: `x + ε·t/(‖t‖₂ + 10⁻¹²)` with `t` standard
//! normal); first step `2ε`; the momentum step `x + 0.75·(z − x) + 0.25·(x − x_prev)` with `z` the
//! projected signed step (L2: the step along `∇/(‖∇‖₂ + 10⁻¹²)`), no momentum on the first
//! iteration, each point projected (L2: `x + δ/(‖δ‖₂ + 10⁻¹²)·min(ε, ‖δ‖₂)`, then clipped to
//! `[0, 1]`); checkpoints after 22 % of the iterations, then after intervals shrinking by
//! 3 % down to 6 %; at a checkpoint an example's step halves, and it moves back to its best point
//! with that point's gradient, if its loss rose in at most `ρ = 0.75` of the steps since the last
//! checkpoint, or if its step was not halved last time and its best loss did not improve since.
//! The oscillation count of the first checkpoint compares the first loss with the last row of the
//! (still zero) loss record, as the reference's `loss_steps[-1]` does.

use candle_core::Tensor;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::{ball, check_eps, l2_norms, per_row, project, Attack};
use crate::{losses, rows, Error, Result};
use spat_spec::Norm;

/// The loss APGD maximises: cross-entropy or the difference of logits ratio ([`losses::dlr`]).
pub use spat_spec::ApgdLoss;

/// Iterations at which APGD checks its progress, a function of the iteration budget alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSchedule {
    /// Iterations before the first check: `max(⌊0.22·N⌋, 1)`.
    pub first: usize,
    /// Shortest interval: `max(⌊0.06·N⌋, 1)`.
    pub min: usize,
    /// Shrinkage of the interval per check: `max(⌊0.03·N⌋, 1)`.
    pub decrement: usize,
}

impl CheckpointSchedule {
    /// The schedule for a budget of `steps` iterations.
    pub fn new(steps: usize) -> Self {
        let frac = |p: f64| ((p * steps as f64) as usize).max(1);
        Self {
            first: frac(0.22),
            min: frac(0.06),
            decrement: frac(0.03),
        }
    }

    /// The 0-based iterations after which a check happens, for `steps` iterations
    /// (`[21, 40, 56, 69, 79, 86, 92, 98]` for 100).
    pub fn checkpoints(&self, steps: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let (mut k, mut since) = (self.first, 0usize);
        for i in 0..steps {
            since += 1;
            if since == k {
                out.push(i);
                k = k.saturating_sub(self.decrement).max(self.min);
                since = 0;
            }
        }
        out
    }
}

/// What one APGD run from a given start produced, for every example it ran on.
#[derive(Debug, Clone)]
pub struct ApgdRun {
    /// The point of highest loss per example.
    pub x_best: Tensor,
    /// Per example, the last misclassified point found, or the start if none was.
    pub x_best_adv: Tensor,
    /// Whether every point the run evaluated was classified correctly.
    pub robust: Vec<bool>,
    /// Highest loss per example.
    pub loss_best: Vec<f64>,
    /// Loss per iteration and example (`steps × N`), at the point reached by that iteration.
    pub losses: Vec<Vec<f64>>,
    /// Step size per iteration and example (`steps × N`), the one that iteration's step used.
    pub step_sizes: Vec<Vec<f64>>,
    /// Iterations after which a checkpoint test ran.
    pub checkpoints: Vec<usize>,
}

/// The loss of one run: untargeted on the label, or targeted DLR towards `targets`.
#[derive(Clone, Copy)]
enum Objective<'a> {
    Untargeted(ApgdLoss),
    TargetedDlr(&'a Tensor),
}

/// Settings shared by APGD and APGD-T.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApgdConfig {
    /// Radius of the ball in the attack's norm, in `[0, 1]` pixel units (8/255 on CIFAR-10 in L∞).
    pub eps: f64,
    /// Iterations per run (100 in AutoAttack).
    pub steps: usize,
    /// Runs with fresh random starts, each only on the examples not yet fooled (per target class
    /// for APGD-T); 1 in standard AutoAttack.
    pub restarts: usize,
    /// Gradients averaged per iteration, for randomised defences (20 in AutoAttack's `rand`).
    pub eot_iter: usize,
    /// Fraction of loss increases since the last checkpoint below which the step halves (0.75).
    pub rho: f64,
    /// How the model runs during the attack (`Eval` in AutoAttack).
    pub mode: Mode,
    /// The threat model's norm (L∞ unless set).
    #[serde(default)]
    pub norm: Norm,
}

impl ApgdConfig {
    /// AutoAttack's standard settings: 100 iterations, one run, no EOT, ρ = 0.75, `Mode::Eval`.
    pub fn autoattack(eps: f64) -> Self {
        Self {
            eps,
            steps: 100,
            restarts: 1,
            eot_iter: 1,
            rho: 0.75,
            mode: Mode::Eval,
            norm: Norm::Linf,
        }
    }
}

/// `t / (‖t‖₂ + 10⁻¹²)` per example: the reference's `normalize` for L2.
fn unit_l2(t: &Tensor) -> Result<Tensor> {
    let norms = l2_norms(t)?.sqrt()?.affine(1.0, 1e-12)?;
    Ok(t.broadcast_div(&per_row(&norms, t)?)?)
}

/// The reference's L2 projection of `v` onto the ε-ball around `x` and `[0, 1]`:
/// `clamp(x + δ/(‖δ‖₂ + 10⁻¹²)·min(ε, ‖δ‖₂), 0, 1)` with `δ = v − x`.
fn project_l2(x: &Tensor, v: &Tensor, eps: f64) -> Result<Tensor> {
    let delta = (v - x)?;
    let radius = l2_norms(&delta)?.sqrt()?.minimum(eps)?;
    let moved = unit_l2(&delta)?.broadcast_mul(&per_row(&radius, &delta)?)?;
    Ok((x + moved)?.clamp(0f32, 1f32)?)
}

impl ApgdConfig {
    fn check(&self) -> Result<()> {
        check_eps(self.eps)?;
        if self.steps == 0 || self.eot_iter == 0 {
            return Err(Error::InvalidArgument(format!(
                "APGD needs at least one iteration and one EOT sample, got {} and {}",
                self.steps, self.eot_iter
            )));
        }
        if !(0.0..=1.0).contains(&self.rho) {
            return Err(Error::InvalidArgument(format!(
                "APGD's rho must lie in [0, 1], got {}",
                self.rho
            )));
        }
        Ok(())
    }

    /// Logits, per-example loss and input gradient at `x`, the gradient averaged over
    /// `eot_iter` passes (for randomised models; logits and loss are the last pass's).
    fn evaluate(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        objective: Objective<'_>,
    ) -> Result<rows::Evaluation> {
        let loss = |logits: &Tensor| match objective {
            Objective::Untargeted(ApgdLoss::CrossEntropy) => losses::cross_entropy(logits, y),
            Objective::Untargeted(ApgdLoss::Dlr) => losses::dlr(logits, y),
            Objective::TargetedDlr(t) => losses::dlr_targeted(logits, y, t),
        };
        let mut e = rows::objective_and_grad(model, x, self.mode, &loss)?;
        if self.eot_iter > 1 {
            let mut sum = e.grad.clone();
            for _ in 1..self.eot_iter {
                e = rows::objective_and_grad(model, x, self.mode, &loss)?;
                sum = (sum + &e.grad)?;
            }
            e.grad = (sum / self.eot_iter as f64)?;
        }
        Ok(e)
    }

    /// One APGD run from `start` on every example of `(x, y)`: `attack_single_run` of the
    /// reference.
    fn run(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        objective: Objective<'_>,
        start: &Tensor,
    ) -> Result<ApgdRun> {
        self.check()?;
        let n = x.dim(0)?;
        let x = x.detach();
        let labels = rows::host_labels(y)?;
        let (lo, hi) = ball(&x, self.eps)?;
        let schedule = CheckpointSchedule::new(self.steps);

        let mut x_adv = start.detach().to_dtype(x.dtype())?.clamp(0f32, 1f32)?;
        let mut x_best = x_adv.clone();
        let mut x_best_adv = x_adv.clone();
        let e = self.evaluate(model, &x_adv, y, objective)?;
        let mut grad = e.grad;
        let mut grad_best = grad.clone();
        let mut robust: Vec<bool> = rows::argmax(&e.logits)?
            .iter()
            .zip(&labels)
            .map(|(p, l)| p == l)
            .collect();
        let mut loss_best = rows::host_f64(&e.objective)?;

        let mut step = vec![2.0 * self.eps; n];
        let mut x_adv_old = x_adv.clone();
        let mut losses = vec![vec![0f64; n]; self.steps];
        let mut step_sizes = Vec::with_capacity(self.steps);
        let mut checkpoints = Vec::new();
        let (mut k, mut since_check) = (schedule.first, 0usize);
        let mut loss_best_last_check = loss_best.clone();
        let mut reduced_last_check = vec![true; n];

        for i in 0..self.steps {
            let momentum_delta = (&x_adv - &x_adv_old)?;
            x_adv_old = x_adv.clone();
            let a = if i > 0 { 0.75 } else { 1.0 };
            let step_t = rows::per_example(&step, &x)?;
            step_sizes.push(step.clone());
            let direction = match self.norm {
                Norm::Linf => grad.sign()?,
                Norm::L2 => unit_l2(&grad)?,
            };
            let to_set = |v: &Tensor| match self.norm {
                Norm::Linf => project(v, &lo, &hi),
                Norm::L2 => project_l2(&x, v, self.eps),
            };
            let z = to_set(&(&x_adv + direction.broadcast_mul(&step_t)?)?)?;
            let blended = ((&x_adv + (z - &x_adv)?.affine(a, 0.0)?)?
                + momentum_delta.affine(1.0 - a, 0.0)?)?;
            x_adv = to_set(&blended)?;

            let e = self.evaluate(model, &x_adv, y, objective)?;
            grad = e.grad;
            let pred = rows::argmax(&e.logits)?;
            let wrong: Vec<bool> = pred.iter().zip(&labels).map(|(p, l)| p != l).collect();
            for (r, w) in robust.iter_mut().zip(&wrong) {
                *r &= !w;
            }
            x_best_adv = rows::select(&wrong, &x_adv, &x_best_adv)?;

            let loss = rows::host_f64(&e.objective)?;
            let improved: Vec<bool> = loss.iter().zip(&loss_best).map(|(l, b)| l > b).collect();
            x_best = rows::select(&improved, &x_adv, &x_best)?;
            grad_best = rows::select(&improved, &grad, &grad_best)?;
            for ((b, l), imp) in loss_best.iter_mut().zip(&loss).zip(&improved) {
                if *imp {
                    *b = *l;
                }
            }
            losses[i] = loss;

            since_check += 1;
            if since_check == k {
                checkpoints.push(i);
                let reduce: Vec<bool> = (0..n)
                    .map(|e| {
                        let rises = (0..k)
                            .filter(|&c| {
                                let prev = (i as isize - c as isize - 1)
                                    .rem_euclid(self.steps as isize)
                                    as usize;
                                losses[i - c][e] > losses[prev][e]
                            })
                            .count();
                        let oscillating = rises as f64 <= k as f64 * self.rho;
                        let stalled =
                            !reduced_last_check[e] && loss_best_last_check[e] >= loss_best[e];
                        oscillating || stalled
                    })
                    .collect();
                loss_best_last_check = loss_best.clone();
                if reduce.iter().any(|&r| r) {
                    for (s, _) in step.iter_mut().zip(&reduce).filter(|(_, &r)| r) {
                        *s /= 2.0;
                    }
                    x_adv = rows::select(&reduce, &x_best, &x_adv)?;
                    grad = rows::select(&reduce, &grad_best, &grad)?;
                }
                reduced_last_check = reduce;
                k = k.saturating_sub(schedule.decrement).max(schedule.min);
                since_check = 0;
            }
        }
        Ok(ApgdRun {
            x_best,
            x_best_adv,
            robust,
            loss_best,
            losses,
            step_sizes,
            checkpoints,
        })
    }
}

/// APGD's random start: `x + ε·t/‖t‖∞` per example with `t` uniform in `[−1, 1)` (L∞), or
/// `x + ε·t/(‖t‖₂ + 10⁻¹²)` with `t` standard normal (L2).
pub fn random_start(x: &Tensor, eps: f64, norm: Norm, rng: &mut HostRng) -> Result<Tensor> {
    let dev = x.device();
    let scaled = match norm {
        Norm::Linf => {
            let t = spat_core::rng::uniform(rng, x.shape(), -1.0, 1.0, dev)?.to_dtype(x.dtype())?;
            let norms: Vec<f64> = rows::linf_norms(&t)?.iter().map(|m| m + 1e-12).collect();
            t.broadcast_div(&rows::per_example(&norms, &t)?)?
        }
        Norm::L2 => {
            unit_l2(&spat_core::rng::normal(rng, x.shape(), 1.0, dev)?.to_dtype(x.dtype())?)?
        }
    };
    Ok((x + scaled.affine(eps, 0.0)?)?)
}

/// The restart loop of the reference's `perturb`: every restart runs on the examples still
/// classified correctly, and an example fooled by a run takes that run's adversarial point.
fn restarts(
    model: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    mode: Mode,
    rounds: usize,
    mut run: impl FnMut(&Tensor, &Tensor, usize) -> Result<ApgdRun>,
) -> Result<Tensor> {
    let x = x.detach();
    let robust = rows::correct(model, &x, y, mode)?;
    let (adv, _) = rows::on_survivors(&x, y, robust, rounds, |xs, ys, round| {
        let r = run(xs, ys, round)?;
        Ok((r.x_best_adv, r.robust.iter().map(|&b| !b).collect()))
    })?;
    Ok(adv)
}

/// Untargeted Auto-PGD on cross-entropy (APGD-CE) or on the difference of logits ratio (APGD-DLR):
/// PGD with momentum whose step size halves at checkpoints where the loss stopped improving (see
/// the module docs for every rule), restarted on the examples not yet fooled.
///
/// Paper: F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
/// parameter-free attacks", ICML 2020, arXiv:2003.01690; after `autopgd_base.py` of
/// fra31/auto-attack.
///
/// # Arguments
///
/// - `config.eps`: radius in pixel units (8/255).
/// - `config.steps`: iterations per run (100); `config.restarts`: runs (1);
///   `config.eot_iter`: gradients averaged per iteration (1; 20 in AutoAttack's `rand`);
///   `config.rho`: 0.75; `config.mode`: `Mode::Eval` ([`ApgdConfig::autoattack`]).
/// - `loss`: [`ApgdLoss::CrossEntropy`] or [`ApgdLoss::Dlr`] (DLR needs at least 3 classes).
///
/// As a spec: `apgd-ce`, `apgd-dlr`, `apgd100x5-ce`, `apgd-ce@eot=20`.
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
/// use spat_attacks::{Apgd, ApgdLoss};
/// let mut apgd = Apgd::new(8.0 / 255.0, ApgdLoss::CrossEntropy);
/// apgd.config.steps = 10; // 100 in AutoAttack
/// let x_adv = apgd.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Apgd {
    /// Radius, iterations, restarts, EOT and ρ.
    pub config: ApgdConfig,
    /// Cross-entropy (APGD-CE) or DLR (APGD-DLR).
    pub loss: ApgdLoss,
}

impl Apgd {
    /// With AutoAttack's standard settings ([`ApgdConfig::autoattack`]).
    pub fn new(eps: f64, loss: ApgdLoss) -> Self {
        Self {
            config: ApgdConfig::autoattack(eps),
            loss,
        }
    }

    /// One run from `start` (clamped to `[0, 1]`, not projected: the caller's start is taken as
    /// is, like the reference's `x_init`) on every example, with the run's full record.
    pub fn run_from(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        start: &Tensor,
    ) -> Result<ApgdRun> {
        self.config
            .run(model, x, y, Objective::Untargeted(self.loss), start)
    }
}

impl Attack for Apgd {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        let c = &self.config;
        c.check()?;
        if self.loss == ApgdLoss::Dlr {
            check_classes(model, x, c.mode, 3, "the DLR loss")?;
        }
        restarts(model, x, y, c.mode, c.restarts, |xs, ys, _| {
            let start = random_start(xs, c.eps, c.norm, rng)?;
            self.run_from(model, xs, ys, &start)
        })
    }
}

/// APGD on the targeted DLR loss (APGD-T): for each of the `target_classes` most likely wrong
/// classes in turn (the 2nd, 3rd, … largest clean logit), runs on the examples not yet fooled.
///
/// Paper: F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
/// parameter-free attacks", ICML 2020, arXiv:2003.01690; after `autopgd_base.py`
/// (`APGDAttack_targeted`) of fra31/auto-attack.
///
/// # Arguments
///
/// - `config`: as [`Apgd`]'s ([`ApgdConfig::autoattack`]: ε, 100 iterations, 1 restart per target).
/// - `target_classes`: 9 (at most the number of classes minus one; the model needs at least 4
///   classes for the targeted DLR loss).
///
/// As a spec: `apgd-t`, `apgd-t@targets=3`, `apgd100x1-t`.
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
/// let mut apgd_t = spat_attacks::ApgdTargeted::new(8.0 / 255.0);
/// apgd_t.config.steps = 10; // 100 in AutoAttack
/// apgd_t.target_classes = 3; // 9 in AutoAttack
/// let x_adv = apgd_t.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApgdTargeted {
    /// Radius, iterations, restarts (per target class), EOT and ρ.
    pub config: ApgdConfig,
    /// Number of target classes (9 in AutoAttack; at most the number of classes minus one).
    pub target_classes: usize,
}

impl ApgdTargeted {
    /// AutoAttack's standard settings: [`ApgdConfig::autoattack`], 9 target classes.
    pub fn new(eps: f64) -> Self {
        Self {
            config: ApgdConfig::autoattack(eps),
            target_classes: 9,
        }
    }

    /// One run from `start` towards `targets` on every example.
    pub fn run_from(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        targets: &Tensor,
        start: &Tensor,
    ) -> Result<ApgdRun> {
        self.config
            .run(model, x, y, Objective::TargetedDlr(targets), start)
    }
}

/// The class of rank `rank` (1 = the largest) in each row of `model`'s logits at `x`.
pub(crate) fn ranked_class(
    model: &dyn Classifier,
    x: &Tensor,
    mode: Mode,
    rank: usize,
) -> Result<Tensor> {
    let order = model
        .logits_wrt_input(x, mode)?
        .contiguous()?
        .arg_sort_last_dim(false)?;
    Ok(order.narrow(1, rank - 1, 1)?.squeeze(1)?.contiguous()?)
}

/// Fails unless `model` has at least `needed` classes (checked on one example of `x`).
pub(crate) fn check_classes(
    model: &dyn Classifier,
    x: &Tensor,
    mode: Mode,
    needed: usize,
    what: &str,
) -> Result<usize> {
    if x.dim(0)? == 0 {
        return Ok(needed);
    }
    let k = model.logits_wrt_input(&x.narrow(0, 0, 1)?, mode)?.dim(1)?;
    if k < needed {
        return Err(Error::InvalidArgument(format!(
            "{what} needs at least {needed} classes, the model has {k}"
        )));
    }
    Ok(k)
}

impl Attack for ApgdTargeted {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        let c = &self.config;
        c.check()?;
        check_classes(model, x, c.mode, 4, "the targeted DLR loss")?;
        check_classes(
            model,
            x,
            c.mode,
            self.target_classes + 1,
            &format!("APGD-T with {} target classes", self.target_classes),
        )?;
        let rounds = self.target_classes * c.restarts;
        restarts(model, x, y, c.mode, rounds, |xs, ys, round| {
            let rank = 2 + round / c.restarts.max(1);
            let targets = ranked_class(model, xs, c.mode, rank)?;
            let start = random_start(xs, c.eps, c.norm, rng)?;
            self.run_from(model, xs, ys, &targets, &start)
        })
    }
}
