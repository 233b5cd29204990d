//! 2-D convolution (square kernel, no bias, groups or dilation) for `f32` NCHW tensors on the
//! CPU in all three directions, as packed matrix products (`cpu::gemm`) over tiles of output
//! positions.
//!
//! With `T` output positions of a tile, `K = C_in·k²` and the tile's im2col matrix `col` (`T×K`):
//! * forward:       `y(T×C_out)   = col · Wᵀ`;
//! * input grad:    `dcol(T×K)    = dy · W`, scattered back onto `dx` (col2im);
//! * weight grad:   `dW(C_out×K) += dyᵀ · col`, summed over all tiles.
//!
//! A tile is a band of output rows of one image, or several whole images when one image has
//! few output positions; its im2col matrix is sized to stay in the core's L2 cache and lives in
//! a per-thread scratch buffer that persists between calls, so a step allocates only its outputs.
//! 1×1 stride-1 convolutions skip im2col and col2im: they are one matrix product per image.
//!
//! Threads: forward and input gradient split the batch into groups of images (disjoint parts of
//! the output); the weight gradient splits the kernel's input channels into groups and, for
//! narrow layers, the batch into a fixed number of partitions whose partial sums are added in a
//! fixed order. The split depends on the shapes only, never on the thread count, so results are
//! bit-identical on any number of threads. When there are fewer tasks than threads, the matrix
//! products themselves run multi-threaded.

use std::cell::Cell;
use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::gemm::{matmul, View, ViewMut};

/// Bytes of a tile's im2col matrix: well inside a 1 MiB L2, leaving room for the GEMM's own
/// packed panels.
const TILE_BYTES: usize = 256 * 1024;
/// Fewest output positions per tile (the GEMM's `m`): below this the products get inefficient,
/// so small images are grouped.
const MIN_TILE_COLUMNS: usize = 256;
/// Bytes of the input gradient's im2col-shaped product per group of input channels: its
/// product writes it and col2im reads it back, so it should stay in the L2 cache (a whole
/// 512-channel 4×4 tile is 4.7 MB: measured in bench/NOTES.md, section 10).
const DCOL_BYTES: usize = 512 * 1024;
/// Fewest im2col columns (`K`) per channel group of the weight gradient.
const MIN_GROUP_DEPTH: usize = 128;
/// Parallel tasks the weight gradient aims for (channel groups × batch partitions).
const WEIGHT_GRAD_TASKS: usize = 4;
/// Fewest floating-point operations worth a task of their own: smaller pieces of work are
/// cheaper done in place than handed to another thread (which, on a busy machine, may not run
/// for a while).
const MIN_TASK_FLOPS: usize = 4_000_000;

/// Sizes of one convolution, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Geometry {
    /// Checks that an NCHW input of dims `x` fits an OIHW kernel of dims `kernel`.
    pub fn new(x: &[usize], kernel: &[usize], stride: usize, padding: usize) -> Result<Self> {
        let (&[n, cin, h, w], &[cout, cin_k, k, k2]) = (x, kernel) else {
            candle_core::bail!("conv2d: expected 4-D input and kernel, got {x:?} and {kernel:?}");
        };
        let padded = |len: usize| padding.checked_mul(2).and_then(|p| p.checked_add(len));
        let fits = |len: usize| padded(len).is_some_and(|l| l >= k);
        if cin != cin_k || k != k2 || k == 0 || stride == 0 || !fits(h) || !fits(w) {
            candle_core::bail!(
                "conv2d: input {x:?} does not fit kernel {kernel:?} (stride {stride}, padding {padding})"
            );
        }
        let out = |len: usize| padded(len).map(|l| (l - k) / stride + 1).unwrap_or(0);
        Ok(Self {
            n,
            cin,
            h,
            w,
            cout,
            k,
            oh: out(h),
            ow: out(w),
            stride,
            padding,
        })
    }

    fn kk(&self) -> usize {
        self.k * self.k
    }

    fn depth(&self) -> usize {
        self.cin * self.kk()
    }

    fn plane_in(&self) -> usize {
        self.h * self.w
    }

    fn plane_out(&self) -> usize {
        self.oh * self.ow
    }

    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.padding == 0
    }

    /// Output positions `o` whose input position `o·stride + tap − padding` lies in `[0, len)`.
    fn valid(&self, tap: usize, len: usize, out_len: usize) -> Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = if tap >= p { 0 } else { (p - tap).div_ceil(s) };
        let hi = if len + p > tap {
            ((len + p - tap - 1) / s + 1).min(out_len)
        } else {
            0
        };
        lo.min(hi)..hi
    }

    /// Images per group: one if an image has enough output positions, else enough images to
    /// fill a tile.
    fn images_per_group(&self) -> usize {
        MIN_TILE_COLUMNS
            .div_ceil(self.plane_out().max(1))
            .clamp(1, self.n.max(1))
    }

    /// Input channels per im2col group of the forward: the group's im2col matrix (at most
    /// [`DCOL_BYTES`]) stays in the L2 cache while the product packs it. Sized on the tile a
    /// full group of images would have, never on the batch, so that the split of the sum, and
    /// with it an image's bits, do not depend on the rest of its batch.
    fn forward_channel_group(&self) -> usize {
        let images = MIN_TILE_COLUMNS.div_ceil(self.plane_out().max(1));
        let columns = match images {
            1 => self.rows_per_tile() * self.ow,
            _ => images * self.plane_out(),
        };
        let most = (DCOL_BYTES / 4 / (columns * self.kk()).max(1)).clamp(1, self.cin.max(1));
        self.cin.max(1).div_ceil(self.cin.max(1).div_ceil(most))
    }

    /// Output rows per tile of a one-image group.
    fn rows_per_tile(&self) -> usize {
        if self.pointwise() {
            return self.oh;
        }
        let columns = (TILE_BYTES / 4 / self.depth()).max(MIN_TILE_COLUMNS);
        (columns / self.ow.max(1)).clamp(1, self.oh.max(1))
    }

    /// The tiles of the group of images `images`.
    fn tiles(&self, images: Range<usize>) -> Vec<Tile> {
        if images.len() > 1 {
            return vec![Tile {
                images,
                rows: 0..self.oh,
            }];
        }
        let step = self.rows_per_tile();
        (0..self.oh)
            .step_by(step)
            .map(|r| Tile {
                images: images.clone(),
                rows: r..(r + step).min(self.oh),
            })
            .collect()
    }

    /// Groups of images, as ranges of the batch.
    fn groups(&self) -> Vec<Range<usize>> {
        let per = self.images_per_group();
        (0..self.n)
            .step_by(per)
            .map(|b| b..(b + per).min(self.n))
            .collect()
    }
}

