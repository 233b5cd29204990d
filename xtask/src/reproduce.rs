//! `cargo xtask reproduce <id|all> [--scale full|short|smoke] [--dry-run] [--device D] [--out DIR]`:
//! runs the matrix of one thesis table or figure through the `spat` binary and writes
//! `results.md` / `results.json` (and a PNG for figures) with spat's numbers beside the thesis's.
//!
//! Every cell of the matrix is a directory under `<out>/runs/`; a cell is finished when its `DONE`
//! marker exists (written last, by rename, with the checksum of each output), so an interrupted
//! reproduction resumes where it stopped: finished cells are skipped, a killed training run
//! continues with `spat train --resume` (spat's own commit protocol makes that safe at any
//! instant), and a cell whose outputs changed after it finished runs again.
//! A runner takes a cell's lock ([`crate::lock`]) before running it and records each attempt in
//! `<out>/cells/<cell>/attempts.json`, so several runners (`--jobs`/`--devices` slots, Slurm array tasks,
//! runners on other machines sharing the directory) never run one cell twice.
//! `--jobs N` / `--devices 0,1,..` run independent cells side by side ([`crate::schedule`]);
//! `--slurm` submits the pending cells as Slurm job arrays ([`crate::slurm`]).

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use spat_spec::dataset::PSEUDO_LABELED_FILE;
use spat_spec::fs::{is_json_of, is_marked_text, Outputs, Own};
use spat_spec::report::{CellDone, EvalReport, Results};
use spat_spec::run::files;
use spat_spec::{AttackSpec, Dataset, Split};

use crate::lock::{self, Acquired, Lock, Runner};
use crate::matrix::{self, Cell, Checkpoint, Job, Plan, Scale, TrainSpec};
use crate::paper;
use crate::protocol;
use crate::report;
use crate::schedule::{self, Outcome};
use crate::slurm;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to reproduce: fig4.1 table5.1 table5.2 fig5.1 fig5.2 fig5.3 table6.1 table6.2 table6.3
    /// table6.4 fig6.1 fig6.2, or `all`.
    pub id: String,
    /// full = the thesis's setting, the named reference code where it is silent, spat's choices
    /// (listed by --dry-run) where neither says; short = PreAct-ResNet-18 (ResNet-18 on STL-10), 15
    /// epochs, every method/α/ε kept; smoke = `tiny` model on the embedded CIFAR-10 sample, CPU.
    #[arg(long, value_enum, default_value_t = Scale::Full)]
    pub scale: Scale,
    /// Print the matrix of runs with estimated costs and every setting with its source (thesis,
    /// reference code, or spat's choice), and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as one JSON object.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Device passed to every `spat` command: cpu | cuda:N (default: cpu for smoke, cuda:0 otherwise).
    #[arg(long)]
    pub device: Option<String>,
    /// Output directory (default: results/<id>-<scale>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder holding cifar-10-batches-bin/, cifar-100-binary/, stl10_binary/ and
    /// ti_500K_pseudo_labeled.pickle (default: $SPAT_DATA_DIR, else data/). The smoke scale reads
    /// CIFAR-10 from the embedded data/cifar-10-mini unless this is given.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// With `all`: skip ids whose data is absent instead of failing.
    #[arg(long)]
    pub skip_missing_data: bool,
    /// Run up to N independent cells at once on --device (on a CPU, each gets cores/N threads
    /// unless RAYON_NUM_THREADS is set); a measurement starts once its training cell is done.
    #[arg(long, default_value_t = 1, conflicts_with = "devices", value_parser = jobs)]
    pub jobs: usize,
    /// Run independent cells in parallel, one per device: CUDA ordinals (`0,1,2,3`) or device
    /// names (`cuda:0,cuda:1`, `cpu`).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
    /// Run only these cells (numbers as in --dry-run's `#` column, or names) and write no report:
    /// what one Slurm array task runs. A measurement cell needs its training cell finished.
    #[arg(long, value_delimiter = ',', conflicts_with = "dry_run")]
    pub cell: Vec<String>,
    /// Write results.md from finished cells only, running nothing; fails naming any unfinished
    /// cell (the last job of a Slurm submission).
    #[arg(long, conflicts_with_all = ["cell", "dry_run"])]
    pub assemble: bool,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

