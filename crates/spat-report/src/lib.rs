//! PNG figures for spat: line plots (accuracy against α, Figures 5.3 / 6.1 / 6.2, and training
//! curves over epochs) and labelled image grids (adversarial examples, Figures 5.1 / 5.2). Pure
//! Rust, no ML dependencies, so the reproduction harness can draw figures without linking candle.
//!
//! Text is drawn with a built-in 8x8 bitmap font (`font8x8`), so a figure looks the same on every
//! machine and needs no font file. Every line plot is drawn by one module, [`plot`]; [`curves`]
//! builds and draws training curves on it (a run's `curves.png`, overlays of several runs).
#![warn(missing_docs)]

use std::path::Path;

pub mod curves;
pub mod plot;

pub use plot::{LinePlot, Series};

/// An RGB raster, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height · 3` bytes: R, G, B of each pixel, rows top to bottom.
    pub pixels: Vec<u8>,
}

/// A colour: red, green, blue, 0–255 each.
pub type Rgb = [u8; 3];

/// The background.
pub const WHITE: Rgb = [255, 255, 255];
/// Text, axes and frames.
pub const BLACK: Rgb = [0, 0, 0];
/// Grid lines.
pub const GREY: Rgb = [200, 200, 200];
/// Distinguishable series colours (Tableau 10), in legend order.
pub const PALETTE: [Rgb; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
];

/// Height of one line of text at scale 1 (the glyphs are 8x8).
pub const GLYPH: usize = 8;

/// Errors of spat-report.
#[derive(Debug)]
pub enum Error {
    /// A file that cannot be written or read.
    Io(std::path::PathBuf, std::io::Error),
    /// A PNG that cannot be encoded (the path it was for, and the encoder's message).
    Png(std::path::PathBuf, String),
    /// Arguments that cannot be drawn (a mismatched image size, a zero scale, a grid too large).
    Invalid(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Error::Png(p, e) => write!(f, "{}: cannot encode PNG ({e})", p.display()),
            Error::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with spat-report's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Canvas {
    /// A `width × height` canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        let mut pixels = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            pixels.extend_from_slice(&background);
        }
        Self {
            width,
            height,
            pixels,
        }
    }

    /// The pixel at column `x`, row `y`. Panics outside the canvas.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets one pixel; coordinates outside the canvas are ignored (clipping).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let i = (y as usize * self.width + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&c);
    }

    /// Fills the `w × h` rectangle whose top-left corner is `(x, y)`; what falls outside is clipped.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, c: Rgb) {
        for dy in 0..h as i64 {
            for dx in 0..w as i64 {
                self.set(x + dx, y + dy, c);
            }
        }
    }

    /// A line `thickness` pixels wide (Bresenham with a square pen).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, thickness: usize) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        let half = thickness as i64 / 2;
        loop {
            self.fill_rect(x - half, y - half, thickness, thickness, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Draws text with its top-left corner at `(x, y)`, each glyph pixel `scale` pixels wide.
    /// ASCII, Latin-1 (U+00A0..U+00FF: ×, ·, °) and Greek (U+0390..U+03C9, so α and ε of the
    /// figures) are drawn; anything else as `?`.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb, scale: usize) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = glyph(ch);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        let px = x + ((k * 8 + col) * scale) as i64;
                        let py = y + (row * scale) as i64;
                        self.fill_rect(px, py, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Width in pixels of `s` drawn by [`Canvas::text`].
    pub fn text_width(s: &str, scale: usize) -> usize {
        s.chars().count() * 8 * scale
    }

    /// Copies `img` (RGB, row-major) with its top-left at `(x, y)`, each pixel enlarged to a
    /// `scale` x `scale` block (nearest neighbour, so no pixel of an adversarial example is blurred).
    pub fn blit_scaled(&mut self, x: i64, y: i64, img: &Canvas, scale: usize) {
        for iy in 0..img.height {
            for ix in 0..img.width {
                let c = img.get(ix, iy);
                self.fill_rect(
                    x + (ix * scale) as i64,
                    y + (iy * scale) as i64,
                    scale,
                    scale,
                    c,
                );
            }
        }
    }

    /// An image from planar CHW `u8` data with 1 or 3 channels.
    pub fn from_planar(data: &[u8], channels: usize, height: usize, width: usize) -> Result<Self> {
        if (channels != 1 && channels != 3) || data.len() != channels * height * width {
            return Err(Error::Invalid(format!(
                "planar image of {} bytes does not match {channels}x{height}x{width}",
                data.len()
            )));
        }
        let plane = height * width;
        let mut pixels = Vec::with_capacity(plane * 3);
        for i in 0..plane {
            for c in 0..3 {
                pixels.push(data[if channels == 1 { i } else { c * plane + i }]);
            }
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// An image of signed planar CHW values (1 or 3 channels), such as an input gradient, the way
    /// Tsipras et al. ("Robustness may be at odds with accuracy", Figure 2) show gradients: values
    /// clipped to their mean ± 3 standard deviations (over the whole image) and that range mapped
    /// linearly onto 0..=255, so the mean is mid-grey. A constant image is mid-grey.
    pub fn from_planar_signed(
        data: &[f32],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid(
                "signed image holds a non-finite value".into(),
            ));
        }
        let n = data.len().max(1) as f64;
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let spread = 3.0 * var.sqrt();
        let bytes: Vec<u8> = data
            .iter()
            .map(|&v| {
                if spread == 0.0 {
                    return 128;
                }
                let t = ((v as f64 - mean) / spread).clamp(-1.0, 1.0);
                ((t + 1.0) / 2.0 * 255.0).round() as u8
            })
            .collect();
        Self::from_planar(&bytes, channels, height, width)
    }

    /// Encodes as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let err = |e: png::EncodingError| Error::Png("<memory>".into(), e.to_string());
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            // Marks the file as spat's, so a later command may replace it (see `is_spat_png`).
            enc.add_text_chunk(PNG_SOFTWARE_KEY.into(), PNG_SOFTWARE.into())
                .map_err(err)?;
            let mut w = enc.write_header().map_err(err)?;
            w.write_image_data(&self.pixels).map_err(err)?;
            w.finish().map_err(err)?;
        }
        Ok(out)
    }

    /// Writes the PNG atomically (spat-spec's `write_atomic`: temporary file, fsync, rename), so a
    /// reader never sees half a file.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes = self.to_png().map_err(|e| match e {
            Error::Png(_, m) => Error::Png(path.to_path_buf(), m),
            other => other,
        })?;
        spat_spec::fs::write_atomic(path, &bytes).map_err(|e| match e {
            spat_spec::Error::Io { path, cause } => Error::Io(path, cause),
            other => Error::Invalid(other.to_string()),
        })
    }
}

