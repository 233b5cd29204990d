//! Training curves: a run's epochs as a picture (`curves.png`, beside the numbers it draws in
//! `curves.json`), and overlays of one metric of several runs (`spat plot`, the reproduction's
//! per-table overlay), in which a run that ended before its planned epochs is marked where it
//! stopped.
//!
//! Building and drawing are apart: [`of_run`] and [`overlay`] make a [`Curves`] (spat-spec's
//! schema of the JSON) from data, [`render`] draws any [`Curves`], and [`encode`] gives both
//! files' bytes. An overlay takes its runs as data ([`Curve`]s), each possibly stopped before its
//! planned epochs: [`overlay_runs`] reads them from run directories, [`Curve::of_history`] builds one
//! from epoch records held in memory.

use std::path::{Path, PathBuf};

use spat_spec::curves::{Curve, CurvePanel, Curves, EpochMetric};
use spat_spec::run::{files, method_label, EpochMetrics, RunState};
use spat_spec::RunConfig;

use crate::plot::{
    draw_legend, legend_width, Axis, Frame, LegendEntry, Marker, Style, LEFT, LINE, RIGHT, UNDER,
};
use crate::{Canvas, Error, Result, BLACK, PALETTE, WHITE};

/// Width of every curves picture, in pixels.
pub const WIDTH: usize = 1000;
/// Height of a panel's plotting area when a picture has several panels, and when it has one.
const PANEL: i64 = 200;
const SINGLE_PANEL: i64 = 360;
/// Above the first panel: the title (twice the glyph size) and the subtitle.
const HEADER: i64 = 64;
/// Between one panel's x label and the next panel's y label.
const GAP: i64 = 10;
/// Curves of at most this many epochs mark every point.
const DOTS_UP_TO: usize = 40;
/// The vertical line at a run's best epoch.
const MARK: Style = Style {
    colour: [110, 110, 110],
    dashed: true,
};

/// A run's own curves: accuracy (clean and robust, on its per-epoch evaluation set), training
/// loss and learning rate over `history`, its best epoch marked.
pub fn of_run(config: &RunConfig, history: &[EpochMetrics], best_epoch: Option<usize>) -> Curves {
    // The best epoch is chosen on robust accuracy, so that curve carries its mark.
    let curve = |label: String, metric| {
        let best = best_epoch.filter(|_| metric == EpochMetric::RobustAcc);
        Curve::of_history(label, metric, history, best, config.epochs)
    };
    let lr = curve("learning rate".into(), EpochMetric::Lr);
    let lr_log = Axis::log(lr.points.iter().map(|p| p.value)).is_some();
    let panel = |axis: &str, log_scale, curves| CurvePanel {
        axis: axis.into(),
        log_scale,
        curves,
    };
    let robust = format!(
        "robust: {} at ε = {}",
        config.eval_attack,
        radius_text(config.eps)
    );
    let done = history.last().map_or(0, |m| m.epoch);
    Curves {
        title: format!(
            "{}: {} on {}, seed {}",
            run_label(config),
            config.model,
            config.dataset,
            config.seed
        ),
        subtitle: format!(
            "epoch {done} of {}; accuracy after each epoch on {}",
            config.epochs,
            evaluation_set(config, history)
        ),
        epochs: config.epochs,
        marked_epoch: best_epoch,
        mark_stops: false,
        panels: vec![
            panel(
                EpochMetric::CleanAcc.axis(),
                false,
                vec![
                    curve("clean".into(), EpochMetric::CleanAcc),
                    curve(robust, EpochMetric::RobustAcc),
                ],
            ),
            panel(
                EpochMetric::Loss.axis(),
                false,
                vec![curve("training loss".into(), EpochMetric::Loss)],
            ),
            panel(EpochMetric::Lr.axis(), lr_log, vec![lr]),
        ],
    }
}

/// One metric of several runs, one curve each (all of `curves`' metric, the first's if they
/// differ), over the most epochs any run planned; each curve's best epoch is marked, and a curve
/// that ends before its planned epochs gets an X where it stopped.
pub fn overlay(
    title: impl Into<String>,
    subtitle: impl Into<String>,
    curves: Vec<Curve>,
) -> Curves {
    let metric = curves.first().map_or(EpochMetric::RobustAcc, |c| c.metric);
    let epochs = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.epoch).chain([c.epochs_planned]))
        .max()
        .unwrap_or(1);
    let log_scale = metric == EpochMetric::Lr
        && Axis::log(curves.iter().flat_map(|c| c.points.iter().map(|p| p.value))).is_some();
    Curves {
        title: title.into(),
        subtitle: subtitle.into(),
        epochs,
        marked_epoch: None,
        mark_stops: true,
        panels: vec![CurvePanel {
            axis: metric.axis().into(),
            log_scale,
            curves,
        }],
    }
}

