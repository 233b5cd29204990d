//! results.md / results.json (and the figure PNGs) of one reproduced id: spat's measurements of the
//! last and the best checkpoint of every run next to the thesis's numbers (or next to what the
//! thesis's text states where a figure prints none), the thesis's claims tested on them, every
//! setting with its source, and what ran (commits and commands).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context as _, Result};
use serde_json::json;
use spat_spec::report::{
    AlphaAccuracy, CellDone, CellRecord, CheckpointValues, Claim, EvalReport, GridPoint, Measured,
    Provenance, Results, SettingLine, SweepAttack, SweepModel, SweepReport, TableRow, Verdict,
};
use spat_spec::run::{files, TrainSummary};
use spat_spec::AttackSpec;

use crate::claims::{self, Outcome};
use crate::matrix::{self, Checkpoint, Job, Plan, Scale, TrainSpec};
use crate::paper;
use crate::protocol;
use crate::reproduce::{workspace_root, Context, DONE, EVAL};

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

/// The commit of the checkout at the workspace root (`-dirty` with uncommitted changes to tracked
/// files); `None` outside a git checkout.
pub fn checkout_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// The `DONE` marker of a finished cell.
fn done_of(ctx: &Context, cell: &str) -> Option<CellDone> {
    spat_spec::fs::read_json(
        &ctx.cell_dir(cell).join(DONE),
        "a reproduction cell's DONE marker",
    )
    .ok()
}

/// The epochs of a finished run: (last, best), where its summary.json says.
fn epochs_of(ctx: &Context, t: &TrainSpec) -> (Option<usize>, Option<usize>) {
    let path = ctx.cell_dir(&t.name()).join(files::SUMMARY);
    match spat_spec::fs::read_json::<TrainSummary>(&path, "a training summary") {
        Ok(s) => (Some(s.epochs_done), s.best_epoch),
        Err(_) => (None, None),
    }
}

fn epoch_of(ctx: &Context, t: &TrainSpec, checkpoint: Checkpoint) -> Option<usize> {
    let (last, best) = epochs_of(ctx, t);
    match checkpoint {
        Checkpoint::Last => last,
        Checkpoint::Best => best,
    }
}

fn epoch_text(e: Option<usize>) -> String {
    e.map_or("?".into(), |e| e.to_string())
}

