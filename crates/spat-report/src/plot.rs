//! The one plotting module: axes with round ticks (linear or logarithmic), lines, markers and a
//! legend on a [`Canvas`]. Every line plot spat draws goes through it: [`LinePlot`] (accuracy
//! against α, Figures 5.3 / 6.1 / 6.2) and the training curves of [`crate::curves`].

use crate::{Canvas, Rgb, BLACK, GLYPH, GREY, PALETTE, WHITE};

/// How a series is drawn: its colour, and solid or dashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// The line's colour.
    pub colour: Rgb,
    /// Dashed (reference values, clean accuracy) rather than solid.
    pub dashed: bool,
}

impl Style {
    /// The `i`-th style of a plot: the palette's colours solid, then dashed, then solid again.
    pub fn nth(i: usize) -> Self {
        Style {
            colour: PALETTE[i % PALETTE.len()],
            dashed: (i / PALETTE.len()) % 2 == 1,
        }
    }
}

/// A mark on a series point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled square: every point of a short series.
    Dot,
    /// A hollow square around the point: the best epoch.
    Ring,
    /// An X: where a run was stopped.
    Cross,
}

/// One axis: its range, whether it is logarithmic, and where its ticks go.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
    /// Decimals of a linear tick label.
    decimals: usize,
}

/// Ticks at most this many per axis (so their labels never touch).
const MAX_TICKS: usize = 6;

impl Axis {
    /// A linear axis over the finite `values` (and `include`), widened to round ticks.
    pub fn linear(values: impl IntoIterator<Item = f64>) -> Self {
        let (lo, hi) = finite_range(values).unwrap_or((0.0, 1.0));
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else if lo == 0.0 {
            (0.0, 1.0)
        } else {
            (lo - lo.abs() / 2.0, hi + hi.abs() / 2.0)
        };
        let step = round_step((hi - lo) / (MAX_TICKS - 1) as f64);
        let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        let n = ((hi - lo) / step).round() as usize;
        Axis {
            lo,
            hi,
            log: false,
            ticks: (0..=n).map(|k| lo + k as f64 * step).collect(),
            decimals: decimals_of(step),
        }
    }

    /// A linear axis from `lo` to `hi` exactly, ticked at round steps inside it.
    pub fn fixed(lo: f64, hi: f64) -> Self {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let step = round_step((hi - lo) / (MAX_TICKS - 1) as f64);
        let first = (lo / step).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        Axis {
            lo,
            hi,
            log: false,
            ticks: (first..=last).map(|k| k as f64 * step).collect(),
            decimals: decimals_of(step),
        }
    }

    /// A logarithmic axis over the positive `values`, from the power of ten below the least to
    /// the one above the largest, ticked at the powers of ten; `None` unless every value is
    /// positive and finite and they span at least a factor of ten (a flat or barely moving
    /// series reads better on a linear axis).
    pub fn log(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let values: Vec<f64> = values.into_iter().collect();
        if values.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return None;
        }
        let (lo, hi) = finite_range(values.iter().copied())?;
        if hi < 10.0 * lo {
            return None;
        }
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        Some(Axis {
            lo: 10f64.powi(a),
            hi: 10f64.powi(b),
            log: true,
            ticks: (a..=b).map(|k| 10f64.powi(k)).collect(),
            decimals: 0,
        })
    }

    /// The epochs `1..=epochs`, ticked at 1 and at round multiples.
    pub fn epochs(epochs: usize) -> Self {
        let hi = epochs.max(2) as f64;
        let step = round_step((hi - 1.0) / (MAX_TICKS - 1) as f64).max(1.0);
        let mut ticks = vec![1.0];
        let mut t = step;
        while t <= hi {
            if t > 1.0 {
                ticks.push(t);
            }
            t += step;
        }
        Axis {
            lo: 1.0,
            hi,
            log: false,
            ticks,
            decimals: 0,
        }
    }

    /// Where `v` lies on the axis, 0 at its low end and 1 at its high end.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn label(&self, v: f64) -> String {
        if self.log {
            let k = v.log10().round() as i32;
            return if (-4..=4).contains(&k) {
                format!("{v:.*}", (-k).max(0) as usize)
            } else {
                format!("1e{k}")
            };
        }
        format!("{v:.*}", self.decimals)
    }

    /// True for a logarithmic axis.
    pub fn is_log(&self) -> bool {
        self.log
    }

    /// The values at the axis' two ends, `(low, high)`.
    pub fn range(&self) -> (f64, f64) {
        (self.lo, self.hi)
    }

    /// The values at which ticks and grid lines are drawn.
    pub fn ticks(&self) -> &[f64] {
        &self.ticks
    }
}