/// Output positions of some images (all of their rows if more than one image).
#[derive(Debug, Clone)]
struct Tile {
    images: Range<usize>,
    rows: Range<usize>,
}

impl Tile {
    fn columns(&self, g: &Geometry) -> usize {
        self.images.len() * self.rows.len() * g.ow
    }

    /// `(image, output row, first column)` of each output row in the tile, in column order.
    fn row_starts<'a>(
        &'a self,
        g: &'a Geometry,
    ) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        let per_image = self.rows.len() * g.ow;
        self.images.clone().enumerate().flat_map(move |(i, b)| {
            self.rows
                .clone()
                .enumerate()
                .map(move |(r, oy)| (b, oy, i * per_image + r * g.ow))
        })
    }
}

thread_local! {
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer of at least `len` elements (contents unspecified).
/// The buffer is taken out of its slot while in use, so a nested call (rayon may run another
/// task on this thread inside a multi-threaded product) gets a buffer of its own.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let out = f(&mut buf[..len]);
    SCRATCH.with(|slot| {
        let other = slot.take();
        slot.set(if other.len() > buf.len() { other } else { buf });
    });
    out
}

/// Runs `f` with a path's per-thread off switch set (tests that compare a kernel path with
/// the ones it replaces).
#[cfg(test)]
pub(crate) fn with_path_off<R>(
    switch: &'static std::thread::LocalKey<Cell<bool>>,
    f: impl FnOnce() -> R,
) -> R {
    switch.with(|d| d.set(true));
    let out = f();
    switch.with(|d| d.set(false));
    out
}

/// Threads each product may use when only `tasks` products of `flops` each run side by side.
pub(crate) fn product_threads(tasks: usize, flops: usize) -> usize {
    let threads = rayon::current_num_threads();
    if tasks < threads && flops >= threads * MIN_TASK_FLOPS {
        threads
    } else {
        1
    }
}

/// Consecutive tasks of `flops` each one thread should take at the least.
pub(crate) fn min_tasks(flops: usize) -> usize {
    MIN_TASK_FLOPS.div_ceil(flops.max(1))
}

/// For a stride-1 convolution whose output rows are as wide as its input rows, the taps of one
/// kernel position over the output rows `rows` of an image read one contiguous run of the input
/// plane: output position `j` (counted from the first of those rows, `rows.start ≥ 0` valid for
/// `ky`) reads input element `j + base`. Returns `base` and the range of `j` whose input
/// element lies inside the plane (the others are padding, as are the edge columns).
fn shifted_run(g: &Geometry, rows: &Range<usize>, ky: usize, kx: usize) -> (isize, Range<usize>) {
    let base = ((rows.start + ky - g.padding) * g.w) as isize + kx as isize - g.padding as isize;
    let len = rows.len() * g.ow;
    let lo = (-base).max(0) as usize;
    let hi = (g.plane_in() as isize - base).clamp(0, len as isize) as usize;
    (base, lo.min(hi)..hi)
}

/// Zeroes the columns outside `cols` of every output row in `run` (rows of `g.ow`).
#[inline(always)]
fn zero_edge_columns(g: &Geometry, run: &mut [f32], cols: &Range<usize>) {
    for o in (0..cols.start).chain(cols.end..g.ow) {
        for v in run.iter_mut().skip(o).step_by(g.ow) {
            *v = 0.0;
        }
    }
}

/// Writes the im2col rows of input channels `channels` for `tile` into `col` (`[kk][T]`,
/// zeros where a tap falls into the padding). `x` starts at the tile's first image.
fn im2col(g: &Geometry, x: &[f32], tile: &Tile, channels: Range<usize>, col: &mut [f32]) {
    crate::cpu::simd::vectorized(
        #[inline(always)]
        || im2col_loops(g, x, tile, channels, col),
    )
}

#[inline(always)]
fn im2col_loops(g: &Geometry, x: &[f32], tile: &Tile, channels: Range<usize>, col: &mut [f32]) {
    if g.stride == 2 && g.k > 1 {
        return im2col_stride2(g, x, tile, channels, col);
    }
    let t = tile.columns(g);
    let first = tile.images.start;
    let per_image = tile.rows.len() * g.ow;
    let same_width = g.stride == 1 && g.ow == g.w;
    for (c, ci) in channels.enumerate() {
        for ky in 0..g.k {
            let rows = g.valid(ky, g.h, g.oh);
            for kx in 0..g.k {
                let cols = g.valid(kx, g.w, g.ow);
                let out = &mut col[((c * g.k + ky) * g.k + kx) * t..][..t];
                if same_width {
                    // One copy per image instead of one per output row.
                    for (i, b) in tile.images.clone().enumerate() {
                        let out = &mut out[i * per_image..][..per_image];
                        let src = &x[((b - first) * g.cin + ci) * g.plane_in()..][..g.plane_in()];
                        let valid = tile.rows.start.max(rows.start)..tile.rows.end.min(rows.end);
                        if valid.is_empty() {
                            out.fill(0.0);
                            continue;
                        }
                        let lo = (valid.start - tile.rows.start) * g.ow;
                        let hi = lo + valid.len() * g.ow;
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        let run = &mut out[lo..hi];
                        let (base, inside) = shifted_run(g, &valid, ky, kx);
                        run[..inside.start].fill(0.0);
                        run[inside.end..].fill(0.0);
                        let from = (inside.start as isize + base) as usize;
                        run[inside.clone()].copy_from_slice(&src[from..from + inside.len()]);
                        zero_edge_columns(g, run, &cols);
                    }
                    continue;
                }
                for (b, oy, start) in tile.row_starts(g) {
                    let dst = &mut out[start..start + g.ow];
                    if !rows.contains(&oy) || cols.is_empty() {
                        dst.fill(0.0);
                        continue;
                    }
                    let iy = oy * g.stride + ky - g.padding;
                    let src = &x[((b - first) * g.cin + ci) * g.plane_in() + iy * g.w..][..g.w];
                    dst[..cols.start].fill(0.0);
                    dst[cols.end..].fill(0.0);
                    let ix0 = cols.start * g.stride + kx - g.padding;
                    if g.stride == 1 {
                        dst[cols.clone()].copy_from_slice(&src[ix0..ix0 + cols.len()]);
                    } else {
                        for (d, ix) in dst[cols.clone()].iter_mut().zip((ix0..).step_by(g.stride)) {
                            *d = src[ix];
                        }
                    }
                }
            }
        }
    }
}

