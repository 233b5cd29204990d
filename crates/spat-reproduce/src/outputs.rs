//! The files a reproduction writes besides `spat`'s own (whose commands check theirs), each
//! replaced only if it is the reproduction's own: checked before anything is created.
use std::path::{Path, PathBuf};

use spat_spec::curves::Curves;
use spat_spec::fs::{is_json_of, is_marked_text, Outputs, Own};
use spat_spec::report::{CellDone, EvalReport, Results};

use crate::cell::{Attempt, Context, ATTEMPTS, DONE, EVAL};
use crate::matrix::{Cell, Job, Plan};
use crate::paper;

/// results.md ending with spat's mark, results.json and each cell's runner files that read back
/// as their schema, figure PNGs and a table's curves (PNG and JSON) that spat wrote; `single`: one id's report goes into the output
/// directory itself, otherwise into `<out>/<id>/` with an index.
pub fn writes(plans: &[Plan], cells: &[Cell], ctx: &Context, single: bool) -> Outputs {
    let marked = Own::Recognised(is_marked_text);
    let mut o = Outputs::new("--out");
    for plan in plans {
        let dir = if single {
            ctx.out.clone()
        } else {
            ctx.out.join(&plan.id)
        };
        o = o.file(dir.join("results.md"), marked).file(
            dir.join("results.json"),
            Own::Recognised(is_json_of::<Results>),
        );
        if paper::figure(&plan.id).is_some() {
            let png = dir.join(format!("{}.png", plan.id));
            o = o.file(png, Own::Recognised(spat_report::is_spat_png));
        }
        if paper::table(&plan.id).is_some() {
            let png = table_curves(&dir, &plan.id);
            o = o
                .file(
                    spat_report::curves::json_beside(&png),
                    Own::Recognised(is_json_of::<Curves>),
                )
                .file(png, Own::Recognised(spat_report::is_spat_png));
        }
    }
    if !single {
        o = o.file(ctx.out.join("results.md"), marked);
    }
    for cell in cells {
        let dir = ctx.cell_dir(&cell.name);
        o = o
            .file(
                ctx.runner_dir(&cell.name).join(ATTEMPTS),
                Own::Recognised(is_json_of::<Vec<Attempt>>),
            )
            .file(dir.join(DONE), Own::Recognised(is_json_of::<CellDone>));
        if matches!(cell.job, Job::Eval { .. }) {
            o = o.file(dir.join(EVAL), Own::RecognisedAt(own_eval));
        }
    }
    o
}

/// A table's overlay of its rows' curves in its report folder `dir`: `<id>-curves.png` (its
/// numbers beside it, `<id>-curves.json`).
pub fn table_curves(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}-curves.png"))
}

/// Whether `bytes` at `path` are a cell's evaluation report: an [`EvalReport`], or a file the
/// cell's [`DONE`] marker beside it lists as its output (changed since, so the cell runs again).
fn own_eval(path: &Path, bytes: &[u8]) -> bool {
    let listed = || {
        let done = path.with_file_name(DONE);
        spat_spec::fs::read_json::<CellDone>(&done, "a cell marker")
            .is_ok_and(|d| d.outputs.contains_key(EVAL))
    };
    is_json_of::<EvalReport>(bytes) || listed()
}
