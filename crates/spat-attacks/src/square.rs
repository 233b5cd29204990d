//! Square Attack (Andriushchenko et al., 2020), L∞ and L2: a score-based black-box attack that
//! needs no gradient, which is why AutoAttack runs it last, against defences that mask gradients.
//!
//! In L∞ it starts from vertical stripes of ±ε and then, for `queries` iterations, proposes to set
//! one randomly placed square window (the same window for the whole batch, side shrinking on a
//! fixed schedule) to ±2ε per channel, projects, and keeps the proposal for an example if it lowers
//! that example's margin `z_y − max_{k≠y} z_k` or misclassifies it.
//!
//! In L2 it starts from a grid of 5×5 tiles, each a "meta-pseudo-gaussian" pattern (two stacked
//! rectangles of nested squares weighted `1/(k+1)²`, of opposite signs, perhaps transposed) times
//! a random sign per example and channel, scaled to the sphere of radius ε. Each proposal moves the
//! perturbation's mass inside one window to another pattern of its own sign, rescaled so that the
//! energy of that window and a second, emptied one (plus any room left in the ball) is kept, and
//! puts the result back on the sphere; it is accepted by the same rule.
//!
//! Every detail follows `square.py` of fra31/auto-attack with the margin loss and no rescaled
//! schedule (AutoAttack's settings), including its quirks: a window never starts at the last
//! possible row or column (the reference's `random_int(0, h − s)` excludes `h − s`), a sign drawn
//! as `sign(2u − 1)` is zero when `u` is exactly ½, and L2's starting grid covers `⌊h/s⌋ × ⌊w/s⌋`
//! tiles of side `s = ⌊h/5⌋` from row and column `⌊(h − 5s)/2⌋` (a tile past the image's edge is
//! cut off; the reference fails on such images unless the tile lies wholly outside).

use candle_core::{DType, Tensor};
use rand::Rng;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::{ball, check_eps, project, Attack};
use crate::{rows, Error, Result};
use spat_spec::Norm;

/// The random draws of Square Attack, in the order the reference makes them, so that a test can
/// replay a reference run's draws.
pub trait SquareDraws {
    /// Signs (±1, or 0) of the initial stripes, `n × c × w` values in that (row-major) order.
    fn stripes(&mut self, n: usize, c: usize, w: usize) -> Vec<f64>;
    /// `random_int(0, high)` of the reference: `⌊high · u⌋` for `u` uniform in `[0, 1)`, so in
    /// `[0, high)` up to float rounding, and 0 when `high` is 0.
    fn int_below(&mut self, high: usize) -> usize;
    /// `count` signs (±1, or 0) of `random_choice`: per channel of an L∞ proposal, per example and
    /// channel of an L2 tile or proposal.
    fn signs(&mut self, count: usize) -> Vec<f64>;
    /// Whether an L2 pattern is transposed (`torch.rand([1]) > 0.5`).
    fn flip(&mut self) -> bool;
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

    fn signs(&mut self, count: usize) -> Vec<f64> {
        (0..count).map(|_| sign_of(self.random::<f32>())).collect()
    }

    fn flip(&mut self) -> bool {
        self.random::<f32>() > 0.5
    }
}

/// `eta_rectangles(x, y)` of the reference: an `x × y` block of nested rectangles around its
/// centre, the `k`-th adding `1/(k+1)²`, scaled to unit L2 norm (row-major).
fn eta_rectangles(x: usize, y: usize) -> Vec<f64> {
    let mut delta = vec![0f64; x * y];
    let (xc, yc) = (x / 2 + 1, y / 2 + 1);
    let (mut r0, mut c0) = (xc as isize - 1, yc as isize - 1);
    for k in 0..xc.max(yc) {
        let rows = r0.max(0) as usize..((r0 + 2 * k as isize + 1) as usize).min(x);
        let cols = c0.max(0) as usize..((c0 + 2 * k as isize + 1) as usize).min(y);
        let add = 1.0 / ((k + 1) as f64 * (k + 1) as f64);
        for i in rows {
            for j in cols.clone() {
                delta[i * y + j] += add;
            }
        }
        r0 -= 1;
        c0 -= 1;
    }
    let norm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
    delta.iter().map(|v| v / norm).collect()
}

/// `eta(s)` of the reference for L2: an `s × s` pattern, rectangles of `+` over rectangles of `−`,
/// unit L2 norm, transposed when `draws.flip()`.
fn eta(s: usize, draws: &mut dyn SquareDraws) -> Vec<f64> {
    let top = eta_rectangles(s / 2, s);
    let bottom = eta_rectangles(s - s / 2, s);
    let mut delta: Vec<f64> = top.into_iter().chain(bottom.iter().map(|v| -v)).collect();
    let norm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
    for v in &mut delta {
        *v /= norm;
    }
    if draws.flip() {
        (0..s * s).map(|k| delta[(k % s) * s + k / s]).collect()
    } else {
        delta
    }
}