const PNG_SOFTWARE_KEY: &str = "Software";
const PNG_SOFTWARE: &str = "spat";

/// Whether `bytes` are a PNG that spat wrote (its `tEXt` chunk `Software` is `spat`): a file
/// that a command may replace, where any other file at its output path is the user's.
pub fn is_spat_png(bytes: &[u8]) -> bool {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let Some(mut rest) = bytes.strip_prefix(SIGNATURE) else {
        return false;
    };
    let want = format!("{PNG_SOFTWARE_KEY}\0{PNG_SOFTWARE}");
    // Chunks: 4-byte big-endian length, 4-byte type, data, 4-byte CRC. Text precedes IDAT here.
    while rest.len() >= 12 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = &rest[4..8];
        let Some(data) = rest.get(8..8usize.saturating_add(len)) else {
            return false;
        };
        if kind == b"tEXt" && data == want.as_bytes() {
            return true;
        }
        if kind == b"IDAT" || kind == b"IEND" {
            return false;
        }
        rest = rest.get(12 + len..).unwrap_or_default();
    }
    false
}

/// The 8x8 bitmap of `ch` (rows top to bottom, bit `i` = column `i`).
fn glyph(ch: char) -> [u8; 8] {
    let code = ch as usize;
    if ch.is_ascii() {
        font8x8::legacy::BASIC_LEGACY[code]
    } else if let Some(g) = code
        .checked_sub(0xA0)
        .and_then(|i| font8x8::legacy::LATIN_LEGACY.get(i))
    {
        *g
    } else if let Some(g) = code
        .checked_sub(0x390)
        .and_then(|i| font8x8::legacy::GREEK_LEGACY.get(i))
    {
        *g
    } else {
        font8x8::legacy::BASIC_LEGACY[b'?' as usize]
    }
}

/// A grid of equally sized images with a header above each column and a label under each image.
#[derive(Debug, Clone)]
pub struct ImageGrid {
    /// One header above each column.
    pub column_headers: Vec<String>,
    /// `rows[r][c]` = (image, caption).
    pub rows: Vec<Vec<(Canvas, String)>>,
    /// Integer nearest-neighbour magnification of every image.
    pub scale: usize,
}

