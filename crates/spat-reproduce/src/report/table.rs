//! The report of a table (5.1, 5.2, 6.1 to 6.4): each row's last and best checkpoint under every
//! column's attack beside the thesis's printed number, the attacks in words, and the claims.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use spat_spec::curves::EpochMetric;
use spat_spec::report::{CheckpointValues, Claim, Measured, TableRow};
use spat_spec::{AttackLoss, AttackSpec};

use super::cells::{accuracy, epoch_of, read_eval, relative, train_of};
use super::parts::{claim, epoch_text, fmt2, header, Body};
use crate::cell::{Context, EVAL};
use crate::claims;
use crate::markdown;
use crate::matrix::{self, Checkpoint, Job, Plan};
use crate::paper::{self, Column};
use crate::protocol;

pub(super) fn report(plan: &Plan, table: &paper::Table, ctx: &Context, dir: &Path) -> Result<Body> {
    let extra = matrix::extra_columns(&plan.id);
    let columns: Vec<&Column> = table.columns.iter().chain(extra).collect();
    let mut notes = Vec::new();
    let rows: Vec<TableRow> = table
        .rows
        .iter()
        .map(|row| measure(plan, table, &columns, row, ctx, &mut notes))
        .collect::<Result<_>>()?;
    let mut md = header(
        table.source.split(',').next().unwrap_or(table.id),
        plan,
        table.source,
        table.caption,
    );
    let lines = rows
        .iter()
        .zip(table.rows)
        .map(|(r, printed)| line(r, printed, table, extra, ctx, dir));
    md.push_str(&markdown::table(&head(table, extra), lines));
    let (curves_png, curves_md) = curves(plan, table, &rows, ctx, dir)?;
    md.push_str(&curves_md);
    md.push('\n');
    let eval_eps = matrix::EVAL_EPS;
    let attacks: Vec<AttackSpec> = columns
        .iter()
        .map(|c| c.attack.parse())
        .collect::<Result<_, _>>()?;
    let attack_settings: Vec<String> = attacks
        .iter()
        .map(|a| protocol::attack_text(a, eval_eps))
        .collect();
    for ((c, a), text) in columns.iter().zip(&attacks).zip(&attack_settings) {
        notes.push(format!("{} = `{a}`: {text}.", c.header));
    }
    if plan.id.starts_with("table5") {
        notes.push(
            "The thesis does not state chapter 5's architecture; spat uses Table 6.1's Madry \
             setting for both models, the standard one without attack."
                .into(),
        );
    }
    for n in &notes {
        md.push_str(&format!("- {n}\n"));
    }
    let claims = table_claims(plan, table, &rows);
    let measured = Measured::Table {
        columns: columns.iter().map(|c| c.header.to_string()).collect(),
        attacks,
        attack_settings,
        spat_only_columns: extra.iter().map(|c| c.header.to_string()).collect(),
        eps: eval_eps.to_string(),
        rows,
        notes,
        curves: curves_png,
    };
    Ok(Body {
        md,
        measured,
        claims,
    })
}