/// The least of 1, 2, 5 times a power of ten at or above `raw` (a positive step).
fn round_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

fn decimals_of(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |r, v| match r {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// A plotting area on the canvas and its two axes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Left edge of the plotting area, in canvas pixels.
    pub left: i64,
    /// Top edge of the plotting area, in canvas pixels.
    pub top: i64,
    /// Width of the plotting area, in pixels.
    pub width: i64,
    /// Height of the plotting area, in pixels.
    pub height: i64,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
}

/// Pixels between a tick label and its axis, and the height of a line of text with its gap.
const TICK_GAP: i64 = 6;
/// Height of a line of text with its gap, in pixels.
pub const LINE: i64 = GLYPH as i64 + 6;

impl Frame {
    /// The canvas column of value `x` (clamped to the plotting area).
    pub fn px(&self, x: f64) -> i64 {
        self.left + (self.x.fraction(x).clamp(0.0, 1.0) * self.width as f64).round() as i64
    }

    /// The canvas row of value `y` (clamped to the plotting area; larger values higher).
    pub fn py(&self, y: f64) -> i64 {
        let f = self.y.fraction(y).clamp(0.0, 1.0);
        self.top + self.height - (f * self.height as f64).round() as i64
    }

    /// Grid lines at the ticks, the tick labels, the axes, the y label above the plotting area
    /// and the x label under the tick labels.
    pub fn draw_axes(&self, c: &mut Canvas, x_label: &str, y_label: &str) {
        let bottom = self.top + self.height;
        for &t in self.x.ticks() {
            let x = self.px(t);
            c.line((x, self.top), (x, bottom), GREY, 1);
            let label = self.x.label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            c.text(x - w / 2, bottom + TICK_GAP, &label, BLACK, 1);
        }
        for &t in self.y.ticks() {
            let y = self.py(t);
            c.line((self.left, y), (self.left + self.width, y), GREY, 1);
            let label = self.y.label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            c.text(self.left - TICK_GAP - w, y - 4, &label, BLACK, 1);
        }
        c.line((self.left, self.top), (self.left, bottom), BLACK, 1);
        c.line(
            (self.left, bottom),
            (self.left + self.width, bottom),
            BLACK,
            1,
        );
        let w = Canvas::text_width(x_label, 1) as i64;
        c.text(
            self.left + self.width / 2 - w / 2,
            bottom + TICK_GAP + LINE,
            x_label,
            BLACK,
            1,
        );
        c.text(self.left, self.top - LINE, y_label, BLACK, 1);
    }

    /// Joins the points in order (a `None` is a gap), each marked when `dots`.
    pub fn draw_series(
        &self,
        c: &mut Canvas,
        points: &[(f64, Option<f64>)],
        style: Style,
        dots: bool,
    ) {
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in points {
            let Some(y) = y.filter(|y| y.is_finite()) else {
                prev = None;
                continue;
            };
            let p = (self.px(x), self.py(y));
            if let Some(q) = prev {
                stroke(c, q, p, style);
            }
            if dots {
                marker(c, p, Marker::Dot, style.colour);
            }
            prev = Some(p);
        }
    }

    /// Draws marker `m` in `colour` at the point `(x, y)` in data coordinates.
    pub fn mark(&self, c: &mut Canvas, (x, y): (f64, f64), m: Marker, colour: Rgb) {
        marker(c, (self.px(x), self.py(y)), m, colour);
    }

    /// A vertical line across the plotting area at `x`.
    pub fn vertical(&self, c: &mut Canvas, x: f64, style: Style) {
        let px = self.px(x);
        stroke(c, (px, self.top), (px, self.top + self.height), style);
    }
}

fn stroke(c: &mut Canvas, a: (i64, i64), b: (i64, i64), style: Style) {
    if style.dashed {
        dashed_line(c, a, b, style.colour);
    } else {
        c.line(a, b, style.colour, 2);
    }
}

fn marker(c: &mut Canvas, (x, y): (i64, i64), m: Marker, colour: Rgb) {
    match m {
        Marker::Dot => c.fill_rect(x - 2, y - 2, 5, 5, colour),
        Marker::Ring => {
            for r in [5, 6] {
                let (a, b) = ((x - r, y - r), (x + r, y + r));
                c.line(a, (b.0, a.1), BLACK, 1);
                c.line((b.0, a.1), b, BLACK, 1);
                c.line(b, (a.0, b.1), BLACK, 1);
                c.line((a.0, b.1), a, BLACK, 1);
            }
            c.fill_rect(x - 2, y - 2, 5, 5, colour);
        }
        Marker::Cross => {
            c.line((x - 5, y - 5), (x + 5, y + 5), BLACK, 2);
            c.line((x - 5, y + 5), (x + 5, y - 5), BLACK, 2);
        }
    }
}

fn dashed_line(c: &mut Canvas, a: (i64, i64), b: (i64, i64), colour: Rgb) {
    let n = (((b.0 - a.0).pow(2) + (b.1 - a.1).pow(2)) as f64).sqrt() / 6.0;
    let n = n.ceil().max(1.0) as i64;
    for k in (0..n).step_by(2) {
        let t0 = k as f64 / n as f64;
        let t1 = ((k + 1) as f64 / n as f64).min(1.0);
        let at = |t: f64| {
            (
                a.0 + ((b.0 - a.0) as f64 * t).round() as i64,
                a.1 + ((b.1 - a.1) as f64 * t).round() as i64,
            )
        };
        c.line(at(t0), at(t1), colour, 2);
    }
}

/// One line of a legend: a stroke of the series' style (with its marker), or text alone.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    /// How the entry's stroke is drawn; `None` for a line of text alone.
    pub style: Option<Style>,
    /// A marker drawn on the stroke, if any.
    pub marker: Option<Marker>,
    /// The entry's text.
    pub text: String,
}

