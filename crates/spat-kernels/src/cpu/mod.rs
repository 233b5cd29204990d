//! What the CPU kernels share: the checked matrix product, vectorised loops and element-wise maps, tensor data as slices.

pub(crate) mod data;
pub(crate) mod elementwise;
pub(crate) mod gemm;
pub(crate) mod simd;
