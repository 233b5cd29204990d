//! Safe, bounds-checked matrix products over strided views of `f32` slices, on the `gemm`
//! crate (the packed, cache-blocked kernels candle's CPU matrix product uses; with its `x86-v4`
//! feature they use AVX-512 where the CPU has it, AVX2/FMA otherwise).
//!
//! `gemm::gemm` takes raw pointers and strides. Every view here is checked to lie inside its
//! slice and the destination to address each element once, so the one `unsafe` call below only
//! reads and writes memory its borrowed slices own.
#![allow(unsafe_code)]

use candle_core::Result;

/// `rows × cols` matrix whose element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// Mutable counterpart of [`View`].
#[derive(Debug)]
pub(crate) struct ViewMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// Index one past the last element a `rows × cols` view with these strides touches (0 if empty).
fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(row_stride)?
        .checked_add((cols - 1).checked_mul(col_stride)?)?
        .checked_add(1)
}

fn check(what: &str, len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> Result<()> {
    match extent(rows, cols, rs, cs) {
        Some(end) if end <= len && rs <= isize::MAX as usize && cs <= isize::MAX as usize => Ok(()),
        _ => candle_core::bail!(
            "matmul: {what} view {rows}x{cols} with strides ({rs}, {cs}) exceeds its {len} elements"
        ),
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `threads > 1` lets the product
/// itself run on rayon's pool (for callers that have fewer independent products than threads).
pub(crate) fn matmul(
    dst: ViewMut<'_>,
    lhs: View<'_>,
    rhs: View<'_>,
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    if lhs.rows != m || rhs.rows != k || rhs.cols != n {
        candle_core::bail!(
            "matmul: {}x{} = {}x{} · {}x{} does not fit",
            m,
            n,
            lhs.rows,
            lhs.cols,
            rhs.rows,
            rhs.cols
        );
    }
    check("lhs", lhs.data.len(), m, k, lhs.row_stride, lhs.col_stride)?;
    check("rhs", rhs.data.len(), k, n, rhs.row_stride, rhs.col_stride)?;
    check("dst", dst.data.len(), m, n, dst.row_stride, dst.col_stride)?;
    // Distinct (i, j) must be distinct elements: one stride steps over the whole other axis.
    let (rs, cs) = (dst.row_stride, dst.col_stride);
    let injective = m <= 1 && (n <= 1 || cs >= 1)
        || n <= 1 && rs >= 1
        || cs >= 1 && rs >= n * cs
        || rs >= 1 && cs >= m * rs;
    if !injective {
        candle_core::bail!("matmul: destination strides ({rs}, {cs}) alias elements of {m}x{n}");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * rs + j * cs] = 0.0;
                }
            }
        }
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the checks above keep every element (i, j) of each view inside its slice, the
    // destination's elements are pairwise distinct, and `dst` is borrowed mutably while `lhs`
    // and `rhs` are shared borrows, so the destination overlaps neither input. `gemm` reads
    // `dst` only when `read_dst` is set. Strides fit `isize` (checked).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            cs as isize,
            rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &View<'_>, b: &View<'_>) -> Vec<f64> {
        let mut out = vec![0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    /// Row-major, column-major and padded (leading dimension > width) views, with and without
    /// accumulation, on one thread and on rayon's pool, all equal a naive f64 product.
    #[test]
    fn strided_products_match_naive_product() {
        let (m, n, k) = (37, 19, 23);
        let a_data = values(m * k * 2, 1);
        let b_data = values(k * n * 2, 2);
        let lhs_views = [
            View {
                data: &a_data,
                rows: m,
                cols: k,
                row_stride: k,
                col_stride: 1,
            },
            View {
                data: &a_data,
                rows: m,
                cols: k,
                row_stride: 1,
                col_stride: m + 3,
            },
        ];
        let rhs_views = [
            View {
                data: &b_data,
                rows: k,
                cols: n,
                row_stride: n,
                col_stride: 1,
            },
            View {
                data: &b_data,
                rows: k,
                cols: n,
                row_stride: 1,
                col_stride: 2 * k,
            },
        ];
        for lhs in &lhs_views {
            for rhs in &rhs_views {
                let want = naive(lhs, rhs);
                for (accumulate, threads, row_major) in [
                    (false, 1, true),
                    (true, 1, false),
                    (false, 2, false),
                    (true, 2, true),
                ] {
                    let mut out = vec![0.5f32; m * n];
                    let (row_stride, col_stride) = if row_major { (n, 1) } else { (1, m) };
                    let dst = ViewMut {
                        data: &mut out,
                        rows: m,
                        cols: n,
                        row_stride,
                        col_stride,
                    };
                    matmul(dst, *lhs, *rhs, accumulate, threads).unwrap();
                    for i in 0..m {
                        for j in 0..n {
                            let got = out[i * row_stride + j * col_stride] as f64;
                            let w = want[i * n + j] + if accumulate { 0.5 } else { 0.0 };
                            assert!((got - w).abs() < 1e-4, "({i}, {j}): {got} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn views_outside_their_slice_or_aliasing_are_errors() {
        let a = vec![1f32; 12];
        let mut d = vec![0f32; 16];
        let ok_lhs = View {
            data: &a,
            rows: 3,
            cols: 4,
            row_stride: 4,
            col_stride: 1,
        };
        let long_rhs = View {
            data: &a,
            rows: 4,
            cols: 4,
            row_stride: 4,
            col_stride: 1,
        };
        fn dst(d: &mut [f32], row_stride: usize, col_stride: usize) -> ViewMut<'_> {
            ViewMut {
                data: d,
                rows: 3,
                cols: 4,
                row_stride,
                col_stride,
            }
        }
        assert!(matmul(dst(&mut d, 4, 1), ok_lhs, long_rhs, false, 1).is_err());
        let rhs = View {
            data: &a,
            rows: 4,
            cols: 3,
            row_stride: 3,
            col_stride: 1,
        };
        assert!(
            matmul(dst(&mut d, 4, 1), ok_lhs, rhs, false, 1).is_err(),
            "shape mismatch"
        );
        let rhs = View {
            data: &a,
            rows: 4,
            cols: 4,
            row_stride: 2,
            col_stride: 1,
        };
        assert!(
            matmul(dst(&mut d, 1, 1), ok_lhs, rhs, false, 1).is_err(),
            "aliasing dst"
        );
        assert!(
            matmul(dst(&mut d, 8, 1), ok_lhs, rhs, false, 1).is_err(),
            "dst out of bounds"
        );
        assert!(matmul(dst(&mut d, 4, 1), ok_lhs, rhs, false, 1).is_ok());
    }
}
