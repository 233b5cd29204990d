//! Fused batch normalisation (+ an optional ReLU or SiLU) for `f32` tensors on the CPU.
//!
//! Written with candle's elementwise operations, one batch-norm layer costs about ten passes over
//! its activations forward and twice that backward; on a two-core machine this dominated the
//! small networks used in tests and smoke runs. Here the forward is one statistics pass (two for
//! batch statistics) plus one output pass, and the backward is one reduction pass plus one
//! gradient pass, with the textbook batch-norm gradient. Other devices use the composite path in
//! spat-models' `layers.rs`; a unit test there checks that both agree in value and gradient.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Fewest elements worth a parallel task of their own (smaller pieces stay on one thread).
const MIN_TASK_ELEMENTS: usize = 1 << 15;

/// Consecutive items of `elements` each one task should take at the least.
fn min_len(elements: usize) -> usize {
    MIN_TASK_ELEMENTS.div_ceil(elements.max(1))
}

/// Per-channel statistics a batch norm normalises with.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStats {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Biased variance (what normalisation divides by).
    pub var: Vec<f32>,
}

fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    crate::cpu::data::with_slice(t, "fused batch norm", f)
}

fn slice_of<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    crate::cpu::data::slice(s, l, "fused batch norm", what)
}

/// `Σ f(v)` over `values` with eight independent partial sums (one running sum is a serial chain
/// the compiler may not reorder, so it would not vectorise).
#[inline]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for i in 0..8 {
            lanes[i] += f(chunk[i]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The activation [`crate::ops::batch_norm`] applies to its output in the same pass each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedActivation {
    /// None: the batch norm's output as it is.
    Identity,
    /// `max(0, y)`.
    Relu,
    /// `y·sigmoid(y)` (spat's [`crate::ops::silu`], the same bits).
    Silu,
}

/// `f` as it is: lets the closures of [`with_activation_grad`] carry `#[inline(always)]`, as the
/// crate marks its other element-wise closures (see `cpu::simd::vectorized`); the attribute is
/// only stable on a closure passed as an argument.
#[inline(always)]
fn elementwise(f: impl Fn(f32, f32) -> f32 + Copy) -> impl Fn(f32, f32) -> f32 + Copy {
    f
}

/// Evaluates `$body` with `$d` bound to the activation's backward, `(x, g) ↦` the upstream
/// gradient `g` through the activation of the batch norm's output `y = x·a + s`: one copy of
/// `$body` per activation, so that its loops see a plain closure and vectorise (a `match` inside
/// the loop kept the SiLU's scalar: the backward ran 5× slower). `y` is recomputed from `x` with
/// the forward's own operations (so the same bits, NaN included: the ReLU's `max` makes a NaN
/// zero), which spares the backward a third stream over the activations. The ReLU passes `g`
/// where `y` was positive, zero where it was clipped (as PyTorch's threshold backward).
macro_rules! with_activation_grad {
    ($act:expr, ($a:expr, $s:expr), |$d:ident| $body:expr) => {{
        let (a, s): (f32, f32) = ($a, $s);
        match $act {
            FusedActivation::Identity => {
                let $d = elementwise(
                    #[inline(always)]
                    |_: f32, g: f32| g,
                );
                $body
            }
            FusedActivation::Relu => {
                let $d = elementwise(
                    #[inline(always)]
                    move |x: f32, g: f32| if (x * a + s).max(0.0) <= 0.0 { 0.0 } else { g },
                );
                $body
            }
            FusedActivation::Silu => {
                let $d = elementwise(
                    #[inline(always)]
                    move |x: f32, g: f32| crate::silu::gradient(x * a + s, g),
                );
                $body
            }
        }
    }};
}

/// `(Σ dy, Σ dy·(x − m))` over one plane.
#[inline(always)]
fn plane_sums(x: &[f32], dy: &[f32], m: f32) -> (f32, f32) {
    let (mut sd, mut sdx) = ([0f32; 8], [0f32; 8]);
    let mut tail = (0f32, 0f32);
    let n = x.len();
    let body = n - n % 8;
    for (xc, dc) in x[..body].chunks_exact(8).zip(dy[..body].chunks_exact(8)) {
        for i in 0..8 {
            sd[i] += dc[i];
            sdx[i] += dc[i] * (xc[i] - m);
        }
    }
    for i in body..n {
        tail.0 += dy[i];
        tail.1 += dy[i] * (x[i] - m);
    }
    (
        sd.iter().sum::<f32>() + tail.0,
        sdx.iter().sum::<f32>() + tail.1,
    )
}

/// Mean and biased variance over `(N, H, W)` of an `(N, C, H, W)` tensor, accumulated in `f64`.
pub(crate) fn batch_stats(x: &Tensor) -> Result<ChannelStats> {
    let (n, c, h, w) = x.dims4()?;
    let plane = h * w;
    let count = (n * plane) as f64;
    with_slice(x, |data| {
        let per_channel: Vec<(f32, f32)> = (0..c)
            .into_par_iter()
            .with_min_len(min_len(n * plane))
            .map(|ch| {
                crate::cpu::simd::vectorized(
                    #[inline(always)]
                    || {
                        // Per-plane partial sums in f32 lanes (vectorisable), planes summed in f64.
                        let planes = (0..n).map(|i| &data[(i * c + ch) * plane..][..plane]);
                        let sum: f64 = planes.clone().map(|p| lane_sum(p, |v| v) as f64).sum();
                        let mean = sum / count;
                        let m = mean as f32;
                        let sq: f64 = planes
                            .map(|p| lane_sum(p, |v| (v - m) * (v - m)) as f64)
                            .sum();
                        (m, (sq / count) as f32)
                    },
                )
            })
            .collect();
        Ok(ChannelStats {
            mean: per_channel.iter().map(|p| p.0).collect(),
            var: per_channel.iter().map(|p| p.1).collect(),
        })
    })
}

/// `y = act(weight · (x − mean) / √(var + eps) + bias)` with the given statistics.
///
/// Applied as a custom op on `(x, weight, bias)`. `batch_stats` says whether `mean`/`var` are the
/// statistics of `x` itself, in which case the gradient also flows through them.
#[derive(Debug)]
pub(crate) struct FusedBatchNorm {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub batch_stats: bool,
    pub act: FusedActivation,
}

impl FusedBatchNorm {
    pub fn new(stats: &ChannelStats, eps: f64, batch_stats: bool, act: FusedActivation) -> Self {
        Self {
            mean: stats.mean.clone(),
            inv_std: stats
                .var
                .iter()
                .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
                .collect(),
            batch_stats,
            act,
        }
    }
}

impl FusedBatchNorm {
    /// Per channel, the `a` and `s` of `y = x·a + s` (the backward's activation gradient
    /// recomputes `y` with these same operations).
    fn scale_shift(&self, weight: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = (0..weight.len())
            .map(|k| weight[k] * self.inv_std[k])
            .collect();
        let shift = (0..weight.len())
            .map(|k| bias[k] - self.mean[k] * scale[k])
            .collect();
        (scale, shift)
    }
}

/// One backward of a [`FusedBatchNorm`]: its input `x`, the upstream gradient `g`, and the
/// per-channel `weight` and `y = x·scale + shift` coefficients, over `(N, C, H·W)` = `dims`.
struct Backward<'a> {
    op: &'a FusedBatchNorm,
    x: &'a [f32],
    g: &'a [f32],
    weight: &'a [f32],
    scale: &'a [f32],
    shift: &'a [f32],
    dims: (usize, usize, usize),
}

