//! Direct 2-D convolution (square kernel, no bias, no groups/dilation) for `f32` tensors on the
//! CPU, with its backward.
//!
//! candle's CPU convolution goes through im2col and a matrix product, and its backward through a
//! transposed convolution; for the narrow layers of the small networks that tests and smoke runs
//! use (8–32 channels) that reaches about 1 GMAC/s. Here every output row is accumulated from
//! input rows with one weight at a time, an inner loop the compiler vectorises, which is several
//! times faster at these widths. Wide layers keep candle's kernel (see `layers::Conv2d`).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub(crate) struct DirectConv2d {
    pub stride: usize,
    pub padding: usize,
}

/// Sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let (&[n, cin, h, wd], &[cout, cin_k, k, k2]) = (x, w) else {
            candle_core::bail!("direct conv: expected 4-D input and kernel, got {x:?} and {w:?}");
        };
        if cin != cin_k || k != k2 || h + 2 * padding < k || wd + 2 * padding < k {
            candle_core::bail!("direct conv: input {x:?} does not fit kernel {w:?}");
        }
        Ok(Self {
            n,
            cin,
            h,
            w: wd,
            cout,
            k,
            oh: (h + 2 * padding - k) / stride + 1,
            ow: (wd + 2 * padding - k) / stride + 1,
            stride,
            padding,
        })
    }

    /// Output positions `o` whose input position `o·stride + tap − padding` lies in `[0, len)`.
    fn valid(&self, tap: usize, len: usize, out_len: usize) -> std::ops::Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = if tap >= p { 0 } else { (p - tap).div_ceil(s) };
        // Largest o with o·s + tap − p ≤ len − 1.
        let hi = if len + p > tap {
            ((len + p - tap - 1) / s + 1).min(out_len)
        } else {
            0
        };
        lo..hi.max(lo)
    }

    fn input_index(&self, o: usize, tap: usize) -> usize {
        o * self.stride + tap - self.padding
    }
}

/// Dot product with eight independent partial sums: a single running sum is a serial chain of
/// dependent additions the compiler may not reorder (so it cannot vectorise it).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("direct conv: {what} is not contiguous"),
    }
}

/// `dst[o] += a · src[o·stride + offset]` for `o` in `range`.
#[inline]
fn axpy_strided(
    dst: &mut [f32],
    src: &[f32],
    a: f32,
    range: std::ops::Range<usize>,
    stride: usize,
    offset: usize,
) {
    if range.is_empty() {
        return;
    }
    if stride == 1 {
        let start = range.start + offset;
        let len = range.len();
        for (d, &s) in dst[range].iter_mut().zip(&src[start..start + len]) {
            *d += a * s;
        }
    } else {
        for o in range {
            dst[o] += a * src[o * stride + offset];
        }
    }
}

/// `dst[o·stride + offset] += a · src[o]` for `o` in `range`.
#[inline]
fn axpy_scatter(
    dst: &mut [f32],
    src: &[f32],
    a: f32,
    range: std::ops::Range<usize>,
    stride: usize,
    offset: usize,
) {
    if range.is_empty() {
        return;
    }
    if stride == 1 {
        let start = range.start + offset;
        let len = range.len();
        for (d, &s) in dst[start..start + len].iter_mut().zip(&src[range]) {
            *d += a * s;
        }
    } else {
        for o in range {
            dst[o * stride + offset] += a * src[o];
        }
    }
}

/// Planes of `src` (each `h × w`) copied into zero-padded planes of `(h + 2p) × (w + 2p)`.
fn pad_planes(src: &[f32], h: usize, w: usize, p: usize) -> Vec<f32> {
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let planes = src.len() / (h * w);
    let mut out = vec![0f32; planes * hp * wp];
    out.par_chunks_mut(hp * wp)
        .zip(src.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for (y, row) in src.chunks(w).enumerate() {
                dst[(y + p) * wp + p..][..w].copy_from_slice(row);
            }
        });
    out
}

