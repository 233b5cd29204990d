//! `search.png`: the robust metric at the highest rung each trial reached, as a heat map over the
//! ε × α grid (a labelled cell per trial), or, when the trials are random samples rather than a
//! full grid, as coloured squares at their (α, ε); a colour bar shows the scale.

use anyhow::Result;
use spat_report::plot::{Axis, Frame, LINE};
use spat_report::{Canvas, Rgb, BLACK, WHITE};

use super::{alpha_text, reached, SearchReport};

const MARGIN: i64 = 20;
/// Height of the title and the objective above the plot.
const HEADER: i64 = 64;
const CELL_W: i64 = 96;
const CELL_H: i64 = 48;
const PLOT_W: i64 = 480;
const PLOT_H: i64 = 320;
const SQUARE: i64 = 12;
/// The most rows or columns drawn as a grid of cells; a larger search is drawn as a scatter plot.
const MAX_CELLS_ACROSS: usize = 24;
/// How far right of the scatter plot the "no SPAT" trials stand.
const STRIP: i64 = 44;
/// Room for a square's label right of it.
const LABEL_W: i64 = 80;
const BAR_W: i64 = 18;
const BAR_H: i64 = 160;
/// A trial without a result yet.
const NO_RESULT: Rgb = [225, 225, 225];
/// Viridis at 0, ¼, ½, ¾ and 1: perceptually even, and its lightness rises with the value, so
/// the order of the cells reads in grey too.
const VIRIDIS: [Rgb; 5] = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
];

/// The trials laid out as a full ε × α grid: rows by ε, columns by α (no SPAT first).
struct Grid {
    rows: Vec<String>,
    cols: Vec<Option<f64>>,
    /// Per trial, its (row, column).
    at: Vec<(usize, usize)>,
}

/// Where the picture's parts go.
struct Layout {
    grid: Option<Grid>,
    /// The scatter plot's frame (random samples).
    frame: Option<Frame>,
    /// Left edge and top of the cells or the frame.
    left: i64,
    top: i64,
    /// Right edge of the cells or of the frame's "no SPAT" strip.
    right: i64,
    /// Bottom of everything under the plot (axis labels).
    bottom: i64,
    width: i64,
    height: i64,
    /// The robust metrics' range over the trials with a result.
    range: Option<(f64, f64)>,
}

/// The colour of `t` in 0..=1 on the viridis scale.
fn colour(t: f64) -> Rgb {
    let x = t.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    std::array::from_fn(|c| (a[c] as f64 + (b[c] as f64 - a[c] as f64) * f).round() as u8)
}

/// The colour of robust metric `v` given the range of all of them.
fn colour_of(v: f64, range: Option<(f64, f64)>) -> Rgb {
    match range {
        Some((lo, hi)) if v.is_finite() && hi > lo => colour((v - lo) / (hi - lo)),
        Some(_) if v.is_finite() => colour(0.5),
        _ => NO_RESULT,
    }
}

/// Black or white, whichever reads on `background`.
fn ink(background: Rgb) -> Rgb {
    let [r, g, b] = background.map(f64::from);
    if 0.299 * r + 0.587 * g + 0.114 * b < 128.0 {
        WHITE
    } else {
        BLACK
    }
}

fn grid(report: &SearchReport) -> Option<Grid> {
    let mut rows: Vec<(f64, String)> = report
        .trials
        .iter()
        .map(|t| (t.eps, t.eps_text.clone()))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    rows.dedup_by(|a, b| a.1 == b.1);
    let mut cols: Vec<Option<f64>> = report.trials.iter().map(|t| t.alpha).collect();
    cols.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(y),
        _ => a.is_some().cmp(&b.is_some()),
    });
    cols.dedup_by(|a, b| a.map(f64::to_bits) == b.map(f64::to_bits));
    let at: Vec<(usize, usize)> = report
        .trials
        .iter()
        .map(|t| {
            let row = rows.iter().position(|r| r.1 == t.eps_text).unwrap_or(0);
            let col = cols
                .iter()
                .position(|c| c.map(f64::to_bits) == t.alpha.map(f64::to_bits));
            (row, col.unwrap_or(0))
        })
        .collect();
    let mut cells = at.clone();
    cells.sort_unstable();
    cells.dedup();
    let fits = rows.len() <= MAX_CELLS_ACROSS && cols.len() <= MAX_CELLS_ACROSS;
    let full = cells.len() == at.len() && at.len() == rows.len() * cols.len() && !at.is_empty();
    (full && fits).then(|| Grid {
        rows: rows.into_iter().map(|r| r.1).collect(),
        cols,
        at,
    })
}

