//! 3×3 convolutions of stride 1 and padding 1 by Winograd's minimal filtering F(2×2, 3×3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2×2 block of output positions (a *tile*) is computed from the 4×4 input patch around it
//! as `Y = Aᵀ [ Σ_c (G g G^T) ⊙ (Bᵀ d B) ] A`: after the transforms, the sum over input channels
//! is 16 independent matrix products (one per element `ξ` of the 4×4 transformed tile),
//! `M_ξ(C_out × tiles) = U_ξ(C_out × C_in) · V_ξ(C_in × tiles)`, with 16 multiplications per tile
//! and channel pair where the direct form needs 36: 2.25× fewer. The products run on the packed
//! `gemm` kernels; the transforms are additions, vectorised along a row of tiles.
//!
//! The input gradient is the forward of the turned kernel, read from the layer's own kernels
//! ([`Kernels::Turned`]) rather than from a turned copy. The weight
//! gradient differentiates the same formula: `∂U_ξ = Σ_tiles Z_ξ · V_ξᵀ` with
//! `Z = A ∂Y Aᵀ` the output gradient's tiles, then `∂g = Gᵀ ∂U G` per kernel.
//!
//! Layouts, chosen so that every product has a layout the `gemm` crate runs near its peak
//! (190–220 GFLOP/s on one core for these shapes, measured with the `gemm` crate alone; other
//! layouts of the same products ran at 45–140): `U[c][ξ][o]`, `V[c][ξ][tile]`, `M[o][ξ][tile]`,
//! tiles in row order within a chunk, so that the transforms read and write whole rows of tiles.
//!
//! The work is split into chunks of whole tile rows of one image or of whole images, sized on
//! the shapes only; a tile's result does not depend on its chunk (the products' summation order
//! depends on `C_in` only, and a chunk has at least two tiles, which keeps `gemm` off its
//! matrix-vector path), so an image's bits do not depend on its batch or on the thread count.
//!
//! Rounding: the transforms add at most four terms and scale by ½; the results agree with an
//! f64 definition to 2·10⁻⁶ of the largest output, as the other paths do (tests in `conv::cpu`).

use std::ops::Range;

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use crate::conv::cpu::{min_tasks, product_threads, with_scratch, Geometry};
use crate::conv::kernel_cache::{self, Constant, Form};
use crate::cpu::gemm::{matmul, View, ViewMut};

/// Elements of a transformed tile.
const XI: usize = 16;
/// Bytes of a chunk's transformed input and output (`V` and `M`): the products stream them, so
/// they should stay in the L2 cache between the transform that writes and the product that
/// reads them.
const CHUNK_BYTES: usize = 1 << 20;
/// Fewest tiles per chunk: each product packs its `U_ξ`, which only enough tiles repay.
const MIN_CHUNK_TILES: usize = 128;
/// Fewest channels on either side: below, the products are too thin to beat the direct forms.
const MIN_CHANNELS: usize = 64;
/// Channels per block of the kernels' transpose.
const BLOCK: usize = 16;
/// Smallest plane side. At 4×4 (four tiles an image) the kernels' transform, 16 values per
/// kernel, weighs as much as the products it saves: 512 channels at 4×4 measured 10–25 %
/// slower than the im2col path (bench/NOTES.md, section 11). At least 4 keeps two tiles per
/// row, which keeps `gemm` off its matrix-vector path.
const MIN_SIDE: usize = 8;
/// Smallest plane side of the weight gradient: at least two tiles per row (see above).
const MIN_WEIGHT_GRAD_SIDE: usize = 4;
/// Smallest plane side of an input gradient whose turned kernels are constants: their
/// transform comes from the cache after an attack's first step, so on 4×4 planes only the
/// products and the tiles' transforms are left, which beat col2im there (512 channels at 4×4,
/// batch 16, one thread: 134–136 against 117–123 GFLOP/s; bench/NOTES.md, section 14). The
/// forward of 4×4 planes measured slower on the path even with its transform cached (122–133
/// against 137–148), so it keeps [`MIN_SIDE`].
const MIN_CACHED_INPUT_GRAD_SIDE: usize = 4;

