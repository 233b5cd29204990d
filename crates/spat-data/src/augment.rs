//! Random crop with zero padding and random horizontal flip, done on `u8` images and written
//! straight into the `f32` batch buffer (one pass, no intermediate padded image).
//!
//! Semantics follow torchvision's `RandomCrop(size, padding=pad)` followed by
//! `RandomHorizontalFlip()` and `ToTensor()`: the image is padded with zeros by `pad` on every
//! side, a window of the original size is cut at offsets `(dy, dx)` drawn uniformly from
//! `0..=2*pad`, the window is mirrored left-right with probability 1/2, and bytes become
//! `v as f32 / 255.0`.

use rand::Rng;

use spat_spec::Dataset;

/// Training augmentation: random crop with zero padding `pad` and optional horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Augmentation {
    /// Zero padding added on each side before a random crop back to the original size, in pixels
    /// (0: no crop).
    pub pad: usize,
    /// Whether each image is flipped left-right with probability 1/2.
    pub flip: bool,
}

impl Augmentation {
    /// The standard augmentation of the robust-training literature: 4 px padding for the 32x32
    /// sets and 12 px for STL-10's 96x96 images (the same 1/8 of the side), plus flips.
    pub fn for_dataset(d: Dataset) -> Self {
        match d {
            Dataset::Cifar10 | Dataset::Cifar100 => Self { pad: 4, flip: true },
            Dataset::Stl10 => Self {
                pad: 12,
                flip: true,
            },
        }
    }

    /// No augmentation.
    pub fn none() -> Self {
        Self {
            pad: 0,
            flip: false,
        }
    }

    /// True if it leaves every image as it is (no padding, no flip).
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip
    }

    /// Draws one image's crop offsets and flip, in a fixed order (dy, dx, flip) so that a stream
    /// reproduces the same augmentations.
    pub(crate) fn draw(&self, rng: &mut impl Rng) -> Placement {
        let (dy, dx) = if self.pad > 0 {
            (
                rng.random_range(0..=2 * self.pad),
                rng.random_range(0..=2 * self.pad),
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.random_bool(0.5);
        Placement {
            pad: self.pad,
            dy,
            dx,
            flip,
        }
    }
}

/// Where one output image comes from: crop offsets `(dy, dx)` into the image padded by `pad`,
/// and whether the crop is mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub pad: usize,
    pub dy: usize,
    pub dx: usize,
    pub flip: bool,
}

impl Placement {
    pub const IDENTITY: Placement = Placement {
        pad: 0,
        dy: 0,
        dx: 0,
        flip: false,
    };
}

/// `BYTE_TO_UNIT[v] == v as f32 / 255.0` (the same rounding as PyTorch's `ToTensor`).
static BYTE_TO_UNIT: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as f32 / 255.0;
        i += 1;
    }
    t
};