fn value_range(report: &SearchReport) -> Option<(f64, f64)> {
    let values = report
        .trials
        .iter()
        .filter_map(|t| reached(report, t.id))
        .map(|(_, m)| m.robust)
        .filter(|v| v.is_finite());
    values.fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn layout(report: &SearchReport) -> Layout {
    let grid = grid(report);
    let top = HEADER + 2 * LINE;
    let (left, right, bottom, frame) = match &grid {
        Some(g) => {
            let label_w = g
                .rows
                .iter()
                .map(|r| Canvas::text_width(r, 1) as i64)
                .max()
                .unwrap_or(0);
            let left = MARGIN + label_w.max(16) + 12;
            let right = left + g.cols.len() as i64 * CELL_W;
            (left, right, top + g.rows.len() as i64 * CELL_H, None)
        }
        None => {
            let frame = scatter_frame(report, top);
            let right = frame.left + frame.width + STRIP + LABEL_W;
            (frame.left, right, top + PLOT_H + 3 * LINE, Some(frame))
        }
    };
    let bottom = bottom.max(top + BAR_H + LINE);
    let bar_end = right + 30 + BAR_W + 8 + Canvas::text_width("no result", 1) as i64;
    let notes_w = notes(report)
        .iter()
        .map(|n| Canvas::text_width(n, 1) as i64)
        .max()
        .unwrap_or(0);
    let title_w = Canvas::text_width(&report.title, 2) as i64;
    let objective_w = Canvas::text_width(&report.objective, 1) as i64;
    let width = (bar_end + MARGIN).max(MARGIN * 2 + notes_w.max(title_w).max(objective_w));
    Layout {
        grid,
        frame,
        left,
        top,
        right,
        bottom,
        width,
        height: bottom + LINE + 2 * LINE + MARGIN,
        range: value_range(report),
    }
}

/// The scatter plot's frame: α across (the "no SPAT" trials in a strip at its right), ε up.
fn scatter_frame(report: &SearchReport, top: i64) -> Frame {
    let alphas = report.trials.iter().filter_map(|t| t.alpha);
    let eps = report.trials.iter().map(|t| t.eps);
    Frame {
        left: MARGIN + 64,
        top,
        width: PLOT_W,
        height: PLOT_H,
        x: Axis::linear(alphas.chain([0.0])),
        y: Axis::linear(eps),
    }
}

/// The two lines under the plot that say how to read it.
fn notes(report: &SearchReport) -> [String; 2] {
    let r = report.rungs;
    let rungs: Vec<String> = (0..r.count)
        .map(|k| format!("r{k} = {} ep", r.epochs(k)))
        .collect();
    let what = if grid(report).is_some() {
        "cell"
    } else {
        "square"
    };
    [
        format!(
            "{what}: robust % at the highest rung reached ({})",
            rungs.join(", ")
        ),
        "grey: no result yet; black frame: the winner".into(),
    ]
}

/// Where trial `id` is drawn: the top-left corner and size of its cell, or its square's centre
/// (size 0).
fn spot(l: &Layout, report: &SearchReport, id: usize) -> (i64, i64, i64, i64) {
    if let Some(g) = &l.grid {
        let (row, col) = g.at[id];
        return (
            l.left + col as i64 * CELL_W,
            l.top + row as i64 * CELL_H,
            CELL_W,
            CELL_H,
        );
    }
    let Some(frame) = &l.frame else {
        return (l.left, l.top, 0, 0);
    };
    let t = &report.trials[id];
    let x = t
        .alpha
        .map_or(frame.left + frame.width + 2 * SQUARE, |a| frame.px(a));
    (x, frame.py(t.eps), 0, 0)
}

/// For each trial with a result, a pixel of `search.png` (column, row) that shows its colour
/// (away from its labels and frames).
pub fn marks(report: &SearchReport) -> Result<Vec<(usize, (usize, usize))>> {
    super::check(report)?;
    let l = layout(report);
    let marks = report
        .trials
        .iter()
        .filter(|t| reached(report, t.id).is_some())
        .map(|t| {
            let (x, y, w, _) = spot(&l, report, t.id);
            let (px, py) = if w > 0 { (x + 6, y + 6) } else { (x, y) };
            (t.id, (px.max(0) as usize, py.max(0) as usize))
        })
        .collect();
    Ok(marks)
}

/// Draws `search.png`.
pub fn render(report: &SearchReport) -> Result<Canvas> {
    super::check(report)?;
    let l = layout(report);
    let mut c = Canvas::new(l.width as usize, l.height as usize, WHITE);
    let scale = if Canvas::text_width(&report.title, 2) as i64 <= l.width - 2 * MARGIN {
        2
    } else {
        1
    };
    c.text(MARGIN, 12, &report.title, BLACK, scale);
    c.text(MARGIN, 40, &report.objective, BLACK, 1);
    match &l.grid {
        Some(g) => draw_grid(&mut c, &l, g, report),
        None => draw_scatter(&mut c, &l, report),
    }
    draw_bar(&mut c, &l);
    for (i, note) in notes(report).iter().enumerate() {
        c.text(MARGIN, l.bottom + LINE + i as i64 * LINE, note, BLACK, 1);
    }
    Ok(c)
}

/// Draws `s` centred on column `x`, its top at row `y`.
fn centred(c: &mut Canvas, x: i64, y: i64, s: &str, colour: Rgb, scale: usize) {
    c.text(
        x - Canvas::text_width(s, scale) as i64 / 2,
        y,
        s,
        colour,
        scale,
    );
}

/// The outline of the rectangle from corner `a` to corner `b`, `thickness` pixels wide.
fn outline(c: &mut Canvas, a: (i64, i64), b: (i64, i64), thickness: usize) {
    c.line(a, (b.0, a.1), BLACK, thickness);
    c.line((b.0, a.1), b, BLACK, thickness);
    c.line(b, (a.0, b.1), BLACK, thickness);
    c.line((a.0, b.1), a, BLACK, thickness);
}

/// The robust metric of trial `id` as a label, its rung, and its colour.
fn shown(l: &Layout, report: &SearchReport, id: usize) -> (String, Option<usize>, Rgb) {
    match reached(report, id) {
        Some((k, m)) => (
            format!("{:.1}", m.robust),
            Some(k),
            colour_of(m.robust, l.range),
        ),
        None => ("-".into(), None, NO_RESULT),
    }
}

fn draw_grid(c: &mut Canvas, l: &Layout, g: &Grid, report: &SearchReport) {
    c.text(l.left, HEADER, "α (SPAT weight)", BLACK, 1);
    c.text(MARGIN, HEADER + LINE, "ε", BLACK, 1);
    for (j, alpha) in g.cols.iter().enumerate() {
        let x = l.left + j as i64 * CELL_W + CELL_W / 2;
        centred(c, x, HEADER + LINE, &alpha_text(*alpha), BLACK, 1);
    }
    for (i, eps) in g.rows.iter().enumerate() {
        c.text(
            MARGIN,
            l.top + i as i64 * CELL_H + CELL_H / 2 - 4,
            eps,
            BLACK,
            1,
        );
    }
    let winner = super::chosen_winner(report);
    for t in &report.trials {
        let (x, y, w, h) = spot(l, report, t.id);
        let (value, rung, fill) = shown(l, report, t.id);
        c.fill_rect(x + 1, y + 1, (w - 2) as usize, (h - 2) as usize, fill);
        centred(c, x + w / 2, y + 8, &value, ink(fill), 2);
        if let Some(k) = rung {
            centred(c, x + w / 2, y + 30, &format!("rung {k}"), ink(fill), 1);
        }
        if winner == Some(t.id) {
            outline(c, (x + 1, y + 1), (x + w - 2, y + h - 2), 2);
        }
    }
}

fn draw_scatter(c: &mut Canvas, l: &Layout, report: &SearchReport) {
    let Some(frame) = &l.frame else {
        return;
    };
    frame.draw_axes(c, "α (SPAT weight)", "ε");
    if report.trials.iter().any(|t| t.alpha.is_none()) {
        let x = frame.left + frame.width + STRIP;
        centred(c, x, frame.top + frame.height + 6, "none", BLACK, 1);
    }
    let winner = super::chosen_winner(report);
    for t in &report.trials {
        let (x, y, _, _) = spot(l, report, t.id);
        let (value, rung, fill) = shown(l, report, t.id);
        let half = SQUARE / 2;
        c.fill_rect(x - half, y - half, SQUARE as usize, SQUARE as usize, BLACK);
        c.fill_rect(
            x - half + 1,
            y - half + 1,
            SQUARE as usize - 2,
            SQUARE as usize - 2,
            fill,
        );
        let label = rung.map_or(value.clone(), |k| format!("{value} r{k}"));
        c.text(x + SQUARE + 4, y - 4, &label, BLACK, 1);
        if winner == Some(t.id) {
            outline(c, (x - SQUARE, y - SQUARE), (x + SQUARE, y + SQUARE), 2);
        }
    }
}

/// The colour bar at the right: the scale from the lowest robust metric (bottom) to the highest.
fn draw_bar(c: &mut Canvas, l: &Layout) {
    let x = l.right + 30;
    c.text(x, l.top - LINE, "robust %", BLACK, 1);
    for i in 0..BAR_H {
        let t = 1.0 - i as f64 / (BAR_H - 1) as f64;
        c.fill_rect(x, l.top + i, BAR_W as usize, 1, colour(t));
    }
    outline(c, (x - 1, l.top - 1), (x + BAR_W, l.top + BAR_H), 1);
    let (hi, lo) = match l.range {
        Some((lo, hi)) => (format!("{hi:.1}"), format!("{lo:.1}")),
        None => ("no result".into(), String::new()),
    };
    c.text(x + BAR_W + 8, l.top, &hi, BLACK, 1);
    c.text(x + BAR_W + 8, l.top + BAR_H - 8, &lo, BLACK, 1);
}