/// `--jobs`: a positive count within [`spat_spec::limits::WORKERS`].
fn jobs(s: &str) -> Result<usize, String> {
    slurm::workers(s).map(|n| n as usize)
}

/// The workspace root (xtask's manifest is one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Where each data set is read from, resolved once.
#[derive(Debug, Clone)]
pub struct DataDirs {
    pub root: PathBuf,
    pub cifar10: PathBuf,
}

impl DataDirs {
    pub fn resolve(args_dir: Option<&Path>, scale: Scale) -> Self {
        let ws = workspace_root();
        let root = args_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SPAT_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| ws.join("data"));
        let cifar10 = if scale == Scale::Smoke && args_dir.is_none() {
            ws.join("data/cifar-10-mini")
        } else {
            root.clone()
        };
        DataDirs { root, cifar10 }
    }

    pub fn dir(&self, d: Dataset) -> &Path {
        match d {
            Dataset::Cifar10 => &self.cifar10,
            _ => &self.root,
        }
    }

    pub fn pseudo_labeled(&self) -> PathBuf {
        self.root.join(PSEUDO_LABELED_FILE)
    }
}

/// Files a data set needs, relative to its official folder, and that folder's name. The smoke
/// scale reads CIFAR-10's first training file only (the embedded sample has no other).
fn required_files(d: Dataset, scale: Scale) -> (&'static str, Vec<&'static str>) {
    let train = d.files(Split::Train);
    let train = if d == Dataset::Cifar10 && scale == Scale::Smoke {
        &train[..1]
    } else {
        train
    };
    let files = train.iter().chain(d.files(Split::Test)).copied().collect();
    (d.dir_name(), files)
}

/// The files an id needs that are absent, as one message naming them and the fetch command.
pub fn missing_data(id: &str, scale: Scale, dirs: &DataDirs) -> Option<String> {
    let d = matrix::dataset_of(id);
    let dir = dirs.dir(d);
    let (folder, files) = required_files(d, scale);
    // spat reads the official folder or the folder above it; accept either.
    let base = if files.iter().all(|f| dir.join(f).is_file()) {
        dir.to_path_buf()
    } else {
        dir.join(folder)
    };
    let mut missing: Vec<String> = files
        .iter()
        .map(|f| base.join(f))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    let mut fetch = vec![format!("cargo xtask fetch-data {d}")];
    if matrix::needs_pseudo_labeled(id) && !dirs.pseudo_labeled().is_file() {
        missing.push(dirs.pseudo_labeled().display().to_string());
        fetch.push("cargo xtask fetch-data ti500k (prints where to get it)".into());
    }
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "{id} needs data that is not here: missing {}; get it with `{}` (into data/), or point --data-dir or \
         SPAT_DATA_DIR at a folder that holds it",
        missing.join(", "),
        fetch.join("` and `")
    ))
}

/// Everything a cell's command depends on besides the cell.
#[derive(Debug, Clone)]
pub struct Context {
    pub out: PathBuf,
    pub device: String,
    pub dirs: DataDirs,
}

impl Context {
    pub fn cell_dir(&self, name: &str) -> PathBuf {
        self.out.join("runs").join(name)
    }

    /// Where runners keep a cell's [`LOCK`] and [`ATTEMPTS`]: beside its run directory, not in
    /// it, since `spat train --out` takes only a new or empty folder or a spat run.
    pub fn runner_dir(&self, name: &str) -> PathBuf {
        runner_dir(&self.out, name)
    }

    fn model_args(&self, t: &TrainSpec, checkpoint: Checkpoint) -> Vec<String> {
        vec![
            "--model".into(),
            t.model.into(),
            "--checkpoint".into(),
            self.cell_dir(&t.name())
                .join(checkpoint.file())
                .display()
                .to_string(),
            "--dataset".into(),
            t.dataset.as_str().into(),
            "--data-dir".into(),
            self.dirs.dir(t.dataset).display().to_string(),
        ]
    }

