//! FAB, the Fast Adaptive Boundary attack (Croce & Hein, 2020, ICML), in its L∞ and L2 versions,
//! and its targeted variant FAB-T as AutoAttack runs it.
//!
//! FAB is a minimum-norm attack: from the current point it linearises the decision boundary
//! towards one class, projects both the current point and the original image onto that
//! hyperplane (within the `[0, 1]` box), moves to a convex combination of the two projections
//! (biased towards the original image) with overshoot η, and, once misclassified, steps back
//! towards the original image by β. An example counts as fooled only if the smallest
//! perturbation found is within ε.
//!
//! Every detail follows `fab_base.py`, `fab_pt.py` and `projection_linf` / `projection_l2` of
//! fra31/auto-attack. The norm decides the distance to each linearised boundary (`|f| / ‖∇f‖₁` in
//! L∞, `|f| / ‖∇f‖₂` in L2, the dual norms), the projection onto the boundary, the lengths `‖d‖`
//! that weigh the two projections in the step, the distance of an adversarial point, and a
//! restart's random start (`t/‖t‖∞`, `t` uniform, or `t/‖t‖₂`, `t` normal, at half the radius).
//! The per-iteration arithmetic (hyperplane projection, convex combination, bookkeeping) runs on
//! the host in `f64`, with the iterate rounded to the input's dtype after every update as the
//! reference's tensors are; only the model's passes run on the device.

use candle_core::{DType, Tensor};
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::apgd::{check_classes, ranked_class};
use crate::attack::{check_eps, Attack};
use crate::{rows, Error, Result};
use spat_spec::Norm;

/// FAB, the Fast Adaptive Boundary attack, under an L∞ or L2 threat model: a minimum-norm attack that
/// steps towards the linearised decision boundary (see the module docs); an example counts as
/// fooled only if the smallest perturbation found is within ε. FAB-T ([`Fab::targeted`]) runs it
/// against each of the most likely wrong classes in turn.
///
/// Paper: F. Croce, M. Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
/// Attack", ICML 2020, arXiv:1907.02044; after `fab_base.py`, `fab_pt.py` and
/// `projection_linf` / `projection_l2` of fra31/auto-attack.
///
/// # Arguments
///
/// - `eps`: radius in pixel units (8/255).
/// - `steps`: 100; `restarts`: 1 for FAB-T, 5 for untargeted FAB ([`Fab::untargeted`]).
/// - `targeted`, `target_classes`: FAB-T with 9 targets.
/// - `alpha_max` 0.1, `eta` 1.05, `beta` 0.9; `mode`: `Mode::Eval`.
///
/// As a spec: `fab-t`, `fab`, `fab-t@targets=3`.
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
/// let mut fab_t = spat_attacks::Fab::targeted(8.0 / 255.0);
/// fab_t.steps = 10; // 100 in AutoAttack
/// fab_t.target_classes = 2; // 9 in AutoAttack
/// let x_adv = fab_t.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fab {
    /// Radius within which a minimal perturbation counts as a success, in `[0, 1]` pixel units.
    pub eps: f64,
    /// Iterations per run (100).
    pub steps: usize,
    /// Runs per target class (targeted) or in total (untargeted); every run after the first starts
    /// at a random point of the ε/2-ball.
    pub restarts: usize,
    /// Targeted (FAB-T): one run per each of the `target_classes` most likely wrong classes.
    pub targeted: bool,
    /// Number of target classes of FAB-T (9 in AutoAttack; at most the classes minus one).
    pub target_classes: usize,
    /// Largest weight of the original image's projection in the convex combination (0.1).
    pub alpha_max: f64,
    /// Overshoot of the projections (1.05).
    pub eta: f64,
    /// Step back towards the original image once misclassified (0.9).
    pub beta: f64,
    /// How the model runs during the attack (`Eval` in AutoAttack).
    pub mode: Mode,
    /// The threat model's norm (L∞ unless set).
    #[serde(default)]
    pub norm: Norm,
}

/// `‖v‖` in `norm` of a host vector.
fn length(norm: Norm, v: impl Iterator<Item = f64>) -> f64 {
    match norm {
        Norm::Linf => v.fold(0f64, |m, x| m.max(x.abs())),
        Norm::L2 => v.map(|x| x * x).sum::<f64>().sqrt(),
    }
}

impl Fab {
    /// FAB-T as AutoAttack's standard version runs it: 9 target classes, one run each (so no random
    /// start), 100 iterations, α_max = 0.1, η = 1.05, β = 0.9.
    pub fn targeted(eps: f64) -> Self {
        Self {
            eps,
            steps: 100,
            restarts: 1,
            targeted: true,
            target_classes: 9,
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
            mode: Mode::Eval,
            norm: Norm::Linf,
        }
    }

