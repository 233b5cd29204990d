//! Fused batch normalisation (+ optional ReLU) for `f32` tensors on the CPU.
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

/// The ReLU's backward: the upstream gradient `g` where the output `(x·scale + shift).max(0)`
/// was positive, zero where it was clipped (as PyTorch's threshold backward). The output is
/// recomputed from `x` with the forward's own operations (so the same bits, NaN included: `max`
/// makes a NaN zero), which spares the backward a third stream over the activations.
#[derive(Clone, Copy)]
struct ReluMask {
    on: bool,
    scale: f32,
    shift: f32,
}

impl ReluMask {
    #[inline(always)]
    fn apply(self, x: f32, g: f32) -> f32 {
        if self.on && (x * self.scale + self.shift).max(0.0) <= 0.0 {
            0.0
        } else {
            g
        }
    }
}

/// `(Σ d, Σ d·(x − m))` over one plane, where `d` is the upstream gradient `g` through the
/// ReLU `mask`.
#[inline]
fn grad_sums(x: &[f32], g: &[f32], m: f32, mask: ReluMask) -> (f32, f32) {
    let (mut sd, mut sdx) = ([0f32; 8], [0f32; 8]);
    let mut tail = (0f32, 0f32);
    let n = x.len();
    let body = n - n % 8;
    for (xc, gc) in x[..body].chunks_exact(8).zip(g[..body].chunks_exact(8)) {
        for i in 0..8 {
            let d = mask.apply(xc[i], gc[i]);
            sd[i] += d;
            sdx[i] += d * (xc[i] - m);
        }
    }
    for i in body..n {
        let d = mask.apply(x[i], g[i]);
        tail.0 += d;
        tail.1 += d * (x[i] - m);
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

/// `y = [relu](weight · (x − mean) / √(var + eps) + bias)` with the given statistics.
///
/// Applied as a custom op on `(x, weight, bias)`. `batch_stats` says whether `mean`/`var` are the
/// statistics of `x` itself, in which case the gradient also flows through them.
#[derive(Debug)]
pub(crate) struct FusedBatchNorm {
    pub mean: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub batch_stats: bool,
    pub relu: bool,
}

impl FusedBatchNorm {
    pub fn new(stats: &ChannelStats, eps: f64, batch_stats: bool, relu: bool) -> Self {
        Self {
            mean: stats.mean.clone(),
            inv_std: stats
                .var
                .iter()
                .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
                .collect(),
            batch_stats,
            relu,
        }
    }
}

impl FusedBatchNorm {
    /// Per channel, the `a` and `s` of `y = x·a + s` (the backward's ReLU mask recomputes `y`
    /// with these same operations).
    fn scale_shift(&self, weight: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = (0..weight.len())
            .map(|k| weight[k] * self.inv_std[k])
            .collect();
        let shift = (0..weight.len())
            .map(|k| bias[k] - self.mean[k] * scale[k])
            .collect();
        (scale, shift)
    }

    fn mask(&self, scale: &[f32], shift: &[f32], ch: usize) -> ReluMask {
        ReluMask {
            on: self.relu,
            scale: scale[ch],
            shift: shift[ch],
        }
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
                        if self.relu {
                            for (o, &v) in o.iter_mut().zip(xp) {
                                *o = (v * a + s).max(0.0);
                            }
                        } else {
                            for (o, &v) in o.iter_mut().zip(xp) {
                                *o = v * a + s;
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
        let count = (n * plane) as f32;
        let weight = weight_t.to_vec1::<f32>()?;
        let (scale, shift) = self.scale_shift(&weight, &bias.to_vec1::<f32>()?);
        let (dx, dw, db) = with_slice(x, |x| {
            with_slice(grad, |g| {
                // The sums feed dx only through batch statistics; in an attack's eval-mode
                // pass (constant weight and bias) nothing needs them.
                let need_sums = self.batch_stats || weight_t.track_op() || bias.track_op();
                let channels = if need_sums { 0..c } else { 0..0 };
                let sums: Vec<(f32, f32)> = channels
                    .into_par_iter()
                    .with_min_len(min_len(n * plane))
                    .map(|ch| {
                        crate::cpu::simd::vectorized(
                            #[inline(always)]
                            || {
                                let (m, is) = (self.mean[ch], self.inv_std[ch]);
                                let (mut sd, mut sdx) = (0f64, 0f64);
                                for b in 0..n {
                                    let r = (b * c + ch) * plane..(b * c + ch + 1) * plane;
                                    let mask = self.mask(&scale, &shift, ch);
                                    let (pd, pdx) = grad_sums(&x[r.clone()], &g[r], m, mask);
                                    sd += pd as f64;
                                    sdx += pdx as f64;
                                }
                                (sd as f32, (sdx * is as f64) as f32)
                            },
                        )
                    })
                    .collect();
                let mut dx = crate::cpu::data::output_buffer(x.len());
                dx.par_chunks_mut(plane)
                    .enumerate()
                    .with_min_len(min_len(plane))
                    .for_each(|(p, out)| {
                        crate::cpu::simd::vectorized(
                            #[inline(always)]
                            || {
                                let ch = p % c;
                                let (m, is) = (self.mean[ch], self.inv_std[ch]);
                                let k = weight[ch] * is;
                                let r = p * plane..(p + 1) * plane;
                                // dx = k·(dy − mean(dy) − x̂·mean(dy·x̂)) = k·dy + a·x + b, with dy the
                                // upstream gradient through the ReLU (zero where the output was clipped,
                                // as PyTorch's threshold backward does).
                                let (a, b) = if self.batch_stats {
                                    let (mean_dy, mean_dy_xhat) =
                                        (sums[ch].0 / count, sums[ch].1 / count);
                                    let a = -k * is * mean_dy_xhat;
                                    (a, -k * mean_dy - a * m)
                                } else {
                                    (0.0, 0.0)
                                };
                                let mask = self.mask(&scale, &shift, ch);
                                for ((o, &xv), &gv) in out.iter_mut().zip(&x[r.clone()]).zip(&g[r])
                                {
                                    *o = k * mask.apply(xv, gv) + a * xv + b;
                                }
                            },
                        )
                    });
                let db: Vec<f32> = sums.iter().map(|s| s.0).collect();
                let dw: Vec<f32> = sums.iter().map(|s| s.1).collect();
                Ok((dx, dw, db))
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
