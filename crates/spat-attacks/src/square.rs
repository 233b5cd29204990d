//! Square Attack (Andriushchenko et al., 2020), L∞: a score-based black-box attack that needs no
//! gradient, which is why AutoAttack runs it last, against defences that mask gradients.
//!
//! It starts from vertical stripes of ±ε and then, for `queries` iterations, proposes to set one
//! randomly placed square window (the same window for the whole batch, side shrinking on a fixed
//! schedule) to ±2ε per channel, projects, and keeps the proposal for an example if it lowers that
//! example's margin `z_y − max_{k≠y} z_k` or misclassifies it. Every detail follows `square.py` of
//! fra31/auto-attack with the margin loss and no rescaled schedule (AutoAttack's settings),
//! including its quirks: a window never starts at the last possible row or column (the
//! reference's `random_int(0, h − s)` excludes `h − s`), and a sign drawn as `sign(2u − 1)` is
//! zero when `u` is exactly ½.

use candle_core::{DType, Tensor};
use rand::Rng;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::{ball, check_eps, project, Attack};
use crate::{rows, Error, Result};

/// The random draws of Square Attack, in the order the reference makes them, so that a test can
/// replay a reference run's draws.
pub trait SquareDraws {
    /// Signs (±1, or 0) of the initial stripes, `n × c × w` values in that (row-major) order.
    fn stripes(&mut self, n: usize, c: usize, w: usize) -> Vec<f64>;
    /// `random_int(0, high)` of the reference: `⌊high · u⌋` for `u` uniform in `[0, 1)`, so in
    /// `[0, high)` up to float rounding, and 0 when `high` is 0.
    fn int_below(&mut self, high: usize) -> usize;
    /// Per-channel signs of one proposal.
    fn channel_signs(&mut self, c: usize) -> Vec<f64>;
}

fn sign_of(u: f32) -> f64 {
    let t = 2.0 * u - 1.0;
    if t > 0.0 {
        1.0
    } else if t < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl SquareDraws for HostRng {
    fn stripes(&mut self, n: usize, c: usize, w: usize) -> Vec<f64> {
        (0..n * c * w)
            .map(|_| sign_of(self.random::<f32>()))
            .collect()
    }

    fn int_below(&mut self, high: usize) -> usize {
        // `(high · u).long()` in f32 as the reference: `u` just below 1 can round up to `high`.
        let u: f32 = self.random();
        (high as f32 * u) as usize
    }

    fn channel_signs(&mut self, c: usize) -> Vec<f64> {
        (0..c).map(|_| sign_of(self.random::<f32>())).collect()
    }
}

/// Square Attack under an L∞ ball with the margin loss: a score-based black-box attack (it reads
/// the model's logits, never its gradients) by random search over square windows of ±2ε (see
/// the module docs).
///
/// Paper: M. Andriushchenko, F. Croce, N. Flammarion, M. Hein, "Square Attack: a query-efficient
/// black-box adversarial attack via random search", ECCV 2020, arXiv:1912.00049; after
/// `square.py` of fra31/auto-attack.
///
/// # Arguments
///
/// - `eps`: radius in pixel units (8/255).
/// - `queries`: proposals per run (5,000); `p_init`: initial window fraction (0.8);
///   `restarts`: runs (1); `mode`: `Mode::Eval` ([`Square::new`]).
///
/// As a spec: `square`, `square1000`, `square5000x2`.
///
/// # Input and output
///
/// `perturb(model, x, y, rng)`: `x` images `(N, C, H, W)` with values in `[0, 1]` (`f32`; the model
/// sees them as they are: wrap a model that expects normalised inputs in `spat_core::Normalized`),
/// `y` labels `(N,)` `u32` in `0..K`. Returns the adversarial images, detached, with the shape,
/// dtype and device of `x`, within the ε-ball around `x` and within `[0, 1]`.
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
/// let mut square = spat_attacks::Square::new(8.0 / 255.0);
/// square.queries = 20; // 5,000 in AutoAttack
/// let x_adv = square.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Square {
    /// Radius of the L∞ ball, in `[0, 1]` pixel units (8/255 on CIFAR-10).
    pub eps: f64,
    /// Proposals per run (5,000 in AutoAttack).
    pub queries: usize,
    /// Initial fraction of the image a window covers (0.8).
    pub p_init: f64,
    /// Runs, each on the examples not yet fooled (1 in AutoAttack).
    pub restarts: usize,
    /// How the model runs during the attack (`Eval` in AutoAttack).
    pub mode: Mode,
}

impl Square {
    /// AutoAttack's settings: 5,000 queries, `p_init` = 0.8, one run.
    pub fn new(eps: f64) -> Self {
        Self {
            eps,
            queries: 5000,
            p_init: 0.8,
            restarts: 1,
            mode: Mode::Eval,
        }
    }