    /// Untargeted FAB with AutoAttack's settings for it (5 restarts, as its `plus` version).
    pub fn untargeted(eps: f64) -> Self {
        Self {
            restarts: 5,
            targeted: false,
            ..Self::targeted(eps)
        }
    }

    fn check(&self) -> Result<()> {
        check_eps(self.eps)?;
        if self.steps == 0 {
            return Err(Error::InvalidArgument(
                "FAB needs at least one iteration".into(),
            ));
        }
        let ok = |v: f64| v.is_finite();
        if !(ok(self.alpha_max) && ok(self.eta) && ok(self.beta)) {
            return Err(Error::InvalidArgument(format!(
                "FAB's alpha_max, eta and beta must be finite, got {}, {}, {}",
                self.alpha_max, self.eta, self.beta
            )));
        }
        Ok(())
    }

    /// One FAB run (`attack_single_run` of the reference) on the correctly classified examples of
    /// `(x, y)`: returns `x` with each example that a misclassified point was found for replaced
    /// by the closest such point. `random` (shape of `x`: uniform in `[−1, 1]` for L∞, standard
    /// normal for L2) gives a random start on the sphere of radius ε/2; `targets` makes it FAB-T.
    pub fn single_run(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        targets: Option<&Tensor>,
        random: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.check()?;
        let x = x.detach();
        let dtype = x.dtype();
        let labels = rows::host_labels(y)?;
        let pred = rows::argmax(&model.logits_wrt_input(&x, self.mode)?)?;
        let correct: Vec<usize> = (0..labels.len())
            .filter(|&i| pred[i] == labels[i])
            .collect();
        if correct.is_empty() {
            return Ok(x);
        }
        let im2 = rows::gather(&x, &correct)?;
        let la2: Vec<u32> = correct.iter().map(|&i| labels[i]).collect();
        let la2_t = Tensor::new(la2.as_slice(), x.device())?;
        let targets = match targets {
            Some(t) => Some(rows::gather(t, &correct)?),
            None => None,
        };
        let bs = correct.len();
        let d = im2.elem_count() / bs;
        // The iterate lives in `f64` for `f64` inputs and in `f32` otherwise (attacks run on
        // `f32` pixels, mixed precision included).
        let round = |v: f64| -> f64 {
            if dtype == DType::F64 {
                v
            } else {
                v as f32 as f64
            }
        };
        let host = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
        };
        let to_device = |v: &[f64]| -> Result<Tensor> {
            Ok(Tensor::from_slice(v, im2.shape(), im2.device())?.to_dtype(dtype)?)
        };
        let x0 = host(&im2)?;
        let mut x1 = x0.clone();
        let mut adv = x0.clone();
        let mut res2 = vec![1e10f64; bs];

        if let Some(t) = random {
            let t = host(&rows::gather(t, &correct)?)?;
            for n in 0..bs {
                let row = &t[n * d..(n + 1) * d];
                let m = length(self.norm, row.iter().copied());
                let r = res2[n].min(self.eps);
                for i in 0..d {
                    let v = x0[n * d + i] + r * row[i] / m * 0.5;
                    x1[n * d + i] = round(v).clamp(0.0, 1.0);
                }
            }
        }