/// The most pixels a rendered [`ImageGrid`] may have (64 Mi, 192 MiB of RGB): a larger one is
/// refused before anything is allocated.
pub const MAX_GRID_PIXELS: usize = 1 << 26;

impl ImageGrid {
    /// Size of the rendered grid in pixels, `(width, height)`; an error for a scale of 0 or a
    /// grid of more than [`MAX_GRID_PIXELS`].
    pub fn size(&self) -> Result<(usize, usize)> {
        let (w, h, cols) = self.cell()?;
        let width = w
            .checked_add(PAD)
            .and_then(|c| c.checked_mul(cols))
            .and_then(|c| c.checked_add(PAD));
        let height = (h + CAPTION + PAD)
            .checked_mul(self.rows.len())
            .and_then(|r| r.checked_add(HEADER + PAD));
        match (width, height) {
            (Some(wd), Some(ht)) if wd.checked_mul(ht).is_some_and(|p| p <= MAX_GRID_PIXELS) => {
                Ok((wd, ht))
            }
            _ => Err(Error::Invalid(format!(
                "an image grid of {} rows and {cols} columns of {w}x{h}-pixel cells (scale {}) \
                 exceeds {MAX_GRID_PIXELS} pixels; use a smaller scale",
                self.rows.len(),
                self.scale
            ))),
        }
    }

    fn cell(&self) -> Result<(usize, usize, usize)> {
        let first = self
            .rows
            .first()
            .and_then(|r| r.first())
            .ok_or_else(|| Error::Invalid("image grid has no images".into()))?;
        let cols = self
            .column_headers
            .len()
            .max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        for row in &self.rows {
            for (img, _) in row {
                if (img.width, img.height) != (first.0.width, first.0.height) {
                    return Err(Error::Invalid(format!(
                        "image grid mixes image sizes {}x{} and {}x{}",
                        first.0.width, first.0.height, img.width, img.height
                    )));
                }
            }
        }
        if self.scale == 0 {
            return Err(Error::Invalid("image grid scale must be at least 1".into()));
        }
        let too_big = || Error::Invalid(format!("image grid scale {} is too large", self.scale));
        let w = first.0.width.checked_mul(self.scale).ok_or_else(too_big)?;
        let h = first.0.height.checked_mul(self.scale).ok_or_else(too_big)?;
        let w = w.max(
            self.column_headers
                .iter()
                .map(|h| Canvas::text_width(h, 1))
                .max()
                .unwrap_or(0),
        );
        Ok((w, h, cols))
    }

    /// Draws the grid: headers, then each row's images magnified `scale` times with their captions.
    /// An error for a scale of 0, rows of differing image sizes, or a grid over [`MAX_GRID_PIXELS`].
    pub fn render(&self) -> Result<Canvas> {
        let (w, h, _) = self.cell()?;
        let (width, height) = self.size()?;
        let mut c = Canvas::new(width, height, WHITE);
        for (j, head) in self.column_headers.iter().enumerate() {
            let x = PAD + j * (w + PAD);
            c.text(x as i64, 6, head, BLACK, 1);
        }
        for (i, row) in self.rows.iter().enumerate() {
            let y = HEADER + i * (h + CAPTION + PAD);
            for (j, (img, caption)) in row.iter().enumerate() {
                let x = PAD + j * (w + PAD);
                c.blit_scaled(x as i64, y as i64, img, self.scale);
                c.text(x as i64, (y + h + 3) as i64, caption, BLACK, 1);
            }
        }
        Ok(c)
    }
}

