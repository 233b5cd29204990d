//! One cell of a reproduction on disk: its run directory `<out>/runs/<cell>/`, finished exactly
//! when its `DONE` marker exists (written last, with the checksum of each output), and its runners'
//! directory `<out>/cells/<cell>/`, with its lock and the attempts that started it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use spat_spec::report::CellDone;
use spat_spec::run::files;

use crate::data::DataDirs;
use crate::lock::Runner;
use crate::matrix::{Cell, Job};

/// Everything a cell's command depends on besides the cell.
#[derive(Debug, Clone)]
pub struct Context {
    /// The reproduction's output directory (`--out`).
    pub out: PathBuf,
    /// The device cells run on (`cpu`, `cuda:0`).
    pub device: String,
    /// Where each data set is read from.
    pub dirs: DataDirs,
}

impl Context {
    /// The run directory of cell `name`: `<out>/runs/<name>`.
    pub fn cell_dir(&self, name: &str) -> PathBuf {
        self.out.join("runs").join(name)
    }

    /// Where runners keep a cell's [`LOCK`] and [`ATTEMPTS`]: beside its run directory, not in
    /// it, since `spat train --out` takes only a new or empty folder or a spat run.
    pub fn runner_dir(&self, name: &str) -> PathBuf {
        runner_dir(&self.out, name)
    }
}

/// The marker of a finished cell ([`CellDone`]), written last.
pub const DONE: &str = "DONE";
/// The [`EvalReport`](spat_spec::report::EvalReport) of an evaluation cell.
pub const EVAL: &str = "eval.json";
/// A cell's lock file ([`crate::lock`]), in [`runner_dir`].
pub const LOCK: &str = "LOCK";
/// A cell's history: one [`Attempt`] per time a runner started it.
pub const ATTEMPTS: &str = "attempts.json";

/// One time a runner started a cell (`attempts.json` holds them all, oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Seconds since the Unix epoch.
    pub started_unix: u64,
    /// The process that started it.
    pub runner: Runner,
    /// The device it ran on.
    pub device: String,
    /// Whether it continued a killed training run (`spat train --resume`).
    pub resumed: bool,
    /// `finished`, or `failed: <why>`; absent for an attempt that was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Wall time until the outcome, in seconds; absent for an attempt that was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// The files a finished cell leaves for the report and for later cells.
pub(crate) fn outputs(job: &Job) -> &'static [&'static str] {
    match job {
        Job::Train(_) => &[files::FINAL],
        Job::Eval { .. } => &[EVAL],
        Job::Sweep { .. } => &["sweep.json"],
        Job::Visualize { .. } | Job::Gradients { .. } => &["grid.png"],
    }
}

pub(crate) fn checksum(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|b| spat_spec::Fnv1a::hex_of(&b))
}

/// The outputs of a cell with a `DONE` marker that no longer match it (changed or removed since,
/// or `DONE` itself when unreadable); `None` if the cell has no marker.
fn stale_outputs(dir: &Path, job: &Job) -> Option<Vec<&'static str>> {
    let marker = dir.join(DONE);
    if !marker.is_file() {
        return None;
    }
    let done: Option<CellDone> = spat_spec::fs::read_json(&marker, "a cell marker").ok();
    let stale: Vec<&str> = match &done {
        Some(d) => outputs(job)
            .iter()
            .copied()
            .filter(|o| d.outputs.get(*o) != checksum(&dir.join(o)).as_ref())
            .collect(),
        None => vec![DONE],
    };
    Some(stale)
}

/// Whether `dir` holds a finished cell: a `DONE` marker whose outputs are all there, unchanged.
/// Only looks: see [`is_done`].
pub(crate) fn holds_done(dir: &Path, job: &Job) -> bool {
    stale_outputs(dir, job).is_some_and(|s| s.is_empty())
}

/// [`holds_done`], and a marker that does not hold is removed so the cell runs again (it is
/// xtask's own file in xtask's own cell directory). Called by the holder of the cell's lock only.
pub(crate) fn is_done(dir: &Path, job: &Job) -> Result<bool> {
    let Some(stale) = stale_outputs(dir, job) else {
        return Ok(false);
    };
    if stale.is_empty() {
        return Ok(true);
    }
    let marker = dir.join(DONE);
    eprintln!(
        "xtask: {} changed since the cell finished ({}); running it again",
        dir.display(),
        stale.join(", ")
    );
    fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    Ok(false)
}

/// `<out>/cells/<cell>/`: the runners' files of one cell (its lock and attempts).
pub fn runner_dir(out: &Path, cell: &str) -> PathBuf {
    out.join("cells").join(cell)
}

/// The attempts recorded in a cell's [`runner_dir`] (none if it has no `attempts.json`).
pub fn attempts(runner_dir: &Path) -> Result<Vec<Attempt>> {
    let path = runner_dir.join(ATTEMPTS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(spat_spec::fs::read_json(&path, "a cell's attempts")?)
}

/// Whether a cell is finished: its `DONE` marker exists and its outputs are unchanged.
pub fn finished(ctx: &Context, cell: &Cell) -> bool {
    holds_done(&ctx.cell_dir(&cell.name), &cell.job)
}
