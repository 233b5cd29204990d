//! Direct 3×3, padding-1 convolutions on AVX-512, with neither im2col nor the matrix product's
//! packing: the forward of stride-1 layers that keep their size (and through it their input
//! gradient, see `conv::cpu::as_forward`), and the weight gradient of stride 1 and 2.
//!
//! Each input plane is copied once into a *padded plane* of row pitch `P = w + 1`: one zero
//! column after every row (it is the right padding of its row and the left padding of the next)
//! and a zero row above and below. Kernel tap `(ky, kx)` of output position `(oy, ox)` reads
//! padded element `s·(oy·P + ox) + ky·P + kx` for stride `s`: every tap is the same plane
//! shifted, so the convolution is nine shifted multiply-adds per input channel.
//! * forward (stride 1): `y[o][j] = Σ_c Σ_tap W[o][c][tap] · xp[c][j + off(tap)]` over
//!   positions `j = oy·P + ox`, 16 per vector; a position with `ox = w` is a spare column,
//!   computed and dropped (1/(w+1) of the work, hence the width bound [`MIN_WIDTH`]).
//! * weight gradient: `dW[o][c][tap] = Σ_(oy,ox) dy[o][oy][ox] · xp[c][s·(oy·P + ox) + off(tap)]`,
//!   16 output channels per vector and the positions as the reduction (no spare column, any
//!   plane size), with `dy` transposed to position-major so that each position's output
//!   channels lie side by side.
//!
//! The register blocks (4 output channels × 96 positions forward, 9 taps × 48 output channels
//! backward) give 24 or 27 multiply-adds per 10 or 12 loads, and their operands stay in the L1
//! cache. Each result is a sum in a fixed order set by the shapes alone, so the bits do not
//! depend on the thread count, nor, forward, on the other images of the batch. Without
//! AVX-512 (or with AVX2 only) `conv::cpu`'s im2col path computes every shape.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ops::Range;

use candle_core::Result;
use rayon::prelude::*;

use crate::conv::cpu::{with_scratch, Geometry};

/// Narrowest input for which the direct kernels run: the forward's spare column costs
/// `1/(w+1)` of its work (measured in bench/NOTES.md, section 10).
const MIN_WIDTH: usize = 16;
/// Fewest input channels for which the direct kernels run. With fewer, the work per output
/// element is small and the per-element copies (the forward's output rows, the weight
/// gradient's transposed `dy`) cost as much as the products: a 3-channel stem measured slower.
const MIN_CHANNELS: usize = 16;
const LANES: usize = 16;
/// Output channels per forward register block.
const FWD_CHANNELS: usize = 4;
/// Vectors of positions per forward register block.
const FWD_VECTORS: usize = 6;
const FWD_POSITIONS: usize = FWD_VECTORS * LANES;
/// Parallel tasks of the weight gradient: batch partitions (each its own partial sum, added in
/// batch order) times groups of input channels (disjoint parts of the sum).
const WGRAD_TASKS: usize = 4;
/// Fewest output positions per batch partition: a partition's partial sum (`C_in·9·C_out`) is
/// written and read once per partition, which costs more than the products when a partition
/// has few positions (a 512-channel 4×4 layer, batch 32: 43 GFLOP/s with four partitions of
/// 128 positions, 118 with one).
const MIN_PARTITION_POSITIONS: usize = 1024;
/// Fewest output positions per weight-gradient pass: a pass adds into its task's part of the
/// sum, so that part's bytes over 2,048 (passes of at least one position per 2 KiB of the part
/// it updates) keep the sum's traffic small, while the pass's panels of `dyᵀ` (`positions ×
/// 48`) and rows of padded planes stay in the L1 and L2 caches.
const MIN_PASS_POSITIONS: usize = 128;
const MAX_PASS_POSITIONS: usize = 4096;

