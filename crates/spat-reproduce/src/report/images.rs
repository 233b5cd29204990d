//! The report of Figures 4.1, 5.1 and 5.2: spat's image grid (adversarial examples or input
//! gradients) beside what the thesis states of its own.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use spat_spec::report::Measured;

use super::cells::train_of;
use super::parts::{header, join, statements, statements_md, Body};
use crate::cell::Context;
use crate::matrix::{Job, Plan};
use crate::paper;

pub(super) fn report(plan: &Plan, fig: &paper::Figure, ctx: &Context, dir: &Path) -> Result<Body> {
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
            join(attacks, ", "),
            join(eps, ", ")
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
    Ok(Body {
        md,
        measured,
        claims: Vec::new(),
    })
}