/// A run by its method and SPAT's α: `TRADES + SPAT (α = 0.1)`.
pub fn run_label(config: &RunConfig) -> String {
    method_label(config.method, config.spat_alpha)
}

/// The set a run evaluates after each epoch, in words: its held-out validation split, or the
/// seeded subset of its test set when it holds none out.
pub fn evaluation_set(config: &RunConfig, history: &[EpochMetrics]) -> String {
    let images = history.last().map(|m| m.eval_examples);
    let count = |n: Option<usize>| n.map_or(String::new(), |n| format!(" ({n} images)"));
    match config.val_subset {
        Some(n) => format!("the held-out validation split{}", count(Some(n))),
        None => format!("a seeded subset of the test set{}", count(images)),
    }
}

/// `8/255` for a radius that is a whole number of 255ths, else the number.
fn radius_text(eps: f64) -> String {
    let n = (eps * 255.0).round();
    if (eps * 255.0 - n).abs() < 1e-9 {
        format!("{n}/255")
    } else {
        format!("{eps}")
    }
}

/// A run directory's `config.json` and `state.json` (the committed epochs); an error naming the
/// directory if it holds no run or no committed epoch yet, or the file that cannot be read.
pub fn read_run(dir: &Path) -> Result<(RunConfig, RunState)> {
    let config = read_run_file(dir, files::CONFIG, "not a spat run directory")?;
    let state = read_run_file(dir, files::STATE, "the run has no committed epoch yet")?;
    Ok((config, state))
}

/// The JSON file `name` of the run directory `dir`; `absent` says what its absence means.
fn read_run_file<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
    absent: &str,
) -> Result<T> {
    let path = dir.join(name);
    match spat_spec::fs::present(&path) {
        Ok(true) => spat_spec::fs::read_json(&path, &format!("a spat run's {name}"))
            .map_err(|e| Error::Invalid(e.to_string())),
        Ok(false) => Err(Error::Invalid(format!(
            "{}: {absent} (no {name})",
            dir.display()
        ))),
        Err(e) => Err(Error::Io(path, e)),
    }
}

/// One metric of the runs in `dirs` overlaid ([`overlay`]), each curve labelled by method and α
/// ([`run_label`]; where two runs share a label, each such label is followed by the run's folder
/// name), titled `title` or after the metric, with a subtitle saying what was measured on what.
pub fn overlay_runs(
    dirs: &[PathBuf],
    metric: EpochMetric,
    title: Option<String>,
) -> Result<Curves> {
    let mut runs = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let (config, state) = read_run(dir)?;
        runs.push((dir, config, state));
    }
    let labels: Vec<String> = runs.iter().map(|(_, c, _)| run_label(c)).collect();
    let curves = runs
        .iter()
        .zip(&labels)
        .map(|((dir, config, state), label)| {
            let shared = labels.iter().filter(|l| *l == label).count() > 1;
            let label = if shared {
                format!("{label} [{}]", folder_name(dir))
            } else {
                label.clone()
            };
            Curve::of_history(
                label,
                metric,
                &state.history,
                state.best_epoch,
                config.epochs,
            )
        })
        .collect();
    let configs: Vec<(&RunConfig, &[EpochMetrics])> =
        runs.iter().map(|(_, c, s)| (c, &s.history[..])).collect();
    let title = title.unwrap_or_else(|| format!("{} over epochs", metric_name(metric)));
    Ok(overlay(title, measured_on(metric, &configs), curves))
}

/// A metric in words, for titles.
pub fn metric_name(metric: EpochMetric) -> &'static str {
    match metric {
        EpochMetric::Loss => "training loss",
        EpochMetric::CleanAcc => "clean accuracy",
        EpochMetric::RobustAcc => "robust accuracy",
        EpochMetric::Lr => "learning rate",
    }
}