thread_local! {
    /// Set by tests to run the other paths on shapes Winograd's would take.
    static DISABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the Winograd path off on this thread (for tests that compare the paths).
#[cfg(test)]
pub(crate) fn without<R>(f: impl FnOnce() -> R) -> R {
    crate::conv::cpu::with_path_off(&DISABLED, f)
}

/// Whether [`forward`] computes `g`.
pub(crate) fn applies(g: &Geometry) -> bool {
    g.h >= MIN_SIDE && g.w >= MIN_SIDE && applies_to_weight_grad(g)
}

/// Whether [`forward`] computes the input gradient of a layer whose turned form is
/// `transposed` (see `cpu::input_grad`), given whether its kernels are constants.
pub(crate) fn applies_to_input_grad(transposed: &Geometry, constant: bool) -> bool {
    if !constant {
        return applies(transposed);
    }
    let side = MIN_CACHED_INPUT_GRAD_SIDE;
    transposed.h >= side && transposed.w >= side && applies_to_weight_grad(transposed)
}

/// Whether [`kernel_grad`] computes `g`: its products reduce over tiles and it transforms no
/// kernel, so 4×4 planes pay too.
pub(crate) fn applies_to_weight_grad(g: &Geometry) -> bool {
    g.k == 3
        && g.stride == 1
        && g.padding == 1
        && g.oh == g.h
        && g.ow == g.w
        && g.h >= MIN_WEIGHT_GRAD_SIDE
        && g.w >= MIN_WEIGHT_GRAD_SIDE
        && g.n > 0
        && g.cin >= MIN_CHANNELS
        && g.cout >= MIN_CHANNELS
        && !DISABLED.with(std::cell::Cell::get)
}

/// Tile rows and tiles per row of a plane.
fn tile_grid(g: &Geometry) -> (usize, usize) {
    (g.h.div_ceil(2), g.w.div_ceil(2))
}

/// Tile rows of one image or whole images: `rows` is all of them when `images` has several.
#[derive(Debug, Clone)]
struct Chunk {
    images: Range<usize>,
    rows: Range<usize>,
}

impl Chunk {
    /// Tiles in the chunk, given the tiles per row.
    fn tiles(&self, tw: usize) -> usize {
        self.images.len() * self.rows.len() * tw
    }

    /// Index within the chunk of the first tile of row `r` of its `i`-th image.
    fn row_start(&self, i: usize, r: usize, tw: usize) -> usize {
        (i * self.rows.len() + r) * tw
    }
}

fn chunks(g: &Geometry) -> Vec<Chunk> {
    let (th, tw) = tile_grid(g);
    let per_tile = XI * (g.cin + g.cout) * 4;
    let tiles = (CHUNK_BYTES / per_tile).max(MIN_CHUNK_TILES);
    let per_image = th * tw;
    if tiles >= per_image {
        let images = (tiles / per_image).clamp(1, g.n);
        return (0..g.n)
            .step_by(images)
            .map(|b| Chunk {
                images: b..(b + images).min(g.n),
                rows: 0..th,
            })
            .collect();
    }
    let rows = (tiles / tw).clamp(1, th);
    (0..g.n)
        .flat_map(|b| {
            (0..th).step_by(rows).map(move |r| Chunk {
                images: b..b + 1,
                rows: r..(r + rows).min(th),
            })
        })
        .collect()
}

/// Where the kernels of the convolution being computed come from.
#[derive(Clone, Copy)]
pub(crate) enum Kernels<'a> {
    /// `w[o][c][tap]`, the geometry's own kernels.
    Own(&'a [f32]),
    /// `w[c][o][8 − tap]`: the kernels of the layer whose input gradient this forward computes
    /// (its `C_in` is this geometry's `C_out`), turned by 180°, read in place instead of copied.
    Turned(&'a [f32]),
}

/// `U[c][ξ][o] = (G g Gᵀ)[ξ]` for each kernel `g` (of output channel `o`, input channel `c`),
/// with `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`.
fn transform_kernels(g: &Geometry, kernels: Kernels<'_>) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let mut u = vec![0f32; cin * XI * cout];
    // Blocks of input channels: each gathers its taps as `[c][tap][o]` into scratch that stays
    // in the cache, then transforms them, so that the transform reads 16 output channels' taps
    // as one vector. (Gathering them from `w[o][c]` in the transform itself, 18 KiB apart for
    // 512 input channels, missed the TLB on every load: 16 % of a 512-channel 4×4 layer's three
    // directions, perf.)
    u.par_chunks_mut(BLOCK * XI * cout)
        .enumerate()
        .with_min_len(min_tasks(BLOCK * 60 * cout))
        .for_each(|(block, u)| {
            let c0 = block * BLOCK;
            let cs = u.len() / (XI * cout);
            with_scratch(cs * 9 * cout, |taps| {
                gather_taps(kernels, cin, cout, c0, taps);
                crate::cpu::simd::vectorized(
                    #[inline(always)]
                    || {
                        for (u, taps) in u.chunks_mut(XI * cout).zip(taps.chunks(9 * cout)) {
                            let mut o = 0;
                            while o < cout {
                                let left = cout - o;
                                o += if left >= 16 {
                                    kernel_block::<16>(taps, o, u, cout)
                                } else if left >= 8 {
                                    kernel_block::<8>(taps, o, u, cout)
                                } else {
                                    kernel_block::<1>(taps, o, u, cout)
                                };
                            }
                        }
                    },
                )
            })
        });
    u
}

/// The taps of input channels `c0..` (as many as `taps` holds) as `taps[c][tap][o]`.
fn gather_taps(kernels: Kernels<'_>, cin: usize, cout: usize, c0: usize, taps: &mut [f32]) {
    let cs = taps.len() / (9 * cout);
    match kernels {
        Kernels::Own(w) => {
            for o0 in (0..cout).step_by(BLOCK) {
                for ci in 0..cs {
                    for tap in 0..9 {
                        let dst = &mut taps[(ci * 9 + tap) * cout..][..cout];
                        for o in o0..(o0 + BLOCK).min(cout) {
                            dst[o] = w[(o * cin + c0 + ci) * 9 + tap];
                        }
                    }
                }
            }
        }
        // Input channel c's kernels are one contiguous row of `w`.
        Kernels::Turned(w) => {
            for ci in 0..cs {
                let row = &w[(c0 + ci) * cout * 9..][..cout * 9];
                for tap in 0..9 {
                    let dst = &mut taps[(ci * 9 + tap) * cout..][..cout];
                    for (d, k) in dst.iter_mut().zip(row.chunks_exact(9)) {
                        *d = k[8 - tap];
                    }
                }
            }
        }
    }
}

/// `U[c][ξ][o]` for the `N` output channels from `o` of one input channel, from its taps
/// `[tap][o]`, vectorised across the output channels. Returns `N`.
#[inline(always)]
fn kernel_block<const N: usize>(taps: &[f32], o: usize, u: &mut [f32], cout: usize) -> usize {
    // Loops, not `array::from_fn`, which LLVM left as a call (perf).
    let mut k = [[0f32; N]; 9];
    for (tap, k) in k.iter_mut().enumerate() {
        k.copy_from_slice(&taps[tap * cout + o..][..N]);
    }
    // t = G g (4 × 3), then t Gᵀ (4 × 4).
    let mut t = [[[0f32; N]; 3]; 4];
    for j in 0..3 {
        for l in 0..N {
            let (a, b, d) = (k[j][l], k[3 + j][l], k[6 + j][l]);
            t[0][j][l] = a;
            t[1][j][l] = 0.5 * (a + b + d);
            t[2][j][l] = 0.5 * (a - b + d);
            t[3][j][l] = d;
        }
    }
    for (i, r) in t.iter().enumerate() {
        let mut row = [[0f32; N]; 4];
        for l in 0..N {
            row[0][l] = r[0][l];
            row[1][l] = 0.5 * (r[0][l] + r[1][l] + r[2][l]);
            row[2][l] = 0.5 * (r[0][l] - r[1][l] + r[2][l]);
            row[3][l] = r[2][l];
        }
        for (j, row) in row.iter().enumerate() {
            u[(i * 4 + j) * cout + o..][..N].copy_from_slice(row);
        }
    }
    N
}

/// Scratch elements [`transform_inputs`] needs per chunk: one plane's padded rows split into
/// even and odd columns.
fn row_scratch(g: &Geometry) -> usize {
    let (_, tw) = tile_grid(g);
    2 * (g.h + 3) * (tw + 1)
}

/// `V[c][ξ][tile] = (Bᵀ d B)[ξ]` for the chunk's tiles, `d` the 4×4 input patch of the tile
/// (zero outside the plane), `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`.
fn transform_inputs(g: &Geometry, x: &[f32], chunk: &Chunk, v: &mut [f32], scratch: &mut [f32]) {
    crate::cpu::simd::vectorized(
        #[inline(always)]
        || transform_inputs_loops(g, x, chunk, v, scratch),
    )
}

#[inline(always)]
fn transform_inputs_loops(
    g: &Geometry,
    x: &[f32],
    chunk: &Chunk,
    v: &mut [f32],
    scratch: &mut [f32],
) {
    let (th, tw) = tile_grid(g);
    let nt = chunk.tiles(tw);
    let plane = g.h * g.w;
    let pitch = tw + 1;
    // Padded rows 0..2·th + 2: row 0 and rows past h are zero. With the row padded by a zero
    // on the left, patch column j of tile tx is padded column 2tx + j: even[tx + j/2] for even
    // j, odd[tx + j/2] for odd j. Patch row k of tile row ty is padded row 2ty + k.
    let rows = 2 * th + 2;
    let (even, odd) = scratch[..2 * rows * pitch].split_at_mut(rows * pitch);
    {
        for c in 0..g.cin {
            let v = &mut v[c * XI * nt..][..XI * nt];
            for (i, b) in chunk.images.clone().enumerate() {
                let src = &x[(b * g.cin + c) * plane..][..plane];
                let first = 2 * chunk.rows.start;
                let last = 2 * chunk.rows.end + 2;
                for py in first..last {
                    let e = &mut even[py * pitch..][..pitch];
                    let o = &mut odd[py * pitch..][..pitch];
                    let y = py.wrapping_sub(1);
                    if y >= g.h {
                        e.fill(0.0);
                        o.fill(0.0);
                        continue;
                    }
                    let row = &src[y * g.w..][..g.w];
                    // Input column x is padded column x + 1.
                    e[0] = 0.0;
                    split_columns(row, o, &mut e[1..]);
                    if g.w % 2 == 1 {
                        o[tw - 1] = row[g.w - 1];
                        e[tw] = 0.0;
                    }
                    o[tw] = 0.0;
                }
                for (r, ty) in chunk.rows.clone().enumerate() {
                    let tile0 = chunk.row_start(i, r, tw);
                    let e = |k: usize| &even[(2 * ty + k) * pitch..][..tw + 1];
                    let o = |k: usize| &odd[(2 * ty + k) * pitch..][..tw + 1];
                    let (e0, e1, e2, e3) = (e(0), e(1), e(2), e(3));
                    let (o0, o1, o2, o3) = (o(0), o(1), o(2), o(3));
                    let mut t = 0;
                    while t < tw {
                        let left = tw - t;
                        t += if left >= 16 {
                            input_block::<16>([e0, e1, e2, e3], [o0, o1, o2, o3], t, v, nt, tile0)
                        } else if left >= 8 {
                            input_block::<8>([e0, e1, e2, e3], [o0, o1, o2, o3], t, v, nt, tile0)
                        } else if left >= 4 {
                            input_block::<4>([e0, e1, e2, e3], [o0, o1, o2, o3], t, v, nt, tile0)
                        } else {
                            input_block::<1>([e0, e1, e2, e3], [o0, o1, o2, o3], t, v, nt, tile0)
                        };
                    }
                }
            }
        }
    }
}

/// `N` tiles from `t` of one tile row: loads into local arrays, the transform on them, and
/// one store per output plane, so that the loop is vectorised whatever the slices' aliasing.
/// Returns `N`.
#[inline(always)]
fn input_block<const N: usize>(
    even: [&[f32]; 4],
    odd: [&[f32]; 4],
    t: usize,
    v: &mut [f32],
    nt: usize,
    tile0: usize,
) -> usize {
    let load = |s: &[f32], at: usize| -> [f32; N] { s[at..at + N].try_into().expect("N") };
    let mut h = [[[0f32; N]; 4]; 4];
    for k in 0..4 {
        let (d0, d1, d2, d3) = (
            load(even[k], t),
            load(odd[k], t),
            load(even[k], t + 1),
            load(odd[k], t + 1),
        );
        for l in 0..N {
            h[k][0][l] = d0[l] - d2[l];
            h[k][1][l] = d1[l] + d2[l];
            h[k][2][l] = d2[l] - d1[l];
            h[k][3][l] = d1[l] - d3[l];
        }
    }
    for j in 0..4 {
        let mut out = [[0f32; N]; 4];
        for l in 0..N {
            out[0][l] = h[0][j][l] - h[2][j][l];
            out[1][l] = h[1][j][l] + h[2][j][l];
            out[2][l] = h[2][j][l] - h[1][j][l];
            out[3][l] = h[1][j][l] - h[3][j][l];
        }
        for (i, out) in out.iter().enumerate() {
            v[(i * 4 + j) * nt + tile0 + t..][..N].copy_from_slice(out);
        }
    }
    N
}

/// `out[t] = row[2t]`, `odd_out[t] = row[2t + 1]` for the row's whole pairs.
#[inline(always)]
fn split_columns(row: &[f32], even_out: &mut [f32], odd_out: &mut [f32]) {
    let pairs = row.len() / 2;
    let mut t = 0;
    while t + 16 <= pairs {
        let block: &[f32; 32] = row[2 * t..2 * t + 32].try_into().expect("32");
        let mut e = [0f32; 16];
        let mut o = [0f32; 16];
        for l in 0..16 {
            e[l] = block[2 * l];
            o[l] = block[2 * l + 1];
        }
        even_out[t..t + 16].copy_from_slice(&e);
        odd_out[t..t + 16].copy_from_slice(&o);
        t += 16;
    }
    for t in t..pairs {
        even_out[t] = row[2 * t];
        odd_out[t] = row[2 * t + 1];
    }
}

/// Rows `(2ty, 2ty + 1)` × columns `(2tx, 2tx + 1)` of tile `t` from its 16 products.
#[inline(always)]
fn output_tile(m: &[&[f32]; 16], t: usize) -> [[f32; 2]; 2] {
    let s: [f32; 4] = std::array::from_fn(|j| m[j][t] + m[4 + j][t] + m[8 + j][t]);
    let d: [f32; 4] = std::array::from_fn(|j| m[4 + j][t] - m[8 + j][t] - m[12 + j][t]);
    [
        [s[0] + s[1] + s[2], s[1] - s[2] - s[3]],
        [d[0] + d[1] + d[2], d[1] - d[2] - d[3]],
    ]
}

/// [`output_tile`] for the `N` tiles from `t`, written to `top` and (when not empty) `bottom`
/// as `W = 2N` columns from `2t`. Returns `N`.
#[inline(always)]
fn output_block<const N: usize, const W: usize>(
    m: &[&[f32]; 16],
    t: usize,
    top: &mut [f32],
    bottom: &mut [f32],
) -> usize {
    let load = |s: &[f32]| -> [f32; N] { s[t..t + N].try_into().expect("N") };
    let mut ms = [[0f32; N]; 16];
    for (xi, v) in ms.iter_mut().enumerate() {
        *v = load(m[xi]);
    }
    // Down: s[j] = m0j + m1j + m2j (output row 2ty), d[j] = m1j − m2j − m3j;
    // across: column 2tx = s0 + s1 + s2, column 2tx + 1 = s1 − s2 − s3.
    let mut s = [[0f32; N]; 4];
    let mut d = [[0f32; N]; 4];
    for j in 0..4 {
        for l in 0..N {
            s[j][l] = ms[j][l] + ms[4 + j][l] + ms[8 + j][l];
            d[j][l] = ms[4 + j][l] - ms[8 + j][l] - ms[12 + j][l];
        }
    }
    let mut upper = [0f32; W];
    let mut lower = [0f32; W];
    for l in 0..N {
        upper[2 * l] = s[0][l] + s[1][l] + s[2][l];
        upper[2 * l + 1] = s[1][l] - s[2][l] - s[3][l];
        lower[2 * l] = d[0][l] + d[1][l] + d[2][l];
        lower[2 * l + 1] = d[1][l] - d[2][l] - d[3][l];
    }
    top[2 * t..2 * t + W].copy_from_slice(&upper);
    if !bottom.is_empty() {
        bottom[2 * t..2 * t + W].copy_from_slice(&lower);
    }
    N
}

/// `y[b][o][2ty + i][2tx + j] = (Aᵀ m A)[i][j]` for the chunk's tiles, `m[ξ] = M[o][ξ][tile]`,
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`; rows and columns past the plane are dropped.
fn transform_outputs(g: &Geometry, m: &[f32], chunk: &Chunk, y: &mut [f32]) {
    crate::cpu::simd::vectorized(
        #[inline(always)]
        || transform_outputs_loops(g, m, chunk, y),
    )
}

#[inline(always)]
fn transform_outputs_loops(g: &Geometry, m: &[f32], chunk: &Chunk, y: &mut [f32]) {
    let (_, tw) = tile_grid(g);
    let nt = chunk.tiles(tw);
    let plane = g.h * g.w;
    let (whole, odd_w) = (g.w / 2, g.w % 2 == 1);
    {
        for o in 0..g.cout {
            let m = &m[o * XI * nt..][..XI * nt];
            for (i, b) in chunk.images.clone().enumerate() {
                let dst = &mut y[(b * g.cout + o) * plane..][..plane];
                for (r, ty) in chunk.rows.clone().enumerate() {
                    let tile0 = chunk.row_start(i, r, tw);
                    let at = |xi: usize| &m[xi * nt + tile0..][..tw];
                    let (m0, m1, m2, m3) = (at(0), at(1), at(2), at(3));
                    let (m4, m5, m6, m7) = (at(4), at(5), at(6), at(7));
                    let (m8, m9, m10, m11) = (at(8), at(9), at(10), at(11));
                    let (m12, m13, m14, m15) = (at(12), at(13), at(14), at(15));
                    let y0 = 2 * ty;
                    let two_rows = y0 + 1 < g.h;
                    let (top, bottom) = dst[y0 * g.w..].split_at_mut(g.w);
                    let bottom = if two_rows {
                        &mut bottom[..g.w]
                    } else {
                        &mut [][..]
                    };
                    let ms = [
                        m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15,
                    ];
                    let mut t = 0;
                    while t < whole {
                        let left = whole - t;
                        t += if left >= 16 {
                            output_block::<16, 32>(&ms, t, top, bottom)
                        } else if left >= 8 {
                            output_block::<8, 16>(&ms, t, top, bottom)
                        } else if left >= 4 {
                            output_block::<4, 8>(&ms, t, top, bottom)
                        } else {
                            output_block::<1, 2>(&ms, t, top, bottom)
                        };
                    }
                    if odd_w {
                        let v = output_tile(&ms, whole);
                        top[g.w - 1] = v[0][0];
                        if two_rows {
                            bottom[g.w - 1] = v[1][0];
                        }
                    }
                }
            }
        }
    }
}

/// `y = conv(x, kernels)` for a geometry [`applies`] accepts; `constant` is the kernels'
/// tensor if they are constants, whose transform is then cached.
pub(crate) fn forward(
    g: &Geometry,
    x: &[f32],
    kernels: Kernels<'_>,
    constant: Option<&Tensor>,
) -> Result<Vec<f32>> {
    let mut y = crate::cpu::data::output_buffer(g.n * g.cout * g.h * g.w);
    let (data, form) = match kernels {
        Kernels::Own(w) => (w, Form::Winograd),
        Kernels::Turned(w) => (w, Form::WinogradTurned),
    };
    let constant = constant.map(|tensor| Constant { tensor, data });
    let u = kernel_cache::transformed(constant, (g.cin, g.cout), form, || {
        transform_kernels(g, kernels)
    });
    let (_, tw) = tile_grid(g);
    let chunks = chunks(g);
    let chunk_flops = |c: &Chunk| 2 * XI * c.tiles(tw) * g.cin * g.cout;
    // Chunks write disjoint parts of `y`, but a chunk of tile rows writes rows of every output
    // channel's plane of its image: each task owns its images' whole output, so chunks of one
    // image run in order inside one task.
    let per_image = g.cout * g.h * g.w;
    let mut tasks: Vec<(usize, Vec<&Chunk>)> = Vec::new();
    for c in &chunks {
        match tasks.last_mut() {
            Some((first, list)) if c.images.len() == 1 && *first == c.images.start => list.push(c),
            _ => tasks.push((c.images.start, vec![c])),
        }
    }
    let threads = product_threads(tasks.len(), chunk_flops(&chunks[0]));
    let mut parts: Vec<&mut [f32]> = Vec::with_capacity(tasks.len());
    let mut rest = y.as_mut_slice();
    for (i, (first, _)) in tasks.iter().enumerate() {
        let end = tasks.get(i + 1).map_or(g.n, |(next, _)| *next);
        let (part, tail) = rest.split_at_mut((end - first) * per_image);
        parts.push(part);
        rest = tail;
    }
    parts
        .into_par_iter()
        .zip(tasks)
        .with_min_len(min_tasks(chunk_flops(&chunks[0])))
        .try_for_each(|(y, (first, list))| {
            for chunk in list {
                let nt = chunk.tiles(tw);
                let (v_len, m_len) = (g.cin * XI * nt, g.cout * XI * nt);
                with_scratch(v_len + m_len + row_scratch(g), |scratch| {
                    let (v, rest) = scratch.split_at_mut(v_len);
                    let (m, rows) = rest.split_at_mut(m_len);
                    transform_inputs(g, x, chunk, v, rows);
                    for xi in 0..XI {
                        let lhs = View {
                            data: &u[xi * g.cout..],
                            rows: g.cout,
                            cols: g.cin,
                            row_stride: 1,
                            col_stride: XI * g.cout,
                        };
                        let rhs = View {
                            data: &v[xi * nt..],
                            rows: g.cin,
                            cols: nt,
                            row_stride: XI * nt,
                            col_stride: 1,
                        };
                        let dst = ViewMut {
                            data: &mut m[xi * nt..],
                            rows: g.cout,
                            cols: nt,
                            row_stride: XI * nt,
                            col_stride: 1,
                        };
                        matmul(dst, lhs, rhs, false, threads)?;
                    }
                    let local = Chunk {
                        images: chunk.images.start - first..chunk.images.end - first,
                        rows: chunk.rows.clone(),
                    };
                    transform_outputs(g, m, &local, y);
                    Ok::<_, candle_core::Error>(())
                })?;
            }
            Ok::<_, candle_core::Error>(())
        })?;
    Ok(y)
}

/// Batch partitions of the weight gradient, each summing its chunks into its own `∂U`; the
/// partitions' sums are added in order, so the result does not depend on the thread count.
const WGRAD_PARTITIONS: usize = 4;

/// `Z[tile][ξ][o] = (A dY Aᵀ)[ξ]` for the chunk's tiles, `dY` the 2×2 block of `∂loss/∂y` of
/// the tile (zero past the plane), `A = [[1, 0], [1, 1], [1, −1], [0, −1]]`: the gradient of the
/// forward's `M` (whose output transform is `Aᵀ M A`). Output channels side by side, so that
/// the product `Z_ξ · V_ξᵀ` has a layout `gemm` runs at full speed; with tiles side by side
/// (as `V` has them) its packing transposed both operands and took a third of the time (perf).
fn transform_output_grads(g: &Geometry, dy: &[f32], chunk: &Chunk, z: &mut [f32]) {
    crate::cpu::simd::vectorized(
        #[inline(always)]
        || transform_output_grads_loops(g, dy, chunk, z),
    )
}

#[inline(always)]
fn transform_output_grads_loops(g: &Geometry, dy: &[f32], chunk: &Chunk, z: &mut [f32]) {
    let (_, tw) = tile_grid(g);
    let plane = g.h * g.w;
    let mut o = 0;
    while o < g.cout {
        let left = g.cout - o;
        let n = if left >= 16 {
            16
        } else if left >= 8 {
            8
        } else {
            1
        };
        let mut tile = 0;
        for b in chunk.images.clone() {
            let planes = &dy[(b * g.cout + o) * plane..];
            for ty in chunk.rows.clone() {
                for tx in 0..tw {
                    let z = &mut z[tile * XI * g.cout + o..];
                    match n {
                        16 => output_grad_block::<16>(g, planes, ty, tx, z),
                        8 => output_grad_block::<8>(g, planes, ty, tx, z),
                        _ => output_grad_block::<1>(g, planes, ty, tx, z),
                    }
                    tile += 1;
                }
            }
        }
        o += n;
    }
}

/// [`transform_output_grads`] for `N` output channels of one tile: `planes` starts at the
/// first channel's plane, `z` at the tile's first channel.
#[inline(always)]
fn output_grad_block<const N: usize>(
    g: &Geometry,
    planes: &[f32],
    ty: usize,
    tx: usize,
    z: &mut [f32],
) {
    let plane = g.h * g.w;
    let at = |dy: usize, dx: usize| -> [f32; N] {
        let (y, x) = (2 * ty + dy, 2 * tx + dx);
        if y < g.h && x < g.w {
            let mut v = [0f32; N];
            for (l, v) in v.iter_mut().enumerate() {
                *v = planes[l * plane + y * g.w + x];
            }
            v
        } else {
            [0f32; N]
        }
    };
    let (a, b, c, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
    // A dY, row by row: (a, b), (a + c, b + d), (a − c, b − d), (−c, −d); then each row (p, q)
    // times Aᵀ: (p, p + q, p − q, −q).
    let mut rows = [[[0f32; N]; 2]; 4];
    for l in 0..N {
        rows[0][0][l] = a[l];
        rows[0][1][l] = b[l];
        rows[1][0][l] = a[l] + c[l];
        rows[1][1][l] = b[l] + d[l];
        rows[2][0][l] = a[l] - c[l];
        rows[2][1][l] = b[l] - d[l];
        rows[3][0][l] = -c[l];
        rows[3][1][l] = -d[l];
    }
    for (i, [p, q]) in rows.iter().enumerate() {
        let mut out = [[0f32; N]; 4];
        for l in 0..N {
            out[0][l] = p[l];
            out[1][l] = p[l] + q[l];
            out[2][l] = p[l] - q[l];
            out[3][l] = -q[l];
        }
        for (j, out) in out.iter().enumerate() {
            z[(i * 4 + j) * g.cout..][..N].copy_from_slice(out);
        }
    }
}

/// `∂loss/∂W[o][c] = Gᵀ ∂U[o][c] G` for every kernel, `∂U` as `[ξ][c][o]`,
/// `Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]]`.
fn untransform_kernel_grads(g: &Geometry, du: &[f32]) -> Vec<f32> {
    let (cin, cout) = (g.cin, g.cout);
    let mut dw = crate::cpu::data::output_buffer(cout * cin * 9);
    dw.par_chunks_mut(BLOCK * cin * 9)
        .enumerate()
        .for_each(|(block, dw)| {
            let o0 = block * BLOCK;
            let n = dw.len() / (cin * 9);
            crate::cpu::simd::vectorized(
                #[inline(always)]
                || {
                    for c in 0..cin {
                        if n == BLOCK {
                            kernel_grad_block::<BLOCK>(du, cin, cout, c, o0, dw);
                        } else {
                            for l in 0..n {
                                kernel_grad_block::<1>(
                                    du,
                                    cin,
                                    cout,
                                    c,
                                    o0 + l,
                                    &mut dw[l * cin * 9..],
                                );
                            }
                        }
                    }
                },
            )
        });
    dw
}

/// One input channel's `∂W` for the `N` output channels from `o` (`dw` starts at `o`'s row).
#[inline(always)]
fn kernel_grad_block<const N: usize>(
    du: &[f32],
    cin: usize,
    cout: usize,
    c: usize,
    o: usize,
    dw: &mut [f32],
) {
    let mut d = [[0f32; N]; XI];
    for (xi, d) in d.iter_mut().enumerate() {
        d.copy_from_slice(&du[(xi * cin + c) * cout + o..][..N]);
    }
    // Gᵀ D (3 × 4), then (Gᵀ D) G (3 × 3): a 4-vector r maps to
    // (r0 + ½(r1 + r2), ½(r1 − r2), ½(r1 + r2) + r3).
    let mut half = [[[0f32; N]; 4]; 3];
    for j in 0..4 {
        for l in 0..N {
            let (r0, r1, r2, r3) = (d[j][l], d[4 + j][l], d[8 + j][l], d[12 + j][l]);
            half[0][j][l] = r0 + 0.5 * (r1 + r2);
            half[1][j][l] = 0.5 * (r1 - r2);
            half[2][j][l] = 0.5 * (r1 + r2) + r3;
        }
    }
    let mut k = [[0f32; 9]; N];
    for (i, r) in half.iter().enumerate() {
        for l in 0..N {
            k[l][i * 3] = r[0][l] + 0.5 * (r[1][l] + r[2][l]);
            k[l][i * 3 + 1] = 0.5 * (r[1][l] - r[2][l]);
            k[l][i * 3 + 2] = 0.5 * (r[1][l] + r[2][l]) + r[3][l];
        }
    }
    for (l, taps) in k.iter().enumerate() {
        dw[(l * cin + c) * 9..][..9].copy_from_slice(taps);
    }
}

/// `∂loss/∂W` given `grad = ∂loss/∂y`, for a geometry [`applies`] accepts: per chunk, the
/// input tiles' `V` and the output gradient's `Z`, then `∂U_ξ += Z_ξ · V_ξᵀ` summed over the
/// chunk's tiles, and finally `Gᵀ ∂U G` per kernel. (`Z` as `[tile][ξ][o]`.)
pub(crate) fn kernel_grad(g: &Geometry, x: &[f32], grad: &[f32]) -> Result<Vec<f32>> {
    let (_, tw) = tile_grid(g);
    let chunks = chunks(g);
    let partitions = WGRAD_PARTITIONS.min(chunks.len());
    let per_partition = chunks.len().div_ceil(partitions);
    let du_len = XI * g.cin * g.cout;
    let chunk_flops = 2 * XI * chunks[0].tiles(tw) * g.cin * g.cout;
    let threads = product_threads(partitions, chunk_flops * per_partition);
    let sums: Vec<Vec<f32>> = chunks
        .par_chunks(per_partition)
        .map(|part| {
            // The first chunk's products write every element (`accumulate` false), the
            // others add to them.
            let mut du = crate::cpu::data::output_buffer(du_len);
            for (i, chunk) in part.iter().enumerate() {
                let nt = chunk.tiles(tw);
                let (v_len, z_len) = (g.cin * XI * nt, g.cout * XI * nt);
                with_scratch(v_len + z_len + row_scratch(g), |buf| {
                    let (v, rest) = buf.split_at_mut(v_len);
                    let (z, rows) = rest.split_at_mut(z_len);
                    transform_inputs(g, x, chunk, v, rows);
                    transform_output_grads(g, grad, chunk, z);
                    for xi in 0..XI {
                        // ∂U_ξ (C_out × C_in, as [c][o]) += Z_ξ (C_out × tiles) · V_ξᵀ.
                        let lhs = View {
                            data: &z[xi * g.cout..],
                            rows: g.cout,
                            cols: nt,
                            row_stride: 1,
                            col_stride: XI * g.cout,
                        };
                        let rhs = View {
                            data: &v[xi * nt..],
                            rows: nt,
                            cols: g.cin,
                            row_stride: 1,
                            col_stride: XI * nt,
                        };
                        let dst = ViewMut {
                            data: &mut du[xi * g.cin * g.cout..][..g.cin * g.cout],
                            rows: g.cout,
                            cols: g.cin,
                            row_stride: 1,
                            col_stride: g.cout,
                        };
                        matmul(dst, lhs, rhs, i > 0, threads)?;
                    }
                    Ok::<_, candle_core::Error>(())
                })?;
            }
            Ok(du)
        })
        .collect::<Result<_>>()?;
    let mut sums = sums.into_iter();
    let mut du = sums.next().expect("at least one partition");
    for part in sums {
        for (d, p) in du.iter_mut().zip(&part) {
            *d += p;
        }
    }
    Ok(untransform_kernel_grads(g, &du))
}