/// The parity and shift of tap `kx` of a stride-2 convolution: output column `ox` reads input
/// column `2·(ox + shift) + parity`, element `ox + shift` of the row's even or odd half.
#[inline(always)]
fn stride2_tap(g: &Geometry, kx: usize) -> (usize, isize) {
    let q = kx as isize - g.padding as isize;
    (q.rem_euclid(2) as usize, q.div_euclid(2))
}

/// Even and odd elements of `row` into `halves[0]` and `halves[1]`.
#[inline(always)]
fn deinterleave(row: &[f32], halves: &mut [Vec<f32>; 2]) {
    let [even, odd] = halves;
    let pairs = row.chunks_exact(2);
    if let [last] = pairs.remainder() {
        even[row.len() / 2] = *last;
    }
    for ((pair, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// The row halves of a stride-2 im2col: an input row's even and odd elements.
fn row_halves(g: &Geometry) -> [Vec<f32>; 2] {
    [vec![0f32; g.w.div_ceil(2)], vec![0f32; g.w / 2]]
}

/// [`im2col_loops`] for stride 2 and kernels wider than 1: each input row a tap row reads is
/// split into its even and odd elements once, and each of its `k` taps is then a contiguous
/// copy from one half instead of a strided gather (bench/NOTES.md, section 14: the forward of
/// the stride-2 3×3 layers with 32 and 64 input channels 1.16–1.21× faster, the wider ones
/// unchanged; the same split for col2im measured slower, and for 1×1 kernels, one tap per
/// row, it does not pay).
#[inline(always)]
fn im2col_stride2(g: &Geometry, x: &[f32], tile: &Tile, channels: Range<usize>, col: &mut [f32]) {
    let t = tile.columns(g);
    let first = tile.images.start;
    let mut halves = row_halves(g);
    for (c, ci) in channels.enumerate() {
        for ky in 0..g.k {
            let rows = g.valid(ky, g.h, g.oh);
            let taps = &mut col[(c * g.k + ky) * g.k * t..][..g.k * t];
            for (b, oy, start) in tile.row_starts(g) {
                if !rows.contains(&oy) {
                    for kx in 0..g.k {
                        taps[kx * t + start..][..g.ow].fill(0.0);
                    }
                    continue;
                }
                let iy = oy * 2 + ky - g.padding;
                let src = &x[((b - first) * g.cin + ci) * g.plane_in() + iy * g.w..][..g.w];
                deinterleave(src, &mut halves);
                for kx in 0..g.k {
                    let dst = &mut taps[kx * t + start..][..g.ow];
                    let cols = g.valid(kx, g.w, g.ow);
                    if cols.is_empty() {
                        dst.fill(0.0);
                        continue;
                    }
                    dst[..cols.start].fill(0.0);
                    dst[cols.end..].fill(0.0);
                    let (parity, shift) = stride2_tap(g, kx);
                    let from = (cols.start as isize + shift) as usize;
                    dst[cols.clone()].copy_from_slice(&halves[parity][from..from + cols.len()]);
                }
            }
        }
    }
}

/// [`col2im_loops`] for the 3×3 stride-2 layers with padding 1. Output column `ox`'s taps land
/// on input columns `2ox − 1`, `2ox` and `2ox + 1`, so a kernel row's three taps add into an
/// input row in one pass over its column pairs instead of three strided passes; each element
/// gets its terms in the general path's order (taps 0, 1, 2), so the bits are the same.
#[inline(always)]
fn col2im_stride2_3x3(
    g: &Geometry,
    col: &[f32],
    tile: &Tile,
    channels: Range<usize>,
    dx: &mut [f32],
) {
    let t = tile.columns(g);
    let first = tile.images.start;
    for (c, ci) in channels.enumerate() {
        for ky in 0..3 {
            let rows = g.valid(ky, g.h, g.oh);
            let taps = &col[(c * 3 + ky) * 3 * t..][..3 * t];
            for (b, oy, start) in tile.row_starts(g) {
                if !rows.contains(&oy) {
                    continue;
                }
                let iy = oy * 2 + ky - 1;
                let row = &mut dx[((b - first) * g.cin + ci) * g.plane_in() + iy * g.w..][..g.w];
                let tap = |kx: usize| &taps[kx * t + start..][..g.ow];
                add_stride2_3x3_taps([tap(0), tap(1), tap(2)], row);
            }
        }
    }
}

/// `row[2m] += s1[m]`, `row[2m + 1] += s0[m + 1]`, then `+= s2[m]`, wherever those columns
/// exist (`s0[0]` falls on column −1, the padding); each `s` has `⌈w/2⌉` output columns.
#[inline(always)]
fn add_stride2_3x3_taps([s0, s1, s2]: [&[f32]; 3], row: &mut [f32]) {
    let w = row.len();
    // Column pairs whose odd column gets both of its terms: all but the last output column's.
    let both = (s1.len() - 1).min(w / 2);
    let mut pairs = row.chunks_exact_mut(2);
    for (((pair, a), b), c) in pairs.by_ref().take(both).zip(s1).zip(&s0[1..]).zip(s2) {
        pair[0] += a;
        pair[1] = pair[1] + b + c;
    }
    // The last output column: its even column, and its odd one if the row has it.
    let m = s1.len() - 1;
    row[2 * m] += s1[m];
    if 2 * m + 1 < w {
        row[2 * m + 1] += s2[m];
    }
}

/// Adds the im2col-shaped `col` (`[kk][T]` for the input channels `channels`) of `tile` onto
/// `dx`, which starts at the tile's first image.
fn col2im(g: &Geometry, col: &mut [f32], tile: &Tile, channels: Range<usize>, dx: &mut [f32]) {
    crate::cpu::simd::vectorized(
        #[inline(always)]
        || col2im_loops(g, col, tile, channels, dx),
    )
}

#[inline(always)]
fn col2im_loops(
    g: &Geometry,
    col: &mut [f32],
    tile: &Tile,
    channels: Range<usize>,
    dx: &mut [f32],
) {
    if g.stride == 2 && g.k == 3 && g.padding == 1 {
        return col2im_stride2_3x3(g, col, tile, channels, dx);
    }
    let t = tile.columns(g);
    let first = tile.images.start;
    let per_image = tile.rows.len() * g.ow;
    let same_width = g.stride == 1 && g.ow == g.w;
    for (c, ci) in channels.enumerate() {
        for ky in 0..g.k {
            let rows = g.valid(ky, g.h, g.oh);
            for kx in 0..g.k {
                let cols = g.valid(kx, g.w, g.ow);
                if cols.is_empty() {
                    continue;
                }
                let src_row = &mut col[((c * g.k + ky) * g.k + kx) * t..][..t];
                if same_width {
                    // One long add per image: the edge columns, whose taps fall into the
                    // padding, are zeroed first (they would land on the neighbouring row).
                    for (i, b) in tile.images.clone().enumerate() {
                        let src = &mut src_row[i * per_image..][..per_image];
                        let valid = tile.rows.start.max(rows.start)..tile.rows.end.min(rows.end);
                        if valid.is_empty() {
                            continue;
                        }
                        let lo = (valid.start - tile.rows.start) * g.ow;
                        let run = &mut src[lo..lo + valid.len() * g.ow];
                        zero_edge_columns(g, run, &cols);
                        let (base, inside) = shifted_run(g, &valid, ky, kx);
                        let plane =
                            &mut dx[((b - first) * g.cin + ci) * g.plane_in()..][..g.plane_in()];
                        let from = (inside.start as isize + base) as usize;
                        for (d, s) in plane[from..from + inside.len()]
                            .iter_mut()
                            .zip(&run[inside])
                        {
                            *d += s;
                        }
                    }
                    continue;
                }
                let src_row = &*src_row;
                for (b, oy, start) in tile.row_starts(g) {
                    if !rows.contains(&oy) {
                        continue;
                    }
                    let iy = oy * g.stride + ky - g.padding;
                    let dst =
                        &mut dx[((b - first) * g.cin + ci) * g.plane_in() + iy * g.w..][..g.w];
                    let src = &src_row[start + cols.start..start + cols.end];
                    let ix0 = cols.start * g.stride + kx - g.padding;
                    if g.stride == 1 {
                        for (d, s) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        for (s, ix) in src.iter().zip((ix0..).step_by(g.stride)) {
                            dst[ix] += s;
                        }
                    }
                }
            }
        }
    }
}

/// `[co][T]` copy of the output-shaped planes of `src` (which starts at the tile's first image)
/// over the tile's positions: the tile's rows of a multi-image tile are not one strided matrix.
fn gather_planes(g: &Geometry, src: &[f32], tile: &Tile, channels: usize, out: &mut [f32]) {
    let t = tile.columns(g);
    let per_image = tile.rows.len() * g.ow;
    for (i, _) in tile.images.clone().enumerate() {
        for c in 0..channels {
            let plane = &src[(i * channels + c) * g.plane_out() + tile.rows.start * g.ow..];
            out[c * t + i * per_image..][..per_image].copy_from_slice(&plane[..per_image]);
        }
    }
}

/// The tile's positions of the output-shaped planes `src` (`channels` of them per image;
/// `src` starts at the tile's first image) as a `T × channels` matrix: a strided view of `src`
/// for a one-image tile, else a copy gathered into `gathered` (`channels · T` elements).
fn tile_view<'a>(
    g: &Geometry,
    src: &'a [f32],
    tile: &Tile,
    channels: usize,
    gathered: &'a mut [f32],
) -> View<'a> {
    let t = tile.columns(g);
    if tile.images.len() == 1 {
        return View {
            data: &src[tile.rows.start * g.ow..],
            rows: t,
            cols: channels,
            row_stride: 1,
            col_stride: g.plane_out(),
        };
    }
    gather_planes(g, src, tile, channels, gathered);
    View {
        data: gathered,
        rows: t,
        cols: channels,
        row_stride: 1,
        col_stride: t,
    }
}

/// `y = conv(x, w)`; `constant` is `w`'s tensor if it is a constant kernel, whose
/// transforms are then cached (`conv::kernel_cache`).
pub(crate) fn forward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    constant: Option<&Tensor>,
) -> Result<Vec<f32>> {
    if crate::conv::winograd::applies(g) {
        let kernels = crate::conv::winograd::Kernels::Own(w);
        return crate::conv::winograd::forward(g, x, kernels, constant);
    }
    if crate::conv::direct::applies(g) {
        return crate::conv::direct::forward(g, x, w);
    }
    if g.cin == 0 {
        // No channel group to write the output: it is the empty sum.
        return Ok(vec![0f32; g.n * g.cout * g.plane_out()]);
    }
    let mut y = crate::cpu::data::output_buffer(g.n * g.cout * g.plane_out());
    if y.is_empty() {
        return Ok(y);
    }
    let groups = g.groups();
    let group_flops = 2 * g.images_per_group() * g.plane_out() * g.depth() * g.cout;
    let threads = product_threads(groups.len(), group_flops);
    // Wᵀ as a K × C_out matrix.
    let wt = View {
        data: w,
        rows: g.depth(),
        cols: g.cout,
        row_stride: 1,
        col_stride: g.depth(),
    };
    y.par_chunks_mut(g.images_per_group() * g.cout * g.plane_out())
        .zip(groups)
        .with_min_len(min_tasks(group_flops))
        .try_for_each(|(y, images)| {
            let x =
                &x[images.start * g.cin * g.plane_in()..][..images.len() * g.cin * g.plane_in()];
            if g.pointwise() && images.len() == 1 {
                let p = g.plane_in();
                let lhs = View {
                    data: x,
                    rows: p,
                    cols: g.cin,
                    row_stride: 1,
                    col_stride: p,
                };
                let dst = ViewMut {
                    data: y,
                    rows: p,
                    cols: g.cout,
                    row_stride: 1,
                    col_stride: p,
                };
                return matmul(dst, lhs, wt, false, threads);
            }
            let per_group = g.forward_channel_group();
            for tile in g.tiles(images) {
                let t = tile.columns(g);
                let one_image = tile.images.len() == 1;
                let out_len = if one_image { 0 } else { g.cout * t };
                let col_len = per_group * g.kk() * t;
                with_scratch(col_len + out_len, |scratch| {
                    let (col, out) = scratch.split_at_mut(col_len);
                    // y = Σ over channel groups of col_group · W_groupᵀ, in channel order.
                    let mut product = |dst: ViewMut<'_>| {
                        for (i, c) in (0..g.cin).step_by(per_group).enumerate() {
                            let channels = c..(c + per_group).min(g.cin);
                            let depth = channels.len() * g.kk();
                            let col = &mut col[..depth * t];
                            im2col(g, x, &tile, channels.clone(), col);
                            let lhs = View {
                                data: col,
                                rows: t,
                                cols: depth,
                                row_stride: 1,
                                col_stride: t,
                            };
                            let rhs = View {
                                data: &w[channels.start * g.kk()..],
                                rows: depth,
                                ..wt
                            };
                            let dst = ViewMut {
                                data: &mut *dst.data,
                                ..dst
                            };
                            matmul(dst, lhs, rhs, i > 0, threads)?;
                        }
                        Ok::<_, candle_core::Error>(())
                    };
                    if one_image {
                        let y = &mut y[tile.rows.start * g.ow..];
                        return product(ViewMut {
                            data: y,
                            rows: t,
                            cols: g.cout,
                            row_stride: 1,
                            col_stride: g.plane_out(),
                        });
                    }
                    product(ViewMut {
                        data: out,
                        rows: t,
                        cols: g.cout,
                        row_stride: 1,
                        col_stride: t,
                    })?;
                    let p = g.plane_out();
                    for (i, y) in y.chunks_mut(g.cout * p).enumerate() {
                        for (c, plane) in y.chunks_mut(p).enumerate() {
                            plane.copy_from_slice(&out[c * t + i * p..][..p]);
                        }
                    }
                    Ok::<_, candle_core::Error>(())
                })?;
            }
            Ok(())
        })?;
    Ok(y)
}