impl Backward<'_> {
    /// `(k, a, b)` of channel `ch`'s `dx = k·dy + a·x + b`, which is
    /// `k·(dy − mean(dy) − x̂·mean(dy·x̂))` with batch statistics (`sums` = `(Σ dy, Σ dy·x̂)`),
    /// `k·dy` without; `dy` is the upstream gradient through the activation.
    fn dx_coefficients(&self, ch: usize, sums: (f32, f32)) -> (f32, f32, f32) {
        let (n, _, plane) = self.dims;
        let (m, is) = (self.op.mean[ch], self.op.inv_std[ch]);
        let k = self.weight[ch] * is;
        if !self.op.batch_stats {
            return (k, 0.0, 0.0);
        }
        let count = (n * plane) as f32;
        let (mean_dy, mean_dy_xhat) = (sums.0 / count, sums.1 / count);
        let a = -k * is * mean_dy_xhat;
        (k, a, -k * mean_dy - a * m)
    }

    /// `dx` and, per channel, `(Σ dy, Σ dy·x̂)`: one task per channel, so that its passes after
    /// the first find the channel's planes in cache.
    fn with_sums(&self) -> (Vec<f32>, Vec<(f32, f32)>) {
        let (n, c, plane) = self.dims;
        let mut dx = crate::cpu::data::output_buffer(self.x.len());
        let mut planes_of: Vec<Vec<(usize, &mut [f32])>> =
            (0..c).map(|_| Vec::with_capacity(n)).collect();
        for (p, out) in dx.chunks_mut(plane).enumerate() {
            planes_of[p % c].push((p, out));
        }
        let sums = planes_of
            .into_par_iter()
            .enumerate()
            .with_min_len(min_len(n * plane))
            .map(|(ch, mut planes)| {
                crate::cpu::simd::vectorized(
                    #[inline(always)]
                    || self.channel_with_sums(ch, &mut planes),
                )
            })
            .collect();
        (dx, sums)
    }

    /// [`Backward::with_sums`] for channel `ch`, whose `(plane index, dx plane)`s are `planes`.
    #[inline(always)]
    fn channel_with_sums(&self, ch: usize, planes: &mut [(usize, &mut [f32])]) -> (f32, f32) {
        let plane = self.dims.2;
        let (x, g) = (self.x, self.g);
        let (m, is) = (self.op.mean[ch], self.op.inv_std[ch]);
        // Three passes over the channel's planes, which stay in cache after the first: dy (the
        // upstream gradient through the activation) into dx, the sums, dx from dy. Each is a
        // plain loop that vectorises; the activation inside the sums' lanes did not.
        with_activation_grad!(self.op.act, (self.scale[ch], self.shift[ch]), |d| {
            for (p, out) in planes.iter_mut() {
                let r = *p * plane..(*p + 1) * plane;
                for ((o, &xv), &gv) in out.iter_mut().zip(&x[r.clone()]).zip(&g[r]) {
                    *o = d(xv, gv);
                }
            }
        });
        let (mut sd, mut sdx) = (0f64, 0f64);
        for (p, dy) in planes.iter() {
            let (pd, pdx) = plane_sums(&x[*p * plane..(*p + 1) * plane], dy, m);
            sd += pd as f64;
            sdx += pdx as f64;
        }
        let sums = (sd as f32, (sdx * is as f64) as f32);
        let (k, a, b) = self.dx_coefficients(ch, sums);
        for (p, out) in planes.iter_mut() {
            for (o, &xv) in out.iter_mut().zip(&x[*p * plane..(*p + 1) * plane]) {
                *o = k * *o + a * xv + b;
            }
        }
        sums
    }

    /// `dx` alone (fixed statistics, constant weight and bias: an attack's eval-mode pass), in
    /// one pass per plane.
    fn input_only(&self) -> Vec<f32> {
        let (_, c, plane) = self.dims;
        let mut dx = crate::cpu::data::output_buffer(self.x.len());
        dx.par_chunks_mut(plane)
            .enumerate()
            .with_min_len(min_len(plane))
            .for_each(|(p, out)| {
                crate::cpu::simd::vectorized(
                    #[inline(always)]
                    || {
                        let ch = p % c;
                        let (k, a, b) = self.dx_coefficients(ch, (0.0, 0.0));
                        let r = p * plane..(p + 1) * plane;
                        let pairs = out.iter_mut().zip(&self.x[r.clone()]).zip(&self.g[r]);
                        with_activation_grad!(self.op.act, (self.scale[ch], self.shift[ch]), |d| {
                            for ((o, &xv), &gv) in pairs {
                                *o = k * d(xv, gv) + a * xv + b;
                            }
                        });
                    },
                )
            });
        dx
    }
}