/// What `metric` of these runs measured, in words: the attack and radius (robust accuracy) and the
/// evaluation set (accuracies), stated once when every run shares them.
fn measured_on(metric: EpochMetric, runs: &[(&RunConfig, &[EpochMetrics])]) -> String {
    let same = |text: &dyn Fn(&RunConfig, &[EpochMetrics]) -> String| {
        let all: Vec<String> = runs.iter().map(|(c, h)| text(c, h)).collect();
        all.first()
            .filter(|first| all.iter().all(|t| t == *first))
            .cloned()
    };
    let set = same(&|c, h| evaluation_set(c, h))
        .unwrap_or_else(|| "each run's per-epoch evaluation set".into());
    match metric {
        EpochMetric::RobustAcc => {
            let attack = same(&|c, _| format!("{} at ε = {}", c.eval_attack, radius_text(c.eps)))
                .unwrap_or_else(|| "each run's evaluation attack".into());
            format!("accuracy under {attack} after each epoch on {set}")
        }
        EpochMetric::CleanAcc => format!("accuracy after each epoch on {set}"),
        EpochMetric::Loss => "mean training loss of each epoch (the method's objective)".into(),
        EpochMetric::Lr => "learning rate of each epoch".into(),
    }
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The JSON file beside a curves picture: `curves.png` → `curves.json`.
pub fn json_beside(png: &Path) -> PathBuf {
    png.with_extension("json")
}

/// The bytes of the picture (PNG) and of its numbers (pretty JSON with a final newline).
pub fn encode(curves: &Curves) -> Result<(Vec<u8>, Vec<u8>)> {
    let png = render(curves).to_png()?;
    let mut json = serde_json::to_string_pretty(curves)
        .map_err(|e| Error::Invalid(format!("curves cannot be written as JSON ({e})")))?;
    json.push('\n');
    Ok((png, json.into_bytes()))
}

/// Writes `png` and the JSON beside it ([`json_beside`]), each atomically.
pub fn save(curves: &Curves, png: &Path) -> Result<()> {
    let (image, json) = encode(curves)?;
    for (path, bytes) in [(json_beside(png), json), (png.to_path_buf(), image)] {
        spat_spec::fs::write_atomic(&path, &bytes).map_err(|e| match e {
            spat_spec::Error::Io { path, cause } => Error::Io(path, cause),
            other => Error::Invalid(other.to_string()),
        })?;
    }
    Ok(())
}

/// The size of [`render`]'s picture of `curves`, `(width, height)`.
pub fn size(curves: &Curves) -> (usize, usize) {
    let height = HEADER
        + curves
            .panels
            .iter()
            .map(|p| LINE + panel_height(curves, p) + UNDER + GAP)
            .sum::<i64>();
    (WIDTH, height as usize)
}

fn panel_height(curves: &Curves, panel: &CurvePanel) -> i64 {
    let base = if curves.panels.len() == 1 {
        SINGLE_PANEL
    } else {
        PANEL
    };
    base.max(legend(curves, panel, 0).len() as i64 * LINE)
}

/// Draws `curves`: the title and subtitle, then each panel with its legend at its right.
pub fn render(curves: &Curves) -> Canvas {
    let (width, height) = size(curves);
    let mut c = Canvas::new(width, height, WHITE);
    let title_scale = if Canvas::text_width(&curves.title, 2) as i64 <= width as i64 - LEFT {
        2
    } else {
        1
    };
    c.text(LEFT, 12, &curves.title, BLACK, title_scale);
    c.text(LEFT, 40, &curves.subtitle, BLACK, 1);
    let legends: Vec<Vec<LegendEntry>> = (0..curves.panels.len())
        .map(|k| legend(curves, &curves.panels[k], k))
        .collect();
    let legend_w = legends.iter().map(|l| legend_width(l)).max().unwrap_or(0);
    let plot_w = (width as i64 - LEFT - legend_w - 3 * RIGHT).max(1);
    let mut top = HEADER;
    for (k, panel) in curves.panels.iter().enumerate() {
        let frame = Frame {
            left: LEFT,
            top: top + LINE,
            width: plot_w,
            height: panel_height(curves, panel),
            x: Axis::epochs(curves.epochs),
            y: y_axis(panel),
        };
        draw_panel(&mut c, curves, k, &frame);
        draw_legend(&mut c, LEFT + plot_w + 2 * RIGHT, frame.top, &legends[k]);
        top += LINE + frame.height + UNDER + GAP;
    }
    c
}

fn y_axis(panel: &CurvePanel) -> Axis {
    let values = || {
        panel
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.value))
    };
    let linear = Axis::linear(values());
    let axis = if panel.log_scale {
        Axis::log(values()).unwrap_or(linear)
    } else {
        linear
    };
    // Accuracies stay within 0..100 however the ticks round.
    let (lo, hi) = axis.range();
    if panel.curves.iter().all(|c| is_accuracy(c.metric)) && (lo < 0.0 || hi > 100.0) {
        return Axis::fixed(lo.max(0.0), hi.min(100.0));
    }
    axis
}