impl LegendEntry {
    /// An entry for a series drawn in `style`.
    pub fn series(style: Style, text: impl Into<String>) -> Self {
        LegendEntry {
            style: Some(style),
            marker: None,
            text: text.into(),
        }
    }

    /// An entry of text alone (no stroke).
    pub fn note(text: impl Into<String>) -> Self {
        LegendEntry {
            style: None,
            marker: None,
            text: text.into(),
        }
    }

    /// The same entry with marker `m` on its stroke.
    pub fn with_marker(mut self, m: Marker) -> Self {
        self.marker = Some(m);
        self
    }
}

/// Pixels of a legend's sample stroke and the gap after it.
const SAMPLE: i64 = 28;
const SAMPLE_GAP: i64 = 8;

/// Width of a legend of `entries`.
pub fn legend_width(entries: &[LegendEntry]) -> i64 {
    entries
        .iter()
        .map(|e| Canvas::text_width(&e.text, 1) as i64 + SAMPLE + SAMPLE_GAP)
        .max()
        .unwrap_or(0)
}

/// Draws `entries` one under the other from `(x, y)`, on a white box.
pub fn draw_legend(c: &mut Canvas, x: i64, y: i64, entries: &[LegendEntry]) {
    let w = legend_width(entries) as usize;
    c.fill_rect(
        x - 4,
        y - 4,
        w + 8,
        entries.len() * LINE as usize + 4,
        WHITE,
    );
    for (i, e) in entries.iter().enumerate() {
        let ly = y + i as i64 * LINE;
        let mid = ly + GLYPH as i64 / 2;
        if let Some(style) = e.style {
            stroke(c, (x, mid), (x + SAMPLE, mid), style);
            if let Some(m) = e.marker {
                marker(c, (x + SAMPLE / 2, mid), m, style.colour);
            }
        } else if let Some(m) = e.marker {
            marker(c, (x + SAMPLE / 2, mid), m, GREY);
        }
        c.text(x + SAMPLE + SAMPLE_GAP, ly, &e.text, BLACK, 1);
    }
}

/// One line of a plot: `(x, y)` points joined in order; `None` values are gaps (missing runs).
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// `(x, y)` points in x order; a `None` y (a value not measured) breaks the line there.
    pub points: Vec<(f64, Option<f64>)>,
    /// Dashed lines are drawn for reference values (the paper's), solid for measured ones.
    pub dashed: bool,
}

/// A line plot with axes, ticks, a title and a legend at its right.
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// Drawn above the plot.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The lines, styled in order (see [`Style`]).
    pub series: Vec<Series>,
    /// Fixed y range, e.g. `(0, 100)` for accuracies; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// Margins around a plotting area: room for the y tick labels at the left, the title above.
pub const LEFT: i64 = 72;
/// Margin at the right of a plotting area, in pixels.
pub const RIGHT: i64 = 16;
/// Room above a plotting area for the title, in pixels.
pub const TITLE: i64 = 44;
/// Room under a plotting area for the x tick labels and the x label.
pub const UNDER: i64 = TICK_GAP + 2 * LINE + 4;