/// Square Attack under an L∞ or L2 ball with the margin loss: a score-based black-box attack (it
/// reads the model's logits, never its gradients) by random search over square windows: of ±2ε in
/// L∞, of the reference's nested-rectangle patterns in L2 (see the module docs).
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
/// let mut square = spat_attacks::Square::new(8.0 / 255.0);
/// square.queries = 20; // 5,000 in AutoAttack
/// let x_adv = square.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Square {
    /// Radius of the ball in the attack's norm, in `[0, 1]` pixel units (8/255 on CIFAR-10 in L∞).
    pub eps: f64,
    /// Proposals per run (5,000 in AutoAttack).
    pub queries: usize,
    /// Initial fraction of the image a window covers (0.8).
    pub p_init: f64,
    /// Runs, each on the examples not yet fooled (1 in AutoAttack).
    pub restarts: usize,
    /// How the model runs during the attack (`Eval` in AutoAttack).
    pub mode: Mode,
    /// The threat model's norm (L∞ unless set).
    #[serde(default)]
    pub norm: Norm,
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
            norm: Norm::Linf,
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

    /// Side of the window at iteration `it` for `c × h × w` images: `round(√(p·h·w))`, at least
    /// 1 in L∞; in L2 at least 3 and odd.
    pub fn window(&self, it: usize, c: usize, h: usize, w: usize) -> usize {
        let features = (c * h * w) as f64;
        let side = (self.p_selection(it) * features / c as f64)
            .sqrt()
            .round_ties_even() as usize;
        let side = match self.norm {
            Norm::Linf => side.max(1),
            Norm::L2 => {
                let side = side.max(3);
                side + usize::from(side.is_multiple_of(2))
            }
        };
        side.min(h.min(w))
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
        if self.norm == Norm::L2 && x.dim(2)? < 5 {
            return Err(Error::InvalidArgument(format!(
                "Square Attack in L2 tiles the image in fifths: it needs images at least 5 pixels \
                 high, got {}",
                x.dim(2)?
            )));
        }
        let x = x.detach();
        let robust = rows::correct(model, &x, y, self.mode)?;
        let (adv, _) = rows::on_survivors(&x, y, robust, self.restarts, |xs, ys, _| {
            let adv = match self.norm {
                Norm::Linf => self.single_run(model, xs, ys, draws)?,
                Norm::L2 => self.single_run_l2(model, xs, ys, draws)?,
            };
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
            let signs = draws.signs(c);
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
            let improved = accept(&margin, &idx, &mut loss_min, &mut margin_min);
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

    /// One L2 run (`attack_single_run` of the reference, its `norm == 'L2'` branch) on every
    /// example of `(x, y)`. The perturbations are computed on the host in `f64` and each point is
    /// rounded to the input's dtype; only the model's passes run on the device.
    fn single_run_l2(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        draws: &mut dyn SquareDraws,
    ) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let d = c * h * w;
        let dtype = x.dtype();
        let round = |v: f64| {
            if dtype == DType::F64 {
                v
            } else {
                v as f32 as f64
            }
        };
        let to_device = |v: &[f64], rows: usize| -> Result<Tensor> {
            Ok(Tensor::from_slice(v, (rows, c, h, w), x.device())?.to_dtype(dtype)?)
        };
        // `clamp(x + δ/(‖δ‖ + 10⁻¹²)·ε, 0, 1)`, the point the reference puts on the sphere.
        let on_sphere = |x0: &[f64], delta: &[f64], out: &mut [f64]| {
            let norm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
            for i in 0..x0.len() {
                out[i] = round(x0[i] + delta[i] / (norm + 1e-12) * self.eps).clamp(0.0, 1.0);
            }
        };
        let labels = rows::host_labels(y)?;
        let x0 = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;

        let delta = l2_start_tiles((n, c, h, w), draws);
        let mut x_best = vec![0f64; n * d];
        for e in 0..n {
            let row = e * d..(e + 1) * d;
            on_sphere(&x0[row.clone()], &delta[row.clone()], &mut x_best[row]);
        }
        let mut margin_min = self.margins(model, &to_device(&x_best, n)?, &labels)?;
        let mut loss_min = margin_min.clone();
        if margin_min.iter().all(|&m| m < 0.0) {
            return to_device(&x_best, n);
        }
        for it in 0..self.queries {
            let idx = rows::indices(&margin_min.iter().map(|&m| m > 0.0).collect::<Vec<_>>());
            if idx.is_empty() {
                break;
            }
            let s = self.window(it, c, h, w);
            let (vh, vw) = (draws.int_below(h - s), draws.int_below(w - s));
            let (vh2, vw2) = (draws.int_below(h - s), draws.int_below(w - s));
            let pattern = eta(s, draws);
            let signs = draws.signs(idx.len() * c);
            let windows = L2Windows {
                size: s,
                width: w,
                new: (vh, vw),
                cleared: (vh2, vw2),
            };
            let mut x_new = vec![0f64; idx.len() * d];
            for (j, &e) in idx.iter().enumerate() {
                let row = e * d..(e + 1) * d;
                let mut dc: Vec<f64> = x_best[row.clone()]
                    .iter()
                    .zip(&x0[row.clone()])
                    .map(|(b, x)| b - x)
                    .collect();
                let norm_image = dc.iter().map(|v| v * v).sum::<f64>().sqrt();
                let room = (self.eps * self.eps - norm_image * norm_image).max(0.0) / c as f64;
                for (ch, plane) in dc.chunks_mut(h * w).enumerate() {
                    windows.propose(plane, &pattern, signs[j * c + ch], room);
                }
                on_sphere(&x0[row], &dc, &mut x_new[j * d..(j + 1) * d]);
            }
            let y_curr: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
            let margin = self.margins(model, &to_device(&x_new, idx.len())?, &y_curr)?;
            let improved = accept(&margin, &idx, &mut loss_min, &mut margin_min);
            for (j, &e) in idx.iter().enumerate().filter(|(j, _)| improved[*j]) {
                x_best[e * d..(e + 1) * d].copy_from_slice(&x_new[j * d..(j + 1) * d]);
            }
            if margin_min.iter().all(|&m| m <= 0.0) {
                break;
            }
        }
        to_device(&x_best, n)
    }
}

/// The L2 run's starting perturbation (`n × c × h × w`, row-major): the image tiled by `h/5`-sized
/// squares, centred, each holding an [`eta`] pattern with a random sign per example and channel.
fn l2_start_tiles(
    (n, c, h, w): (usize, usize, usize, usize),
    draws: &mut dyn SquareDraws,
) -> Vec<f64> {
    let mut delta = vec![0f64; n * c * h * w];
    let s = h / 5;
    let first = (h - 5 * s) / 2;
    for tile_row in 0..h / s {
        for tile_col in 0..w / s {
            let (vh, vw) = (first + tile_row * s, first + tile_col * s);
            let pattern = eta(s, draws);
            let signs = draws.signs(n * c);
            for (k, sign) in signs.iter().enumerate() {
                let base = k * h * w;
                for i in 0..s.min(h.saturating_sub(vh)) {
                    for j in 0..s.min(w.saturating_sub(vw)) {
                        delta[base + (vh + i) * w + vw + j] += pattern[i * s + j] * sign;
                    }
                }
            }
        }
    }
    delta
}

/// The two `size × size` windows of one L2 query in planes `width` wide: the energy of both is
/// moved into `new`, and `cleared` is zeroed (the reference's `vh, vw` and `vh2, vw2`).
struct L2Windows {
    size: usize,
    width: usize,
    new: (usize, usize),
    cleared: (usize, usize),
}

impl L2Windows {
    /// The plane positions of the window whose top-left corner is `(top, left)`, row-major.
    fn positions(&self, (top, left): (usize, usize)) -> impl Iterator<Item = usize> {
        let (s, w) = (self.size, self.width);
        (0..s * s).map(move |k| (top + k / s) * w + left + k % s)
    }

    /// Whether plane position `p` lies in either window.
    fn in_either(&self, p: usize) -> bool {
        let (r, col) = (p / self.width, p % self.width);
        let inside = |(top, left): (usize, usize)| {
            (top..top + self.size).contains(&r) && (left..left + self.size).contains(&col)
        };
        inside(self.new) || inside(self.cleared)
    }

    /// One channel's proposal on `plane` (the perturbation so far): `pattern · sign` plus the
    /// window's normalised content, scaled to the energy of both windows plus this channel's share
    /// `room` of what the ball has left; then `cleared` is zeroed and the proposal written to `new`.
    fn propose(&self, plane: &mut [f64], pattern: &[f64], sign: f64, room: f64) {
        let energy = |ps: &mut dyn Iterator<Item = usize>| {
            ps.map(|p| plane[p] * plane[p]).sum::<f64>().sqrt()
        };
        let norm_window = energy(&mut self.positions(self.new));
        let norm_windows = energy(&mut (0..plane.len()).filter(|&p| self.in_either(p)));
        let mut proposal: Vec<f64> = self
            .positions(self.new)
            .enumerate()
            .map(|(k, p)| pattern[k] * sign + plane[p] / (1e-12 + norm_window))
            .collect();
        let norm = proposal.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = (room + norm_windows * norm_windows).sqrt();
        for v in &mut proposal {
            *v = *v / (1e-12 + norm) * scale;
        }
        for p in self.positions(self.cleared) {
            plane[p] = 0.0;
        }
        for (p, v) in self.positions(self.new).zip(proposal) {
            plane[p] = v;
        }
    }
}

/// The reference's acceptance rule: a proposal for example `idx[j]` whose margin is below the
/// lowest loss so far lowers that loss; it is kept (its margin recorded) if it did, or if it
/// misclassifies. Returns which proposals are kept.
fn accept(
    margin: &[f64],
    idx: &[usize],
    loss_min: &mut [f64],
    margin_min: &mut [f64],
) -> Vec<bool> {
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
    improved
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