/// Writes the planar CHW `u8` image `src` (shape `(c, h, w)`), placed by `p`, into `dst` as `f32`
/// in `[0, 1]`. `dst.len()` must be `c * h * w`.
pub(crate) fn write_image(
    src: &[u8],
    dst: &mut [f32],
    (c, h, w): (usize, usize, usize),
    p: Placement,
) {
    debug_assert_eq!(src.len(), c * h * w);
    debug_assert_eq!(dst.len(), c * h * w);
    let lut = &BYTE_TO_UNIT;
    if p == Placement::IDENTITY {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = lut[s as usize];
        }
        return;
    }
    let (h_i, w_i, pad) = (h as isize, w as isize, p.pad as isize);
    let (dy, dx) = (p.dy as isize, p.dx as isize);
    // Output columns whose source column lies inside the image. Without flip, output x reads
    // source column x + dx - pad; with flip it reads w - 1 - x + dx - pad.
    let shift = dx - pad;
    let (x_lo, x_hi) = if p.flip {
        (shift.max(0), (w_i + shift).min(w_i))
    } else {
        ((-shift).max(0), (w_i - shift).min(w_i))
    };
    let x_lo = x_lo.clamp(0, w_i) as usize;
    let x_hi = (x_hi.clamp(0, w_i) as usize).max(x_lo);
    for ch in 0..c {
        let src_plane = &src[ch * h * w..(ch + 1) * h * w];
        let dst_plane = &mut dst[ch * h * w..(ch + 1) * h * w];
        for (y, dst_row) in dst_plane.chunks_exact_mut(w).enumerate() {
            let r = y as isize + dy - pad;
            if r < 0 || r >= h_i || x_lo == x_hi {
                dst_row.fill(0.0);
                continue;
            }
            let src_row = &src_plane[r as usize * w..(r as usize + 1) * w];
            dst_row[..x_lo].fill(0.0);
            dst_row[x_hi..].fill(0.0);
            let out = &mut dst_row[x_lo..x_hi];
            if p.flip {
                // x in [x_lo, x_hi) reads w-1-x+shift: a descending run of source columns.
                let s_hi = (w_i - 1 - x_lo as isize + shift) as usize + 1;
                let s_lo = (w_i - x_hi as isize + shift) as usize;
                for (d, &s) in out.iter_mut().zip(src_row[s_lo..s_hi].iter().rev()) {
                    *d = lut[s as usize];
                }
            } else {
                let s_lo = (x_lo as isize + shift) as usize;
                let s_hi = (x_hi as isize + shift) as usize;
                for (d, &s) in out.iter_mut().zip(&src_row[s_lo..s_hi]) {
                    *d = lut[s as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spat_core::rng::host_rng;

    /// Straightforward reference: build the zero-padded image, cut the window, mirror it.
    fn reference(src: &[u8], (c, h, w): (usize, usize, usize), p: Placement) -> Vec<f32> {
        let (hp, wp) = (h + 2 * p.pad, w + 2 * p.pad);
        let mut padded = vec![0u8; c * hp * wp];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    padded[(ch * hp + y + p.pad) * wp + x + p.pad] = src[(ch * h + y) * w + x];
                }
            }
        }
        let mut out = vec![0f32; c * h * w];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let xc = if p.flip { w - 1 - x } else { x };
                    let v = padded[(ch * hp + y + p.dy) * wp + xc + p.dx];
                    out[(ch * h + y) * w + x] = v as f32 / 255.0;
                }
            }
        }
        out
    }

    #[test]
    fn matches_pad_crop_flip_reference_for_every_placement() {
        // Non-square, so that a transposition bug cannot hide.
        let shape = (3, 5, 7);
        let src: Vec<u8> = (0..3 * 5 * 7).map(|i| (i * 37 % 251 + 1) as u8).collect();
        for pad in [0usize, 1, 3, 8] {
            for dy in 0..=2 * pad {
                for dx in 0..=2 * pad {
                    for flip in [false, true] {
                        let p = Placement { pad, dy, dx, flip };
                        let mut dst = vec![f32::NAN; src.len()];
                        write_image(&src, &mut dst, shape, p);
                        assert_eq!(dst, reference(&src, shape, p), "{p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn byte_table_is_exact_division() {
        for v in 0..=255u8 {
            assert_eq!(BYTE_TO_UNIT[v as usize], v as f32 / 255.0);
        }
        assert_eq!(BYTE_TO_UNIT[255], 1.0);
    }

    #[test]
    fn draws_cover_all_offsets_and_both_flips() {
        let aug = Augmentation { pad: 4, flip: true };
        let mut rng = host_rng(3, 0);
        let mut seen_dy = [0usize; 9];
        let mut flips = 0;
        let n = 9000;
        for _ in 0..n {
            let p = aug.draw(&mut rng);
            seen_dy[p.dy] += 1;
            flips += p.flip as usize;
            assert!(p.dx <= 8);
        }
        // Each of the 9 offsets has probability 1/9: 1000 expected, sd ~30.
        assert!(
            seen_dy.iter().all(|&k| (850..1150).contains(&k)),
            "{seen_dy:?}"
        );
        assert!((4300..4700).contains(&flips), "{flips}");
        assert_eq!(Augmentation::none().draw(&mut rng), Placement::IDENTITY);
    }
}
