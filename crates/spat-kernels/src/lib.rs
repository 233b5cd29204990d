//! spat's compute kernels as candle operations, behind one surface, [`ops`].
//!
//! A network built from these operations gets, on the CPU, convolutions by packed matrix
//! products, direct AVX-512 kernels or Winograd's F(2×2, 3×3) (whichever the layer's shape
//! favours), a fused batch norm + ReLU, a residual block's fused `relu(a + b)` and a classifier
//! head whose rows do not depend on their batch; with the `cudnn` feature, cuDNN convolutions in
//! all three directions. Every operation's backward computes only the gradients autograd will
//! use, so an attack (whose weights are constants) pays for no weight gradient. An image's
//! results are the same bits whatever its batch and however many threads run.
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! use spat_kernels::ops;
//! let x = Var::from_tensor(&Tensor::ones((2, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?)?;
//! let kernel = Tensor::ones((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let y = ops::conv2d(x.as_tensor(), &kernel, 1, 1)?; // (2, 4, 8, 8)
//! let grads = y.sum_all()?.backward()?;
//! assert!(grads.get(&kernel).is_none()); // a constant kernel gets no gradient
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! This crate depends on no other spat crate: anyone with a candle model can use it.
#![warn(missing_docs)]

mod add_relu;
mod bn;
mod conv;
mod cpu;
mod linear;
pub mod ops;
pub mod profile;
mod silu;

use std::sync::atomic::{AtomicBool, Ordering};

static TF32: AtomicBool = AtomicBool::new(true);

/// Lets `f32` convolutions (cuDNN) and matrix products (cuBLAS) on CUDA use TF32 tensor cores:
/// inputs rounded to 10 mantissa bits, accumulation in `f32`. On by default for convolutions, as
/// `torch.backends.cudnn.allow_tf32` is; this call also sets candle's switch for matrix products
/// (`torch.backends.cuda.matmul.allow_tf32`, off by default in both). CPU arithmetic is unaffected.
pub fn set_tf32(enabled: bool) {
    TF32.store(enabled, Ordering::Relaxed);
    #[cfg(feature = "cuda")]
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(enabled);
}

/// Whether `f32` convolutions on CUDA may use TF32 (see [`set_tf32`]).
pub fn tf32_enabled() -> bool {
    TF32.load(Ordering::Relaxed)
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
