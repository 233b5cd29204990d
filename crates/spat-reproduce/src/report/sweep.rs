//! The report of Figure 5.3: robust accuracy under PGD-LS as α goes from 0 to 1 (with PGD-CE,
//! PGD-KL and clean accuracy) for a standard and a Madry model, last and best checkpoints.

use std::path::Path;

use anyhow::{anyhow, Result};
use spat_spec::report::{AlphaAccuracy, Claim, Measured, SweepAttack, SweepModel, SweepReport};

use super::cells::{epoch_of, train_of};
use super::parts::{claim, epoch_text, fmt2, header, save_plot, statements, statements_md, Body};
use crate::cell::Context;
use crate::claims;
use crate::markdown;
use crate::matrix::{self, Cell, Checkpoint, Job, Plan};
use crate::paper;

pub(super) fn report(plan: &Plan, fig: &paper::Figure, ctx: &Context, dir: &Path) -> Result<Body> {
    let mut models: Vec<(Checkpoint, SweepModel)> = Vec::new();
    for cell in &plan.cells {
        if let Job::Sweep { checkpoint, .. } = &cell.job {
            models.push((*checkpoint, read_sweep(cell, *checkpoint, ctx)?));
        }
    }
    let mut md = header("Figure 5.3", plan, fig.source, fig.caption);
    md.push_str(&statements_md(fig));
    md.push_str(&sweep_table(&models));
    let png = dir.join("fig5.3.png");
    save_plot(
        &spat_report::LinePlot {
            title: format!(
                "Fig. 5.3, spat {} scale, eps 8/255 (best: dashed)",
                plan.scale
            ),
            x_label: "label-smoothing alpha of PGD-LS".into(),
            y_label: "accuracy (%)".into(),
            series: series(&models),
            y_range: Some((0.0, 100.0)),
        },
        &png,
    )?;
    md.push_str("\n![Figure 5.3 reproduced](fig5.3.png)\n");
    let claims = sweep_claims(plan, &models);
    let measured = Measured::Sweep {
        paper_statements: statements(fig),
        models: models.into_iter().map(|(_, m)| m).collect(),
        plot: png,
    };
    Ok(Body {
        md,
        measured,
        claims,
    })
}

/// The α sweep of one sweep cell, as results.json records it.
fn read_sweep(cell: &Cell, checkpoint: Checkpoint, ctx: &Context) -> Result<SweepModel> {
    let t = train_of(&cell.job);
    let path = ctx.cell_dir(&cell.name).join("sweep.json");
    let v: SweepReport = spat_spec::fs::read_json(&path, "a `spat sweep-alpha` report")?;
    let missing = |what: String| anyhow!("{} has no {what} row", path.display());
    let pgd_ls = matrix::FIG_5_3_ALPHAS
        .iter()
        .map(|&alpha| {
            let accuracy = v
                .pgd_ls(alpha)
                .ok_or_else(|| missing(format!("PGD-LS α = {alpha}")))?;
            Ok(AlphaAccuracy { alpha, accuracy })
        })
        .collect::<Result<_>>()?;
    let first = |attack: SweepAttack| {
        v.first(attack)
            .ok_or_else(|| missing(attack.as_str().into()))
    };
    Ok(SweepModel {
        model: cell.label.clone(),
        checkpoint: checkpoint.as_str().into(),
        epoch: epoch_of(ctx, t, checkpoint),
        run: ctx.cell_dir(&t.name()),
        clean: v.clean_accuracy,
        pgd_ls,
        pgd_ce: first(SweepAttack::PgdCe)?,
        pgd_kl: first(SweepAttack::PgdKl)?,
        examples: v.examples,
        sweep: path,
    })
}

/// One column per model and checkpoint; a row per α of PGD-LS, then PGD-CE, PGD-KL and clean.
fn sweep_table(models: &[(Checkpoint, SweepModel)]) -> String {
    let mut head = vec!["attack".to_string()];
    for (_, m) in models {
        head.push(format!(
            "{}, {} (epoch {}) (spat)",
            m.model,
            m.checkpoint,
            epoch_text(m.epoch)
        ));
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, a) in matrix::FIG_5_3_ALPHAS.iter().enumerate() {
        let mut row = vec![format!("PGD-LS α = {a}")];
        row.extend(models.iter().map(|(_, m)| fmt2(m.pgd_ls[i].accuracy)));
        rows.push(row);
    }
    for name in ["PGD-CE", "PGD-KL", "clean"] {
        let mut row = vec![name.to_string()];
        row.extend(models.iter().map(|(_, m)| {
            fmt2(match name {
                "PGD-CE" => m.pgd_ce,
                "PGD-KL" => m.pgd_kl,
                _ => m.clean,
            })
        }));
        rows.push(row);
    }
    markdown::table(&head, rows)
}

/// The PGD-LS curve of every model and checkpoint (best dashed), and for the last checkpoints
/// PGD-KL and clean accuracy as flat dashed lines.
fn series(models: &[(Checkpoint, SweepModel)]) -> Vec<spat_report::Series> {
    let mut series = Vec::new();
    for (checkpoint, m) in models {
        series.push(spat_report::Series {
            label: format!("{} ({}): PGD-LS(alpha)", m.model, m.checkpoint),
            points: m
                .pgd_ls
                .iter()
                .map(|p| (p.alpha, Some(p.accuracy)))
                .collect(),
            dashed: *checkpoint == Checkpoint::Best,
        });
        if *checkpoint == Checkpoint::Last {
            for (what, y) in [("PGD-KL", m.pgd_kl), ("clean", m.clean)] {
                series.push(spat_report::Series {
                    label: format!("{} (last): {what}", m.model),
                    points: vec![(0.0, Some(y)), (1.0, Some(y))],
                    dashed: true,
                });
            }
        }
    }
    series
}

/// §5.2's claims on each model and checkpoint, then the one that compares the two models.
fn sweep_claims(plan: &Plan, models: &[(Checkpoint, SweepModel)]) -> Vec<Claim> {
    let curve = |m: &SweepModel| -> Vec<(f64, f64)> {
        m.pgd_ls.iter().map(|p| (p.alpha, p.accuracy)).collect()
    };
    let mut found = Vec::new();
    for (checkpoint, m) in models {
        let who = &m.model;
        found.push(claim(
            plan.scale,
            format!("bigger α leads to higher robust accuracy ({who})"),
            "§5.2",
            Some(*checkpoint),
            claims::rises_with_alpha(&curve(m)),
        ));
        let at_one = m.pgd_ls.last().expect("non-empty α grid").accuracy;
        found.push(claim(
            plan.scale,
            format!(
                "with α = 1.0 the accuracy under attack is higher than the clean accuracy ({who})"
            ),
            "§5.2",
            Some(*checkpoint),
            claims::above_clean_at_alpha_one(at_one, m.clean),
        ));
    }
    for checkpoint in Checkpoint::BOTH {
        let of = |model: &str| {
            models
                .iter()
                .find(|(k, m)| *k == checkpoint && m.model == model)
                .map(|(_, m)| curve(m))
        };
        if let (Some(s), Some(m)) = (of("Standard"), of("Madry")) {
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
    found
}