/// The models of an id at the full scale, for the short scale's "X in place of Y".
fn substitutions(plan: &Plan) -> Vec<String> {
    let full = matrix::plan(&plan.id, Scale::Full).expect("a known id");
    let mut out: Vec<String> = Vec::new();
    for (f, s) in full.trains().iter().zip(plan.trains()) {
        let text = format!("{} in place of {}", s.model, f.model);
        if f.model != s.model && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// What the scale means for the comparison, in words, for `plan`.
pub fn setting(plan: &Plan) -> String {
    let trains = plan.trains();
    match plan.scale {
        Scale::Full => "the thesis's setting where it states one; where it is silent, the reference \
                        code it names (file and line below); where neither says, spat's choices (listed \
                        below). One run per row, seed 0. Every run holds out a validation split of its \
                        training set to choose its best epoch on; the last and the best checkpoint are \
                        both evaluated on the test set."
            .into(),
        Scale::Short => {
            let mut drops: Vec<String> = Vec::new();
            for t in &trains {
                let c = protocol::training_claims(t);
                let text = match c.schedule {
                    spat_spec::LrSchedule::Cosine => "cosine for RST".to_string(),
                    _ => format!(
                        "learning-rate drops at epochs {}",
                        c.schedule
                            .drops(c.epochs)
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                };
                if !drops.contains(&text) {
                    drops.push(text);
                }
            }
            format!(
                "SHORT: {}; {} epochs ({}); otherwise the full scale's setting (every method, α and ε, \
                 the held-out validation split, both checkpoints). Absolute numbers are expected below \
                 the thesis's; whether its trends appear after {} epochs is what the claims below \
                 test, not something this scale assumes.",
                substitutions(plan).join(", "),
                matrix::SHORT_EPOCHS,
                drops.join("; "),
                matrix::SHORT_EPOCHS,
            )
        }
        Scale::Smoke => {
            let params = spat_spec::model_size("tiny").map_or(0, |s| s.parameters);
            let pseudo = trains.iter().any(|t| t.pseudo_labeled);
            let rst = if pseudo {
                let per_epoch = matrix::SMOKE_TRAIN_IMAGES.div_ceil(matrix::SMOKE_BATCH)
                    * matrix::SMOKE_BATCH;
                format!(
                    " Each epoch is {per_epoch} images, half of them pseudo-labelled ({} labelled + {} \
                     pseudo-labelled), as RST's epochs of 50,000.",
                    per_epoch / 2,
                    per_epoch / 2
                )
            } else {
                String::new()
            };
            format!(
                "SMOKE: the `tiny` model ({params} parameters) trained {} epochs on {} images of the \
                 embedded CIFAR-10 sample ({} more held out for validation; subsets of the real data \
                 for other data sets), batch {}, evaluated on {} test images ({} for α sweeps), on a \
                 CPU.{rst} This checks the pipeline end to end; its numbers are NOT comparable with \
                 the thesis's and its claims are not testable at this scale.",
                matrix::SMOKE_EPOCHS,
                matrix::SMOKE_TRAIN_IMAGES,
                matrix::SMOKE_VAL_IMAGES,
                matrix::SMOKE_BATCH,
                matrix::SMOKE_EVAL_IMAGES,
                matrix::SMOKE_SWEEP_IMAGES
            )
        }
    }
}

fn header(title: &str, plan: &Plan, source: &str, caption: &str) -> String {
    format!(
        "## {title} (scale: {})\n\nThesis: {source}: \"{caption}\"\n\nspat setting: {}\n\n",
        plan.scale,
        setting(plan)
    )
}

fn train_of(job: &Job) -> &TrainSpec {
    job.trains()[0]
}

/// A claim's record: its verdict on this run (none at the smoke scale).
fn claim(
    scale: Scale,
    statement: impl Into<String>,
    source: &str,
    checkpoint: Option<Checkpoint>,
    outcome: Outcome,
) -> Claim {
    let verdict = match (scale, outcome.holds) {
        (Scale::Smoke, _) => Verdict::NotTestableAtThisScale,
        (_, true) => Verdict::Holds,
        (_, false) => Verdict::DoesNotHold,
    };
    Claim {
        statement: statement.into(),
        source: source.into(),
        checkpoint: checkpoint.map(|c| c.as_str().to_string()),
        verdict,
        evidence: outcome.evidence,
    }
}

fn claims_md(claims: &[Claim]) -> String {
    if claims.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n### The thesis's claims, tested on this run\n\n");
    for c in claims {
        let which = c
            .checkpoint
            .as_ref()
            .map(|k| format!(", {k} checkpoint"))
            .unwrap_or_default();
        let verdict = match c.verdict {
            Verdict::NotTestableAtThisScale => c.verdict.as_str().to_string(),
            v => format!("{} in this run", v.as_str()),
        };
        md.push_str(&format!(
            "- \"{}\" ({}{which}) — {verdict} ({})\n",
            c.statement, c.source, c.evidence
        ));
    }
    md
}

fn table_report(
    plan: &Plan,
    table: &paper::Table,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Measured, Vec<Claim>)> {
    let mut md = header(
        table.source.split(',').next().unwrap_or(table.id),
        plan,
        table.source,
        table.caption,
    );
    let extra = matrix::extra_columns(&plan.id);
    let mut cols = vec!["Row".to_string()];
    for c in table.columns {
        cols.push(format!("{} (paper)", c.header));
        cols.push(format!("{} (spat, last)", c.header));
        cols.push(format!("{} (spat, best)", c.header));
    }
    for c in extra {
        cols.push(format!("{} (spat, last)", c.header));
        cols.push(format!("{} (spat, best)", c.header));
    }
    cols.push("epochs (last / best)".into());
    cols.push("run".into());
    md.push_str(&format!(
        "| {} |\n|{}\n",
        cols.join(" | "),
        " --- |".repeat(cols.len())
    ));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for row in table.rows {
        let mut values = Vec::new();
        let mut train: Option<&TrainSpec> = None;
        for checkpoint in Checkpoint::BOTH {
            let cell = plan
                .cells
                .iter()
                .find(|c| {
                    c.label == row.label
                        && matches!(c.job, Job::Eval { checkpoint: k, .. } if k == checkpoint)
                })
                .ok_or_else(|| {
                    anyhow!(
                        "{}: no {} evaluation of `{}`",
                        plan.id,
                        checkpoint.as_str(),
                        row.label
                    )
                })?;
            let t = train_of(&cell.job);
            train = Some(t);
            let path = ctx.cell_dir(&cell.name).join(EVAL);
            let v = read_eval(&path)?;
            let mut by_column = BTreeMap::new();
            for c in table.columns.iter().chain(extra) {
                by_column.insert(c.header.to_string(), accuracy(&v, c.attack, &path)?);
            }
            if row.recipe.is_none() {
                // Tables 5.1/5.2 do not print the model's clean accuracy; it helps reading the rest.
                notes.push(format!(
                    "Clean accuracy of the {} model ({} checkpoint; not in the thesis): {}%.",
                    t.label(),
                    checkpoint.as_str(),
                    fmt2(accuracy(&v, "clean", &path)?)
                ));
            }
            values.push(CheckpointValues {
                weights: ctx.cell_dir(&t.name()).join(checkpoint.file()),
                epoch: epoch_of(ctx, t, checkpoint),
                eval: path,
                values: by_column,
                examples: v.examples,
            });
        }
        let train = train.expect("two checkpoints");
        let best = values.pop().expect("best");
        let last = values.pop().expect("last");
        let mut line = vec![row.label.to_string()];
        let mut paper_vals = BTreeMap::new();
        for (c, printed) in table.columns.iter().zip(row.values) {
            line.push((*printed).to_string());
            line.push(fmt2(last.values[c.header]));
            line.push(fmt2(best.values[c.header]));
            paper_vals.insert(c.header.to_string(), paper::value(printed));
        }
        for c in extra {
            line.push(fmt2(last.values[c.header]));
            line.push(fmt2(best.values[c.header]));
        }
        line.push(format!(
            "{} / {}",
            epoch_text(last.epoch),
            epoch_text(best.epoch)
        ));
        line.push(format!("`{}`", rel(ctx, dir, &train.name())));
        md.push_str(&format!("| {} |\n", line.join(" | ")));
        rows.push(TableRow {
            label: row.label.into(),
            run: ctx.cell_dir(&train.name()),
            paper: paper_vals,
            last,
            best,
        });
    }
    md.push('\n');
    let eval_eps = matrix::EVAL_EPS;
    let attacks: Vec<AttackSpec> = table
        .columns
        .iter()
        .chain(extra)
        .map(|c| c.attack.parse())
        .collect::<Result<_, _>>()?;
    let attack_settings: Vec<String> = attacks
        .iter()
        .map(|a| protocol::attack_text(a, eval_eps))
        .collect();
    for ((c, a), text) in table
        .columns
        .iter()
        .chain(extra)
        .zip(&attacks)
        .zip(&attack_settings)
    {
        notes.push(format!("{} = `{a}`: {text}.", c.header));
    }
    if plan.id.starts_with("table5") {
        notes.push("The thesis does not state chapter 5's architecture; spat uses Table 6.1's Madry setting \
                    for both models, the standard one without attack."
            .into());
    }
    for n in &notes {
        md.push_str(&format!("- {n}\n"));
    }

    // Claims.
    let mut found = Vec::new();
    let values = |r: &TableRow, k: Checkpoint| match k {
        Checkpoint::Last => r.last.values.clone(),
        Checkpoint::Best => r.best.values.clone(),
    };
    for checkpoint in Checkpoint::BOTH {
        if let Some(stated) = match plan.id.as_str() {
            "table5.1" => Some(paper::TABLE_5_1_KL_LIKE_ALPHAS),
            "table5.2" => Some(paper::TABLE_5_2_KL_LIKE_ALPHAS),
            _ => None,
        } {
            let v = values(&rows[0], checkpoint);
            let ls: Vec<(f64, f64)> = table.columns[1..]
                .iter()
                .map(|c| {
                    let spec: AttackSpec = c.attack.parse().expect("paper specs parse");
                    let alpha = match spec {
                        AttackSpec::Pgd {
                            loss: spat_spec::AttackLoss::LabelSmoothed { alpha },
                            ..
                        } => alpha,
                        _ => unreachable!("Tables 5.x's columns after PGD-KL are PGD-LS"),
                    };
                    (alpha, v[c.header])
                })
                .collect();
            let model = if plan.id == "table5.1" {
                "a standard model"
            } else {
                "an adversarially trained model"
            };
            found.push(claim(
                plan.scale,
                format!(
                    "for {model}, PGD-LS with α between {} and {} is similar to PGD-KL",
                    stated[0], stated[1]
                ),
                "§5.2",
                Some(checkpoint),
                claims::kl_like_alpha(v[table.columns[0].header], &ls, stated),
            ));
        }
        for (s, b) in claims::spat_pairs(table) {
            let (sr, br) = (&rows[s], &rows[b]);
            let (sv, bv) = (values(sr, checkpoint), values(br, checkpoint));
            found.push(claim(
                plan.scale,
                format!("{} beats {} under PGD-20", sr.label, br.label),
                claims::spat_claim_source(&plan.id),
                Some(checkpoint),
                claims::spat_beats_base(&sr.label, sv["PGD-20"], &br.label, bv["PGD-20"]),
            ));
        }
    }
    let measured = Measured::Table {
        columns: table
            .columns
            .iter()
            .chain(extra)
            .map(|c| c.header.to_string())
            .collect(),
        attacks,
        attack_settings,
        spat_only_columns: extra.iter().map(|c| c.header.to_string()).collect(),
        eps: eval_eps.to_string(),
        rows,
        notes,
    };
    Ok((md, measured, found))
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
) -> Result<(String, Measured, Vec<Claim>)> {
    let mut md = header("Figure 5.3", plan, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let mut series = Vec::new();
    let mut models = Vec::new();
    let mut found = Vec::new();
    let mut table_rows: Vec<Vec<String>> = matrix::FIG_5_3_ALPHAS
        .iter()
        .map(|a| vec![format!("PGD-LS α = {a}")])
        .collect();
    table_rows.push(vec!["PGD-CE".into()]);
    table_rows.push(vec!["PGD-KL".into()]);
    table_rows.push(vec!["clean".into()]);
    let mut heads = vec!["attack".to_string()];
    // (model, checkpoint) -> PGD-LS curve, for the claims that compare the two models.
    let mut curves: BTreeMap<(String, &'static str), Vec<(f64, f64)>> = BTreeMap::new();
    for cell in plan.cells.iter() {
        let Job::Sweep { checkpoint, .. } = &cell.job else {
            continue;
        };
        let t = train_of(&cell.job);
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
        let epoch = epoch_of(ctx, t, *checkpoint);
        heads.push(format!(
            "{who}, {} (epoch {}) (spat)",
            checkpoint.as_str(),
            epoch_text(epoch)
        ));
        for (r, x) in table_rows
            .iter_mut()
            .zip(ls.iter().chain([ce, kl, clean].iter()))
        {
            r.push(fmt2(*x));
        }
        let xs = matrix::FIG_5_3_ALPHAS;
        let curve: Vec<(f64, f64)> = xs.iter().copied().zip(ls.iter().copied()).collect();
        series.push(spat_report::Series {
            label: format!("{who} ({}): PGD-LS(alpha)", checkpoint.as_str()),
            points: curve.iter().map(|&(a, y)| (a, Some(y))).collect(),
            dashed: *checkpoint == Checkpoint::Best,
        });
        if *checkpoint == Checkpoint::Last {
            series.push(spat_report::Series {
                label: format!("{who} (last): PGD-KL"),
                points: vec![(0.0, Some(kl)), (1.0, Some(kl))],
                dashed: true,
            });
            series.push(spat_report::Series {
                label: format!("{who} (last): clean"),
                points: vec![(0.0, Some(clean)), (1.0, Some(clean))],
                dashed: true,
            });
        }
        found.push(claim(
            plan.scale,
            format!("bigger α leads to higher robust accuracy ({who})"),
            "§5.2",
            Some(*checkpoint),
            claims::rises_with_alpha(&curve),
        ));
        found.push(claim(
            plan.scale,
            format!(
                "with α = 1.0 the accuracy under attack is higher than the clean accuracy ({who})"
            ),
            "§5.2",
            Some(*checkpoint),
            claims::above_clean_at_alpha_one(*ls.last().expect("non-empty α grid"), clean),
        ));
        curves.insert((who.clone(), checkpoint.as_str()), curve);
        models.push(SweepModel {
            model: who,
            checkpoint: checkpoint.as_str().into(),
            epoch,
            run: ctx.cell_dir(&t.name()),
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
    for checkpoint in Checkpoint::BOTH {
        let k = checkpoint.as_str();
        let standard = curves.get(&("Standard".to_string(), k));
        let madry = curves.get(&("Madry".to_string(), k));
        if let (Some(s), Some(m)) = (standard, madry) {
            found.push(claim(
                plan.scale,
                "on a standard model α = 0 differs hugely from the other PGD-LS; on an adversarially \
                 trained model PGD-LS changes gradually",
                "§5.2",
                Some(checkpoint),
                claims::standard_jumps_more((s[0].1, s[1].1), (m[0].1, m[1].1)),
            ));
        }
    }
    md.push_str(&format!(
        "| {} |\n|{}\n",
        heads.join(" | "),
        " --- |".repeat(heads.len())
    ));
    for r in &table_rows {
        md.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    let png = dir.join("fig5.3.png");
    save_plot(
        &spat_report::LinePlot {
            title: format!(
                "Fig. 5.3, spat {} scale, eps 8/255 (best: dashed)",
                plan.scale
            ),
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
        plot: png,
    };
    Ok((md, measured, found))
}

/// One trained model of Figures 6.x at one checkpoint: (ε, α, clean, robust, run, epoch).
type Point = (f64, f64, f64, f64, String, Option<usize>);

fn alpha_grid_report(
    plan: &Plan,
    fig: &paper::Figure,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Measured, Vec<Claim>)> {
    let title = if plan.id == "fig6.1" {
        "Figure 6.1"
    } else {
        "Figure 6.2"
    };
    let mut md = header(title, plan, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let mut points: Vec<(Checkpoint, Point)> = Vec::new();
    for cell in &plan.cells {
        let Job::Eval { checkpoint, .. } = &cell.job else {
            continue;
        };
        let t = train_of(&cell.job);
        let path = ctx.cell_dir(&cell.name).join(EVAL);
        let v = read_eval(&path)?;
        points.push((
            *checkpoint,
            (
                t.eps.value() * 255.0,
                t.spat_alpha.unwrap_or(0.0),
                accuracy(&v, "clean", &path)?,
                accuracy(&v, matrix::FIG_6_ATTACK, &path)?,
                t.name(),
                epoch_of(ctx, t, *checkpoint),
            ),
        ));
    }
    let get = |k: Checkpoint, e: f64, a: f64| {
        points
            .iter()
            .find(|(c, p)| *c == k && (p.0 - e).abs() < 1e-9 && (p.1 - a).abs() < 1e-9)
            .map(|(_, p)| p)
    };
    let mut checks = Vec::new();
    let mut found = Vec::new();
    for checkpoint in Checkpoint::BOTH {
        md.push_str(&format!("{} checkpoints:\n\n", checkpoint.as_str()));
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
        for &a in matrix::FIG_6_ALPHAS {
            let mut r = vec![format!("{a}")];
            for &e in matrix::FIG_6_TRAIN_EPS {
                let p = get(checkpoint, e, a)
                    .ok_or_else(|| anyhow!("{}: no run for ε = {e}, α = {a}", plan.id))?;
                r.push(fmt2(p.2));
                r.push(fmt2(p.3));
            }
            md.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        md.push('\n');
        let grid: Vec<(f64, Vec<(f64, f64)>)> = matrix::FIG_6_TRAIN_EPS
            .iter()
            .map(|&e| {
                (
                    e,
                    matrix::FIG_6_ALPHAS
                        .iter()
                        .filter_map(|&a| get(checkpoint, e, a).map(|p| (a, p.3)))
                        .collect(),
                )
            })
            .collect();
        if plan.id == "fig6.1" {
            for &(e, paper_peak) in paper::FIG_6_1_PEAK_ALPHA {
                let best = grid
                    .iter()
                    .find(|(x, _)| *x == e)
                    .and_then(|(_, pts)| {
                        pts.iter()
                            .copied()
                            .fold(None, |b: Option<(f64, f64)>, p| match b {
                                Some(b) if b.1 >= p.1 => Some(b),
                                _ => Some(p),
                            })
                    })
                    .map(|p| p.0)
                    .ok_or_else(|| anyhow!("fig6.1: no run at ε = {e}"))?;
                checks.push(spat_spec::report::Check {
                    model: Some(checkpoint.as_str().into()),
                    statement: format!(
                        "robust accuracy peaks at α = {paper_peak} for training ε = {e}/255"
                    ),
                    paper: Some(json!(paper_peak)),
                    spat: json!(best),
                    holds: Some((best - paper_peak).abs() < 1e-9),
                });
            }
            let (pc, pr) = paper::FIG_6_1_ALPHA_ONE_EPS8;
            let p = get(checkpoint, 8.0, 1.0)
                .ok_or_else(|| anyhow!("fig6.1: no run for ε = 8, α = 1"))?;
            checks.push(spat_spec::report::Check {
                model: Some(checkpoint.as_str().into()),
                statement: "α = 1, training ε = 8/255: clean accuracy 32.44%, robust accuracy 0%"
                    .into(),
                paper: Some(json!({"clean": pc, "robust": pr})),
                spat: json!({"clean": p.2, "robust": p.3}),
                holds: None,
            });
            found.push(claim(
                plan.scale,
                "the α of peak robust accuracy grows with the training ε",
                "§6.2: \"the peak α value is higher on bigger ε-ball\"",
                Some(checkpoint),
                claims::best_alpha_grows_with_eps(&grid),
            ));
            found.push(claim(
                plan.scale,
                "the middle training ε-ball (8/255) gives the best robust accuracy",
                "§6.2: \"higher robust accuracy is achieved with middle sized ε-ball\"",
                Some(checkpoint),
                claims::middle_eps_most_robust(&grid),
            ));
        }
    }
    if !checks.is_empty() {
        md.push_str("The thesis's stated points against spat's:\n\n");
        for c in &checks {
            md.push_str(&format!(
                "- \"{}\" ({} checkpoints): paper {}, spat {}\n",
                c.statement,
                c.model.as_deref().unwrap_or(""),
                c.paper.as_ref().unwrap_or(&serde_json::Value::Null),
                c.spat
            ));
        }
    }
    let mut series = Vec::new();
    for &e in matrix::FIG_6_TRAIN_EPS {
        for (what, robust) in [("clean", false), ("PGD-20", true)] {
            let pts: Vec<(f64, Option<f64>)> = matrix::FIG_6_ALPHAS
                .iter()
                .map(|&a| {
                    (
                        a,
                        get(Checkpoint::Last, e, a).map(|p| if robust { p.3 } else { p.2 }),
                    )
                })
                .collect();
            series.push(spat_report::Series {
                label: format!("{what}, train eps {e}/255"),
                points: pts,
                dashed: robust,
            });
        }
    }
    let name = format!("{}.png", plan.id);
    save_plot(
        &spat_report::LinePlot {
            title: format!(
                "{title}, spat {} scale, last checkpoints, eval eps 8/255",
                plan.scale
            ),
            x_label: "label-smoothing alpha of SPAT".into(),
            y_label: "accuracy (%)".into(),
            series,
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
        points: points
            .iter()
            .map(|(k, p)| GridPoint {
                train_eps: p.0,
                alpha: p.1,
                checkpoint: k.as_str().into(),
                epoch: p.5,
                clean: p.2,
                robust: p.3,
                run: ctx.cell_dir(&p.4),
            })
            .collect(),
        checks,
        plot: dir.join(&name),
    };
    Ok((md, measured, found))
}

fn grid_report(
    plan: &Plan,
    fig: &paper::Figure,
    ctx: &Context,
    dir: &Path,
) -> Result<(String, Measured, Vec<Claim>)> {
    let title = match plan.id.as_str() {
        "fig4.1" => "Figure 4.1",
        "fig5.1" => "Figure 5.1",
        _ => "Figure 5.2",
    };
    let mut md = header(title, plan, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    let cell = plan
        .cells
        .iter()
        .find(|c| matches!(c.job, Job::Visualize { .. } | Job::Gradients { .. }))
        .ok_or_else(|| anyhow!("{}: no image cell", plan.id))?;
    let src = ctx.cell_dir(&cell.name).join("grid.png");
    let name = format!("{}.png", plan.id);
    let png = fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
    spat_spec::fs::write_atomic(&dir.join(&name), &png)?;
    match &cell.job {
        Job::Visualize {
            attacks,
            eps,
            classes,
            ..
        } => md.push_str(&format!(
            "spat's grid (last checkpoint): rows are the first test images of {}; columns: original, then {} at \
             ε = {}; captions under adversarial images are the model's predictions.\n\n![{title} reproduced]({name})\n",
            classes.join(", "),
            attacks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            eps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )),
        Job::Gradients { models, classes } => md.push_str(&format!(
            "spat's grid (last checkpoints): rows are the first test images of {}; columns: original, then \
             the input gradient of the {} model; captions under gradients are the model's predictions.\n\n\
             ![{title} reproduced]({name})\n",
            classes.join(", "),
            models
                .iter()
                .map(|(l, _)| l.as_str())
                .collect::<Vec<_>>()
                .join(" and the ")
        )),
        _ => {}
    }
    let measured = Measured::Images {
        paper_statements: statements(fig),
        job: serde_json::to_value(&cell.job)?,
        run: ctx.cell_dir(&train_of(&cell.job).name()),
        image: dir.join(&name),
    };
    Ok((md, measured, Vec::new()))
}

/// The settings of `plan` as results.json lists them.
fn setting_lines(sections: &[(String, Vec<protocol::Line>)]) -> Vec<SettingLine> {
    sections
        .iter()
        .flat_map(|(section, lines)| {
            lines.iter().map(move |l| SettingLine {
                section: section.clone(),
                key: l.key.clone(),
                value: l.value.clone(),
                source: l.source.to_string(),
                spat_choice: l.source.is_spat(),
            })
        })
        .collect()
}

fn provenance(plan: &Plan, ctx: &Context) -> Provenance {
    Provenance {
        report_commit: checkout_commit(),
        cells: plan
            .cells
            .iter()
            .filter_map(|c| {
                done_of(ctx, &c.name).map(|done| CellRecord {
                    name: c.name.clone(),
                    done,
                })
            })
            .collect(),
    }
}

fn provenance_md(p: &Provenance) -> String {
    let mut md = format!(
        "\n### What ran\n\nThis report was written by the checkout at commit `{}`.\n\n\
         | cell | commit | seconds | command |\n| --- | --- | --- | --- |\n",
        p.report_commit
            .as_deref()
            .unwrap_or("unknown (not a git checkout)")
    );
    for c in &p.cells {
        md.push_str(&format!(
            "| {} | {} | {:.0} | `spat {}` |\n",
            c.name,
            c.done.commit.as_deref().unwrap_or("not recorded"),
            c.done.seconds,
            crate::reproduce::quote(&c.done.command)
        ));
    }
    md
}

/// Writes `dir/results.md` and `dir/results.json` for `plan`; returns the markdown.
pub fn write(plan: &Plan, ctx: &Context, dir: &Path) -> Result<String> {
    let (source, caption, (mut md, measured, claims)) = if let Some(t) = paper::table(&plan.id) {
        (t.source, t.caption, table_report(plan, t, ctx, dir)?)
    } else {
        let fig =
            paper::figure(&plan.id).ok_or_else(|| anyhow!("no paper data for {}", plan.id))?;
        let body = match plan.id.as_str() {
            "fig5.3" => sweep_report(plan, fig, ctx, dir)?,
            "fig6.1" | "fig6.2" => alpha_grid_report(plan, fig, ctx, dir)?,
            _ => grid_report(plan, fig, ctx, dir)?,
        };
        (fig.source, fig.caption, body)
    };
    md.push_str(&claims_md(&claims));
    let sections = protocol::listing(plan);
    md.push_str("\n### Settings and their sources\n");
    md.push_str(&protocol::markdown(&sections));
    md.push_str("\n### spat's choices (stated by neither the thesis nor its references)\n\n");
    for c in protocol::spat_choices(&sections) {
        md.push_str(&format!("- {c}\n"));
    }
    let provenance = provenance(plan, ctx);
    md.push_str(&provenance_md(&provenance));
    let json = Results {
        id: plan.id.clone(),
        scale: plan.scale.to_string(),
        source: source.into(),
        caption: caption.into(),
        setting: setting(plan),
        measured,
        settings: setting_lines(&sections),
        claims,
        provenance,
    };
    let mut marked = md.clone();
    spat_spec::fs::mark_text(&mut marked, "cargo xtask reproduce");
    spat_spec::fs::write_atomic(&dir.join("results.md"), marked.as_bytes())?;
    spat_spec::fs::write_json(&dir.join("results.json"), &json)?;
    Ok(md)
}