thread_local! {
    /// Set by tests to run the im2col path on shapes the direct kernels would take.
    static DISABLED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the direct kernels off on this thread (for tests that compare both paths).
#[cfg(test)]
pub(crate) fn without<R>(f: impl FnOnce() -> R) -> R {
    crate::conv::cpu::with_path_off(&DISABLED, f)
}

/// Whether the direct kernels compute `g` on this CPU.
pub(crate) fn applies(g: &Geometry) -> bool {
    g.k == 3
        && g.stride == 1
        && g.padding == 1
        && g.oh == g.h
        && g.ow == g.w
        && g.w >= MIN_WIDTH
        && g.n > 0
        && g.cin >= MIN_CHANNELS
        && g.cout > 0
        && !DISABLED.with(Cell::get)
        && avx512()
}

/// Whether the direct weight gradient computes `g`: a 3×3 kernel with padding 1 and stride 1
/// or 2, on planes of any size (its positions are a sum, so no spare column), with output
/// channels that fill its 16-wide vectors.
pub(crate) fn applies_to_weight_grad(g: &Geometry) -> bool {
    g.k == 3
        && g.padding == 1
        && (g.stride == 1 || g.stride == 2)
        && g.n > 0
        && g.oh > 0
        && g.ow > 0
        && g.cin >= MIN_CHANNELS
        && g.cout.is_multiple_of(LANES)
        && g.cout > 0
        && !DISABLED.with(Cell::get)
        && avx512()
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Layout of one padded plane.
#[derive(Clone, Copy, Debug)]
struct Padded {
    pitch: usize,
    /// Positions the forward computes: the image's rows in the padded pitch, rounded up to
    /// whole register blocks.
    span: usize,
    /// Elements per padded plane: every tap of every computed position lies inside.
    len: usize,
    /// Tap offsets `ky·P + kx`.
    taps: [usize; 9],
}

impl Padded {
    /// The forward reads every tap of `span` positions; the weight gradient only those of
    /// real output positions, the last of which reads below `(h + 2)·pitch`.
    fn new(g: &Geometry, forward: bool) -> Self {
        let pitch = g.w + 1;
        let span = (g.h * pitch).div_ceil(FWD_POSITIONS) * FWD_POSITIONS;
        let taps = std::array::from_fn(|t| (t / 3) * pitch + t % 3);
        let len = match forward {
            true => span + 2 * pitch + 2,
            false => (g.h + 2) * pitch + 2,
        };
        Self {
            pitch,
            span,
            len,
            taps,
        }
    }

    /// Copies `channels` planes of `h × w` from `src` into `dst` (`channels · len`), zeroing
    /// the padding.
    fn fill(&self, g: &Geometry, src: &[f32], channels: usize, dst: &mut [f32]) {
        let first = self.pitch + 1;
        for (plane, padded) in src
            .chunks_exact(g.h * g.w)
            .zip(dst.chunks_exact_mut(self.len))
            .take(channels)
        {
            padded[..first].fill(0.0);
            for (r, row) in plane.chunks_exact(g.w).enumerate() {
                let at = first + r * self.pitch;
                padded[at..at + g.w].copy_from_slice(row);
                padded[at + g.w] = 0.0;
            }
            padded[first + g.h * self.pitch..].fill(0.0);
        }
    }
}

/// `y = conv(x, w)`; `g` must satisfy [`applies`].
pub(crate) fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Result<Vec<f32>> {
    let pad = Padded::new(g, true);
    let blocks = g.cout.div_ceil(FWD_CHANNELS);
    // `[block][c][tap][4]`: each multiply-add step broadcasts four consecutive weights.
    let mut packed = vec![0f32; blocks * g.cin * 9 * FWD_CHANNELS];
    for o in 0..g.cout {
        let (b, r) = (o / FWD_CHANNELS, o % FWD_CHANNELS);
        for c in 0..g.cin {
            for t in 0..9 {
                packed[((b * g.cin + c) * 9 + t) * FWD_CHANNELS + r] = w[(o * g.cin + c) * 9 + t];
            }
        }
    }
    let plane = g.h * g.w;
    // Where each vector of each register block goes in an output plane (as every image's).
    let stores: Vec<Stores> = (0..pad.span)
        .step_by(FWD_POSITIONS)
        .map(|j| block_stores(g, &pad, j))
        .collect();
    let mut y = crate::cpu::data::output_buffer(g.n * g.cout * plane);
    let image_flops = 18 * g.cin * g.cout * plane;
    y.par_chunks_mut(g.cout * plane)
        .zip(x.par_chunks(g.cin * plane))
        .with_min_len(4_000_000usize.div_ceil(image_flops))
        .for_each(|(y, x)| {
            with_scratch(g.cin * pad.len, |xp| {
                pad.fill(g, x, g.cin, xp);
                for b in 0..blocks {
                    let w = &packed[b * g.cin * 9 * FWD_CHANNELS..][..g.cin * 9 * FWD_CHANNELS];
                    let channels = b * FWD_CHANNELS..((b + 1) * FWD_CHANNELS).min(g.cout);
                    let y = &mut y[channels.start * plane..channels.end * plane];
                    for (j, stores) in (0..pad.span).step_by(FWD_POSITIONS).zip(&stores) {
                        forward_block(xp, &pad, g.cin, w, j, y, stores);
                    }
                }
            });
        });
    Ok(y)
}

/// Where the lanes of a register block's vectors go in an output plane of `plane` elements:
/// per vector up to two runs (a row's end, the next row's start; the spare column between them
/// dropped), each as its lane mask and the plane index of lane 0, so that a masked store at
/// `plane + index` puts each lane of the run in its place. Built only by [`block_stores`],
/// which checks that every masked lane lies inside the plane.
struct Stores {
    runs: [[(u16, isize); 2]; FWD_VECTORS],
    plane: usize,
}

/// The [`Stores`] of the register block at position `j`.
fn block_stores(g: &Geometry, pad: &Padded, j: usize) -> Stores {
    let mut stores = [[(0u16, 0isize); 2]; FWD_VECTORS];
    for (v, runs) in stores.iter_mut().enumerate() {
        let (mut lane, mut run) = (0, 0);
        while lane < LANES {
            let q = j + v * LANES + lane;
            let (oy, ox) = (q / pad.pitch, q % pad.pitch);
            if oy >= g.h {
                break;
            }
            if ox == g.w {
                lane += 1;
                continue;
            }
            let len = (LANES - lane).min(g.w - ox);
            // A pitch over 16 puts at most one spare column among 16 lanes: two runs.
            assert!(run < 2, "conv2d (direct): more than two runs in a vector");
            let mask = (((1u32 << len) - 1) << lane) as u16;
            runs[run] = (mask, (oy * g.w + ox) as isize - lane as isize);
            run += 1;
            lane += len;
        }
    }
    let plane = g.h * g.w;
    assert!(
        stores.iter().flatten().all(|&(mask, at)| {
            (0..LANES as isize)
                .filter(|l| mask & (1 << l) != 0)
                .all(|l| (0..plane as isize).contains(&(at + l)))
        }),
        "conv2d (direct): an output lane outside its plane"
    );
    Stores {
        runs: stores,
        plane,
    }
}

/// One forward register block: positions `j..j + 96` of up to four output channels, stored
/// into their planes of `y` (`stores.plane` elements each).
fn forward_block(
    xp: &[f32],
    pad: &Padded,
    cin: usize,
    w: &[f32],
    j: usize,
    y: &mut [f32],
    stores: &Stores,
) {
    let plane = stores.plane;
    let channels = y.len() / plane.max(1);
    assert!(
        xp.len() >= cin * pad.len
            && j + FWD_POSITIONS <= pad.span
            && w.len() >= cin * 9 * FWD_CHANNELS
            && (1..=FWD_CHANNELS).contains(&channels)
            && y.len() == channels * plane,
        "conv2d (direct): block out of its buffers"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (`applies`). Every load reads `xp[c·len + j + tap + i]`
    // with `i < 96`, `tap ≤ 2·pitch + 2` and `j + 96 ≤ span`, so below `c·len + len` with
    // `len = span + 2·pitch + 2`; weights up to `cin·36`. Each masked store writes only the
    // lanes of its mask, at `y[r·plane + at + lane]` for `r < channels`: inside `y` by the
    // check above and `block_stores`'s.
    unsafe {
        avx512::forward_block(
            xp.as_ptr(),
            pad,
            cin,
            w.as_ptr(),
            j,
            y.as_mut_ptr(),
            channels,
            stores,
        )
    }
}

/// `∂loss/∂W` given `grad = ∂loss/∂y`; `g` must satisfy [`applies_to_weight_grad`].
pub(crate) fn kernel_grad(g: &Geometry, x: &[f32], grad: &[f32]) -> Result<Vec<f32>> {
    let pad = Padded::new(g, false);
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let partitions = (g.n * plane_out / MIN_PARTITION_POSITIONS).clamp(1, WGRAD_TASKS.min(g.n));
    let per_partition = g.n.div_ceil(partitions);
    let groups = WGRAD_TASKS
        .div_ceil(partitions)
        .min(g.cin / MIN_CHANNELS)
        .max(1);
    let per_group = g.cin.div_ceil(groups);
    let pass_positions =
        (per_group * 9 * g.cout * 4 / 2048).clamp(MIN_PASS_POSITIONS, MAX_PASS_POSITIONS);
    let images_per_pass = pass_positions.div_ceil(plane_out).clamp(1, per_partition);
    let rows_per_pass = match images_per_pass {
        1 => (pass_positions / g.ow).clamp(1, g.oh),
        _ => g.oh,
    };
    let blocks = output_blocks(g.cout);
    let dyt_len = plane_out * g.cout;
    // Partition i's sum, `[c][tap][o]`, split by channel group into the tasks' parts.
    let part_len = g.cin * 9 * g.cout;
    let mut parts = vec![0f32; partitions * part_len];
    let mut tasks = Vec::with_capacity(partitions * groups);
    for (i, mut rest) in parts.chunks_mut(part_len).enumerate() {
        let images = i * per_partition..((i + 1) * per_partition).min(g.n);
        for c in (0..g.cin).step_by(per_group) {
            let channels = c..(c + per_group).min(g.cin);
            let (part, tail) = rest.split_at_mut(channels.len() * 9 * g.cout);
            rest = tail;
            tasks.push((part, channels, images.clone()));
        }
    }
    let task_flops = 18 * per_group * g.cout * plane_out * per_partition;
    tasks
        .into_par_iter()
        .with_min_len(4_000_000usize.div_ceil(task_flops))
        .for_each(|(part, channels, images)| {
            let xp_len = channels.len() * pad.len;
            with_scratch(images_per_pass * (xp_len + dyt_len), |scratch| {
                let (xp, dyt) = scratch.split_at_mut(images_per_pass * xp_len);
                for first in images.clone().step_by(images_per_pass) {
                    let pass = first..(first + images_per_pass).min(images.end);
                    // Each pass's images padded and transposed just before their use, while
                    // they are in the cache (done for the whole batch beforehand, the 32×32
                    // layers measured 10–30 % slower). With channel groups, each group
                    // transposes the same `dy`: only on small planes (few positions).
                    for (i, b) in pass.clone().enumerate() {
                        let x = &x[(b * g.cin + channels.start) * plane_in..]
                            [..channels.len() * plane_in];
                        pad.fill(g, x, channels.len(), &mut xp[i * xp_len..][..xp_len]);
                        let dy = &grad[b * dyt_len..][..dyt_len];
                        let dyt = &mut dyt[i * dyt_len..][..dyt_len];
                        transpose_in_panels(dy, plane_out, &blocks, dyt);
                    }
                    for r in (0..g.oh).step_by(rows_per_pass) {
                        let rows = r..(r + rows_per_pass).min(g.oh);
                        let pass = Pass {
                            images: pass.len(),
                            rows,
                            channels: channels.len(),
                        };
                        weight_grad_pass(g, &pad, &pass, xp, dyt, &blocks, part);
                    }
                }
            });
        });
    // Σ over partitions in batch order, then `[c][tap][o]` → `[o][c][tap]`.
    let (sum, rest) = parts.split_at_mut(part_len);
    for part in rest.chunks_exact(part_len) {
        for (s, v) in sum.iter_mut().zip(part) {
            *s += v;
        }
    }
    let mut dw = crate::cpu::data::output_buffer(g.cout * g.cin * 9);
    transpose(sum, g.cout, g.cin * 9, g.cout, &mut dw, g.cin * 9);
    Ok(dw)
}

/// `dst[j·dst_stride + i] = src[i·src_stride + j]` for `i < rows`, `j < cols`: whole 16×16
/// tiles in AVX-512 registers, the edges element by element. (Element by element throughout,
/// the transposes took about a fifth of the weight gradient's time: measured in
/// bench/NOTES.md, section 10.)
fn transpose(
    src: &[f32],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        cols <= src_stride
            && rows <= dst_stride
            && (rows - 1) * src_stride + cols <= src.len()
            && (cols - 1) * dst_stride + rows <= dst.len(),
        "conv2d (direct): transpose out of its buffers"
    );
    let (full_rows, full_cols) = match avx512() {
        true => (rows / LANES * LANES, cols / LANES * LANES),
        false => (0, 0),
    };
    {
        for i in (0..full_rows).step_by(LANES) {
            for j in (0..full_cols).step_by(LANES) {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX-512F is present. The tile reads `src[(i + r)·src_stride + j + c]`
                // and writes `dst[(j + c)·dst_stride + i + r]` for `r, c < 16`, inside both
                // slices by the check above (`i + 16 ≤ rows`, `j + 16 ≤ cols`).
                unsafe {
                    avx512::transpose16(
                        src[i * src_stride + j..].as_ptr(),
                        src_stride,
                        dst[j * dst_stride + i..].as_mut_ptr(),
                        dst_stride,
                    )
                }
            }
        }
    }
    // The edges: the last rows whole, then the last columns of the other rows.
    let edges = (full_rows..rows)
        .flat_map(|i| (0..cols).map(move |j| (i, j)))
        .chain((0..full_rows).flat_map(|i| (full_cols..cols).map(move |j| (i, j))));
    for (i, j) in edges {
        dst[j * dst_stride + i] = src[i * src_stride + j];
    }
}

/// Blocks of output channels of the weight gradient: 48 wide, 32 + 32 for a last 64 (rather
/// than 48 + 16, whose 16-wide block loads one vector per nine multiply-adds), then the rest.
fn output_blocks(cout: usize) -> Vec<Range<usize>> {
    let mut blocks = Vec::new();
    let mut o = 0;
    while o < cout {
        let width = match cout - o {
            64 => 2 * LANES,
            rest => rest.min(3 * LANES),
        };
        blocks.push(o..o + width);
        o += width;
    }
    blocks
}

/// `dy` (`[o][p]`, `positions` per channel) transposed into one panel per block of output
/// channels, `[p][o − block.start]` at `block.start · positions`: each position's channels of a
/// block side by side, and a block's rows contiguous (rows a whole `C_out` apart would fall
/// into a few sets of the L1 cache when `C_out` is 256 or more).
fn transpose_in_panels(dy: &[f32], positions: usize, blocks: &[Range<usize>], dst: &mut [f32]) {
    for block in blocks {
        let panel = &mut dst[block.start * positions..][..block.len() * positions];
        let dy = &dy[block.start * positions..][..block.len() * positions];
        transpose(dy, positions, block.len(), positions, panel, block.len());
    }
}

/// What one weight-gradient pass covers: output rows `rows` of the first `images` images of
/// its padded planes (`channels` per image) and of `dyᵀ`.
struct Pass {
    images: usize,
    rows: Range<usize>,
    channels: usize,
}

/// Adds `pass`'s weight gradient into `part` (`[c][tap][o]` of the pass's channels): each
/// input channel against every block of output channels.
fn weight_grad_pass(
    g: &Geometry,
    pad: &Padded,
    pass: &Pass,
    xp: &[f32],
    dyt: &[f32],
    blocks: &[Range<usize>],
    part: &mut [f32],
) {
    let (xp_len, dyt_len) = (pass.channels * pad.len, g.oh * g.ow * g.cout);
    assert!(
        pass.rows.end <= g.oh
            && xp.len() >= pass.images * xp_len
            && dyt.len() >= pass.images * dyt_len
            && part.len() >= pass.channels * 9 * g.cout
            && blocks
                .iter()
                .all(|b| b.end <= g.cout && b.len().is_multiple_of(LANES) && b.len() <= 3 * LANES),
        "conv2d (direct): weight-gradient buffers too small"
    );
    for c in 0..pass.channels {
        for block in blocks {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present (`applies_to_weight_grad`). Reads, for image
            // `i < images`: `dyt[i·dyt_len + o₀·positions + p·width + v]` with position
            // `p < oh·ow` and `v < width` (the block's panel); `xp[i·xp_len + c·len
            // + s·oy·pitch + s·ox + tap]`, below `i·xp_len + c·len + (h+2)·pitch ≤ i·xp_len
            // + (c+1)·len` (`Padded::new`). Reads and writes of `part[(c·9 + tap)·cout + o]`,
            // `o` in the block. All inside, checked above.
            unsafe {
                avx512::weight_grad_pass(
                    g,
                    pad,
                    pass,
                    xp[c * pad.len..].as_ptr(),
                    dyt.as_ptr(),
                    part[c * 9 * g.cout..].as_mut_ptr(),
                    block.clone(),
                )
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{Padded, Pass, Stores, FWD_CHANNELS, FWD_VECTORS, LANES};
    use crate::conv::cpu::Geometry;

    /// One register block of the direct forward: `channels` (at most `FWD_CHANNELS`) output
    /// planes of `y` at the `FWD_VECTORS × LANES` positions from `j`, from the padded input
    /// planes at `xp` and the repacked kernel at `w` (see `super::forward_block`).
    ///
    /// # Safety
    /// The CPU must have AVX-512F. For every input channel `c < cin`, `xp` must be readable
    /// over `c·pad.len + j + tap + i` for every tap of `pad.taps` and `i < FWD_VECTORS·LANES`;
    /// `w` over `cin·9·FWD_CHANNELS` elements; and for `r < channels` each lane that a mask of
    /// `stores.runs` selects, at `r·stores.plane + at + lane`, must be writable in `y` (lanes
    /// outside the masks are never touched, so their addresses may lie outside `y`).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn forward_block(
        xp: *const f32,
        pad: &Padded,
        cin: usize,
        w: *const f32,
        j: usize,
        y: *mut f32,
        channels: usize,
        stores: &Stores,
    ) {
        let mut acc = [[_mm512_setzero_ps(); FWD_VECTORS]; FWD_CHANNELS];
        for c in 0..cin {
            let xc = xp.add(c * pad.len + j);
            let wc = w.add(c * 9 * FWD_CHANNELS);
            for (t, &tap) in pad.taps.iter().enumerate() {
                let xt = xc.add(tap);
                let xs: [__m512; FWD_VECTORS] =
                    std::array::from_fn(|v| _mm512_loadu_ps(xt.add(v * LANES)));
                let wt = wc.add(t * FWD_CHANNELS);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let wr = _mm512_set1_ps(*wt.add(r));
                    for (a, x) in acc.iter_mut().zip(&xs) {
                        *a = _mm512_fmadd_ps(wr, *x, *a);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(channels) {
            let plane_r = y.wrapping_add(r * stores.plane);
            for (a, runs) in acc.iter().zip(&stores.runs) {
                for &(mask, at) in runs.iter().filter(|(mask, _)| *mask != 0) {
                    // Lane 0's address may lie outside the plane; the masked lanes do not.
                    _mm512_mask_storeu_ps(plane_r.wrapping_offset(at), mask, *a);
                }
            }
        }
    }

    /// Transposes the 16×16 tile at `src` (rows `src_stride` apart) into `dst` (rows
    /// `dst_stride` apart): interleaved pairs of rows, then pairs of pairs, then 128-bit
    /// quarters twice.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `src` must be readable at `r·src_stride + c` and `dst`
    /// writable at `c·dst_stride + r` for all `r, c < 16`, and the two tiles must not overlap.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose16(
        src: *const f32,
        src_stride: usize,
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * src_stride)));
        // Per 128-bit lane L: t[2k] = (r[2k][4L], r[2k+1][4L], r[2k][4L+1], r[2k+1][4L+1]),
        // t[2k+1] the same for elements 4L+2 and 4L+3.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            match i & 1 {
                0 => _mm512_unpacklo_ps(a, b),
                _ => _mm512_unpackhi_ps(a, b),
            }
        });
        // u[4q + e], lane L: element 4L + e of rows 4q .. 4q + 3.
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let (q, e) = (i / 4, i % 4);
            let a = _mm512_castps_pd(t[4 * q + e / 2]);
            let b = _mm512_castps_pd(t[4 * q + 2 + e / 2]);
            _mm512_castpd_ps(match e % 2 {
                0 => _mm512_unpacklo_pd(a, b),
                _ => _mm512_unpackhi_pd(a, b),
            })
        });
        // v[e] (e < 4): lanes (element e, rows 0–3), (e + 8, rows 0–3), (e, rows 4–7),
        // (e + 8, rows 4–7); v[4 + e] the same for e + 4 and e + 12; v[8 ..] for rows 8–15.
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (half, odd, e) = (i / 8, (i / 4) % 2, i % 4);
            let (a, b) = (u[8 * half + e], u[8 * half + 4 + e]);
            match odd {
                0 => _mm512_shuffle_f32x4::<0x88>(a, b),
                _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
            }
        });
        for c in 0..16 {
            // Column c: rows 0–15 of element c.
            let (e, high) = (c % 8, c / 8);
            let (a, b) = (v[e], v[8 + e]);
            let col = match high {
                0 => _mm512_shuffle_f32x4::<0x88>(a, b),
                _ => _mm512_shuffle_f32x4::<0xdd>(a, b),
            };
            _mm512_storeu_ps(dst.add(c * dst_stride), col);
        }
    }

    /// `part[tap][o] += Σ dyt[p][o] · xc[p' + tap]` over the positions `p` of `pass` (`p'`
    /// the same position in the padded pitch, times the stride) and the output channels
    /// `block`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and `block` must be 16, 32 or 48 output channels starting
    /// at a multiple of 16 below `g.cout`. For each image `i < pass.images`, `dyt` must be
    /// readable over the block's panel, `i·oh·ow·cout + block.start·oh·ow + p·block.len() + v`
    /// for positions `p < oh·ow` and `v < block.len()`; `xc` over `i·pass.channels·pad.len
    /// + s·oy·pad.pitch + s·ox + tap` for the rows `oy` of `pass.rows`, `ox < ow` and every
    /// tap of `pad.taps`; and `part` readable and writable at `tap·g.cout + o` for the nine
    /// taps and every `o` of `block`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad_pass(
        g: &Geometry,
        pad: &Padded,
        pass: &Pass,
        xc: *const f32,
        dyt: *const f32,
        part: *mut f32,
        block: Range<usize>,
    ) {
        match block.len() / LANES {
            3 => weight_grad_block::<3>(g, pad, pass, xc, dyt, part, block.start),
            2 => weight_grad_block::<2>(g, pad, pass, xc, dyt, part, block.start),
            _ => weight_grad_block::<1>(g, pad, pass, xc, dyt, part, block.start),
        }
    }

    /// [`weight_grad_pass`] for `V` vectors (`16·V` output channels) from channel `o`.
    ///
    /// # Safety
    /// As [`weight_grad_pass`], with `block = o..o + 16·V`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn weight_grad_block<const V: usize>(
        g: &Geometry,
        pad: &Padded,
        pass: &Pass,
        xc: *const f32,
        dyt: *const f32,
        part: *mut f32,
        o: usize,
    ) {
        let (xp_len, dyt_len) = (pass.channels * pad.len, g.oh * g.ow * g.cout);
        let s = g.stride;
        let mut acc: [[__m512; V]; 9] = std::array::from_fn(|t| {
            std::array::from_fn(|v| _mm512_loadu_ps(part.add(t * g.cout + o + v * LANES)))
        });
        for i in 0..pass.images {
            let panel = dyt.add(i * dyt_len + o * g.oh * g.ow);
            for oy in pass.rows.clone() {
                let dy_row = panel.add(oy * g.ow * V * LANES);
                let x_row = xc.add(i * xp_len + s * oy * pad.pitch);
                for ox in 0..g.ow {
                    let dy = dy_row.add(ox * V * LANES);
                    let d: [__m512; V] =
                        std::array::from_fn(|v| _mm512_loadu_ps(dy.add(v * LANES)));
                    let x = x_row.add(s * ox);
                    for (acc, &tap) in acc.iter_mut().zip(&pad.taps) {
                        let xb = _mm512_set1_ps(*x.add(tap));
                        for (a, d) in acc.iter_mut().zip(&d) {
                            *a = _mm512_fmadd_ps(xb, *d, *a);
                        }
                    }
                }
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            for (v, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(part.add(t * g.cout + o + v * LANES), *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_matches_its_definition_on_whole_tiles_and_edges() {
        for (rows, cols, src_stride, dst_stride) in [
            (16, 16, 16, 16),
            (48, 32, 40, 50),
            (37, 21, 21, 37),
            (5, 70, 71, 5),
        ] {
            let src: Vec<f32> = (0..rows * src_stride).map(|v| v as f32).collect();
            let mut dst = vec![-1f32; cols * dst_stride];
            transpose(&src, src_stride, rows, cols, &mut dst, dst_stride);
            for j in 0..cols {
                for i in 0..dst_stride {
                    let want = if i < rows {
                        src[i * src_stride + j]
                    } else {
                        -1.0
                    };
                    assert_eq!(dst[j * dst_stride + i], want, "{rows}x{cols} ({i}, {j})");
                }
            }
        }
    }
}
