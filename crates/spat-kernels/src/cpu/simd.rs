//! Runs a loop with the widest vector instructions this CPU has.
//!
//! spat is built for the baseline x86-64 target (SSE2), so the element-wise loops of its CPU
//! kernels (col2im, batch norm) compile to 4-wide vectors; the matrix products (`gemm`) already
//! pick AVX-512 or AVX2 at run time. [`vectorized`] does the same for a closure: it calls it
//! inside a function compiled with AVX-512 (or AVX2) enabled, into which the closure is
//! inlined, so its loops are vectorised for that CPU. Without fused multiply-add contraction
//! (Rust never contracts `a * b + c`) every result is bit-identical to the baseline build's.
#![allow(unsafe_code)]

/// `f()`, compiled for the widest vector unit of this CPU. `f` must be a plain loop nest:
/// calls it makes through function pointers or other threads (rayon tasks) are not affected.
/// Mark the closure `#[inline(always)]`: LLVM declines to inline a large closure, which is then
/// compiled for the baseline target and runs 4-wide (perf showed Winograd's transforms and
/// im2col as separate SSE functions until the closures were marked).
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has every feature `avx512` is compiled with.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for `avx2`.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `f()` compiled with AVX-512F, AVX2 and AVX enabled.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,avx")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()` compiled with AVX2 and AVX enabled.
///
/// # Safety
/// The CPU must have AVX2 and AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_the_closure_once_and_returns_its_value() {
        let mut calls = 0;
        let v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
        let sum = super::vectorized(|| {
            calls += 1;
            v.iter().map(|x| x * 2.0).collect::<Vec<f32>>()
        });
        assert_eq!(calls, 1);
        assert_eq!(sum, v.iter().map(|x| x * 2.0).collect::<Vec<f32>>());
    }
}