/// `∂loss/∂x` given `grad = ∂loss/∂y`; `constant` as in [`forward`].
pub(crate) fn input_grad(
    g: &Geometry,
    grad: &[f32],
    w: &[f32],
    constant: Option<&Tensor>,
) -> Result<Vec<f32>> {
    if let Some(transposed) = transposed(g) {
        if crate::conv::winograd::applies_to_input_grad(&transposed, constant.is_some()) {
            let turned = crate::conv::winograd::Kernels::Turned(w);
            return crate::conv::winograd::forward(&transposed, grad, turned, constant);
        }
    }
    if let Some((transposed, flipped)) = as_forward(g, w) {
        return forward(&transposed, grad, &flipped, None);
    }
    let mut dx = vec![0f32; g.n * g.cin * g.plane_in()];
    if dx.is_empty() || g.plane_out() == 0 {
        return Ok(dx);
    }
    let groups = g.groups();
    let group_flops = 2 * g.images_per_group() * g.plane_out() * g.depth() * g.cout;
    let threads = product_threads(groups.len(), group_flops);
    // W as a C_out × K matrix.
    let wm = View {
        data: w,
        rows: g.cout,
        cols: g.depth(),
        row_stride: g.depth(),
        col_stride: 1,
    };
    dx.par_chunks_mut(g.images_per_group() * g.cin * g.plane_in())
        .zip(groups)
        .with_min_len(min_tasks(group_flops))
        .try_for_each(|(dx, images)| {
            let p = g.plane_out();
            let grad = &grad[images.start * g.cout * p..][..images.len() * g.cout * p];
            if g.pointwise() && images.len() == 1 {
                let lhs = View {
                    data: grad,
                    rows: p,
                    cols: g.cout,
                    row_stride: 1,
                    col_stride: p,
                };
                let dst = ViewMut {
                    data: dx,
                    rows: p,
                    cols: g.cin,
                    row_stride: 1,
                    col_stride: p,
                };
                return matmul(dst, lhs, wm, false, threads);
            }
            for tile in g.tiles(images) {
                let t = tile.columns(g);
                let one_image = tile.images.len() == 1;
                let gathered = if one_image { 0 } else { g.cout * t };
                // The tile's dcol in groups of input channels small enough to stay in the L2
                // cache between the product that writes it and col2im that reads it.
                let most = (DCOL_BYTES / 4 / (t * g.kk()).max(1)).clamp(1, g.cin);
                let per_group = g.cin.div_ceil(g.cin.div_ceil(most));
                with_scratch(per_group * g.kk() * t + gathered, |scratch| {
                    let (dcol, gathered) = scratch.split_at_mut(per_group * g.kk() * t);
                    let lhs = tile_view(g, grad, &tile, g.cout, gathered);
                    for c in (0..g.cin).step_by(per_group) {
                        let channels = c..(c + per_group).min(g.cin);
                        let depth = channels.len() * g.kk();
                        let dcol = &mut dcol[..depth * t];
                        let rhs = View {
                            data: &w[channels.start * g.kk()..],
                            cols: depth,
                            ..wm
                        };
                        let dst = ViewMut {
                            data: dcol,
                            rows: t,
                            cols: depth,
                            row_stride: 1,
                            col_stride: t,
                        };
                        matmul(dst, lhs, rhs, false, threads)?;
                        col2im(g, dcol, &tile, channels, dx);
                    }
                    Ok::<_, candle_core::Error>(())
                })?;
            }
            Ok(())
        })?;
    Ok(dx)
}

