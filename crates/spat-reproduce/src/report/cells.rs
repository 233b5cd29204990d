//! What the finished cells of a plan left for the report: evaluation reports, the epochs of the
//! last and best checkpoints, the `DONE` markers, and where a run lies relative to the report.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use spat_spec::report::{CellDone, EvalReport};
use spat_spec::run::{files, TrainSummary};
use spat_spec::AttackSpec;

use crate::cell::{Context, DONE};
use crate::matrix::{Checkpoint, Job, TrainSpec};

pub(super) fn read_eval(path: &Path) -> Result<EvalReport> {
    Ok(spat_spec::fs::read_json(
        path,
        "a `spat eval --json` report",
    )?)
}

/// The accuracy under `attack` (a spec as written in the paper data) in an evaluation report.
pub(super) fn accuracy(v: &EvalReport, attack: &str, path: &Path) -> Result<f64> {
    let spec: AttackSpec = attack.parse()?;
    v.accuracy_of(&spec)
        .ok_or_else(|| anyhow!("{} has no accuracy for `{spec}`", path.display()))
}

/// The `DONE` marker of a finished cell.
pub(super) fn done_of(ctx: &Context, cell: &str) -> Option<CellDone> {
    spat_spec::fs::read_json(
        &ctx.cell_dir(cell).join(DONE),
        "a reproduction cell's DONE marker",
    )
    .ok()
}

/// The epoch of `t`'s `checkpoint`, where its summary.json says.
pub(super) fn epoch_of(ctx: &Context, t: &TrainSpec, checkpoint: Checkpoint) -> Option<usize> {
    let path = ctx.cell_dir(&t.name()).join(files::SUMMARY);
    let summary = spat_spec::fs::read_json::<TrainSummary>(&path, "a training summary").ok()?;
    match checkpoint {
        Checkpoint::Last => Some(summary.epochs_done),
        Checkpoint::Best => summary.best_epoch,
    }
}

/// The training run a measurement measures (the first, for a figure of several).
pub(super) fn train_of(job: &Job) -> &TrainSpec {
    job.trains()[0]
}

/// `run` relative to the report's folder `dir`.
pub(super) fn relative(ctx: &Context, dir: &Path, run: &Path) -> String {
    run.strip_prefix(dir)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| {
            // The per-id directory sits inside `out` when several ids run together.
            PathBuf::from("..").join(run.strip_prefix(&ctx.out).unwrap_or(run))
        })
        .display()
        .to_string()
}