fn is_accuracy(m: EpochMetric) -> bool {
    matches!(m, EpochMetric::CleanAcc | EpochMetric::RobustAcc)
}

/// The style of the `i`-th curve of a panel: a run's own curves (one panel each, few curves)
/// take the palette in order from the panel's place, so that no two panels share a colour, and
/// its clean accuracy is dashed, so that it still shows where robust accuracy equals it.
fn style_of(curves: &Curves, panel_index: usize, i: usize) -> Style {
    if curves.mark_stops {
        Style::nth(i)
    } else {
        let before: usize = curves.panels[..panel_index]
            .iter()
            .map(|p| p.curves.len())
            .sum();
        Style {
            colour: PALETTE[(before + i) % PALETTE.len()],
            dashed: curves.panels[panel_index].curves[i].metric == EpochMetric::CleanAcc,
        }
    }
}

/// Draws panel `k` of `curves` in `frame`: axes, the marked epoch, the curves (the first-listed
/// on top: a run's clean accuracy, dashed), then the marks, over every line.
fn draw_panel(c: &mut Canvas, curves: &Curves, k: usize, frame: &Frame) {
    let panel = &curves.panels[k];
    let axis = if frame.y.is_log() {
        format!("{} (log scale)", panel.axis)
    } else {
        panel.axis.clone()
    };
    frame.draw_axes(c, "epoch", &axis);
    if let Some(e) = curves.marked_epoch {
        frame.vertical(c, e as f64, MARK);
    }
    let dots = curves.epochs <= DOTS_UP_TO;
    for (i, curve) in panel.curves.iter().enumerate().rev() {
        let points: Vec<(f64, Option<f64>)> = curve
            .points
            .iter()
            .map(|p| (p.epoch as f64, Some(p.value)))
            .collect();
        frame.draw_series(c, &points, style_of(curves, k, i), dots);
    }
    for (i, curve) in panel.curves.iter().enumerate() {
        let colour = style_of(curves, k, i).colour;
        let at = |epoch: usize| curve.points.iter().find(|p| p.epoch == epoch);
        if let Some(p) = curve.best_epoch.and_then(at) {
            frame.mark(c, (p.epoch as f64, p.value), Marker::Ring, colour);
        }
        if let Some(p) = curves
            .mark_stops
            .then(|| curve.stopped_at())
            .flatten()
            .and_then(at)
        {
            frame.mark(c, (p.epoch as f64, p.value), Marker::Cross, colour);
        }
    }
}