/// Fewest input channels for which [`as_forward`] computes an input gradient: with fewer, its
/// product has too few output columns (measured: 3 and 16 channels slower, 32 and more faster).
const MIN_FORWARD_INPUT_GRAD_CHANNELS: usize = 32;
/// Fewest output positions per image for which [`as_forward`] is used. The turned kernel costs
/// about a nanosecond per weight, which the product repays only when each weight meets enough
/// positions: with attacks' parts of 16 images, 8×8 images give 1,024 (the turn ~10 % of the
/// product's time) and 4×4 images 256 (about a third). A bound per image, not per batch, so
/// that an image's gradient takes the same path, and has the same bits, whatever its batch.
const MIN_FORWARD_INPUT_GRAD_PLANE: usize = 64;

/// The forward convolution that computes the input gradient of `g`, for a stride-1
/// convolution whose output has its input's size, other than 1×1 (see [`as_forward`]).
fn transposed(g: &Geometry) -> Option<Geometry> {
    let same = g.stride == 1 && 2 * g.padding + 1 == g.k && g.oh == g.h && g.ow == g.w;
    if !same || g.pointwise() {
        return None;
    }
    Geometry::new(
        &[g.n, g.cout, g.oh, g.ow],
        &[g.cin, g.cout, g.k, g.k],
        1,
        g.k - 1 - g.padding,
    )
    .ok()
}