        for _ in 0..self.steps {
            let x1_t = to_device(&x1)?;
            // Per example: the linearised boundary w·z = b towards the chosen class, where
            // `df` is the logit difference (other − label) and `w` its input gradient.
            let (df, w) = match &targets {
                Some(t) => {
                    let diff = |z: &Tensor| -> candle_core::Result<Tensor> {
                        let pick = |c: &Tensor| z.gather(&c.unsqueeze(1)?, 1)?.squeeze(1);
                        (pick(&la2_t)? - pick(t)?)?.neg()
                    };
                    let e = rows::objective_and_grad(model, &x1_t, self.mode, &diff)?;
                    (rows::host_f64(&e.objective)?, host(&e.grad)?)
                }
                None => self.closest_boundary(model, &x1_t, &la2)?,
            };
            let b: Vec<f64> = (0..bs)
                .map(|n| {
                    let dot: f64 = (0..d).map(|i| w[n * d + i] * x1[n * d + i]).sum();
                    -df[n] + dot
                })
                .collect();
            let mut points = x1.clone();
            points.extend_from_slice(&x0);
            let mut ws = w.clone();
            ws.extend_from_slice(&w);
            let mut bb = b.clone();
            bb.extend_from_slice(&b);
            let d3 = match self.norm {
                Norm::Linf => projection_linf(&points, &ws, &bb, d),
                Norm::L2 => projection_l2(&points, &ws, &bb, d),
            };
            let a0: Vec<f64> = (0..2 * bs)
                .map(|r| round(length(self.norm, d3[r * d..(r + 1) * d].iter().copied())).max(1e-8))
                .collect();
            for n in 0..bs {
                let (a1, a2) = (a0[n], a0[bs + n]);
                let alpha = (a1 / (a1 + a2)).max(0.0).min(self.alpha_max);
                for i in 0..d {
                    let d1 = d3[n * d + i];
                    let d2 = d3[(bs + n) * d + i];
                    let v = (x1[n * d + i] + self.eta * d1) * (1.0 - alpha)
                        + (x0[n * d + i] + d2 * self.eta) * alpha;
                    x1[n * d + i] = round(v).clamp(0.0, 1.0);
                }
            }
            let pred = rows::argmax(&model.logits_wrt_input(&to_device(&x1)?, self.mode)?)?;
            for n in 0..bs {
                if pred[n] == la2[n] {
                    continue;
                }
                let row = n * d..(n + 1) * d;
                let t = round(length(
                    self.norm,
                    x1[row.clone()]
                        .iter()
                        .zip(&x0[row.clone()])
                        .map(|(a, b)| round(a - b)),
                ));
                if t < res2[n] {
                    adv[row.clone()].copy_from_slice(&x1[row.clone()]);
                    res2[n] = t;
                }
                for i in row {
                    x1[i] = round(x0[i] + round(x1[i] - x0[i]) * self.beta);
                }
            }
        }
        let found: Vec<usize> = (0..bs).filter(|&n| res2[n] < 1e10).collect();
        let positions: Vec<usize> = found.iter().map(|&n| correct[n]).collect();
        let adv_t = rows::gather(&to_device(&adv)?, &found)?;
        rows::scatter(&x, &positions, &adv_t)
    }

    /// Untargeted FAB's choice of boundary: of all classes `k ≠ y`, the one whose linearised
    /// boundary is closest, `|z_k − z_y| / ‖∇(z_k − z_y)‖₁` in L∞ (`‖·‖₂` in L2); returns its logit
    /// difference and gradient per example.
    fn closest_boundary(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        labels: &[u32],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let xv = candle_core::Var::from_tensor(x)?;
        let logits = model.logits_wrt_input(xv.as_tensor(), self.mode)?;
        let (bs, k) = logits.dims2()?;
        let d = x.elem_count() / bs;
        let z = logits.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let mut grads = Vec::with_capacity(k);
        for c in 0..k {
            let g = logits.narrow(1, c, 1)?.sum_all()?.backward()?;
            let g = match g.get(xv.as_tensor()) {
                Some(g) => g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?,
                None => vec![0f64; bs * d],
            };
            grads.push(g);
        }
        let mut df = vec![0f64; bs];
        let mut w = vec![0f64; bs * d];
        for n in 0..bs {
            let l = labels[n] as usize;
            let mut best = (f64::INFINITY, l);
            for c in 0..k {
                let f = if c == l { 1e10 } else { z[n][c] - z[n][l] };
                let diff = (0..d).map(|i| grads[c][n * d + i] - grads[l][n * d + i]);
                let norm: f64 = match self.norm {
                    Norm::Linf => diff.map(f64::abs).sum(),
                    Norm::L2 => diff.map(|v| v * v).sum::<f64>().sqrt(),
                };
                let dist = f.abs() / (1e-12 + norm);
                if dist < best.0 {
                    best = (dist, c);
                }
            }
            let c = best.1;
            df[n] = if c == l { 1e10 } else { z[n][c] - z[n][l] };
            for i in 0..d {
                w[n * d + i] = grads[c][n * d + i] - grads[l][n * d + i];
            }
        }
        Ok((df, w))
    }
}

/// `eps` as the reference compares it with a distance held in `dtype`.
fn eps_in(eps: f64, dtype: DType) -> f64 {
    if dtype == DType::F64 {
        eps
    } else {
        eps as f32 as f64
    }
}