    /// The fraction of the image a window covers at iteration `it` (`p_selection` of the
    /// reference for a 10,000-query schedule, which AutoAttack uses unscaled).
    pub fn p_selection(&self, it: usize) -> f64 {
        let div = match it {
            0..=10 => 1.0,
            11..=50 => 2.0,
            51..=200 => 4.0,
            201..=500 => 8.0,
            501..=1000 => 16.0,
            1001..=2000 => 32.0,
            2001..=4000 => 64.0,
            4001..=6000 => 128.0,
            6001..=8000 => 256.0,
            _ => 512.0,
        };
        self.p_init / div
    }

    /// Side of the window at iteration `it` for `c × h × w` images.
    pub fn window(&self, it: usize, c: usize, h: usize, w: usize) -> usize {
        let features = (c * h * w) as f64;
        let side = (self.p_selection(it) * features / c as f64)
            .sqrt()
            .round_ties_even() as usize;
        side.max(1).min(h.min(w))
    }

    /// Adversarial examples with the random draws taken from `draws`.
    pub fn perturb_with(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        draws: &mut dyn SquareDraws,
    ) -> Result<Tensor> {
        check_eps(self.eps)?;
        if x.rank() != 4 {
            return Err(Error::InvalidArgument(format!(
                "Square Attack needs (N, C, H, W) images, got shape {:?}",
                x.dims()
            )));
        }
        let x = x.detach();
        let robust = rows::correct(model, &x, y, self.mode)?;
        let (adv, _) = rows::on_survivors(&x, y, robust, self.restarts, |xs, ys, _| {
            let adv = self.single_run(model, xs, ys, draws)?;
            let fooled = rows::misclassified(model, &adv, ys, self.mode)?;
            Ok((adv, fooled))
        })?;
        Ok(adv)
    }

    /// Margin `z_y − max_{k≠y} z_k` of each example.
    fn margins(&self, model: &dyn Classifier, x: &Tensor, labels: &[u32]) -> Result<Vec<f64>> {
        let z = model
            .logits_wrt_input(x, self.mode)?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
        Ok(z.iter()
            .zip(labels)
            .map(|(row, &l)| {
                let other = row
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != l as usize)
                    .fold(f64::NEG_INFINITY, |m, (_, v)| m.max(*v));
                row[l as usize] - other
            })
            .collect())
    }

    /// One run (`attack_single_run` of the reference) on every example of `(x, y)`.
    fn single_run(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        draws: &mut dyn SquareDraws,
    ) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let labels = rows::host_labels(y)?;
        let (lo, hi) = ball(x, self.eps)?;
        let stripes = Tensor::from_vec(draws.stripes(n, c, w), (n, c, 1, w), x.device())?
            .to_dtype(x.dtype())?;
        let mut x_best = x
            .broadcast_add(&stripes.affine(self.eps, 0.0)?)?
            .clamp(0f32, 1f32)?;
        let mut margin_min = self.margins(model, &x_best, &labels)?;
        // With the margin loss, the loss the reference tracks is the margin itself.
        let mut loss_min = margin_min.clone();
        if margin_min.iter().all(|&m| m < 0.0) {
            return Ok(x_best);
        }
        for it in 0..self.queries {
            let idx = rows::indices(&margin_min.iter().map(|&m| m > 0.0).collect::<Vec<_>>());
            if idx.is_empty() {
                break;
            }
            let x_best_curr = rows::gather(&x_best, &idx)?;
            let y_curr: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();

            let s = self.window(it, c, h, w);
            let vh = draws.int_below(h - s);
            let vw = draws.int_below(w - s);
            let signs = draws.channel_signs(c);
            let mut delta = vec![0f64; c * h * w];
            for (ch, sign) in signs.iter().enumerate() {
                for r in vh..vh + s {
                    for col in vw..vw + s {
                        delta[(ch * h + r) * w + col] = 2.0 * self.eps * sign;
                    }
                }
            }
            let delta = Tensor::from_vec(delta, (1, c, h, w), x.device())?.to_dtype(x.dtype())?;
            let x_new = project(
                &x_best_curr.broadcast_add(&delta)?,
                &rows::gather(&lo, &idx)?,
                &rows::gather(&hi, &idx)?,
            )?;
            let margin = self.margins(model, &x_new, &y_curr)?;

            let mut improved = vec![false; idx.len()];
            for (j, &i) in idx.iter().enumerate() {
                let better = margin[j] < loss_min[i];
                if better {
                    loss_min[i] = margin[j];
                }
                improved[j] = better || margin[j] <= 0.0;
                if improved[j] {
                    margin_min[i] = margin[j];
                }
            }
            let kept = rows::indices(&improved);
            if !kept.is_empty() {
                let positions: Vec<usize> = kept.iter().map(|&j| idx[j]).collect();
                x_best = rows::scatter(&x_best, &positions, &rows::gather(&x_new, &kept)?)?;
            }
            if margin_min.iter().all(|&m| m <= 0.0) {
                break;
            }
        }
        Ok(x_best)
    }
}

impl Attack for Square {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        self.perturb_with(model, x, y, rng)
    }
}