/// A stride-1 convolution whose output has its input's size, other than 1×1, as the forward
/// convolution that computes its input gradient: `dx = conv(dy, W')` with `W'[c][o]` the
/// kernel `W[o][c]` turned by 180°, padded by `k − 1 − padding`. That product reduces over
/// `C_out·k²` and writes `dx` once, where the col2im form reduces over `C_out` only and adds
/// `k²` partial images into `dx` (measured in bench/NOTES.md, section 9). Taken where the
/// bounds below say it pays, and wherever the direct kernels compute that forward convolution
/// for 16 input channels or more (their narrow layers included: measured in section 10).
fn as_forward(g: &Geometry, w: &[f32]) -> Option<(Geometry, Vec<f32>)> {
    let transposed = transposed(g)?;
    let pays =
        g.cin >= MIN_FORWARD_INPUT_GRAD_CHANNELS && g.plane_out() >= MIN_FORWARD_INPUT_GRAD_PLANE;
    // The direct forward's blocks of four output channels would run a 3-channel stem's
    // gradient a quarter empty: measured slower than col2im there.
    let direct = crate::conv::direct::applies(&transposed) && g.cin >= 16;
    if !pays && !direct {
        return None;
    }
    let kk = g.kk();
    let mut flipped = vec![0f32; w.len()];
    // In blocks of 16 × 16 kernels, so that both sides stay in the cache.
    for o0 in (0..g.cout).step_by(16) {
        for c0 in (0..g.cin).step_by(16) {
            for o in o0..(o0 + 16).min(g.cout) {
                for c in c0..(c0 + 16).min(g.cin) {
                    let src = &w[(o * g.cin + c) * kk..][..kk];
                    let dst = &mut flipped[(c * g.cout + o) * kk..][..kk];
                    for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                        *d = *s;
                    }
                }
            }
        }
    }
    Some((transposed, flipped))
}

/// `∂loss/∂W` given `grad = ∂loss/∂y`.
pub(crate) fn kernel_grad(g: &Geometry, x: &[f32], grad: &[f32]) -> Result<Vec<f32>> {
    if crate::conv::winograd::applies_to_weight_grad(g) {
        return crate::conv::winograd::kernel_grad(g, x, grad);
    }
    if crate::conv::direct::applies_to_weight_grad(g) {
        return crate::conv::direct::kernel_grad(g, x, grad);
    }
    let depth = g.depth();
    let mut dw = vec![0f32; g.cout * depth];
    if dw.is_empty() || g.n == 0 || g.plane_out() == 0 {
        return Ok(dw);
    }
    // Input channels per group, and batch partitions (of image groups) per channel group.
    let per_group = g
        .cin
        .div_ceil((depth / MIN_GROUP_DEPTH).clamp(1, WEIGHT_GRAD_TASKS));
    let channel_groups: Vec<Range<usize>> = (0..g.cin)
        .step_by(per_group)
        .map(|c| c..(c + per_group).min(g.cin))
        .collect();
    let image_groups = g.groups();
    let partitions = WEIGHT_GRAD_TASKS
        .div_ceil(channel_groups.len())
        .min(image_groups.len());
    let per_partition = image_groups.len().div_ceil(partitions);
    let tasks: Vec<(Range<usize>, &[Range<usize>])> = channel_groups
        .iter()
        .flat_map(|c| {
            image_groups
                .chunks(per_partition)
                .map(move |p| (c.clone(), p))
        })
        .collect();
    let task_flops = 2 * g.n * g.plane_out() * g.depth() * g.cout / tasks.len();
    let threads = product_threads(tasks.len(), task_flops);
    // Task i's partial gradient, `[co][channels of its group · k²]`, at `offsets[i]`.
    let mut offsets = vec![0usize];
    for (c, _) in &tasks {
        offsets.push(offsets.last().copied().unwrap_or(0) + g.cout * c.len() * g.kk());
    }
    let total = offsets.last().copied().unwrap_or(0);
    let mut parts = SCRATCH.with(Cell::take);
    parts.clear();
    parts.resize(total, 0.0);
    let mut slices: Vec<&mut [f32]> = Vec::with_capacity(tasks.len());
    let mut rest = &mut parts[..];
    for (c, _) in &tasks {
        let (head, tail) = rest.split_at_mut(g.cout * c.len() * g.kk());
        slices.push(head);
        rest = tail;
    }
    let result = slices
        .into_par_iter()
        .zip(&tasks)
        .with_min_len(min_tasks(task_flops))
        .try_for_each(|(part, (channels, partition))| {
            let rows = channels.len() * g.kk();
            for images in *partition {
                let p = g.plane_out();
                let x = &x[images.start * g.cin * g.plane_in()..]
                    [..images.len() * g.cin * g.plane_in()];
                let grad = &grad[images.start * g.cout * p..][..images.len() * g.cout * p];
                for tile in g.tiles(images.clone()) {
                    let t = tile.columns(g);
                    let one_image = tile.images.len() == 1;
                    let direct = g.pointwise() && one_image;
                    let col_len = if direct { 0 } else { rows * t };
                    let gathered = if one_image { 0 } else { g.cout * t };
                    with_scratch(col_len + gathered, |scratch| {
                        let (col, gathered) = scratch.split_at_mut(col_len);
                        // colᵀ restricted to the group's channels, K_group × T.
                        let lhs = if direct {
                            let data = &x[channels.start * g.plane_in()..];
                            View {
                                data,
                                rows,
                                cols: t,
                                row_stride: g.plane_in(),
                                col_stride: 1,
                            }
                        } else {
                            im2col(g, x, &tile, channels.clone(), col);
                            View {
                                data: col,
                                rows,
                                cols: t,
                                row_stride: t,
                                col_stride: 1,
                            }
                        };
                        let rhs = tile_view(g, grad, &tile, g.cout, gathered);
                        let dst = ViewMut {
                            data: part,
                            rows,
                            cols: g.cout,
                            row_stride: 1,
                            col_stride: rows,
                        };
                        matmul(dst, lhs, rhs, true, threads)
                    })?;
                }
            }
            Ok::<_, candle_core::Error>(())
        });
    if result.is_ok() {
        // Partials in task order: channel group by channel group, partitions in batch order.
        for ((channels, _), range) in tasks.iter().zip(offsets.windows(2)) {
            let part = &parts[range[0]..range[1]];
            let width = channels.len() * g.kk();
            for (co, row) in dw.chunks_mut(depth).enumerate() {
                let dst = &mut row[channels.start * g.kk()..][..width];
                for (d, s) in dst.iter_mut().zip(&part[co * width..][..width]) {
                    *d += s;
                }
            }
        }
    }
    SCRATCH.with(|slot| {
        let other = slot.take();
        slot.set(if other.len() > parts.len() {
            other
        } else {
            parts
        });
    });
    result.map(|()| dw)
}