impl CustomOp3 for FusedBatchNorm {
    fn name(&self) -> &'static str {
        "fused-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = slice_of(xs, xl, "input")?;
        let weight = slice_of(ws, wl, "weight")?;
        let bias = slice_of(bs, bl, "bias")?;
        let (_, c, h, w) = xl.shape().dims4()?;
        let plane = h * w;
        let (scale, shift) = self.scale_shift(weight, bias);
        let mut out = crate::cpu::data::output_buffer(x.len());
        out.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .with_min_len(min_len(plane))
            .for_each(|(i, (o, xp))| {
                crate::cpu::simd::vectorized(
                    #[inline(always)]
                    || {
                        let (a, s) = (scale[i % c], shift[i % c]);
                        let pairs = o.iter_mut().zip(xp);
                        match self.act {
                            FusedActivation::Identity => pairs.for_each(|(o, &v)| *o = v * a + s),
                            FusedActivation::Relu => {
                                pairs.for_each(|(o, &v)| *o = (v * a + s).max(0.0))
                            }
                            FusedActivation::Silu => {
                                pairs.for_each(|(o, &v)| *o = crate::silu::value(v * a + s))
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight_t: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _span = crate::profile::span("bn-backward", 0.0, || format!("{:?}", x.dims()));
        let (n, c, h, w) = x.dims4()?;
        let plane = h * w;
        let weight = weight_t.to_vec1::<f32>()?;
        let (scale, shift) = self.scale_shift(&weight, &bias.to_vec1::<f32>()?);
        let (dx, dw, db) = with_slice(x, |x| {
            with_slice(grad, |g| {
                let backward = Backward {
                    op: self,
                    x,
                    g,
                    weight: &weight,
                    scale: &scale,
                    shift: &shift,
                    dims: (n, c, plane),
                };
                // The sums feed dx only through batch statistics; in an attack's eval-mode
                // pass (constant weight and bias) nothing needs them.
                if self.batch_stats || weight_t.track_op() || bias.track_op() {
                    let (dx, sums) = backward.with_sums();
                    let db: Vec<f32> = sums.iter().map(|s| s.0).collect();
                    let dw: Vec<f32> = sums.iter().map(|s| s.1).collect();
                    Ok((dx, dw, db))
                } else {
                    Ok((backward.input_only(), Vec::new(), Vec::new()))
                }
            })
        })?;
        let dev = x.device();
        // The sums behind dw and db are needed for dx anyway; they are only withheld from
        // arguments that track no gradient (an attack's constant weights).
        let keep = |t: &Tensor, v: Vec<f32>, shape: &[usize]| -> Result<Option<Tensor>> {
            match t.track_op() {
                true => Ok(Some(Tensor::from_vec(v, shape, dev)?)),
                false => Ok(None),
            }
        };
        Ok((
            keep(x, dx, x.dims())?,
            keep(weight_t, dw, &[c])?,
            keep(bias, db, &[c])?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::FusedActivation;
    use crate::ops::{batch_norm, batch_stats, silu, ChannelStats};
    use candle_core::{Device, Tensor, Var};

    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The SiLU fused into the batch norm's passes gives the bits of the batch norm followed by
    /// [`silu`]: output and the gradients of input, weight and bias, with batch statistics and
    /// with fixed ones, weights tracked and constant (an attack's eval-mode pass).
    #[test]
    fn fused_silu_has_the_bits_of_batch_norm_then_silu() {
        let dev = Device::Cpu;
        let (n, c, h, w) = (3, 5, 7, 9);
        let wave = |len: usize, k: usize, scale: f32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * k) % 97) as f32 / 97.0 * scale - scale / 2.0)
                .collect()
        };
        let x = Var::from_vec(wave(n * c * h * w, 31, 8.0), (n, c, h, w), &dev).unwrap();
        let upstream = Tensor::from_vec(wave(n * c * h * w, 17, 2.0), (n, c, h, w), &dev).unwrap();
        let fixed = ChannelStats {
            mean: wave(c, 7, 1.0),
            var: wave(c, 11, 1.0).iter().map(|v| v + 1.0).collect(),
        };
        for stats_of_x in [true, false] {
            for constant in [false, true] {
                let weight = Var::from_vec(wave(c, 13, 3.0), c, &dev).unwrap();
                let bias = Var::from_vec(wave(c, 19, 1.0), c, &dev).unwrap();
                let (wt, bt) = match constant {
                    true => (weight.as_tensor().detach(), bias.as_tensor().detach()),
                    false => (weight.as_tensor().clone(), bias.as_tensor().clone()),
                };
                let stats = match stats_of_x {
                    true => batch_stats(x.as_tensor()).unwrap(),
                    false => fixed.clone(),
                };
                let run = |fused: bool| {
                    let xt = x.as_tensor();
                    let bn = |act| batch_norm(xt, &wt, &bt, &stats, 1e-5, stats_of_x, act);
                    let y = match fused {
                        true => bn(FusedActivation::Silu),
                        false => silu(&bn(FusedActivation::Identity).unwrap()),
                    }
                    .unwrap();
                    let grads = (&y * &upstream)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .backward()
                        .unwrap();
                    let mut out = vec![bits(&y), bits(grads.get(xt).unwrap())];
                    if !constant {
                        out.push(bits(grads.get(weight.as_tensor()).unwrap()));
                        out.push(bits(grads.get(bias.as_tensor()).unwrap()));
                    }
                    out
                };
                let tag = format!("stats of x {stats_of_x}, constant weights {constant}");
                let (fused, apart) = (run(true), run(false));
                for (what, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
                    .iter()
                    .zip(fused.iter().zip(&apart))
                {
                    assert!(a == b, "{tag}: {what} differs");
                }
                assert_eq!(fused.len(), if constant { 2 } else { 4 }, "{tag}");
            }
        }
    }
}