/// The L∞-minimal step `δ` (per row of `points`, `d` columns) that puts `points + δ` on the
/// hyperplane `w·z = b` inside the box `[0, 1]^d`, or as close as the box allows:
/// `projection_linf` of the reference, row by row, in `f64`.
pub fn projection_linf(points: &[f64], w: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let rows = b.len();
    let mut out = vec![0f64; rows * d];
    let nitermax = (d as f64).log2().ceil() as usize;
    for r in 0..rows {
        let t = &points[r * d..(r + 1) * d];
        let dot: f64 = (0..d).map(|i| w[r * d + i] * t[i]).sum();
        let sign = if dot - b[r] >= 0.0 { 1.0 } else { -1.0 };
        let w: Vec<f64> = w[r * d..(r + 1) * d].iter().map(|v| v * sign).collect();
        let b = b[r] * sign;
        let a: Vec<f64> = w.iter().map(|&v| if v < 0.0 { 1.0 } else { 0.0 }).collect();
        let mut dd: Vec<f64> = (0..d)
            .map(|i| if w[i] != 0.0 { a[i] - t[i] } else { 0.0 })
            .collect();
        let p: Vec<f64> = (0..d).map(|i| a[i] - t[i] * (2.0 * a[i] - 1.0)).collect();
        let mut indp: Vec<usize> = (0..d).collect();
        indp.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
        let wt: f64 = (0..d).map(|i| w[i] * t[i]).sum();
        let b = b - wt;
        let b0: f64 = (0..d).map(|i| w[i] * dd[i]).sum();
        // Cumulative sums in decreasing order of p.
        let mut s = vec![0f64; d];
        let mut sb = vec![0f64; d];
        let (mut acc_s, mut acc_sb) = (0f64, 0f64);
        for (k, &i) in indp.iter().rev().enumerate() {
            acc_s += w[i].abs();
            acc_sb += -w[i] * dd[i];
            s[k] = acc_s;
            sb[k] = acc_sb + b0;
        }
        let p_desc = |k: usize| p[indp[d - 1 - k]];
        let b2 = sb[d - 1] - s[d - 1] * p[indp[0]];
        let c_l = b - b2 > 0.0;
        let c2 = (b - b0 > 0.0) && !c_l;
        if c_l {
            let lmbd = ((b - sb[d - 1]) / (-s[d - 1])).max(0.0);
            for i in 0..d {
                dd[i] = (2.0 * a[i] - 1.0) * lmbd;
            }
        } else if c2 {
            let (mut lb, mut ub) = (0f64, (d - 1) as f64);
            for _ in 0..nitermax {
                let mid = ((lb + ub) / 2.0).floor();
                let k = mid as usize;
                let b2 = sb[k] - s[k] * p_desc(k);
                if b - b2 > 0.0 {
                    lb = mid;
                } else {
                    ub = mid;
                }
            }
            let k = lb as usize;
            let lmbd = ((b - sb[k]) / (-s[k])).max(0.0);
            for i in 0..d {
                dd[i] = lmbd.min(dd[i]) * a[i] + (-lmbd).max(dd[i]) * (1.0 - a[i]);
            }
        }
        for i in 0..d {
            out[r * d + i] = if w[i] != 0.0 { dd[i] } else { 0.0 };
        }
    }
    out
}

