//! results.md / results.json (and the figure PNGs) of one reproduced id: spat's measurements next
//! to the thesis's numbers, or next to what the thesis's text states where a figure prints none.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use serde_json::json;
use spat_spec::report::{
    AlphaAccuracy, Check, EvalReport, GridPoint, Measured, Results, SweepAttack, SweepModel,
    SweepReport, TableRow,
};
use spat_spec::AttackSpec;

use crate::matrix::{self, Cell, Job, Plan, Scale, TrainSpec};
use crate::paper;
use crate::reproduce::{Context, EVAL};

fn read_eval(path: &Path) -> Result<EvalReport> {
    Ok(spat_spec::fs::read_json(
        path,
        "a `spat eval --json` report",
    )?)
}

/// The accuracy under `attack` (a spec as written in the paper data) in an evaluation report.
fn accuracy(v: &EvalReport, attack: &str, path: &Path) -> Result<f64> {
    let spec: AttackSpec = attack.parse()?;
    v.accuracy_of(&spec)
        .ok_or_else(|| anyhow!("{} has no accuracy for `{spec}`", path.display()))
}

fn fmt2(x: f64) -> String {
    format!("{x:.2}")
}

/// What the scale means for the comparison, in one sentence.
pub fn setting(scale: Scale) -> String {
    match scale {
        Scale::Full => "the thesis's setting (architecture, data set, epochs, batch size, attacks); seed 0.".into(),
        Scale::Short => "PreAct-ResNet-18 (ResNet-18 on STL-10), 15 epochs, otherwise the thesis's setting: every method, \
             α and ε kept, so trends are comparable; absolute numbers are expected below the thesis's."
            .into(),
        Scale::Smoke => format!(
            "SMOKE: the `tiny` model (~20k parameters) trained {} epochs on {} images of the embedded CIFAR-10 sample \
             (subsets of the real data for other data sets), batch {}, evaluated on {} test images ({} for α sweeps), on a CPU. This \
             checks the pipeline end to end; its numbers are NOT comparable with the thesis's.",
            matrix::SMOKE_EPOCHS,
            matrix::SMOKE_TRAIN_IMAGES,
            matrix::SMOKE_BATCH,
            matrix::SMOKE_EVAL_IMAGES,
            matrix::SMOKE_SWEEP_IMAGES
        ),
    }
}

fn header(title: &str, scale: Scale, source: &str, caption: &str) -> String {
    format!(
        "## {title} (scale: {scale})\n\nThesis: {source}: \"{caption}\"\n\nspat setting: {}\n\n",
        setting(scale)
    )
}

fn cell_by_label<'a>(plan: &'a Plan, label: &str, pred: impl Fn(&Job) -> bool) -> Result<&'a Cell> {
    plan.cells
        .iter()
        .find(|c| c.label == label && pred(&c.job))
        .ok_or_else(|| anyhow!("{}: no cell measures `{label}`", plan.id))
}

fn train_of(job: &Job) -> &TrainSpec {
    match job {
        Job::Train(t) => t,
        Job::Eval { train, .. } | Job::Sweep { train, .. } | Job::Visualize { train, .. } => train,
    }
}

fn rel(ctx: &Context, dir: &Path, cell: &str) -> String {
    let p = ctx.cell_dir(cell);
    p.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| {
            // The per-id directory sits inside `out` when several ids run together.
            PathBuf::from("..").join(p.strip_prefix(&ctx.out).unwrap_or(&p))
        })
        .display()
        .to_string()
}

/// The fields every `results.json` has, and what was measured.
fn results(plan: &Plan, source: &str, caption: &str, measured: Measured) -> Results {
    Results {
        id: plan.id.clone(),
        scale: plan.scale.to_string(),
        source: source.into(),
        caption: caption.into(),
        setting: setting(plan.scale),
        measured,
    }
}

