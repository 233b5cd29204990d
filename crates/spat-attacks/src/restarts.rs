//! PGD with restarts, judged the way semisup-adv (RST, Carmon et al. 2019) evaluates robustness.
//!
//! `attack_pgd.py` of yaircarmon/semisup-adv (commit 3f05b28) runs PGD-CE from a start uniform in
//! the ε-ball that is not clipped to `[0, 1]` (lines 24-26), projects every step onto the ball and
//! `[0, 1]` (lines 39-44), and records after every step whether the model still classifies the
//! iterate correctly (lines 46-48); `attack_evaluation.py` repeats this `num_restarts` times
//! (lines 33-51) and counts an example as robust only if it is correct at every iterate of every
//! restart (`prod` over iterates and restarts, lines 58-60). The start point itself and the clean
//! image are not among the judged iterates.

use candle_core::Tensor;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::{argmax, check_eps, correct, labels, Attack, Ball, Pgd, RandomStart};
use crate::{AttackLoss, Error, Result};

/// PGD-CE run `restarts` times; an example survives only if no restart fools the model — at any
/// iterate (`every_iterate`, RST's rule) or at a restart's last iterate. Use
/// [`Attack::survivors`] (or [`PgdRestarts::judge`]) for that verdict; `perturb` returns the first
/// iterate that fooled the model, or the last one.
///
/// Paper: Y. Carmon, A. Raghunathan, L. Schmidt, P. Liang, J. C. Duchi, "Unlabeled Data Improves
/// Adversarial Robustness", NeurIPS 2019, arXiv:1905.13736; after `attack_pgd.py` and
/// `attack_evaluation.py` of yaircarmon/semisup-adv (Table 6.3).
///
/// # Arguments
///
/// - `pgd`: [`PgdRestarts::rst`] gives cross-entropy, `Mode::Eval` and an unclipped uniform start;
///   radius, step and steps as given (RST: ε = 0.031, step 0.01, 20 steps).
/// - `restarts`: 5 in RST; `every_iterate`: `true` in RST.
///
/// As a spec: `pgd20x5@step=0.01@eps=0.031@every-iterate`.
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
/// let rst = spat_attacks::PgdRestarts::rst(0.031, 20, 0.01, 5, true);
/// let robust = rst.survivors(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(robust.len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgdRestarts {
    /// The PGD of each restart (its radius, step, steps, start and mode).
    pub pgd: Pgd,
    /// Number of runs (5 in RST's evaluation), ≥ 1.
    pub restarts: usize,
    /// Judge every iterate (RST's rule), not only each restart's last.
    pub every_iterate: bool,
}

/// The outcome of [`PgdRestarts`] on a batch.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Per example: classified correctly at every judged iterate of every restart.
    pub robust: Vec<bool>,
    /// Per example, the first judged iterate at which it was misclassified, or the last iterate
    /// of the last restart if there is none. Detached.
    pub adversarial: Tensor,
}

impl PgdRestarts {
    /// semisup-adv's evaluation PGD: cross-entropy, `Mode::Eval`, start uniform in the ball and
    /// not clipped to `[0, 1]`.
    pub fn rst(
        eps: f64,
        steps: usize,
        step_size: f64,
        restarts: usize,
        every_iterate: bool,
    ) -> Self {
        Self {
            pgd: Pgd {
                eps,
                step_size,
                steps,
                loss: AttackLoss::CrossEntropy,
                random_start: RandomStart::UniformUnclipped,
                mode: Mode::Eval,
                norm: spat_spec::Norm::Linf,
            },
            restarts,
            every_iterate,
        }
    }

    /// Runs the attack from random starts drawn from `rng`, one restart after the other.
    pub fn judge(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Judged> {
        check_eps(self.pgd.eps)?;
        let x = x.detach();
        let ball = Ball::new(&x, self.pgd.eps, self.pgd.norm)?;
        let mut starts = Vec::with_capacity(self.restarts);
        for _ in 0..self.restarts {
            starts.push(self.pgd.start(&x, &ball, rng)?);
        }
        self.judge_from(model, &x, y, &starts)
    }

    /// Runs one restart from each of `starts` (taken as given: an unclipped start stays
    /// unclipped), for replaying a reference implementation's random starts.
    pub fn judge_from(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        starts: &[Tensor],
    ) -> Result<Judged> {
        check_eps(self.pgd.eps)?;
        if starts.is_empty() || self.pgd.steps == 0 {
            return Err(Error::InvalidArgument(
                "PGD with restarts needs at least one restart and one step".into(),
            ));
        }
        let x = x.detach();
        let ball = Ball::new(&x, self.pgd.eps, self.pgd.norm)?;
        let truth = labels(y)?;
        let n = truth.len();
        // A per-example mask broadcast over the rest of an image's dimensions.
        let mut mask_dims = vec![1usize; x.rank()];
        mask_dims[0] = n;
        let mask_of = |flags: Vec<u8>, like: &Tensor| -> Result<Tensor> {
            Ok(Tensor::from_vec(flags, n, like.device())?
                .reshape(mask_dims.as_slice())?
                .broadcast_as(like.shape())?)
        };
        let mut robust = vec![true; n];
        // The first misclassified iterate of each example fooled so far.
        let mut adversarial = x.clone();
        let mut judge = |x_k: &Tensor, correct_k: Vec<bool>| -> Result<()> {
            let newly: Vec<u8> = robust
                .iter()
                .zip(&correct_k)
                .map(|(&r, &c)| u8::from(r && !c))
                .collect();
            if newly.contains(&1) {
                adversarial = mask_of(newly, x_k)?.where_cond(x_k, &adversarial)?;
            }
            for (r, c) in robust.iter_mut().zip(correct_k) {
                *r &= c;
            }
            Ok(())
        };
        let mut last = x.clone();
        for start in starts {
            let start = start.detach();
            last = if self.every_iterate {
                let mut each = |x_k: &Tensor, logits: &Tensor| -> Result<()> {
                    let pred = argmax(logits)?;
                    judge(x_k, pred.iter().zip(&truth).map(|(p, t)| p == t).collect())
                };
                self.pgd
                    .iterate(model, &x, y, start, &ball, Some(&mut each))?
            } else {
                let x_n = self.pgd.iterate(model, &x, y, start, &ball, None)?;
                judge(&x_n, correct(model, &x_n, y)?)?;
                x_n
            };
        }
        let fooled: Vec<u8> = robust.iter().map(|&r| u8::from(!r)).collect();
        let adversarial = mask_of(fooled, &x)?
            .where_cond(&adversarial, &last)?
            .detach();
        Ok(Judged {
            robust,
            adversarial,
        })
    }
}

impl Attack for PgdRestarts {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        Ok(self.judge(model, x, y, rng)?.adversarial)
    }

    fn survivors(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Vec<bool>> {
        Ok(self.judge(model, x, y, rng)?.robust)
    }
}
