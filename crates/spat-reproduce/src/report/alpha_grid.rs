//! The report of Figures 6.1 and 6.2: clean and PGD-20 accuracy of Madry + SPAT models over α
//! and the training ε, last and best checkpoints, with the points §6.2 states.

use std::path::Path;

use anyhow::{anyhow, Result};
use serde_json::json;
use spat_spec::report::{Check, Claim, GridPoint, Measured};

use super::cells::{accuracy, epoch_of, read_eval, train_of};
use super::parts::{claim, fmt2, header, save_plot, statements, statements_md, Body};
use crate::cell::{Context, EVAL};
use crate::claims;
use crate::markdown;
use crate::matrix::{self, Checkpoint, Job, Plan, Scale, FIG_6_ALPHAS, FIG_6_TRAIN_EPS};
use crate::paper;

pub(super) fn report(plan: &Plan, fig: &paper::Figure, ctx: &Context, dir: &Path) -> Result<Body> {
    let title = if plan.id == "fig6.1" {
        "Figure 6.1"
    } else {
        "Figure 6.2"
    };
    let grid = Grid(read_points(plan, ctx)?);
    let mut md = header(title, plan, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let mut checks = Vec::new();
    let mut claims = Vec::new();
    for checkpoint in Checkpoint::BOTH {
        md.push_str(&format!("{} checkpoints:\n\n", checkpoint.as_str()));
        md.push_str(&grid.table(plan, checkpoint)?);
        md.push('\n');
        if plan.id == "fig6.1" {
            checks.extend(grid.fig_6_1_checks(checkpoint)?);
            claims.extend(grid.fig_6_1_claims(plan.scale, checkpoint));
        }
    }
    md.push_str(&checks_md(&checks));
    let name = format!("{}.png", plan.id);
    save_plot(
        &spat_report::LinePlot {
            title: format!(
                "{title}, spat {} scale, last checkpoints, eval eps 8/255",
                plan.scale
            ),
            x_label: "label-smoothing alpha of SPAT".into(),
            y_label: "accuracy (%)".into(),
            series: grid.series(),
            y_range: Some((0.0, 100.0)),
        },
        &dir.join(&name),
    )?;
    md.push_str(&format!(
        "\n![{title} reproduced (last checkpoints)]({name})\n"
    ));
    let measured = Measured::AlphaGrid {
        paper_statements: statements(fig),
        eval_attack: matrix::FIG_6_ATTACK.parse()?,
        points: grid.0,
        checks,
        plot: dir.join(&name),
    };
    Ok(Body {
        md,
        measured,
        claims,
    })
}

/// Every evaluated model of the figure at each checkpoint, in the plan's order.
fn read_points(plan: &Plan, ctx: &Context) -> Result<Vec<GridPoint>> {
    let mut points = Vec::new();
    for cell in &plan.cells {
        let Job::Eval { checkpoint, .. } = &cell.job else {
            continue;
        };
        let t = train_of(&cell.job);
        let path = ctx.cell_dir(&cell.name).join(EVAL);
        let v = read_eval(&path)?;
        points.push(GridPoint {
            train_eps: t.eps.value() * 255.0,
            alpha: t.spat_alpha.unwrap_or(0.0),
            checkpoint: checkpoint.as_str().into(),
            epoch: epoch_of(ctx, t, *checkpoint),
            clean: accuracy(&v, "clean", &path)?,
            robust: accuracy(&v, matrix::FIG_6_ATTACK, &path)?,
            run: ctx.cell_dir(&t.name()),
        });
    }
    Ok(points)
}

struct Grid(Vec<GridPoint>);

impl Grid {
    /// The model trained at ε = `eps`/255 with α = `alpha`, at `checkpoint`.
    fn get(&self, k: Checkpoint, eps: f64, alpha: f64) -> Option<&GridPoint> {
        self.0.iter().find(|p| {
            p.checkpoint == k.as_str()
                && (p.train_eps - eps).abs() < 1e-9
                && (p.alpha - alpha).abs() < 1e-9
        })
    }

    /// α down, clean and PGD-20 accuracy of each training ε across.
    fn table(&self, plan: &Plan, k: Checkpoint) -> Result<String> {
        let mut head = vec!["α".to_string()];
        for &e in FIG_6_TRAIN_EPS {
            head.push(format!("clean, train ε={e}/255"));
            head.push(format!("PGD-20, train ε={e}/255"));
        }
        let mut rows = Vec::new();
        for &a in FIG_6_ALPHAS {
            let mut r = vec![format!("{a}")];
            for &e in FIG_6_TRAIN_EPS {
                let p = self
                    .get(k, e, a)
                    .ok_or_else(|| anyhow!("{}: no run for ε = {e}, α = {a}", plan.id))?;
                r.push(fmt2(p.clean));
                r.push(fmt2(p.robust));
            }
            rows.push(r);
        }
        Ok(markdown::table(&head, rows))
    }

    /// For each training ε, PGD-20 accuracy over α (the α of a missing run left out).
    fn robust_curves(&self, k: Checkpoint) -> Vec<(f64, Vec<(f64, f64)>)> {
        FIG_6_TRAIN_EPS
            .iter()
            .map(|&e| {
                let curve = FIG_6_ALPHAS
                    .iter()
                    .filter_map(|&a| self.get(k, e, a).map(|p| (a, p.robust)))
                    .collect();
                (e, curve)
            })
            .collect()
    }

    /// The points §6.2 states for Figure 6.1 against spat's: the α of peak robust accuracy per
    /// training ε, and α = 1 at ε = 8/255.
    fn fig_6_1_checks(&self, k: Checkpoint) -> Result<Vec<Check>> {
        let curves = self.robust_curves(k);
        let mut checks = Vec::new();
        for &(e, paper_peak) in paper::FIG_6_1_PEAK_ALPHA {
            let best = curves
                .iter()
                .find(|(x, _)| *x == e)
                .and_then(|(_, pts)| peak_alpha(pts))
                .ok_or_else(|| anyhow!("fig6.1: no run at ε = {e}"))?;
            checks.push(Check {
                model: Some(k.as_str().into()),
                statement: format!(
                    "robust accuracy peaks at α = {paper_peak} for training ε = {e}/255"
                ),
                paper: Some(json!(paper_peak)),
                spat: json!(best),
                holds: Some((best - paper_peak).abs() < 1e-9),
            });
        }
        let (pc, pr) = paper::FIG_6_1_ALPHA_ONE_EPS8;
        let p = self
            .get(k, 8.0, 1.0)
            .ok_or_else(|| anyhow!("fig6.1: no run for ε = 8, α = 1"))?;
        checks.push(Check {
            model: Some(k.as_str().into()),
            statement: "α = 1, training ε = 8/255: clean accuracy 32.44%, robust accuracy 0%"
                .into(),
            paper: Some(json!({"clean": pc, "robust": pr})),
            spat: json!({"clean": p.clean, "robust": p.robust}),
            holds: None,
        });
        Ok(checks)
    }

    /// §6.2's claims on Figure 6.1's grid.
    fn fig_6_1_claims(&self, scale: Scale, k: Checkpoint) -> Vec<Claim> {
        let curves = self.robust_curves(k);
        vec![
            claim(
                scale,
                "the α of peak robust accuracy grows with the training ε",
                "§6.2: \"the peak α value is higher on bigger ε-ball\"",
                Some(k),
                claims::best_alpha_grows_with_eps(&curves),
            ),
            claim(
                scale,
                "the middle training ε-ball (8/255) gives the best robust accuracy",
                "§6.2: \"higher robust accuracy is achieved with middle sized ε-ball\"",
                Some(k),
                claims::middle_eps_most_robust(&curves),
            ),
        ]
    }

    /// Clean (solid) and PGD-20 (dashed) accuracy over α per training ε, last checkpoints.
    fn series(&self) -> Vec<spat_report::Series> {
        let mut series = Vec::new();
        for &e in FIG_6_TRAIN_EPS {
            for (what, robust) in [("clean", false), ("PGD-20", true)] {
                let points = FIG_6_ALPHAS
                    .iter()
                    .map(|&a| {
                        let p = self.get(Checkpoint::Last, e, a);
                        (a, p.map(|p| if robust { p.robust } else { p.clean }))
                    })
                    .collect();
                series.push(spat_report::Series {
                    label: format!("{what}, train eps {e}/255"),
                    points,
                    dashed: robust,
                });
            }
        }
        series
    }
}

/// The α of the highest accuracy on a curve (the first of equals).
fn peak_alpha(points: &[(f64, f64)]) -> Option<f64> {
    points
        .iter()
        .copied()
        .fold(None, |b: Option<(f64, f64)>, p| match b {
            Some(b) if b.1 >= p.1 => Some(b),
            _ => Some(p),
        })
        .map(|p| p.0)
}

/// The thesis's stated points against spat's, as a list.
fn checks_md(checks: &[Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut md = String::from("The thesis's stated points against spat's:\n\n");
    for c in checks {
        md.push_str(&format!(
            "- \"{}\" ({} checkpoints): paper {}, spat {}\n",
            c.statement,
            c.model.as_deref().unwrap_or(""),
            c.paper.as_ref().unwrap_or(&serde_json::Value::Null),
            c.spat
        ));
    }
    md
}