/// Stride 1: with the input zero-padded to width `wp`, output row `oy` column `ox` reads padded
/// position `(oy + ky)·wp + ox + kx`, so over a "wide" output of `oh × wp` (the last `wp − ow`
/// columns are junk and dropped) every tap is one long contiguous multiply-add.
fn forward_stride1(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let (p, kk) = (g.padding, g.k * g.k);
    let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
    let span = (g.oh - 1) * wp + g.ow;
    let padded = pad_planes(x, g.h, g.w, p);
    let mut out = vec![0f32; g.n * g.cout * g.oh * g.ow];
    out.par_chunks_mut(g.oh * g.ow)
        .enumerate()
        .for_each(|(idx, out)| {
            let (b, co) = (idx / g.cout, idx % g.cout);
            let mut wide = vec![0f32; span];
            for ci in 0..g.cin {
                let plane = &padded[(b * g.cin + ci) * hp * wp..][..hp * wp];
                let wk = &w[(co * g.cin + ci) * kk..][..kk];
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let a = wk[ky * g.k + kx];
                        let src = &plane[ky * wp + kx..][..span];
                        for (d, &s) in wide.iter_mut().zip(src) {
                            *d += a * s;
                        }
                    }
                }
            }
            for (oy, row) in out.chunks_mut(g.ow).enumerate() {
                row.copy_from_slice(&wide[oy * wp..][..g.ow]);
            }
        });
    out
}

/// Upstream gradient planes in the wide layout of [`forward_stride1`] (junk columns zero).
fn widen_grad(g: &Geometry, grad: &[f32]) -> Vec<f32> {
    let wp = g.w + 2 * g.padding;
    let mut wide = vec![0f32; g.n * g.cout * g.oh * wp];
    wide.par_chunks_mut(g.oh * wp)
        .zip(grad.par_chunks(g.oh * g.ow))
        .for_each(|(dst, src)| {
            for (oy, row) in src.chunks(g.ow).enumerate() {
                dst[oy * wp..][..g.ow].copy_from_slice(row);
            }
        });
    wide
}

fn input_grad_stride1(g: &Geometry, grad: &[f32], w: &[f32]) -> Vec<f32> {
    let (p, kk) = (g.padding, g.k * g.k);
    let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
    let span = (g.oh - 1) * wp + g.ow;
    let wide = widen_grad(g, grad);
    let mut dx = vec![0f32; g.n * g.cin * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(idx, dx)| {
            let (b, ci) = (idx / g.cin, idx % g.cin);
            let mut padded = vec![0f32; hp * wp];
            for co in 0..g.cout {
                let src = &wide[(b * g.cout + co) * g.oh * wp..][..span];
                let wk = &w[(co * g.cin + ci) * kk..][..kk];
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let a = wk[ky * g.k + kx];
                        let dst = &mut padded[ky * wp + kx..][..span];
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d += a * s;
                        }
                    }
                }
            }
            for (y, row) in dx.chunks_mut(g.w).enumerate() {
                row.copy_from_slice(&padded[(y + p) * wp + p..][..g.w]);
            }
        });
    dx
}

fn kernel_grad_stride1(g: &Geometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (p, kk) = (g.padding, g.k * g.k);
    let (hp, wp) = (g.h + 2 * p, g.w + 2 * p);
    let span = (g.oh - 1) * wp + g.ow;
    let padded = pad_planes(x, g.h, g.w, p);
    let wide = widen_grad(g, grad);
    let mut dw = vec![0f32; g.cout * g.cin * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(idx, dw)| {
        let (co, ci) = (idx / g.cin, idx % g.cin);
        let mut acc = vec![0f64; kk];
        for b in 0..g.n {
            let gw = &wide[(b * g.cout + co) * g.oh * wp..][..span];
            let plane = &padded[(b * g.cin + ci) * hp * wp..][..hp * wp];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let xs = &plane[ky * wp + kx..][..span];
                    acc[ky * g.k + kx] += dot(gw, xs) as f64;
                }
            }
        }
        for (d, a) in dw.iter_mut().zip(acc) {
            *d = a as f32;
        }
    });
    dw
}

fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    if g.stride == 1 {
        return forward_stride1(g, x, w);
    }
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut out = vec![0f32; g.n * g.cout * plane_out];
    out.par_chunks_mut(plane_out)
        .enumerate()
        .for_each(|(idx, out)| {
            let (b, co) = (idx / g.cout, idx % g.cout);
            for ci in 0..g.cin {
                let xin = &x[(b * g.cin + ci) * plane_in..][..plane_in];
                let wk = &w[(co * g.cin + ci) * kk..][..kk];
                for ky in 0..g.k {
                    let rows = g.valid(ky, g.h, g.oh);
                    for kx in 0..g.k {
                        let a = wk[ky * g.k + kx];
                        let cols = g.valid(kx, g.w, g.ow);
                        if cols.is_empty() {
                            continue;
                        }
                        // Input column of the first valid output column (never negative).
                        let shift = g.input_index(cols.start, kx);
                        for oy in rows.clone() {
                            let iy = g.input_index(oy, ky);
                            let src = &xin[iy * g.w + shift..(iy + 1) * g.w];
                            let dst = &mut out[oy * g.ow + cols.start..oy * g.ow + cols.end];
                            axpy_strided(dst, src, a, 0..cols.len(), g.stride, 0);
                        }
                    }
                }
            }
        });
    out
}

