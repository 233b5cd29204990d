//! The one 2-D convolution every network layer calls, on every device, with a backward pass that
//! computes only the gradients autograd will use.
//!
//! candle's own `conv2d` backward always computes both the input and the kernel gradient. An
//! attack needs only ∂loss/∂x (the weights enter its graph as constants, see
//! spat-core's `Classifier::logits_wrt_input`) and a training step never needs ∂loss/∂x of the
//! data batch, so each skipped half is a convolution's worth of arithmetic saved per layer.
//!
//! Paths, chosen per call:
//! * CPU, `f32`: [`cpu`]'s kernels in all three directions (matrix products, the direct AVX-512
//!   kernels of [`direct`], Winograd's F(2×2, 3×3) of [`winograd`]).
//! * CUDA with the `cudnn` feature, `f32`/`bf16`: cuDNN forward, backward-data and
//!   backward-filter with cached descriptors, algorithms and workspace (`cudnn`).
//! * CPU, `bf16`: the `f32` paths on widened operands, rounded back (candle has no CPU bf16
//!   matrix product); numerically a tensor core's bf16-in, f32-accumulate convolution.
//! * Anything else: candle's forward, with this module's backward attached (`CandleConv2d`).

pub(crate) mod cpu;
#[cfg(feature = "cudnn")]
pub(crate) mod cudnn;
pub(crate) mod direct;
pub(crate) mod kernel_cache;
pub(crate) mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// Cross-correlation of NCHW `x` with a square OIHW `kernel` (no bias, groups or dilation), as
/// `torch.nn.functional.conv2d(x, kernel, stride=stride, padding=padding)`, differentiable in both
/// arguments; backward computes a gradient only for an argument that tracks one.
pub fn conv2d(x: &Tensor, kernel: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    check_geometry(x, kernel, stride, padding)?;
    let x = contiguous(x)?;
    let kernel = contiguous(kernel)?;
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() && crate::conv::cudnn::supports(x.dtype()) {
        return x.apply_op2(&kernel, crate::conv::cudnn::CudnnConv2d { stride, padding });
    }
    if x.device().is_cpu() && x.dtype() == DType::BF16 {
        // candle has no bf16 matrix product on the CPU. Products of bf16 values are exact in
        // f32, so widening the operands and rounding the result is what a tensor core computes
        // (bf16 inputs, f32 accumulation), up to the order of the sums.
        let y = conv2d(
            &x.to_dtype(DType::F32)?,
            &kernel.to_dtype(DType::F32)?,
            stride,
            padding,
        )?;
        return y.to_dtype(DType::BF16);
    }
    let _span = crate::profile::span(
        "conv-forward",
        crate::profile::conv_flops(x.dims(), kernel.dims(), stride, padding),
        || crate::profile::conv_key(x.dims(), kernel.dims(), stride),
    );
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let constant = (!kernel.track_op()).then(|| kernel.clone());
        let op = crate::conv::cpu::GemmConv2d {
            stride,
            padding,
            constant,
        };
        return x.apply_op2(&kernel, op);
    }
    let y = x.detach().conv2d(&kernel.detach(), padding, stride, 1, 1)?;
    x.apply_op3(&kernel, &y, CandleConv2d { stride, padding })
}

