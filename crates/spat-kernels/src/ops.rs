//! The operations a network is built from: every call picks the fastest path for its device,
//! dtype and shape, and each is differentiable with candle's autograd.
//!
//! | operation | CPU `f32` | elsewhere |
//! |---|---|---|
//! | [`conv2d`] | matrix products, direct AVX-512 kernels or Winograd's F(2×2, 3×3) | cuDNN (`cudnn` feature), else candle's forward with spat's backward |
//! | [`linear`] | a row-by-row product (an image's logits do not depend on its batch) | candle's matrix product |
//! | [`batch_norm`] with [`batch_stats`] | one fused pass forward (with its ReLU or SiLU), one backward | (CPU only: callers compose candle operations elsewhere) |
//! | [`add_relu`] | one fused pass each way | candle's `(a + b).relu()` |
//! | [`silu`] | one parallel pass each way | candle's `silu` |
//!
//! `bf16` on the CPU runs the `f32` path on widened operands and rounds the result: what a tensor
//! core computes (bf16 inputs, f32 accumulation), since candle has no CPU bf16 matrix product.

use candle_core::{DType, Result, Tensor};

pub use crate::add_relu::add_relu;
pub use crate::bn::{ChannelStats, FusedActivation};
pub use crate::conv::conv2d;
pub use crate::silu::silu;

/// `x Wᵀ + b` for an `(N, F)` input, an `(C, F)` weight and a `(C,)` bias, in the dtype of `x`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::BF16 {
        let wide = |t: &Tensor| t.to_dtype(DType::F32);
        let y = wide(x)?
            .matmul(&wide(weight)?.t()?)?
            .broadcast_add(&wide(bias)?)?;
        return y.to_dtype(DType::BF16);
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x
            .contiguous()?
            .apply_op2(&weight.contiguous()?, crate::linear::RowwiseLinear)?
            .broadcast_add(bias);
    }
    x.matmul(&weight.t()?)?.broadcast_add(bias)
}

/// Per channel, the mean and biased variance over `(N, H, W)` of an `f32` CPU tensor
/// `(N, C, H, W)`, accumulated in `f64`. Not differentiable: [`batch_norm`] differentiates
/// through the statistics itself when told they are `x`'s own.
pub fn batch_stats(x: &Tensor) -> Result<ChannelStats> {
    crate::bn::batch_stats(x)
}

/// `y = act(weight · (x − mean) / √(var + eps) + bias)` per channel of an `f32` CPU tensor
/// `(N, C, H, W)`, in one pass, with `mean` and `var` from `stats`; `act` is applied in the same
/// pass each way.
///
/// `stats_of_x` says whether `stats` are [`batch_stats`] of `x` itself (training-mode batch
/// norm): then the gradient also flows through them, as PyTorch's does. `weight` and `bias` are
/// `(C,)`; a detached one gets no gradient.
pub fn batch_norm(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stats: &ChannelStats,
    eps: f64,
    stats_of_x: bool,
    act: FusedActivation,
) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if stats.mean.len() != c || stats.var.len() != c {
        candle_core::bail!(
            "batch norm: statistics of {} channels given for {c} channels",
            stats.mean.len()
        );
    }
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.contiguous()?
    };
    let op = crate::bn::FusedBatchNorm::new(stats, eps, stats_of_x, act);
    x.apply_op3(weight, bias, op)
}