fn input_grad(g: &Geometry, grad: &[f32], w: &[f32]) -> Vec<f32> {
    if g.stride == 1 {
        return input_grad_stride1(g, grad, w);
    }
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut dx = vec![0f32; g.n * g.cin * plane_in];
    dx.par_chunks_mut(plane_in)
        .enumerate()
        .for_each(|(idx, dx)| {
            let (b, ci) = (idx / g.cin, idx % g.cin);
            for co in 0..g.cout {
                let gout = &grad[(b * g.cout + co) * plane_out..][..plane_out];
                let wk = &w[(co * g.cin + ci) * kk..][..kk];
                for ky in 0..g.k {
                    let rows = g.valid(ky, g.h, g.oh);
                    for kx in 0..g.k {
                        let a = wk[ky * g.k + kx];
                        let cols = g.valid(kx, g.w, g.ow);
                        if cols.is_empty() {
                            continue;
                        }
                        let shift = g.input_index(cols.start, kx);
                        for oy in rows.clone() {
                            let iy = g.input_index(oy, ky);
                            let dst = &mut dx[iy * g.w + shift..(iy + 1) * g.w];
                            let src = &gout[oy * g.ow + cols.start..oy * g.ow + cols.end];
                            axpy_scatter(dst, src, a, 0..cols.len(), g.stride, 0);
                        }
                    }
                }
            }
        });
    dx
}

fn kernel_grad(g: &Geometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    if g.stride == 1 {
        return kernel_grad_stride1(g, x, grad);
    }
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let mut dw = vec![0f32; g.cout * g.cin * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(idx, dw)| {
        let (co, ci) = (idx / g.cin, idx % g.cin);
        let mut acc = vec![0f64; kk];
        for b in 0..g.n {
            let xin = &x[(b * g.cin + ci) * plane_in..][..plane_in];
            let gout = &grad[(b * g.cout + co) * plane_out..][..plane_out];
            for ky in 0..g.k {
                let rows = g.valid(ky, g.h, g.oh);
                for kx in 0..g.k {
                    let cols = g.valid(kx, g.w, g.ow);
                    if cols.is_empty() {
                        continue;
                    }
                    let shift = g.input_index(cols.start, kx);
                    let mut sum = 0f32;
                    for oy in rows.clone() {
                        let iy = g.input_index(oy, ky);
                        let grow = &gout[oy * g.ow + cols.start..oy * g.ow + cols.end];
                        let xrow = &xin[iy * g.w + shift..(iy + 1) * g.w];
                        if g.stride == 1 {
                            sum += dot(grow, xrow);
                        } else {
                            sum += grow
                                .iter()
                                .enumerate()
                                .map(|(o, a)| a * xrow[o * g.stride])
                                .sum::<f32>();
                        }
                    }
                    acc[ky * g.k + kx] += sum as f64;
                }
            }
        }
        for (d, a) in dw.iter_mut().zip(acc) {
            *d = a as f32;
        }
    });
    dw
}

impl CustomOp2 for DirectConv2d {
    fn name(&self) -> &'static str {
        "direct-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let out = forward(
            &g,
            contiguous(xs, xl, "input")?,
            contiguous(ws, wl, "kernel")?,
        );
        Ok((CpuStorage::F32(out), Shape::from((g.n, g.cout, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.dims(), w.dims(), self.stride, self.padding)?;
        let read = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
        // Plain copies keep the code simple; they are cheap next to the convolution itself.
        let gv = read(grad)?;
        // Only what autograd will use: an attack's constant weights need no kernel gradient, and
        // a training step's data batch needs no input gradient.
        let flops = crate::profile::conv_flops(x.dims(), w.dims(), self.stride, self.padding);
        let key = || crate::profile::conv_key(x.dims(), w.dims(), self.stride);
        let dx = match x.track_op() {
            true => {
                let _span = crate::profile::span("conv-input-grad", flops, key);
                Some(Tensor::from_vec(
                    input_grad(&g, &gv, &read(w)?),
                    x.shape(),
                    x.device(),
                )?)
            }
            false => None,
        };
        let dw = match w.track_op() {
            true => {
                let _span = crate::profile::span("conv-weight-grad", flops, key);
                Some(Tensor::from_vec(
                    kernel_grad(&g, &read(x)?, &gv),
                    w.shape(),
                    w.device(),
                )?)
            }
            false => None,
        };
        Ok((dx, dw))
    }
}