fn contiguous(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

fn check_geometry(x: &Tensor, kernel: &Tensor, stride: usize, padding: usize) -> Result<()> {
    crate::conv::cpu::Geometry::new(x.dims(), kernel.dims(), stride, padding)?;
    if x.dtype() != kernel.dtype() {
        candle_core::bail!(
            "conv2d: input is {:?} but kernel is {:?}",
            x.dtype(),
            kernel.dtype()
        );
    }
    Ok(())
}

/// The gradients of `y = conv2d(x, kernel)` given `grad = ∂loss/∂y`, each only if its argument
/// tracks one. Shared by every path whose forward is not the direct CPU kernel.
pub(crate) fn conv2d_grads(
    x: &Tensor,
    kernel: &Tensor,
    grad: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let grad = contiguous(grad)?;
    let flops = crate::profile::conv_flops(x.dims(), kernel.dims(), stride, padding);
    let key = || crate::profile::conv_key(x.dims(), kernel.dims(), stride);
    let dx = match x.track_op() {
        true => {
            let _span = crate::profile::span("conv-input-grad", flops, key);
            Some(backward_data(&grad, kernel, x.dims(), stride, padding)?)
        }
        false => None,
    };
    let dkernel = match kernel.track_op() {
        true => {
            let _span = crate::profile::span("conv-weight-grad", flops, key);
            Some(backward_filter(x, &grad, kernel.dims(), stride, padding)?)
        }
        false => None,
    };
    Ok((dx, dkernel))
}

/// `∂loss/∂x` of a convolution: the transposed convolution of `grad` with `kernel`.
fn backward_data(
    grad: &Tensor,
    kernel: &Tensor,
    x_dims: &[usize],
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    #[cfg(feature = "cudnn")]
    if grad.device().is_cuda() && crate::conv::cudnn::supports(grad.dtype()) {
        let op = crate::conv::cudnn::CudnnBackwardData::new(x_dims, stride, padding)?;
        return grad.apply_op2_no_bwd(kernel, &op);
    }
    let (h, w) = (x_dims[2], x_dims[3]);
    let k = kernel.dim(2)?;
    // conv_transpose2d's output is (g - 1)·s − 2p + k + output_padding per axis; the padding
    // recovers the rows a strided forward never reached. candle takes one value for both axes.
    let reach = |g: usize| (g - 1) * stride + k - 2 * padding;
    let (pad_h, pad_w) = (h - reach(grad.dim(2)?), w - reach(grad.dim(3)?));
    if pad_h != pad_w {
        candle_core::bail!(
            "conv2d backward: input {h}×{w} at stride {stride} needs different output paddings \
             per axis, which candle's transposed convolution cannot express"
        );
    }
    grad.conv_transpose2d(kernel, padding, pad_h, stride, 1)
}

/// `∂loss/∂kernel` of a convolution: the correlation of `x` with `grad`, batch as channels.
fn backward_filter(
    x: &Tensor,
    grad: &Tensor,
    kernel_dims: &[usize],
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() && crate::conv::cudnn::supports(x.dtype()) {
        let op = crate::conv::cudnn::CudnnBackwardFilter::new(kernel_dims, stride, padding)?;
        return contiguous(x)?.apply_op2_no_bwd(grad, &op);
    }
    let k = kernel_dims[2];
    let g = x
        .transpose(0, 1)?
        .conv2d(&grad.transpose(0, 1)?, padding, 1, stride, 1)?
        .transpose(0, 1)?;
    // A strided forward leaves the last rows of x unused; the correlation then overshoots by
    // those taps, which are not part of the kernel.
    if g.dim(2)? != k || g.dim(3)? != k {
        g.narrow(2, 0, k)?.narrow(3, 0, k)?.contiguous()
    } else {
        g.contiguous()
    }
}

/// `(x, kernel, y)` → `y`, where `y` is candle's convolution of the detached arguments: the op
/// only attaches [`conv2d_grads`] to candle's forward. The copy of `y` it makes is one pass over
/// the output, small next to the `k²·C_in` multiply-adds per output element of the convolution.
struct CandleConv2d {
    stride: usize,
    padding: usize,
}

impl CustomOp3 for CandleConv2d {
    fn name(&self) -> &'static str {
        "spat-conv2d"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        y: &CpuStorage,
        yl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((y.try_clone(yl)?, yl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        y: &candle_core::CudaStorage,
        yl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        Ok((y.try_clone(yl)?, yl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        kernel: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dk) = conv2d_grads(x, kernel, grad, self.stride, self.padding)?;
        Ok((dx, dk, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn uniform(seed: u64, dims: &[usize]) -> Tensor {
        spat_core::rng::uniform(
            &mut spat_core::rng::host_rng(seed, 0),
            dims,
            -1.0,
            1.0,
            &Device::Cpu,
        )
        .unwrap()
    }

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let a: Vec<f32> = a
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = b
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    /// For both CPU paths (direct kernel for narrow layers, candle's forward for wide ones):
    /// output and both gradients equal candle's own convolution and backward, and an argument
    /// that tracks no gradient gets none.
    #[test]
    fn gradients_match_candle_and_skip_untracked_arguments() {
        // (n, cin, cout, k, stride, h): narrow (direct) and wide (candle forward) layers.
        for (i, &(n, cin, cout, k, stride, h)) in [
            (2, 3, 8, 3, 1, 8),
            (2, 8, 16, 3, 2, 8),
            (2, 24, 32, 3, 1, 6),
            (2, 32, 24, 3, 2, 7),
            (2, 32, 40, 1, 2, 8),
        ]
        .iter()
        .enumerate()
        {
            let seed = 10 * i as u64;
            let x = uniform(seed, &[n, cin, h, h]);
            let w = uniform(seed + 1, &[cout, cin, k, k]);
            let padding = k / 2;
            let xv = Var::from_tensor(&x).unwrap();
            let wv = Var::from_tensor(&w).unwrap();
            let reference = xv
                .as_tensor()
                .conv2d(wv.as_tensor(), padding, stride, 1, 1)
                .unwrap();
            let up = uniform(seed + 2, reference.dims());
            let ref_grads = (&reference * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let ours = conv2d(xv.as_tensor(), wv.as_tensor(), stride, padding).unwrap();
            let tag = format!("case {i}");
            assert!(max_rel(&ours, &reference) < 1e-5, "{tag} output");
            let grads = (&ours * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (what, t) in [("input", xv.as_tensor()), ("kernel", wv.as_tensor())] {
                let err = max_rel(grads.get(t).unwrap(), ref_grads.get(t).unwrap());
                assert!(err < 1e-5, "{tag} {what} grad: {err}");
            }
            // Constant kernel (an attack): only the input gradient exists.
            let y = conv2d(xv.as_tensor(), &w, stride, padding).unwrap();
            let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(g.get(&w).is_none(), "{tag}: kernel gradient of a constant");
            let err = max_rel(
                g.get(xv.as_tensor()).unwrap(),
                ref_grads.get(xv.as_tensor()).unwrap(),
            );
            assert!(err < 1e-5, "{tag} input grad with constant kernel: {err}");
            // Constant input (a data batch): only the kernel gradient exists.
            let y = conv2d(&x, wv.as_tensor(), stride, padding).unwrap();
            let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
            assert!(g.get(&x).is_none(), "{tag}: input gradient of a constant");
            let err = max_rel(
                g.get(wv.as_tensor()).unwrap(),
                ref_grads.get(wv.as_tensor()).unwrap(),
            );
            assert!(err < 1e-5, "{tag} kernel grad with constant input: {err}");
        }
    }

    /// The output and input gradient of `x` through a Winograd layer (64 channels, 8×8) with
    /// `kernel`, and whether the kernel's transforms came from the cache.
    fn winograd_layer(x: &Tensor, kernel: &Tensor) -> (Vec<f32>, Vec<f32>, bool) {
        use std::sync::atomic::Ordering;
        let hits = crate::conv::kernel_cache::HITS.load(Ordering::Relaxed);
        let xv = Var::from_tensor(x).unwrap();
        let y = conv2d(xv.as_tensor(), kernel, 1, 1).unwrap();
        let up = uniform(99, y.dims());
        let grads = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let dx = flat(grads.get(xv.as_tensor()).unwrap());
        let hit = crate::conv::kernel_cache::HITS.load(Ordering::Relaxed) > hits;
        (flat(&y), dx, hit)
    }

    /// A constant kernel's Winograd transforms are served from the cache only while they are
    /// those of its elements as they are: after `Var::set` or an in-place write to the weights,
    /// and for another tensor in place of a dropped one, the results are those of the new
    /// weights, bit for bit as a tracked kernel (never cached) computes them.
    #[test]
    fn cached_kernel_transforms_follow_the_weights() {
        let x = uniform(1, &[2, 64, 8, 8]);
        let var = Var::from_tensor(&uniform(2, &[64, 64, 3, 3])).unwrap();
        let (y_tracked, dx_tracked, _) = winograd_layer(&x, var.as_tensor());
        // Each pass detaches the weights anew, as a model's constant-weight pass does; the
        // second finds the first's transforms (unless a concurrent test wrote a tensor).
        let mut hit = false;
        for _ in 0..5 {
            let (y, dx, h) = winograd_layer(&x, &var.as_tensor().detach());
            assert!(
                y == y_tracked && dx == dx_tracked,
                "cached transform, same weights"
            );
            hit |= h;
        }
        assert!(hit, "the cache never served a transform");
        // Var::set: the same storage, new elements.
        var.set(&uniform(3, &[64, 64, 3, 3])).unwrap();
        let (y_new, dx_new, _) = winograd_layer(&x, var.as_tensor());
        assert!(y_new != y_tracked, "the new weights give a new output");
        let (y, dx, _) = winograd_layer(&x, &var.as_tensor().detach());
        assert!(y == y_new && dx == dx_new, "after Var::set");
        // An in-place op on the weights (an optimiser's update).
        let before = winograd_layer(&x, &var.as_tensor().detach());
        var.as_tensor().inplace_op1(&Scale(0.5)).unwrap();
        let (y_half, dx_half, _) = winograd_layer(&x, var.as_tensor());
        assert!(y_half != before.0, "scaled weights give a new output");
        let (y, dx, _) = winograd_layer(&x, &var.as_tensor().detach());
        assert!(y == y_half && dx == dx_half, "after an in-place op");
        // Constant kernels dropped and allocated again (likely at the same address).
        for seed in 10..14 {
            let kernel = uniform(seed, &[64, 64, 3, 3]);
            let tracked = Var::from_tensor(&kernel).unwrap();
            let (y_want, dx_want, _) = winograd_layer(&x, tracked.as_tensor());
            let (y, dx, _) = winograd_layer(&x, &kernel);
            assert!(y == y_want && dx == dx_want, "fresh kernel {seed}");
            let (y, dx, _) = winograd_layer(&x, &kernel);
            assert!(y == y_want && dx == dx_want, "fresh kernel {seed}, again");
        }
    }

    /// Multiplies a tensor's elements in place.
    struct Scale(f32);

    impl candle_core::InplaceOp1 for Scale {
        fn name(&self) -> &'static str {
            "scale"
        }

        fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
            let CpuStorage::F32(v) = s else {
                candle_core::bail!("f32 only")
            };
            let (a, b) = l.contiguous_offsets().expect("contiguous");
            v[a..b].iter_mut().for_each(|e| *e *= self.0);
            Ok(())
        }
    }

    /// The bf16 path (candle's forward on the CPU) stays within bf16 rounding of the f32 one.
    #[test]
    fn bf16_convolution_is_close_to_f32() {
        let x = uniform(1, &[2, 16, 8, 8]);
        let w = uniform(2, &[32, 16, 3, 3]).affine(0.1, 0.0).unwrap();
        let f32_out = conv2d(&x, &w, 1, 1).unwrap();
        let xb = Var::from_tensor(&x.to_dtype(DType::BF16).unwrap()).unwrap();
        let wb = w.to_dtype(DType::BF16).unwrap();
        let bf16_out = conv2d(xb.as_tensor(), &wb, 1, 1).unwrap();
        assert_eq!(bf16_out.dtype(), DType::BF16);
        let err = max_rel(&bf16_out, &f32_out);
        assert!(err < 2e-2, "bf16 vs f32 output: {err}");
        let grads = bf16_out.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(xb.as_tensor()).unwrap().dtype(), DType::BF16);
    }

    #[test]
    fn mismatched_arguments_are_errors() {
        let x = uniform(1, &[1, 3, 8, 8]);
        assert!(conv2d(&x, &uniform(2, &[4, 2, 3, 3]), 1, 1).is_err());
        assert!(conv2d(&x, &uniform(2, &[4, 3, 3, 3]), 0, 1).is_err());
        let wb = uniform(2, &[4, 3, 3, 3]).to_dtype(DType::BF16).unwrap();
        assert!(conv2d(&x, &wb, 1, 1).is_err());
    }
}