/// The L2-minimal step `δ` (per row of `points`, `d` columns) that puts `points + δ` on the
/// hyperplane `w·z = b` inside the box `[0, 1]^d`, or as close as the box allows:
/// `projection_l2` of the reference, row by row, in `f64`. Moving along `−λw` (after orienting `w`
/// so that the point lies on its positive side), coordinate `i` reaches a face of the box at
/// `λ = r_i`; the sorted `r_i` split `λ` into intervals on which the distance to the hyperplane is
/// linear, and a bisection over their cumulative sums finds the interval where it reaches 0.
pub fn projection_l2(points: &[f64], w: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    const BIG: f64 = 1e12;
    let rows = b.len();
    let mut out = vec![0f64; rows * d];
    let nitermax = (d as f64).log2().ceil() as usize;
    for r in 0..rows {
        let t = &points[r * d..(r + 1) * d];
        let w = &w[r * d..(r + 1) * d];
        let c: f64 = (0..d).map(|i| w[i] * t[i]).sum::<f64>() - b[r];
        let sign = if c >= 0.0 { 1.0 } else { -1.0 };
        let w: Vec<f64> = w.iter().map(|v| v * sign).collect();
        let c = c * sign;
        let live = |i: usize| w[i].abs() > 1e-8;
        let rr: Vec<f64> = (0..d)
            .map(|i| {
                if w[i].abs() < 1e-8 {
                    return BIG;
                }
                let v = (t[i] / w[i]).max((t[i] - 1.0) / w[i]).clamp(-BIG, BIG);
                if v == -BIG {
                    BIG
                } else {
                    v
                }
            })
            .collect();
        let mut indr: Vec<usize> = (0..d).collect();
        indr.sort_by(|&i, &j| rr[i].total_cmp(&rr[j]));
        let zero_big = |v: f64| if v == BIG { 0.0 } else { v };
        let rs: Vec<f64> = indr.iter().map(|&i| zero_big(rr[i])).collect();
        let rs2: Vec<f64> = (0..d)
            .map(|k| {
                if k + 1 < d {
                    zero_big(rr[indr[k + 1]])
                } else {
                    0.0
                }
            })
            .collect();
        let w3s: Vec<f64> = indr.iter().map(|&i| w[i] * w[i]).collect();
        let w5: f64 = w3s.iter().sum();
        let mut ws = vec![0f64; d];
        let mut acc = 0f64;
        for k in 0..d {
            acc += w3s[k];
            ws[k] = w5 - acc;
        }
        let mut dd: Vec<f64> = (0..d)
            .map(|i| if live(i) { -(rr[i] * w[i]) } else { 0.0 })
            .collect();
        // s[k]: distance term at the k-th breakpoint; s[0] before the first.
        let mut s = vec![0f64; d + 1];
        s[0] = -w5 * rs[0];
        let mut acc = 0f64;
        for k in 0..d {
            acc += (-rs2[k] + rs[k]) * ws[k];
            s[k + 1] = acc - w5 * rs[0];
        }
        let c4 = s[0] + c < 0.0;
        let c3 = (0..d).map(|i| dd[i] * w[i]).sum::<f64>() + c > 0.0;
        if c4 {
            let alpha = c / w5;
            for i in 0..d {
                dd[i] = -alpha * w[i];
            }
        } else if !c3 {
            let (mut lb, mut ub) = (0f64, (d - 1) as f64);
            for _ in 0..nitermax {
                let mid = ((lb + ub) / 2.0).floor();
                if s[mid as usize] + c > 0.0 {
                    lb = mid;
                } else {
                    ub = mid;
                }
            }
            let k = lb as usize;
            let alpha = if ws[k] == 0.0 {
                0.0
            } else {
                (s[k] + c) / ws[k] + rs[k]
            };
            for i in 0..d {
                // The reference keeps `d` where `alpha > r` holds, NaN comparing false.
                if alpha.partial_cmp(&rr[i]) != Some(std::cmp::Ordering::Greater) {
                    dd[i] = -(alpha * w[i]);
                }
            }
        }
        for i in 0..d {
            out[r * d + i] = if live(i) { dd[i] } else { 0.0 };
        }
    }
    out
}

impl Attack for Fab {
    /// Starts the first run of each target at the clean image and later runs at random points
    /// drawn from `rng`.
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        self.check()?;
        let x = x.detach();
        let k = check_classes(model, &x, self.mode, 2, "FAB")?;
        if self.targeted && self.target_classes + 1 > k {
            return Err(Error::InvalidArgument(format!(
                "FAB-T with {} target classes needs at least {} classes, the model has {k}",
                self.target_classes,
                self.target_classes + 1
            )));
        }
        let robust = rows::correct(model, &x, y, self.mode)?;
        let ranks: Vec<Option<usize>> = if self.targeted {
            (2..self.target_classes + 2).map(Some).collect()
        } else {
            vec![None]
        };
        let eps = eps_in(self.eps, x.dtype());
        let rounds = ranks.len() * self.restarts;
        let (adv, _) = rows::on_survivors(&x, y, robust, rounds, |xs, ys, round| {
            let (rank, restart) = (ranks[round / self.restarts], round % self.restarts);
            let targets = match rank {
                Some(r) => Some(ranked_class(model, xs, self.mode, r)?),
                None => None,
            };
            let start = match (restart > 0, self.norm) {
                (false, _) => None,
                (true, Norm::Linf) => Some(spat_core::rng::uniform(
                    rng,
                    xs.shape(),
                    -1.0,
                    1.0,
                    xs.device(),
                )?),
                (true, Norm::L2) => {
                    Some(spat_core::rng::normal(rng, xs.shape(), 1.0, xs.device())?)
                }
            };
            let adv = self.single_run(model, xs, ys, targets.as_ref(), start.as_ref())?;
            // Fooled: misclassified within ε (FAB's points can lie beyond it).
            let wrong = rows::misclassified(model, &adv, ys, self.mode)?;
            let dist = match self.norm {
                Norm::Linf => rows::linf_norms(&(xs - &adv)?)?,
                Norm::L2 => rows::l2_norms(&(xs - &adv)?)?,
            };
            let fooled = wrong
                .iter()
                .zip(&dist)
                .map(|(&w, &d)| w && d <= eps)
                .collect();
            Ok((adv, fooled))
        })?;
        Ok(adv)
    }
}