impl LinePlot {
    /// Draws the plot on a `width × height` canvas (white; axes with round ticks; legend at the right).
    pub fn render(&self, width: usize, height: usize) -> Canvas {
        let mut c = Canvas::new(width, height, WHITE);
        c.text(LEFT, 12, &self.title, BLACK, 2);
        let entries: Vec<LegendEntry> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let style = Style {
                    colour: PALETTE[i % PALETTE.len()],
                    dashed: s.dashed,
                };
                LegendEntry::series(style, &s.label)
            })
            .collect();
        let legend = legend_width(&entries) + 2 * RIGHT;
        let top = TITLE + LINE;
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1));
        let frame = Frame {
            left: LEFT,
            top,
            width: (width as i64 - LEFT - legend).max(1),
            height: (height as i64 - top - UNDER).max(1),
            x: match finite_range(xs) {
                Some((lo, hi)) => Axis::fixed(lo, hi),
                None => Axis::fixed(0.0, 1.0),
            },
            y: match self.y_range {
                Some((lo, hi)) => Axis::fixed(lo, hi),
                None => Axis::linear(ys),
            },
        };
        frame.draw_axes(&mut c, &self.x_label, &self.y_label);
        for (s, e) in self.series.iter().zip(&entries) {
            let style = e.style.expect("series entries have a style");
            frame.draw_series(&mut c, &s.points, style, true);
        }
        draw_legend(&mut c, frame.left + frame.width + RIGHT, top, &entries);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axes_widen_to_round_ticks() {
        let a = Axis::linear([13.2, 31.7]);
        assert_eq!(a.range(), (10.0, 35.0));
        assert_eq!(a.ticks(), [10.0, 15.0, 20.0, 25.0, 30.0, 35.0]);
        assert_eq!(a.label(15.0), "15");
        let small = Axis::linear([0.013, 0.021]);
        assert_eq!(small.label(small.ticks()[1]), "0.014");
        // A flat series gets a range around it, never an empty one.
        let flat = Axis::linear([0.1, 0.1]);
        let (lo, hi) = flat.range();
        assert!(lo < 0.1 && hi > 0.1, "{lo} {hi}");
        assert_eq!(Axis::linear([]).range(), (0.0, 1.0));
        assert_eq!(Axis::linear([f64::NAN, 2.0, 4.0]).range(), (2.0, 4.0));
    }

    #[test]
    fn log_axes_need_a_factor_of_ten_and_tick_at_powers_of_ten() {
        let a = Axis::log([0.1, 0.01, 0.001]).unwrap();
        assert_eq!(a.ticks(), [0.001, 0.01, 0.1]);
        assert_eq!(
            a.ticks().iter().map(|&t| a.label(t)).collect::<Vec<_>>(),
            ["0.001", "0.01", "0.1"]
        );
        assert!((a.fraction(0.01) - 0.5).abs() < 1e-12);
        assert!(Axis::log([0.1, 0.05]).is_none());
        assert!(Axis::log([0.1, 0.0]).is_none());
        assert_eq!(Axis::log([1e-6, 1.0]).unwrap().label(1e-6), "1e-6");
    }

    #[test]
    fn epoch_axes_start_at_one_and_end_at_the_last_epoch() {
        assert_eq!(Axis::epochs(30).ticks(), [1.0, 10.0, 20.0, 30.0]);
        assert_eq!(Axis::epochs(90).ticks(), [1.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(Axis::epochs(90).range(), (1.0, 90.0));
        assert_eq!(Axis::epochs(2).ticks(), [1.0, 2.0]);
        assert_eq!(Axis::epochs(1).range(), (1.0, 2.0));
    }

    #[test]
    fn frames_map_the_axis_ends_to_the_area_edges() {
        let f = Frame {
            left: 10,
            top: 20,
            width: 100,
            height: 50,
            x: Axis::epochs(11),
            y: Axis::fixed(0.0, 100.0),
        };
        assert_eq!((f.px(1.0), f.px(11.0), f.px(6.0)), (10, 110, 60));
        assert_eq!((f.py(0.0), f.py(100.0), f.py(50.0)), (70, 20, 45));
        // Outside values are held at the edge rather than drawn off the canvas.
        assert_eq!(f.py(1e9), 20);
    }

    #[test]
    fn line_plot_draws_series_colours_and_its_legend() {
        let plot = LinePlot {
            title: "t".into(),
            x_label: "alpha".into(),
            y_label: "acc".into(),
            series: vec![Series {
                label: "clean".into(),
                points: vec![(0.0, Some(10.0)), (1.0, None), (2.0, Some(50.0))],
                dashed: false,
            }],
            y_range: Some((0.0, 100.0)),
        };
        let c = plot.render(400, 300);
        assert!(c.pixels.chunks(3).any(|p| p == PALETTE[0]));
        assert_eq!((c.width, c.height), (400, 300));
    }
}