    /// The `spat` arguments of a cell (for a training cell, the fresh-start form).
    pub fn command(&self, cell: &Cell) -> Vec<String> {
        let dir = self.cell_dir(&cell.name);
        let mut a: Vec<String> = Vec::new();
        let subset = |a: &mut Vec<String>, flag: &str, n: Option<usize>| {
            if let Some(n) = n {
                a.extend([flag.to_string(), n.to_string()]);
            }
        };
        match &cell.job {
            Job::Train(t) => {
                a.extend(
                    ["train", "--dataset", t.dataset.as_str(), "--data-dir"].map(String::from),
                );
                a.push(self.dirs.dir(t.dataset).display().to_string());
                a.extend([
                    "--model".into(),
                    t.model.into(),
                    "--method".into(),
                    t.method.to_string(),
                ]);
                if let Some(alpha) = t.spat_alpha {
                    a.extend(["--spat-alpha".into(), alpha.to_string()]);
                }
                a.extend(["--eps".into(), t.eps.to_string()]);
                if let Some(step) = t.attack_step {
                    a.extend(["--attack-step-size".into(), step.to_string()]);
                }
                a.extend([
                    "--epochs".into(),
                    t.epochs.to_string(),
                    "--batch-size".into(),
                    t.batch_size.to_string(),
                ]);
                subset(&mut a, "--train-subset", t.train_subset);
                subset(&mut a, "--val-subset", t.val_subset);
                subset(&mut a, "--test-subset", t.test_subset);
                if t.pseudo_labeled {
                    a.extend([
                        "--pseudo-labeled".into(),
                        self.dirs.pseudo_labeled().display().to_string(),
                    ]);
                }
                a.extend(["--seed".into(), t.seed.to_string()]);
            }
            Job::Eval {
                train,
                checkpoint,
                attacks,
                eps,
                test_subset,
            } => {
                a.push("eval".into());
                a.extend(self.model_args(train, *checkpoint));
                a.extend([
                    "--attacks".into(),
                    list(attacks),
                    "--eps".into(),
                    eps.to_string(),
                ]);
                subset(&mut a, "--test-subset", *test_subset);
                a.push("--json".into());
            }
            Job::Sweep {
                train,
                checkpoint,
                alphas,
                eps,
                test_subset,
            } => {
                a.push("sweep-alpha".into());
                a.extend(self.model_args(train, *checkpoint));
                let alphas: Vec<String> = alphas.iter().map(f64::to_string).collect();
                a.extend([
                    "--alphas".into(),
                    alphas.join(","),
                    "--eps".into(),
                    eps.to_string(),
                ]);
                subset(&mut a, "--test-subset", *test_subset);
            }
            Job::Visualize {
                train,
                attacks,
                eps,
                classes,
            } => {
                a.push("visualize".into());
                a.extend(self.model_args(train, Checkpoint::Last));
                let eps: Vec<String> = eps.iter().map(ToString::to_string).collect();
                a.extend([
                    "--attacks".into(),
                    list(attacks),
                    "--eps".into(),
                    eps.join(","),
                ]);
                a.extend(["--classes".into(), classes.join(",")]);
            }
            Job::Gradients { models, classes } => {
                let first = &models[0].1;
                a.extend(["gradients".into(), "--model".into(), first.model.into()]);
                for (label, t) in models {
                    let weights = self.cell_dir(&t.name()).join(Checkpoint::Last.file());
                    a.extend([
                        "--checkpoint".into(),
                        format!("{label}={}", weights.display()),
                    ]);
                }
                a.extend([
                    "--dataset".into(),
                    first.dataset.as_str().into(),
                    "--data-dir".into(),
                    self.dirs.dir(first.dataset).display().to_string(),
                ]);
                a.extend(["--classes".into(), classes.join(",")]);
            }
        }
        a.extend(["--device".into(), self.device.clone()]);
        match cell.job {
            // eval prints its JSON; the runner stores it.
            Job::Eval { .. } => {}
            // visualize and gradients write one PNG: a file inside the cell directory.
            Job::Visualize { .. } | Job::Gradients { .. } => {
                a.extend(["--out".into(), dir.join("grid.png").display().to_string()])
            }
            _ => a.extend(["--out".into(), dir.display().to_string()]),
        }
        a
    }
}

