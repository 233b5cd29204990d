//! results.md and results.json of one id, or of several: the body of its report (a table, a sweep,
//! a grid or images), the claims, every setting with its source, and what ran.

use std::fs;
use std::path::Path;

use anyhow::{anyhow, Result};
use spat_spec::report::{CellRecord, Provenance, Results};

use super::cells::done_of;
use super::parts::{claims_md, setting, Body};
use super::{alpha_grid, images, sweep, table};
use crate::cell::Context;
use crate::command::quote;
use crate::markdown;
use crate::matrix::Plan;
use crate::paper;
use crate::protocol;
use crate::workspace::checkout_commit;

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
    let rows = p.cells.iter().map(|c| {
        [
            c.name.clone(),
            c.done.commit.as_deref().unwrap_or("not recorded").into(),
            format!("{:.0}", c.done.seconds),
            format!("`spat {}`", quote(&c.done.command)),
        ]
    });
    format!(
        "\n### What ran\n\nThis report was written by the checkout at commit `{}`.\n\n{}",
        p.report_commit
            .as_deref()
            .unwrap_or("unknown (not a git checkout)"),
        markdown::table(&["cell", "commit", "seconds", "command"], rows)
    )
}

/// Writes `dir/results.md` and `dir/results.json` for `plan`; returns the markdown.
pub fn write(plan: &Plan, ctx: &Context, dir: &Path) -> Result<String> {
    let (source, caption, body) = if let Some(t) = paper::table(&plan.id) {
        (t.source, t.caption, table::report(plan, t, ctx, dir)?)
    } else {
        let fig =
            paper::figure(&plan.id).ok_or_else(|| anyhow!("no paper data for {}", plan.id))?;
        let body = match plan.id.as_str() {
            "fig5.3" => sweep::report(plan, fig, ctx, dir)?,
            "fig6.1" | "fig6.2" => alpha_grid::report(plan, fig, ctx, dir)?,
            _ => images::report(plan, fig, ctx, dir)?,
        };
        (fig.source, fig.caption, body)
    };
    let Body {
        mut md,
        measured,
        claims,
    } = body;
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
        settings: protocol::setting_lines(&sections),
        claims,
        provenance,
    };
    let mut marked = md.clone();
    spat_spec::fs::mark_text(&mut marked, "cargo xtask reproduce");
    spat_spec::fs::write_atomic(&dir.join("results.md"), marked.as_bytes())?;
    spat_spec::fs::write_json(&dir.join("results.json"), &json)?;
    Ok(md)
}

/// results.md / results.json of every plan: of the one id asked for (`single`) in `ctx.out`;
/// otherwise each id's in `ctx.out/<id>/`, and all of them in turn in `ctx.out/results.md`.
pub fn write_all(plans: &[Plan], ctx: &Context, single: bool) -> Result<()> {
    let mut index = String::new();
    for plan in plans {
        let dir = if single {
            ctx.out.clone()
        } else {
            ctx.out.join(&plan.id)
        };
        fs::create_dir_all(&dir)?;
        let md = write(plan, ctx, &dir)?;
        index.push_str(&md);
        index.push('\n');
    }
    if !single {
        spat_spec::fs::mark_text(&mut index, "cargo xtask reproduce");
        spat_spec::fs::write_atomic(&ctx.out.join("results.md"), index.as_bytes())?;
    }
    Ok(())
}
