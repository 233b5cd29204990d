//! Element-wise maps over `f32` slices, in parallel chunks on rayon's threads, vectorised.

use rayon::prelude::*;

/// `out[i] = f(a[i], b[i])` over equal-length slices, `chunk` elements per parallel task.
pub(crate) fn zip_map(
    a: &[f32],
    b: &[f32],
    chunk: usize,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> candle_core::Result<Vec<f32>> {
    // Every element of the output must be written (`output_buffer`).
    if a.len() != b.len() {
        candle_core::bail!("zip_map: operands of {} and {} elements", a.len(), b.len());
    }
    let mut out = super::data::output_buffer(a.len());
    out.par_chunks_mut(chunk)
        .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
        .for_each(|(o, (a, b))| {
            super::simd::vectorized(
                #[inline(always)]
                || {
                    for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                        *o = f(a, b);
                    }
                },
            )
        });
    Ok(out)
}