fn list(attacks: &[AttackSpec]) -> String {
    attacks
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Cells of several plans, each once, training cells first (they are shared between ids).
pub fn merge(plans: &[Plan]) -> Vec<Cell> {
    let mut seen = BTreeSet::new();
    let mut trains = Vec::new();
    let mut rest = Vec::new();
    for c in plans.iter().flat_map(|p| &p.cells) {
        if seen.insert(c.name.clone()) {
            match c.job {
                Job::Train(_) => trains.push(c.clone()),
                _ => rest.push(c.clone()),
            }
        }
    }
    trains.extend(rest);
    trains
}

fn hours(seconds: f64) -> String {
    if seconds < 3600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// `args` as a shell command line, quoted where needed.
pub fn quote(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains([' ', '*', '(', ')']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn dry_run(
    plans: &[Plan],
    scale: Scale,
    cells: &[Cell],
    ctx: &Context,
    as_json: bool,
) -> Result<()> {
    let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
    let device_kind = if scale == Scale::Smoke { "CPU" } else { "GPU" };
    let total: f64 = cells
        .iter()
        .map(|c| matrix::estimated_seconds(c.flops, scale))
        .sum();
    if as_json {
        let cells: Vec<Value> = cells
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "label": c.label,
                    "job": c.job,
                    "command": std::iter::once("spat".to_string()).chain(ctx.command(c)).collect::<Vec<_>>(),
                    "estimated_flops": c.flops,
                    "estimated_hours": matrix::estimated_seconds(c.flops, scale) / 3600.0,
                })
            })
            .collect();
        let settings: serde_json::Map<String, Value> = plans
            .iter()
            .map(|p| {
                let lines: Vec<Value> = protocol::listing(p)
                    .iter()
                    .flat_map(|(section, lines)| {
                        lines.iter().map(move |l| {
                            json!({
                                "section": section,
                                "key": l.key,
                                "value": l.value,
                                "source": l.source.to_string(),
                                "spat_choice": l.source.is_spat(),
                            })
                        })
                    })
                    .collect();
                (p.id.clone(), Value::Array(lines))
            })
            .collect();
        let v = json!({
            "ids": ids,
            "scale": scale,
            "settings": settings,
            "device": ctx.device,
            "out": ctx.out,
            "cells": cells,
            "estimated_hours": total / 3600.0,
            "cost_basis": matrix::COST_BASIS,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "reproduce {} at scale {scale}: {} cells under {}/runs/",
        ids.join(", "),
        cells.len(),
        ctx.out.display()
    );
    println!();
    println!("| # | cell | serves | est. {device_kind} time | command |");
    println!("| --- | --- | --- | --- | --- |");
    for (i, c) in cells.iter().enumerate() {
        println!(
            "| {} | {} | {} | {} | `spat {}` |",
            i + 1,
            c.name,
            c.label,
            hours(matrix::estimated_seconds(c.flops, scale)),
            quote(&ctx.command(c))
        );
    }
    println!();
    println!(
        "Estimated total: {} of {device_kind} time ({:.1} {device_kind}-hours).",
        hours(total),
        total / 3600.0
    );
    println!("{}", matrix::COST_BASIS);
    for p in plans {
        let sections = protocol::listing(p);
        println!();
        println!("### {} at scale {scale}: settings and their sources", p.id);
        print!("{}", protocol::markdown(&sections));
        println!();
        println!("spat's choices (stated by neither the thesis nor its references):");
        for c in protocol::spat_choices(&sections) {
            println!("- {c}");
        }
    }
    Ok(())
}

/// The `spat` binary: $SPAT_BIN, else `cargo build --release -p spat-cli` in the default target
/// dir (with CUDA when `cuda`).
pub fn spat_binary(cuda: bool) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SPAT_BIN") {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "SPAT_BIN={} is not a file", p.display());
        return Ok(p);
    }
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", "spat-cli"]);
    if cuda {
        let features = std::env::var("SPAT_FEATURES").unwrap_or_else(|_| "cuda".into());
        cmd.args(["--features", &features]);
    }
    eprintln!("xtask: building spat: {cmd:?}");
    let status = cmd.status().context("running cargo build for spat-cli")?;
    ensure!(
        status.success(),
        "`cargo build --release -p spat-cli` failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target
        .join("release")
        .join(format!("spat{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.is_file(),
        "cargo built spat-cli but {} is not there",
        bin.display()
    );
    Ok(bin)
}

/// The marker of a finished cell ([`CellDone`]), written last.
pub const DONE: &str = "DONE";
/// The [`EvalReport`] of an evaluation cell.
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
    pub runner: Runner,
    pub device: String,
    /// Whether it continued a killed training run (`spat train --resume`).
    pub resumed: bool,
    /// `finished`, or `failed: <why>`; absent for an attempt that was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

/// The files a finished cell leaves for the report and for later cells.
fn outputs(job: &Job) -> &'static [&'static str] {
    match job {
        Job::Train(_) => &[files::FINAL],
        Job::Eval { .. } => &[EVAL],
        Job::Sweep { .. } => &["sweep.json"],
        Job::Visualize { .. } | Job::Gradients { .. } => &["grid.png"],
    }
}

fn checksum(path: &Path) -> Option<String> {
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
fn holds_done(dir: &Path, job: &Job) -> bool {
    stale_outputs(dir, job).is_some_and(|s| s.is_empty())
}

/// [`holds_done`], and a marker that does not hold is removed so the cell runs again (it is
/// xtask's own file in xtask's own cell directory). Called by the holder of the cell's lock only.
fn is_done(dir: &Path, job: &Job) -> Result<bool> {
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

/// How one runner runs `spat`.
struct SpatRun<'a> {
    spat: &'a Path,
    /// Prefix for the child's output lines when several cells run at once.
    tag: Option<String>,
    /// RAYON_NUM_THREADS for the child (CPU slots sharing the cores).
    threads: Option<usize>,
    lock: &'a Lock,
}

/// Copies `from` line by line to stderr, each line prefixed with `[tag]`.
fn forward(from: impl Read, tag: &str) {
    let mut r = BufReader::new(from);
    let mut line = Vec::new();
    while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        eprintln!("[{tag}] {}", String::from_utf8_lossy(&line).trim_end());
        line.clear();
    }
}

impl SpatRun<'_> {
    /// Runs `spat args` to the end; stops it if the cell's lock is lost. Returns its stdout if
    /// `capture_stdout`.
    fn run(&self, args: &[String], capture_stdout: bool) -> Result<Vec<u8>> {
        let prefix = self
            .tag
            .as_ref()
            .map_or(String::new(), |t| format!("[{t}] "));
        eprintln!("xtask: {prefix}spat {}", quote(args));
        let mut cmd = Command::new(self.spat);
        cmd.args(args).stdin(Stdio::null());
        if let Some(n) = self.threads {
            cmd.env("RAYON_NUM_THREADS", n.to_string());
        }
        let piped = self.tag.is_some();
        cmd.stdout(if capture_stdout || piped {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        cmd.stderr(if piped {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.spat.display()))?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let tag = self.tag.as_deref().unwrap_or("");
        std::thread::scope(|scope| {
            let out = scope.spawn(move || {
                let mut buf = Vec::new();
                match stdout {
                    Some(mut o) if capture_stdout => {
                        let _ = o.read_to_end(&mut buf);
                    }
                    Some(o) => forward(o, tag),
                    None => {}
                }
                buf
            });
            if let Some(e) = stderr {
                scope.spawn(move || forward(e, tag));
            }
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if self.lock.lost() {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "another runner took over the lock {} (this runner had not refreshed it \
                         within its lease); stopped `spat {}`",
                        self.lock.path().display(),
                        args.first().map_or("", String::as_str)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            let stdout = out.join().map_err(|_| anyhow!("reading spat's output"))?;
            ensure!(status.success(), "`spat {}` failed ({status})", quote(args));
            Ok(stdout)
        })
    }
}

/// Runs one cell unless it is finished or another runner holds it.
fn run_cell(
    spat: &Path,
    cell: &Cell,
    ctx: &Context,
    tag: Option<String>,
    threads: Option<usize>,
) -> Result<Outcome> {
    let dir = ctx.cell_dir(&cell.name);
    if holds_done(&dir, &cell.job) {
        eprintln!("xtask: {} done, skipped", cell.name);
        return Ok(Outcome::Finished);
    }
    for spec in schedule::needs(cell) {
        let train = spec.name();
        ensure!(
            holds_done(&ctx.cell_dir(&train), &Job::Train(spec.clone())),
            "it needs the weights of the training cell {train}, which is not finished \
             (run that cell first)"
        );
    }
    let own = ctx.runner_dir(&cell.name);
    fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
    let lock = match lock::acquire(&own.join(LOCK), lock::DEFAULT_LEASE)? {
        Acquired::Held(l) => l,
        Acquired::Busy(holder) => return Ok(Outcome::Busy(holder.to_string())),
    };
    // Finished by another runner between the first look and the lock; or a marker whose outputs
    // changed, removed here under the lock so that the cell runs again.
    if is_done(&dir, &cell.job)? {
        return Ok(Outcome::Finished);
    }
    let start = Instant::now();
    let mut args = ctx.command(cell);
    let resumed = matches!(cell.job, Job::Train(_)) && dir.join(files::CONFIG).is_file();
    if resumed {
        // A killed run: continue from its last checkpoint with its own config.
        args = vec![
            "train".into(),
            "--resume".into(),
            dir.display().to_string(),
            "--device".into(),
            ctx.device.clone(),
        ];
    }
    // Only the lock's holder writes the history, so reading and replacing it is safe.
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut history = attempts(&own)?;
    history.push(Attempt {
        started_unix: lock::unix_now(),
        runner: lock.holder().runner.clone(),
        device: ctx.device.clone(),
        resumed,
        outcome: None,
        seconds: None,
    });
    spat_spec::fs::write_json(&own.join(ATTEMPTS), &history)?;
    let run = SpatRun {
        spat,
        tag,
        threads,
        lock: &lock,
    };
    let result = run_job(&run, cell, &dir, &args);
    let seconds = start.elapsed().as_secs_f64();
    let last = history.last_mut().expect("pushed above");
    last.seconds = Some(seconds);
    last.outcome = Some(match &result {
        Ok(()) => "finished".into(),
        Err(e) => format!("failed: {e:#}"),
    });
    spat_spec::fs::write_json(&own.join(ATTEMPTS), &history)?;
    result?;
    let mut done = CellDone {
        command: args,
        seconds,
        commit: report::checkout_commit(),
        outputs: Default::default(),
    };
    for name in outputs(&cell.job) {
        let sum = checksum(&dir.join(name))
            .with_context(|| format!("cell {} finished without {name}", cell.name))?;
        done.outputs.insert(name.to_string(), sum);
    }
    // Written last, by rename: the cell is finished exactly when this file exists.
    spat_spec::fs::write_json(&dir.join(DONE), &done)?;
    eprintln!("xtask: {} finished in {seconds:.1} s", cell.name);
    Ok(Outcome::Ran)
}

/// Runs a cell's `spat` command and checks that it wrote what the report reads.
fn run_job(run: &SpatRun<'_>, cell: &Cell, dir: &Path, args: &[String]) -> Result<()> {
    match &cell.job {
        Job::Train(_) => {
            run.run(args, false)?;
            let weights = dir.join(files::FINAL);
            ensure!(
                weights.is_file(),
                "spat train finished but wrote no {}",
                weights.display()
            );
        }
        Job::Eval { .. } => {
            let stdout = run.run(args, true)?;
            let report: EvalReport = serde_json::from_slice(&stdout).with_context(|| {
                format!("`spat eval` printed no evaluation report for {}", cell.name)
            })?;
            spat_spec::fs::write_json(&dir.join(EVAL), &report)?;
        }
        Job::Sweep { .. } => {
            run.run(args, false)?;
            ensure!(
                dir.join("sweep.json").is_file(),
                "spat sweep-alpha wrote no {}/sweep.json",
                dir.display()
            );
        }
        Job::Visualize { .. } | Job::Gradients { .. } => {
            run.run(args, false)?;
            ensure!(
                dir.join("grid.png").is_file(),
                "spat {} wrote no {}/grid.png",
                args[0],
                dir.display()
            );
        }
    }
    Ok(())
}

/// A `--devices` entry as a device name: `2` is `cuda:2`.
fn device_name(d: &str) -> Result<String> {
    let d = d.trim();
    if d.parse::<u32>().is_ok() {
        return Ok(format!("cuda:{d}"));
    }
    ensure!(
        d == "cpu"
            || d == "cuda"
            || d.strip_prefix("cuda:")
                .is_some_and(|n| n.parse::<u32>().is_ok()),
        "--devices: `{d}` is not a device (expected a CUDA ordinal such as 0, or cuda:N, or cpu)"
    );
    Ok(d.to_string())
}

/// The cells `--cell` names: numbers as in `--dry-run` (from 1), or cell names.
pub fn select(cells: &[Cell], wanted: &[String]) -> Result<Vec<Cell>> {
    let mut out: Vec<Cell> = Vec::new();
    for w in wanted {
        let w = w.trim();
        let cell = match w.parse::<usize>() {
            Ok(k) => cells.get(k.wrapping_sub(1)).ok_or_else(|| {
                anyhow!(
                    "--cell {k}: the plan has cells 1 to {} (see --dry-run)",
                    cells.len()
                )
            })?,
            Err(_) => cells.iter().find(|c| c.name == w).ok_or_else(|| {
                anyhow!("--cell {w}: no cell of that name in the plan (see --dry-run)")
            })?,
        };
        if !out.iter().any(|c| c.name == cell.name) {
            out.push(cell.clone());
        }
    }
    Ok(out)
}

/// How often a cell held by another runner is looked at again.
const BUSY_POLL: Duration = Duration::from_secs(2);

/// Runs `cells` (unfinished ones) on `slots`, one cell per slot at a time.
fn run_cells(spat: &Path, cells: &[Cell], ctx: &Context, slots: &[String]) -> Result<()> {
    let cpu_slots = slots.iter().filter(|d| *d == "cpu").count();
    // Cores shared by CPU slots: each spat gets its part, unless the user chose a thread count.
    let threads = (cpu_slots > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none()).then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / cpu_slots).max(1)
    });
    let parallel = slots.len() > 1;
    schedule::run(cells, slots, BUSY_POLL, |i, cell, device| {
        let slot_ctx = Context {
            device: device.to_string(),
            ..ctx.clone()
        };
        if !finished(ctx, cell) {
            eprintln!(
                "xtask: [{}/{}] {} ({}) on {device}",
                i + 1,
                cells.len(),
                cell.name,
                cell.label
            );
        }
        let tag = parallel.then(|| format!("#{}", i + 1));
        run_cell(
            spat,
            cell,
            &slot_ctx,
            tag,
            threads.filter(|_| device == "cpu"),
        )
        .with_context(|| format!("cell {} of {}", cell.name, ctx.out.display()))
    })
}