/// One picture of the robust accuracy of every row's run after each epoch (on its held-out
/// validation split), each run's best epoch marked by a hollow square: `<id>-curves.png` in `dir`, its numbers in
/// `<id>-curves.json`. Returns the picture's path (none if no run has a committed epoch to draw)
/// and the markdown that shows it, naming any run left out and why.
fn curves(
    plan: &Plan,
    table: &paper::Table,
    rows: &[TableRow],
    ctx: &Context,
    dir: &Path,
) -> Result<(Option<PathBuf>, String)> {
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut left_out = Vec::new();
    for r in rows {
        if runs.contains(&r.run) {
            continue;
        }
        match spat_report::curves::read_run(&r.run) {
            Ok(_) => runs.push(r.run.clone()),
            Err(e) => left_out.push(format!(
                "- no curve for `{}`: {e}\n",
                relative(ctx, dir, &r.run)
            )),
        }
    }
    let mut md = String::new();
    let mut png = None;
    if !runs.is_empty() {
        let name = table.source.split(',').next().unwrap_or(table.id);
        let title = format!("{name} ({} scale): robust accuracy over epochs", plan.scale);
        let path = crate::outputs::table_curves(dir, &plan.id);
        let curves = spat_report::curves::overlay_runs(&runs, EpochMetric::RobustAcc, Some(title))
            .and_then(|c| spat_report::curves::save(&c, &path).map(|()| c))
            .map_err(|e| anyhow!("{e}"))?;
        let file = |p: &Path| {
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        let json = file(&spat_report::curves::json_beside(&path));
        md.push_str(&format!(
            "\n![{title}]({png_name})\n\nEach row's run over its epochs: {what}; a hollow square marks \
             the epoch of its best checkpoint. The numbers drawn are in [{json}]({json}).\n",
            title = curves.title,
            png_name = file(&path),
            what = curves.subtitle,
        ));
        png = Some(path);
    }
    if !left_out.is_empty() {
        md.push('\n');
        md.extend(left_out);
    }
    Ok((png, md))
}

/// The header of the markdown table: each paper column three times (paper, last, best), each of
/// spat's own columns twice, the epochs and the run.
fn head(table: &paper::Table, extra: &[Column]) -> Vec<String> {
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
    cols
}

/// One row of the markdown table, in [`head`]'s order.
fn line(
    r: &TableRow,
    printed: &paper::Row,
    table: &paper::Table,
    extra: &[Column],
    ctx: &Context,
    dir: &Path,
) -> Vec<String> {
    let mut line = vec![r.label.clone()];
    for (c, value) in table.columns.iter().zip(printed.values) {
        line.push((*value).to_string());
        line.push(fmt2(r.last.values[c.header]));
        line.push(fmt2(r.best.values[c.header]));
    }
    for c in extra {
        line.push(fmt2(r.last.values[c.header]));
        line.push(fmt2(r.best.values[c.header]));
    }
    line.push(format!(
        "{} / {}",
        epoch_text(r.last.epoch),
        epoch_text(r.best.epoch)
    ));
    line.push(format!("`{}`", relative(ctx, dir, &r.run)));
    line
}

/// A row's measurements: the evaluations of its run's last and best checkpoints (for Tables
/// 5.x, whose thesis rows print no clean accuracy, that goes to `notes`).
fn measure(
    plan: &Plan,
    table: &paper::Table,
    columns: &[&Column],
    row: &paper::Row,
    ctx: &Context,
    notes: &mut Vec<String>,
) -> Result<TableRow> {
    let [last, best] =
        Checkpoint::BOTH.map(|k| measure_checkpoint(plan, columns, row, k, ctx, notes));
    let ((last, run), (best, _)) = (last?, best?);
    Ok(TableRow {
        label: row.label.into(),
        run,
        paper: table
            .columns
            .iter()
            .zip(row.values)
            .map(|(c, printed)| (c.header.to_string(), paper::value(printed)))
            .collect(),
        last,
        best,
    })
}

/// The evaluation of `row`'s run at `checkpoint`, and the run's directory.
fn measure_checkpoint(
    plan: &Plan,
    columns: &[&Column],
    row: &paper::Row,
    checkpoint: Checkpoint,
    ctx: &Context,
    notes: &mut Vec<String>,
) -> Result<(CheckpointValues, PathBuf)> {
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
    let path = ctx.cell_dir(&cell.name).join(EVAL);
    let v = read_eval(&path)?;
    let mut by_column = BTreeMap::new();
    for c in columns {
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
    let values = CheckpointValues {
        weights: ctx.cell_dir(&t.name()).join(checkpoint.file()),
        epoch: epoch_of(ctx, t, checkpoint),
        eval: path,
        values: by_column,
        examples: v.examples,
    };
    Ok((values, ctx.cell_dir(&t.name())))
}

/// The claims a table's numbers test, for each checkpoint: Tables 5.x's α range in which PGD-LS
/// is like PGD-KL, and every "X + SPAT beats X" pair.
fn table_claims(plan: &Plan, table: &paper::Table, rows: &[TableRow]) -> Vec<Claim> {
    let values = |r: &TableRow, k: Checkpoint| match k {
        Checkpoint::Last => r.last.values.clone(),
        Checkpoint::Best => r.best.values.clone(),
    };
    let mut found = Vec::new();
    for checkpoint in Checkpoint::BOTH {
        if let Some(stated) = match plan.id.as_str() {
            "table5.1" => Some(paper::TABLE_5_1_KL_LIKE_ALPHAS),
            "table5.2" => Some(paper::TABLE_5_2_KL_LIKE_ALPHAS),
            _ => None,
        } {
            let v = values(&rows[0], checkpoint);
            found.push(kl_like_claim(plan, table, &v, checkpoint, stated));
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
    found
}

/// Tables 5.x: PGD-LS with α in the thesis's range is like PGD-KL (the first column).
fn kl_like_claim(
    plan: &Plan,
    table: &paper::Table,
    v: &BTreeMap<String, f64>,
    checkpoint: Checkpoint,
    stated: &[f64],
) -> Claim {
    let ls: Vec<(f64, f64)> = table.columns[1..]
        .iter()
        .map(|c| {
            let spec: AttackSpec = c.attack.parse().expect("paper specs parse");
            let alpha = match spec {
                AttackSpec::Pgd {
                    loss: AttackLoss::LabelSmoothed { alpha },
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
    claim(
        plan.scale,
        format!(
            "for {model}, PGD-LS with α between {} and {} is similar to PGD-KL",
            stated[0], stated[1]
        ),
        "§5.2",
        Some(checkpoint),
        claims::kl_like_alpha(v[table.columns[0].header], &ls, stated),
    )
}
