//! What the CPU kernels share: the checked matrix product, vectorised loops, tensor data as slices.

pub(crate) mod data;
pub(crate) mod gemm;
pub(crate) mod simd;