pub fn run(args: Args) -> Result<()> {
    let ids: Vec<String> = if args.id == "all" {
        matrix::IDS.iter().map(|s| s.to_string()).collect()
    } else if matrix::IDS.contains(&args.id.as_str()) {
        vec![args.id.clone()]
    } else {
        bail!(
            "unknown id `{}`; expected one of: {}, all",
            args.id,
            matrix::IDS.join(", ")
        );
    };
    ensure!(args.jobs >= 1, "--jobs must be at least 1");
    let scale = args.scale;
    let dirs = DataDirs::resolve(args.data_dir.as_deref(), scale);
    let slots: Vec<String> = if args.devices.is_empty() {
        let device = args.device.clone().unwrap_or_else(|| {
            if scale == Scale::Smoke {
                "cpu".into()
            } else {
                "cuda:0".into()
            }
        });
        vec![device; args.jobs]
    } else {
        args.devices
            .iter()
            .map(|d| device_name(d))
            .collect::<Result<_>>()?
    };
    let out = args.out.clone().unwrap_or_else(|| {
        workspace_root()
            .join("results")
            .join(format!("{}-{scale}", args.id))
    });
    let ctx = Context {
        out,
        device: slots[0].clone(),
        dirs,
    };

    let mut ids_to_run = Vec::new();
    let mut problems = Vec::new();
    for id in &ids {
        match missing_data(id, scale, &ctx.dirs) {
            Some(m) if args.skip_missing_data && !args.dry_run => {
                eprintln!("xtask: skipping {id}: {m}")
            }
            Some(m) if !args.dry_run => problems.push(m),
            _ => ids_to_run.push(id.clone()),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    ensure!(
        !ids_to_run.is_empty(),
        "nothing to run: no id has its data here"
    );
    let plans: Vec<Plan> = ids_to_run
        .iter()
        .map(|id| matrix::plan(id, scale).expect("known id"))
        .collect();
    let cells = merge(&plans);
    if args.dry_run {
        return dry_run(&plans, scale, &cells, &ctx, args.json);
    }
    // Every file the reproduction may write is checked before anything is created.
    spat_spec::fs::check_path("--out", &ctx.out)?;
    writes(&args, &plans, &cells, &ctx).check()?;
    if args.slurm.slurm {
        return slurm::submit(&args, &ids_to_run, &plans, &cells, &ctx);
    }
    let selected = if args.cell.is_empty() {
        cells.clone()
    } else {
        select(&cells, &args.cell)?
    };

    let start = Instant::now();
    if !args.assemble {
        // Built only when some cell still has to run, so a finished matrix re-renders its report alone.
        let pending = selected.iter().any(|c| !finished(&ctx, c));
        if pending {
            let spat = spat_binary(slots.iter().any(|d| d.starts_with("cuda")))?;
            fs::create_dir_all(&ctx.out)
                .with_context(|| format!("creating {}", ctx.out.display()))?;
            run_cells(&spat, &selected, &ctx, &slots)?;
        }
        if !args.cell.is_empty() {
            return Ok(());
        }
    }
    let unfinished: Vec<&str> = cells
        .iter()
        .filter(|c| !finished(&ctx, c))
        .map(|c| c.name.as_str())
        .collect();
    ensure!(
        unfinished.is_empty(),
        "{} of {} cells under {} are not finished: {}",
        unfinished.len(),
        cells.len(),
        ctx.out.display(),
        unfinished.join(", ")
    );
    write_reports(&args, &ids_to_run, &plans, &ctx)?;
    eprintln!(
        "xtask: {} at scale {scale} done in {:.1} s; results in {}",
        ids_to_run.join(", "),
        start.elapsed().as_secs_f64(),
        ctx.out.display()
    );
    Ok(())
}

/// Whether the reports go into `out` itself (one id) or into `out/<id>/` with an index.
fn single_report(args: &Args, plans: &[Plan]) -> bool {
    plans.len() == 1 && args.id != "all"
}

/// The files the reproduction writes besides `spat`'s own (whose commands check theirs), each
/// replaced only if it is the reproduction's own: results.md ending with spat's mark,
/// results.json and each cell's runner files that read back as their schema, figure PNGs that
/// spat wrote.
fn writes(args: &Args, plans: &[Plan], cells: &[Cell], ctx: &Context) -> Outputs {
    let marked = Own::Recognised(is_marked_text);
    let single = single_report(args, plans);
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

/// results.md / results.json of every plan (and an index for several ids).
pub fn write_reports(
    args: &Args,
    ids_to_run: &[String],
    plans: &[Plan],
    ctx: &Context,
) -> Result<()> {
    let single = ids_to_run.len() == 1 && args.id != "all";
    let mut index = String::new();
    for plan in plans {
        let dir = if single {
            ctx.out.clone()
        } else {
            ctx.out.join(&plan.id)
        };
        fs::create_dir_all(&dir)?;
        let md = report::write(plan, ctx, &dir)?;
        index.push_str(&md);
        index.push('\n');
    }
    if !single {
        spat_spec::fs::mark_text(&mut index, "cargo xtask reproduce");
        spat_spec::fs::write_atomic(&ctx.out.join("results.md"), index.as_bytes())?;
    }
    Ok(())
}

/// Paper facts used by the report (re-exported for the report module's convenience).
pub fn paper_table(id: &str) -> Option<&'static paper::Table> {
    paper::table(id)
}