fn table_report(
    plan: &Plan,
    table: &paper::Table,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Results)> {
    let mut md = header(
        table.source.split(',').next().unwrap_or(table.id),
        plan.scale,
        table.source,
        table.caption,
    );
    let mut cols = vec!["Row".to_string()];
    for c in table.columns {
        cols.push(format!("{} (paper)", c.header));
        cols.push(format!("{} (spat)", c.header));
    }
    cols.push("run".into());
    md.push_str(&format!(
        "| {} |\n|{}\n",
        cols.join(" | "),
        " --- |".repeat(cols.len())
    ));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for row in table.rows {
        let cell = cell_by_label(plan, row.label, |j| matches!(j, Job::Eval { .. }))?;
        let path = ctx.cell_dir(&cell.name).join(EVAL);
        let v = read_eval(&path)?;
        let mut line = vec![row.label.to_string()];
        let mut paper_vals = BTreeMap::new();
        let mut spat_vals = BTreeMap::new();
        for (c, printed) in table.columns.iter().zip(row.values) {
            let ours = accuracy(&v, c.attack, &path)?;
            line.push((*printed).to_string());
            line.push(fmt2(ours));
            paper_vals.insert(c.header.to_string(), paper::value(printed));
            spat_vals.insert(c.header.to_string(), ours);
        }
        let train = train_of(&cell.job);
        line.push(format!("`{}`", rel(ctx, dir, &train.name())));
        md.push_str(&format!("| {} |\n", line.join(" | ")));
        if row.recipe.is_none() {
            // Tables 5.1/5.2 do not print the model's clean accuracy; it helps reading the rest.
            notes.push(format!(
                "Clean accuracy of the {} model (not in the thesis): {}%.",
                train.label(),
                fmt2(accuracy(&v, "clean", &path)?)
            ));
        }
        rows.push(TableRow {
            label: row.label.into(),
            run: ctx.cell_dir(&train.name()),
            eval: path,
            paper: paper_vals,
            spat: spat_vals,
            examples: v.examples,
        });
    }
    md.push('\n');
    notes.push(format!(
        "Attacks at ε = {}/255: {}.",
        matrix::EVAL_EPS,
        table
            .columns
            .iter()
            .map(|c| format!("{} = `{}`", c.header, c.attack))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if plan.id.starts_with("table5") {
        notes.push("The thesis does not state chapter 5's architecture; spat uses Table 6.1's Madry setting \
                    (WRN-34-10, CIFAR-10, 100 epochs at full scale) for both models, the standard one without attack."
            .into());
    }
    for n in &notes {
        md.push_str(&format!("- {n}\n"));
    }
    let attacks = table
        .columns
        .iter()
        .map(|c| c.attack.parse())
        .collect::<Result<_, _>>()?;
    let measured = Measured::Table {
        columns: table.columns.iter().map(|c| c.header.to_string()).collect(),
        attacks,
        eps: format!("{}/255", matrix::EVAL_EPS),
        rows,
        notes,
    };
    Ok((md, results(plan, table.source, table.caption, measured)))
}

fn statements_md(fig: &paper::Figure) -> String {
    let mut s = String::from("What the thesis states (the figure prints no numbers):\n\n");
    for st in fig.statements {
        s.push_str(&format!("- {st}\n"));
    }
    s.push('\n');
    s
}

fn save_plot(plot: &spat_report::LinePlot, path: &Path) -> Result<()> {
    plot.render(900, 600)
        .save_png(path)
        .map_err(|e| anyhow!("{e}"))
}

fn statements(fig: &paper::Figure) -> Vec<String> {
    fig.statements.iter().map(|s| s.to_string()).collect()
}

fn sweep_report(
    plan: &Plan,
    fig: &paper::Figure,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Results)> {
    let mut md = header("Figure 5.3", plan.scale, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let mut series = Vec::new();
    let mut models = Vec::new();
    let mut checks = Vec::new();
    let mut table_rows: Vec<Vec<String>> = matrix::FIG_5_3_ALPHAS
        .iter()
        .map(|a| vec![format!("PGD-LS α = {a}")])
        .collect();
    table_rows.push(vec!["PGD-CE".into()]);
    table_rows.push(vec!["PGD-KL".into()]);
    table_rows.push(vec!["clean".into()]);
    let mut heads = vec!["attack".to_string()];
    for cell in plan
        .cells
        .iter()
        .filter(|c| matches!(c.job, Job::Sweep { .. }))
    {
        let path = ctx.cell_dir(&cell.name).join("sweep.json");
        let v: SweepReport = spat_spec::fs::read_json(&path, "a `spat sweep-alpha` report")?;
        let missing = |what: String| anyhow!("{} has no {what} row", path.display());
        let clean = v.clean_accuracy;
        let ls: Vec<f64> = matrix::FIG_5_3_ALPHAS
            .iter()
            .map(|&a| {
                v.pgd_ls(a)
                    .ok_or_else(|| missing(format!("PGD-LS α = {a}")))
            })
            .collect::<Result<_>>()?;
        let first = |attack: SweepAttack| {
            v.first(attack)
                .ok_or_else(|| missing(attack.as_str().into()))
        };
        let (ce, kl) = (first(SweepAttack::PgdCe)?, first(SweepAttack::PgdKl)?);
        let who = cell.label.clone();
        heads.push(format!("{who} (spat)"));
        for (r, x) in table_rows
            .iter_mut()
            .zip(ls.iter().chain([ce, kl, clean].iter()))
        {
            r.push(fmt2(*x));
        }
        let xs = matrix::FIG_5_3_ALPHAS;
        series.push(spat_report::Series {
            label: format!("{who}: PGD-LS(alpha)"),
            points: xs.iter().zip(&ls).map(|(&a, &y)| (a, Some(y))).collect(),
            dashed: false,
        });
        series.push(spat_report::Series {
            label: format!("{who}: PGD-KL"),
            points: vec![(0.0, Some(kl)), (1.0, Some(kl))],
            dashed: true,
        });
        series.push(spat_report::Series {
            label: format!("{who}: clean"),
            points: vec![(0.0, Some(clean)), (1.0, Some(clean))],
            dashed: true,
        });
        let increases = ls.windows(2).filter(|w| w[1] >= w[0]).count();
        let check = |statement: &str, spat: String, holds: Option<bool>| Check {
            model: Some(who.clone()),
            statement: statement.into(),
            paper: None,
            spat: json!(spat),
            holds,
        };
        checks.push(check(
            "bigger α leads to higher robust accuracy",
            format!(
                "{increases} of {} consecutive α steps do not decrease accuracy",
                ls.len() - 1
            ),
            Some(increases == ls.len() - 1),
        ));
        let last = *ls.last().expect("non-empty α grid");
        checks.push(check(
            "with α = 1.0 the accuracy under attack is higher than the clean accuracy",
            format!("PGD-LS(1.0) {} vs clean {}", fmt2(last), fmt2(clean)),
            Some(last > clean),
        ));
        checks.push(check(
            "jump from α = 0 to α = 0.1 (huge on the standard model, gradual on the adversarially trained one)",
            format!("PGD-LS(0.1) − PGD-LS(0) = {} points", fmt2(ls[1] - ls[0])),
            None,
        ));
        models.push(SweepModel {
            model: who,
            run: ctx.cell_dir(&train_of(&cell.job).name()),
            sweep: path,
            clean,
            pgd_ls: xs
                .iter()
                .zip(&ls)
                .map(|(&alpha, &accuracy)| AlphaAccuracy { alpha, accuracy })
                .collect(),
            pgd_ce: ce,
            pgd_kl: kl,
            examples: v.examples,
        });
    }
    md.push_str(&format!(
        "| {} |\n|{}\n",
        heads.join(" | "),
        " --- |".repeat(heads.len())
    ));
    for r in &table_rows {
        md.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    md.push_str("\nThe thesis's statements checked on spat's numbers:\n\n");
    for c in &checks {
        let holds = match c.holds {
            Some(true) => " — holds",
            Some(false) => " — does not hold",
            None => "",
        };
        md.push_str(&format!(
            "- {}: \"{}\": {}{holds}\n",
            c.model.as_deref().unwrap_or(""),
            c.statement,
            c.spat.as_str().unwrap_or("")
        ));
    }
    let png = dir.join("fig5.3.png");
    save_plot(
        &spat_report::LinePlot {
            title: format!("Fig. 5.3, spat {} scale, eps 8/255", plan.scale),
            x_label: "label-smoothing alpha of PGD-LS".into(),
            y_label: "accuracy (%)".into(),
            series,
            y_range: Some((0.0, 100.0)),
        },
        &png,
    )?;
    md.push_str("\n![Figure 5.3 reproduced](fig5.3.png)\n");
    let measured = Measured::Sweep {
        paper_statements: statements(fig),
        models,
        checks,
        plot: png,
    };
    Ok((md, results(plan, fig.source, fig.caption, measured)))
}

fn alpha_grid_report(
    plan: &Plan,
    fig: &paper::Figure,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Results)> {
    let title = if plan.id == "fig6.1" {
        "Figure 6.1"
    } else {
        "Figure 6.2"
    };
    let mut md = header(title, plan.scale, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    // (eps, alpha) -> (clean, robust)
    let mut points = Vec::new();
    for cell in plan
        .cells
        .iter()
        .filter(|c| matches!(c.job, Job::Eval { .. }))
    {
        let t = train_of(&cell.job);
        let path = ctx.cell_dir(&cell.name).join(EVAL);
        let v = read_eval(&path)?;
        points.push((
            t.eps,
            t.spat_alpha.unwrap_or(0.0),
            accuracy(&v, "clean", &path)?,
            accuracy(&v, matrix::FIG_6_ATTACK, &path)?,
            t.name(),
        ));
    }
    let mut heads = vec!["α".to_string()];
    for &e in matrix::FIG_6_TRAIN_EPS {
        heads.push(format!("clean, train ε={e}/255"));
        heads.push(format!("PGD-20, train ε={e}/255"));
    }
    md.push_str(&format!(
        "| {} |\n|{}\n",
        heads.join(" | "),
        " --- |".repeat(heads.len())
    ));
    let get = |e: f64, a: f64| points.iter().find(|p| p.0 == e && (p.1 - a).abs() < 1e-9);
    for &a in matrix::FIG_6_ALPHAS {
        let mut r = vec![format!("{a}")];
        for &e in matrix::FIG_6_TRAIN_EPS {
            let p = get(e, a).ok_or_else(|| anyhow!("{}: no run for ε = {e}, α = {a}", plan.id))?;
            r.push(fmt2(p.2));
            r.push(fmt2(p.3));
        }
        md.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    let mut checks = Vec::new();
    if plan.id == "fig6.1" {
        for &(e, paper_peak) in paper::FIG_6_1_PEAK_ALPHA {
            let best = points
                .iter()
                .filter(|p| p.0 == e)
                .max_by(|x, y| x.3.total_cmp(&y.3))
                .map(|p| p.1)
                .ok_or_else(|| anyhow!("fig6.1: no run at ε = {e}"))?;
            checks.push(Check {
                model: None,
                statement: format!(
                    "robust accuracy peaks at α = {paper_peak} for training ε = {e}/255"
                ),
                paper: Some(json!(paper_peak)),
                spat: json!(best),
                holds: Some((best - paper_peak).abs() < 1e-9),
            });
        }
        let (pc, pr) = paper::FIG_6_1_ALPHA_ONE_EPS8;
        let p = get(8.0, 1.0).ok_or_else(|| anyhow!("fig6.1: no run for ε = 8, α = 1"))?;
        checks.push(Check {
            model: None,
            statement: "α = 1, training ε = 8/255: clean accuracy 32.44%, robust accuracy 0%"
                .into(),
            paper: Some(json!({"clean": pc, "robust": pr})),
            spat: json!({"clean": p.2, "robust": p.3}),
            holds: None,
        });
    }
    if !checks.is_empty() {
        md.push_str("\nThe thesis's stated points against spat's:\n\n");
        for c in &checks {
            md.push_str(&format!(
                "- \"{}\": paper {}, spat {}\n",
                c.statement,
                c.paper.as_ref().unwrap_or(&serde_json::Value::Null),
                c.spat
            ));
        }
    }
    let mut series = Vec::new();
    for (i, &e) in matrix::FIG_6_TRAIN_EPS.iter().enumerate() {
        for (what, robust) in [("clean", false), ("PGD-20", true)] {
            let mut pts: Vec<(f64, Option<f64>)> = matrix::FIG_6_ALPHAS
                .iter()
                .map(|&a| (a, get(e, a).map(|p| if robust { p.3 } else { p.2 })))
                .collect();
            pts.sort_by(|x, y| x.0.total_cmp(&y.0));
            series.push(spat_report::Series {
                label: format!("{what}, train eps {e}/255"),
                points: pts,
                dashed: robust,
            });
            let _ = i;
        }
    }
    let name = format!("{}.png", plan.id);
    save_plot(
        &spat_report::LinePlot {
            title: format!("{title}, spat {} scale, eval eps 8/255", plan.scale),
            x_label: "label-smoothing alpha of SPAT".into(),
            y_label: "accuracy (%)".into(),
            series,
            y_range: Some((0.0, 100.0)),
        },
        &dir.join(&name),
    )?;
    md.push_str(&format!("\n![{title} reproduced]({name})\n"));
    let measured = Measured::AlphaGrid {
        paper_statements: statements(fig),
        eval_attack: matrix::FIG_6_ATTACK.parse()?,
        points: points
            .iter()
            .map(|p| GridPoint {
                train_eps: p.0,
                alpha: p.1,
                clean: p.2,
                robust: p.3,
                run: ctx.cell_dir(&p.4),
            })
            .collect(),
        checks,
        plot: dir.join(&name),
    };
    Ok((md, results(plan, fig.source, fig.caption, measured)))
}

fn grid_report(
    plan: &Plan,
    fig: &paper::Figure,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Results)> {
    let title = if plan.id == "fig5.1" {
        "Figure 5.1"
    } else {
        "Figure 5.2"
    };
    let mut md = header(title, plan.scale, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let cell = plan
        .cells
        .iter()
        .find(|c| matches!(c.job, Job::Visualize { .. }))
        .ok_or_else(|| anyhow!("{}: no visualisation cell", plan.id))?;
    let src = ctx.cell_dir(&cell.name).join("grid.png");
    let name = format!("{}.png", plan.id);
    let png = fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
    spat_spec::fs::write_atomic(&dir.join(&name), &png)?;
    if let Job::Visualize {
        attacks,
        eps,
        classes,
        ..
    } = &cell.job
    {
        md.push_str(&format!(
            "spat's grid: rows are the first test images of {}; columns: original, then {} at ε = {} (/255); \
             captions under adversarial images are the model's predictions.\n\n![{title} reproduced]({name})\n",
            classes.join(", "),
            attacks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            eps.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    let measured = Measured::Images {
        paper_statements: statements(fig),
        job: serde_json::to_value(&cell.job)?,
        run: ctx.cell_dir(&train_of(&cell.job).name()),
        image: dir.join(&name),
    };
    Ok((md, results(plan, fig.source, fig.caption, measured)))
}

/// Writes `dir/results.md` and `dir/results.json` for `plan`; returns the markdown.
pub fn write(plan: &Plan, ctx: &Context, dir: &Path) -> Result<String> {
    let (md, json) = if let Some(t) = paper::table(&plan.id) {
        table_report(plan, t, ctx, dir)?
    } else {
        let fig =
            paper::figure(&plan.id).ok_or_else(|| anyhow!("no paper data for {}", plan.id))?;
        match plan.id.as_str() {
            "fig5.3" => sweep_report(plan, fig, ctx, dir)?,
            "fig6.1" | "fig6.2" => alpha_grid_report(plan, fig, ctx, dir)?,
            _ => grid_report(plan, fig, ctx, dir)?,
        }
    };
    spat_spec::fs::write_atomic(&dir.join("results.md"), md.as_bytes())?;
    spat_spec::fs::write_json(&dir.join("results.json"), &json)?;
    Ok(md)
}