/// The convolution as a custom op on `(x, kernel)`, whose backward computes only the gradients
/// autograd will use: an attack's constant weights get none, nor does a training batch.
#[derive(Debug, Clone)]
pub(crate) struct GemmConv2d {
    pub stride: usize,
    pub padding: usize,
    /// The kernel the op is applied to, if it tracks no gradient: its transforms may then be
    /// cached (`conv::kernel_cache`).
    pub constant: Option<Tensor>,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    crate::cpu::data::slice(s, l, "conv2d", what)
}

fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    crate::cpu::data::with_slice(t, "conv2d", f)
}

impl CustomOp2 for GemmConv2d {
    fn name(&self) -> &'static str {
        "spat-cpu-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let w = slice(ws, wl, "kernel")?;
        let y = forward(&g, slice(xs, xl, "input")?, w, self.constant.as_ref())?;
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.dims(), w.dims(), self.stride, self.padding)?;
        let flops = crate::profile::conv_flops(x.dims(), w.dims(), self.stride, self.padding);
        let key = || crate::profile::conv_key(x.dims(), w.dims(), self.stride);
        with_data(grad, |gv| {
            let dx = match x.track_op() {
                true => {
                    let _span = crate::profile::span("conv-input-grad", flops, key);
                    let constant = (!w.track_op() && w.is_contiguous()).then_some(w);
                    let dx = with_data(w, |wv| input_grad(&g, gv, wv, constant))?;
                    Some(Tensor::from_vec(dx, x.shape(), x.device())?)
                }
                false => None,
            };
            let dw = match w.track_op() {
                true => {
                    let _span = crate::profile::span("conv-weight-grad", flops, key);
                    let dw = with_data(x, |xv| kernel_grad(&g, xv, gv))?;
                    Some(Tensor::from_vec(dw, w.shape(), w.device())?)
                }
                false => None,
            };
            Ok((dx, dw))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The three directions by their definitions, in f64: `(y, dx, dw)` for upstream `u`.
    fn naive(g: &Geometry, x: &[f32], w: &[f32], u: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0f64; g.n * g.cout * g.plane_out()];
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; w.len()];
        for b in 0..g.n {
            for co in 0..g.cout {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let o = ((b * g.cout + co) * g.oh + oy) * g.ow + ox;
                        for ci in 0..g.cin {
                            for ky in 0..g.k {
                                for kx in 0..g.k {
                                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let i =
                                        ((b * g.cin + ci) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((co * g.cin + ci) * g.k + ky) * g.k + kx;
                                    y[o] += x[i] as f64 * w[wi] as f64;
                                    dx[i] += u[o] as f64 * w[wi] as f64;
                                    dw[wi] += u[o] as f64 * x[i] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let err = (*g as f64 - w).abs() / scale;
            assert!(err < 2e-6, "{what}[{i}]: {g} vs {w} (relative error {err})");
        }
    }

    /// (n, cin, cout, k, stride, padding, h, w).
    type Case = (usize, usize, usize, usize, usize, usize, usize, usize);

    /// Every path of the kernels. Several tiles per image (stride 1 and 2), groups of whole
    /// images, 1×1 stride 1 (one product per image and grouped) and stride 2, weight-gradient
    /// channel groups and batch partitions, k = 5, padding 0 and padding larger than k/2,
    /// stride 3, stride 2 with k = 5 and with padding 0 (every parity and shift of its rows'
    /// halves), a single image (fewer tasks than threads), odd and non-square sizes, and both
    /// im2col paths (same-width stride 1, and the row-by-row general one); the input gradient
    /// as a forward convolution (32 input channels or more, 64 output positions per image or
    /// more) with 3×3 and 5×5 kernels; the direct kernels (`conv::direct`: 3×3 "same" layers
    /// 16 wide or more) with every width of their weight-gradient blocks (16, 32, 48 and
    /// 48 + 32 output channels), forward blocks with 1, 2 and 4 of 4 channels in use, a
    /// single image and non-square planes; their weight gradient with stride 2 (odd sizes too)
    /// and on small planes, several images to a pass; an input gradient whose im2col-shaped
    /// product comes in two channel groups; Winograd's F(2×2, 3×3) (`conv::winograd`: 3×3 "same"
    /// layers with 64 channels or more on both sides) on odd plane sides (a last tile half
    /// outside), chunks of several images and chunks of tile rows of one image, channel counts
    /// that leave partial vector blocks, and its weight gradient alone on planes under 8×8 (where
    /// the input gradient with a constant kernel takes the path too). Each case also runs with
    /// Winograd's path off, and with it and the direct kernels off.
    const CASES: [Case; 28] = [
        (3, 32, 8, 3, 1, 1, 20, 20),
        (2, 6, 5, 5, 2, 2, 11, 12),
        (2, 4, 3, 3, 2, 0, 9, 8),
        (3, 32, 5, 3, 2, 1, 40, 36),
        (5, 4, 6, 3, 2, 1, 7, 9),
        (3, 5, 7, 1, 1, 0, 6, 5),
        (1, 6, 4, 1, 1, 0, 17, 16),
        (2, 5, 3, 1, 2, 0, 9, 9),
        (2, 3, 4, 5, 1, 2, 9, 8),
        (2, 3, 4, 3, 1, 0, 6, 6),
        (2, 2, 2, 3, 3, 1, 10, 10),
        (2, 3, 2, 3, 1, 2, 4, 4),
        (1, 40, 3, 3, 1, 1, 5, 5),
        (6, 48, 16, 3, 1, 1, 4, 4),
        (2, 32, 6, 5, 1, 2, 24, 25),
        (8, 32, 8, 3, 1, 1, 8, 8),
        (2, 5, 48, 3, 1, 1, 17, 21),
        (3, 7, 80, 3, 1, 1, 16, 16),
        (2, 3, 16, 3, 1, 1, 16, 18),
        (1, 33, 6, 3, 1, 1, 16, 30),
        (20, 16, 16, 3, 1, 1, 3, 5),
        (3, 17, 32, 3, 2, 1, 9, 10),
        (2, 16, 64, 3, 2, 1, 32, 32),
        (2, 64, 8, 3, 2, 1, 40, 40),
        (3, 64, 65, 3, 1, 1, 9, 11),
        (5, 72, 64, 3, 1, 1, 8, 10),
        (2, 64, 80, 3, 1, 1, 30, 31),
        (4, 64, 64, 3, 1, 1, 4, 5),
    ];

    fn run_all(g: &Geometry, x: &[f32], w: &[f32], u: &[f32]) -> [Vec<f32>; 3] {
        [
            forward(g, x, w, None).unwrap(),
            input_grad(g, u, w, None).unwrap(),
            kernel_grad(g, x, u).unwrap(),
        ]
    }

    /// The input gradient with `w` a constant tensor (an attack's), twice: the second call
    /// finds Winograd's transform of the turned kernels in the cache.
    fn constant_input_grads(g: &Geometry, w: &[f32], u: &[f32]) -> [Vec<f32>; 2] {
        let dims = (g.cout, g.cin, g.k, g.k);
        let kernel = Tensor::from_slice(w, dims, &candle_core::Device::Cpu).unwrap();
        [(); 2].map(|()| input_grad(g, u, w, Some(&kernel)).unwrap())
    }

    #[test]
    fn all_directions_match_their_definitions() {
        for (i, &(n, cin, cout, k, stride, padding, h, w)) in CASES.iter().enumerate() {
            let g = Geometry::new(&[n, cin, h, w], &[cout, cin, k, k], stride, padding).unwrap();
            let x = values(n * cin * h * w, 3 * i as u64);
            let wt = values(cout * cin * k * k, 3 * i as u64 + 1);
            let u = values(n * cout * g.oh * g.ow, 3 * i as u64 + 2);
            let (y, dx, dw) = naive(&g, &x, &wt, &u);
            let winograd = run_all(&g, &x, &wt, &u);
            let direct = crate::conv::winograd::without(|| run_all(&g, &x, &wt, &u));
            let im2col = crate::conv::winograd::without(|| {
                crate::conv::direct::without(|| run_all(&g, &x, &wt, &u))
            });
            for ([gy, gdx, gdw], path) in [
                (winograd, "winograd"),
                (direct, "direct"),
                (im2col, "im2col"),
            ] {
                let tag = format!("case {i} {g:?} {path}");
                assert_close(&gy, &y, &format!("{tag} forward"));
                assert_close(&gdx, &dx, &format!("{tag} input grad"));
                assert_close(&gdw, &dw, &format!("{tag} kernel grad"));
            }
            for (j, gdx) in constant_input_grads(&g, &wt, &u).iter().enumerate() {
                let tag = format!("case {i} {g:?} constant kernel, call {j}");
                assert_close(gdx, &dx, &format!("{tag} input grad"));
            }
        }
    }

    /// The one-pass stride-2 3×3 col2im row adds the same terms in the same order as the
    /// general path's three strided passes (taps 0, 1, 2): the same bits, on every row width.
    #[test]
    fn stride2_3x3_row_adds_in_the_general_order() {
        for w in 1usize..12 {
            let ow = w.div_ceil(2);
            let taps: Vec<Vec<f32>> = (0..3).map(|k| values(ow, 40 + 3 * w as u64 + k)).collect();
            let start = values(w, 7 * w as u64);
            let mut want = start.clone();
            for (kx, tap) in taps.iter().enumerate() {
                for (ox, v) in tap.iter().enumerate() {
                    if let Some(ix) = (2 * ox + kx).checked_sub(1).filter(|&ix| ix < w) {
                        want[ix] += v;
                    }
                }
            }
            let mut got = start;
            add_stride2_3x3_taps([&taps[0], &taps[1], &taps[2]], &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "width {w}");
        }
    }

    /// The work split depends on the shapes only, so any thread count gives the same bits.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        let (one, three) = (pool(1), pool(3));
        for (i, &(n, cin, cout, k, stride, padding, h, w)) in CASES.iter().enumerate() {
            let g = Geometry::new(&[n, cin, h, w], &[cout, cin, k, k], stride, padding).unwrap();
            let x = values(n * cin * h * w, 7 * i as u64);
            let wt = values(cout * cin * k * k, 7 * i as u64 + 1);
            let u = values(n * cout * g.oh * g.ow, 7 * i as u64 + 2);
            let a = one.install(|| run_all(&g, &x, &wt, &u));
            let b = three.install(|| run_all(&g, &x, &wt, &u));
            assert!(a == b, "case {i}: results differ between 1 and 3 threads");
        }
    }

    #[test]
    fn impossible_geometries_are_errors_not_panics() {
        let bad = [
            ([1, 3, 8, 8], [4, 3, 3, 3], 0, 1),          // zero stride
            ([1, 3, 8, 8], [4, 2, 3, 3], 1, 1),          // channel mismatch
            ([1, 3, 2, 2], [4, 3, 5, 5], 1, 1),          // kernel larger than the padded input
            ([1, 3, 8, 8], [4, 3, 3, 2], 1, 1),          // non-square kernel
            ([1, 3, 8, 8], [4, 3, 0, 0], 1, 0),          // empty kernel
            ([1, 3, 8, 8], [4, 3, 3, 3], 1, usize::MAX), // padding overflows
        ];
        for (x, w, stride, padding) in bad {
            assert!(
                Geometry::new(&x, &w, stride, padding).is_err(),
                "{x:?} {w:?} {stride} {padding}"
            );
        }
        assert!(
            Geometry::new(&[1, 3, 8], &[4, 3, 3, 3], 1, 1).is_err(),
            "3-D input"
        );
        let empty = Geometry::new(&[0, 3, 8, 8], &[4, 3, 3, 3], 1, 1).unwrap();
        assert!(forward(&empty, &[], &values(108, 1), None)
            .unwrap()
            .is_empty());
        assert_eq!(kernel_grad(&empty, &[], &[]).unwrap(), vec![0.0; 108]);
        // No input channels: every output is the empty sum, zero (not the output buffer's
        // unwritten elements).
        let no_channels = Geometry::new(&[2, 0, 5, 5], &[3, 0, 3, 3], 1, 1).unwrap();
        let y = forward(&no_channels, &[], &[], None).unwrap();
        assert_eq!(y, vec![0.0; 2 * 3 * 25]);
    }
}
