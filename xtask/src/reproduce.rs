//! `cargo xtask reproduce <id|all> [--scale full|short|smoke] [--dry-run] [--device D] [--out DIR]`:
//! runs the matrix of one thesis table or figure through the `spat` binary and writes
//! `results.md` / `results.json` (and a PNG for figures) with spat's numbers beside the thesis's.
//!
//! Every cell of the matrix is a directory under `<out>/runs/`; a cell is finished when its `DONE`
//! marker exists (written last, by rename, with the checksum of each output), so an interrupted
//! reproduction resumes where it stopped: finished cells are skipped, a killed training run
//! continues with `spat train --resume` (spat's own commit protocol makes that safe at any
//! instant), and a cell whose outputs changed after it finished runs again.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::{json, Value};
use spat_spec::dataset::PSEUDO_LABELED_FILE;
use spat_spec::report::{CellDone, EvalReport};
use spat_spec::run::files;
use spat_spec::{AttackSpec, Dataset, Split};

use crate::matrix::{self, Cell, Checkpoint, Job, Plan, Scale, TrainSpec};
use crate::paper;
use crate::protocol;
use crate::report;

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
pub struct Context {
    pub out: PathBuf,
    pub device: String,
    pub dirs: DataDirs,
}

impl Context {
    pub fn cell_dir(&self, name: &str) -> PathBuf {
        self.out.join("runs").join(name)
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

/// The `spat` binary: $SPAT_BIN, else `cargo build --release -p spat-cli` in the default target dir.
fn spat_binary(device: &str) -> Result<PathBuf> {
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
    if device.starts_with("cuda") {
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

fn run_spat(spat: &Path, args: &[String], capture_stdout: bool) -> Result<Vec<u8>> {
    eprintln!("xtask: spat {}", quote(args));
    let mut cmd = Command::new(spat);
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::inherit());
    cmd.stdout(if capture_stdout {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", spat.display()))?;
    ensure!(
        out.status.success(),
        "`spat {}` failed ({})",
        quote(args),
        out.status
    );
    Ok(out.stdout)
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

/// Whether `dir` holds a finished cell: a `DONE` marker whose outputs are all there, unchanged.
/// A marker that does not hold (outputs changed or removed since, or unreadable) is removed, so
/// the cell runs again; it is xtask's own file in xtask's own cell directory.
fn is_done(dir: &Path, job: &Job) -> Result<bool> {
    let marker = dir.join(DONE);
    if !marker.is_file() {
        return Ok(false);
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
    if stale.is_empty() {
        return Ok(true);
    }
    eprintln!(
        "xtask: {} changed since the cell finished ({}); running it again",
        dir.display(),
        stale.join(", ")
    );
    fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    Ok(false)
}

/// Runs one cell unless its marker says it is done.
fn run_cell(spat: Option<&Path>, cell: &Cell, ctx: &Context) -> Result<()> {
    let dir = ctx.cell_dir(&cell.name);
    if is_done(&dir, &cell.job)? {
        eprintln!("xtask: {} done, skipped", cell.name);
        return Ok(());
    }
    let spat = spat.expect("the spat binary is built when a cell is pending");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let start = Instant::now();
    let mut args = ctx.command(cell);
    match &cell.job {
        Job::Train(_) => {
            if dir.join(files::CONFIG).is_file() {
                // A killed run: continue from its last checkpoint with its own config.
                args = vec![
                    "train".into(),
                    "--resume".into(),
                    dir.display().to_string(),
                    "--device".into(),
                    ctx.device.clone(),
                ];
            }
            run_spat(spat, &args, false)?;
            let weights = dir.join(files::FINAL);
            ensure!(
                weights.is_file(),
                "spat train finished but wrote no {}",
                weights.display()
            );
        }
        Job::Eval { .. } => {
            let stdout = run_spat(spat, &args, true)?;
            let report: EvalReport = serde_json::from_slice(&stdout).with_context(|| {
                format!("`spat eval` printed no evaluation report for {}", cell.name)
            })?;
            spat_spec::fs::write_json(&dir.join(EVAL), &report)?;
        }
        Job::Sweep { .. } => {
            run_spat(spat, &args, false)?;
            ensure!(
                dir.join("sweep.json").is_file(),
                "spat sweep-alpha wrote no {}/sweep.json",
                dir.display()
            );
        }
        Job::Visualize { .. } | Job::Gradients { .. } => {
            run_spat(spat, &args, false)?;
            ensure!(
                dir.join("grid.png").is_file(),
                "spat {} wrote no {}/grid.png",
                args[0],
                dir.display()
            );
        }
    }
    let mut done = CellDone {
        command: args,
        seconds: start.elapsed().as_secs_f64(),
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
    eprintln!(
        "xtask: {} finished in {:.1} s",
        cell.name,
        start.elapsed().as_secs_f64()
    );
    Ok(())
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
    let scale = args.scale;
    let dirs = DataDirs::resolve(args.data_dir.as_deref(), scale);
    let device = args.device.clone().unwrap_or_else(|| {
        if scale == Scale::Smoke {
            "cpu".into()
        } else {
            "cuda:0".into()
        }
    });
    let out = args.out.clone().unwrap_or_else(|| {
        workspace_root()
            .join("results")
            .join(format!("{}-{scale}", args.id))
    });
    let ctx = Context { out, device, dirs };

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

    // Built only when some cell still has to run, so a finished matrix re-renders its report alone.
    let mut pending = false;
    for c in &cells {
        pending |= !is_done(&ctx.cell_dir(&c.name), &c.job)?;
    }
    let spat = if pending {
        Some(spat_binary(&ctx.device)?)
    } else {
        None
    };
    fs::create_dir_all(&ctx.out).with_context(|| format!("creating {}", ctx.out.display()))?;
    let start = Instant::now();
    for (i, cell) in cells.iter().enumerate() {
        eprintln!(
            "xtask: [{}/{}] {} ({})",
            i + 1,
            cells.len(),
            cell.name,
            cell.label
        );
        run_cell(spat.as_deref(), cell, &ctx)
            .with_context(|| format!("cell {} of {}", cell.name, ctx.out.display()))?;
    }
    let single = ids_to_run.len() == 1 && args.id != "all";
    let mut index = String::new();
    for plan in &plans {
        let dir = if single {
            ctx.out.clone()
        } else {
            ctx.out.join(&plan.id)
        };
        fs::create_dir_all(&dir)?;
        let md = report::write(plan, &ctx, &dir)?;
        index.push_str(&md);
        index.push('\n');
    }
    if !single {
        spat_spec::fs::write_atomic(&ctx.out.join("results.md"), index.as_bytes())?;
    }
    eprintln!(
        "xtask: {} at scale {scale} done in {:.1} s; results in {}",
        ids_to_run.join(", "),
        start.elapsed().as_secs_f64(),
        ctx.out.display()
    );
    Ok(())
}

/// Paper facts used by the report (re-exported for the report module's convenience).
pub fn paper_table(id: &str) -> Option<&'static paper::Table> {
    paper::table(id)
}