const PAD: usize = 8;
const HEADER: usize = 20;
const CAPTION: usize = 14;

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn png_round_trip_keeps_pixels() {
        let mut c = Canvas::new(5, 3, WHITE);
        c.set(1, 2, [10, 20, 30]);
        c.set(99, 99, BLACK); // clipped, no panic
        let (w, h, px) = decode(&c.to_png().unwrap());
        assert_eq!((w, h), (5, 3));
        assert_eq!(px, c.pixels);
        assert_eq!(&px[(2 * 5 + 1) * 3..(2 * 5 + 1) * 3 + 3], &[10, 20, 30]);
    }

    #[test]
    fn signed_values_are_clipped_to_three_standard_deviations_around_the_mean() {
        // Mean 0: forty values of ±1 and the outliers ±100, beyond 3σ = 3·sqrt(20040/42) ~ 65.5.
        let mut v: Vec<f32> = (0..42)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        v[40] = 100.0;
        v[41] = -100.0;
        let c = Canvas::from_planar_signed(&v, 1, 6, 7).unwrap();
        let grey = |i: usize| c.get(i % 7, i / 7)[0];
        assert_eq!((grey(40), grey(41)), (255, 0), "clipped at ±3σ");
        let sigma = (20040.0f64 / 42.0).sqrt();
        let want = ((1.0 / (3.0 * sigma) + 1.0) / 2.0 * 255.0).round() as u8;
        assert_eq!(grey(0), want);
        assert_eq!(grey(1), 255 - want);
        let flat = Canvas::from_planar_signed(&[0.5; 4], 1, 2, 2).unwrap();
        assert_eq!(flat.get(1, 1)[0], 128);
        assert!(Canvas::from_planar_signed(&[f32::NAN; 4], 1, 2, 2).is_err());
    }

    #[test]
    fn spat_pngs_are_recognised_and_other_files_are_not() {
        let png = Canvas::new(3, 2, WHITE).to_png().unwrap();
        assert!(is_spat_png(&png));
        assert!(!is_spat_png(b"\x89PNG\r\n\x1a\n"));
        assert!(!is_spat_png(b"not a png at all"));
        // A PNG without the marker (the same image, its text chunk renamed).
        let mut other = png.clone();
        let at = other.windows(8).position(|w| w == b"Software").unwrap();
        other[at + 7] = b'z';
        assert!(!is_spat_png(&other));
        for cut in 0..png.len() {
            let _ = is_spat_png(&png[..cut]);
        }
    }

    #[test]
    fn grid_scale_zero_or_huge_is_an_error_not_an_allocation() {
        let img = Canvas::from_planar(&[0u8; 3 * 4 * 4], 3, 4, 4).unwrap();
        let grid = |scale| ImageGrid {
            column_headers: vec!["a".into()],
            rows: vec![vec![(img.clone(), "x".into())]],
            scale,
        };
        for scale in [0, 1 << 20, usize::MAX / 2] {
            let e = grid(scale).render().unwrap_err().to_string();
            assert!(e.contains("scale"), "{scale}: {e}");
        }
        assert!(grid(8).render().is_ok());
    }

    #[test]
    fn planar_to_rgb_and_nearest_neighbour_upscale() {
        // 2x1 image: pixel 0 = (1, 3, 5), pixel 1 = (2, 4, 6) in planar RGB.
        let img = Canvas::from_planar(&[1, 2, 3, 4, 5, 6], 3, 1, 2).unwrap();
        assert_eq!(img.pixels, vec![1, 3, 5, 2, 4, 6]);
        let mut c = Canvas::new(6, 3, WHITE);
        c.blit_scaled(0, 0, &img, 3);
        for y in 0..3 {
            for x in 0..6 {
                assert_eq!(c.get(x, y), if x < 3 { [1, 3, 5] } else { [2, 4, 6] });
            }
        }
        assert!(Canvas::from_planar(&[0; 5], 3, 1, 2).is_err());
    }

    #[test]
    fn text_marks_pixels_and_grid_has_promised_size() {
        let mut c = Canvas::new(20, 10, WHITE);
        c.text(0, 0, "A", BLACK, 1);
        assert!(c.pixels.chunks(3).any(|p| p == BLACK));
        let img = Canvas::new(4, 4, [9, 9, 9]);
        let grid = ImageGrid {
            column_headers: vec!["orig".into(), "pgd".into()],
            rows: vec![vec![
                (img.clone(), "cat".into()),
                (img.clone(), "dog".into()),
            ]],
            scale: 4,
        };
        let out = grid.render().unwrap();
        assert_eq!((out.width, out.height), grid.size().unwrap());
        // The top-left image cell is filled with the image colour.
        assert_eq!(out.get(PAD + 1, HEADER + 1), [9, 9, 9]);
        let bad = ImageGrid {
            column_headers: vec![],
            rows: vec![vec![
                (img, "a".into()),
                (Canvas::new(3, 3, WHITE), "b".into()),
            ]],
            scale: 1,
        };
        assert!(bad.render().is_err());
    }

    #[test]
    fn greek_letters_have_their_own_glyphs() {
        assert_ne!(glyph('α'), glyph('?'));
        assert_ne!(glyph('ε'), glyph('?'));
        assert_ne!(glyph('α'), glyph('ε'));
        assert_eq!(glyph('∞'), glyph('?'));
        assert_ne!(glyph('×'), glyph('?'));
        assert_ne!(glyph('·'), glyph('?'));
        assert_eq!(glyph('a'), font8x8::legacy::BASIC_LEGACY[b'a' as usize]);
    }
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