/// The legend of panel `k`: its curves, then the marks' meanings.
fn legend(curves: &Curves, panel: &CurvePanel, k: usize) -> Vec<LegendEntry> {
    let mut entries: Vec<LegendEntry> = panel
        .curves
        .iter()
        .enumerate()
        .map(|(i, curve)| {
            let text = match curve.stopped_at() {
                Some(e) if curves.mark_stops => {
                    format!("{} (to epoch {e} of {})", curve.label, curve.epochs_planned)
                }
                _ => curve.label.clone(),
            };
            LegendEntry::series(style_of(curves, k, i), text)
        })
        .collect();
    match curves.marked_epoch {
        Some(e) if k == 0 => entries
            .push(LegendEntry::series(MARK, format!("best epoch ({e})")).with_marker(Marker::Ring)),
        None if panel.curves.iter().any(|c| c.best_epoch.is_some()) => {
            entries.push(LegendEntry::note("best epoch of each run").with_marker(Marker::Ring))
        }
        _ => {}
    }
    if curves.mark_stops && panel.curves.iter().any(|c| c.stopped_at().is_some()) {
        entries.push(LegendEntry::note("where a run stopped").with_marker(Marker::Cross));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use spat_spec::curves::CurvePoint;

    fn history(n: usize) -> Vec<EpochMetrics> {
        (1..=n)
            .map(|epoch| EpochMetrics {
                epoch,
                loss: 2.3 - 0.05 * epoch as f64,
                clean_acc: 10.0 + epoch as f64,
                robust_acc: 5.0 + (epoch % 7) as f64,
                lr: if epoch < 8 { 0.1 } else { 0.01 },
                images_per_sec: 100.0,
                seconds: 1.0,
                eval_examples: 32,
            })
            .collect()
    }

    fn decode(bytes: &[u8]) -> (u32, u32) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let r = dec.read_info().unwrap();
        let info = r.info();
        (info.width, info.height)
    }

    #[test]
    fn a_runs_curves_hold_its_metrics_and_draw_at_their_size() {
        let mut config = spat_policy::paper_config(
            "tiny",
            spat_spec::Dataset::Cifar10,
            "data".into(),
            spat_spec::Method::Trades,
            None,
        );
        config.spat_alpha = Some(0.1);
        config.epochs = 12;
        config.val_subset = Some(32);
        let h = history(10);
        let curves = of_run(&config, &h, Some(6));
        let values = |k: usize, i: usize| -> Vec<f64> {
            curves.panels[k].curves[i]
                .points
                .iter()
                .map(|p| p.value)
                .collect()
        };
        let of = |f: fn(&EpochMetrics) -> f64| h.iter().map(f).collect::<Vec<f64>>();
        assert_eq!(values(0, 0), of(|m| m.clean_acc));
        assert_eq!(values(0, 1), of(|m| m.robust_acc));
        assert_eq!(values(1, 0), of(|m| m.loss));
        assert_eq!(values(2, 0), of(|m| m.lr));
        assert!(curves.panels[2].log_scale, "0.1 to 0.01 is a decade");
        assert_eq!(curves.marked_epoch, Some(6));
        assert_eq!(
            curves.title,
            "TRADES + SPAT (α = 0.1): tiny on cifar10, seed 0"
        );
        assert!(
            curves.subtitle.contains("validation split (32 images)"),
            "{}",
            curves.subtitle
        );
        let (png, json) = encode(&curves).unwrap();
        let (w, h) = size(&curves);
        assert_eq!(decode(&png), (w as u32, h as u32));
        assert!(crate::is_spat_png(&png));
        let back: Curves = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, curves);
    }

    #[test]
    fn an_overlay_spans_the_longest_plan_and_marks_where_runs_stopped() {
        let full = Curve::of_history("A", EpochMetric::RobustAcc, &history(30), Some(20), 30);
        let stopped = Curve::of_history("B", EpochMetric::RobustAcc, &history(5), Some(3), 30);
        let curves = overlay("t", "s", vec![full, stopped]);
        assert_eq!(curves.epochs, 30);
        let text: Vec<String> = legend(&curves, &curves.panels[0], 0)
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(text[0], "A");
        assert_eq!(text[1], "B (to epoch 5 of 30)");
        assert!(text.iter().any(|t| t == "where a run stopped"), "{text:?}");
        let image = render(&curves);
        assert_eq!((image.width, image.height), size(&curves));
        // Both runs' colours are drawn.
        for colour in [PALETTE[0], PALETTE[1]] {
            assert!(image.pixels.chunks(3).any(|p| p == colour));
        }
    }

    #[test]
    fn many_runs_lengthen_the_panel_to_fit_their_legend() {
        let runs: Vec<Curve> = (0..40)
            .map(|i| Curve {
                label: format!("trial {i}"),
                metric: EpochMetric::RobustAcc,
                points: vec![CurvePoint {
                    epoch: 1,
                    value: i as f64,
                }],
                best_epoch: None,
                epochs_planned: 1,
            })
            .collect();
        let curves = overlay("t", "s", runs);
        let (_, h) = size(&curves);
        assert!(h as i64 >= HEADER + 40 * LINE, "{h}");
        let image = render(&curves);
        assert_eq!(image.height, h);
    }

    #[test]
    fn radii_read_as_written_in_the_thesis() {
        assert_eq!(radius_text(8.0 / 255.0), "8/255");
        assert_eq!(radius_text(0.031), "0.031");
    }
}
