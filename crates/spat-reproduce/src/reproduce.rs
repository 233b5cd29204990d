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
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::{json, Value};

use crate::cell::{finished, Context};
use crate::command::{quote, spat_args};
use crate::data::{missing_data, DataDirs};
use crate::markdown;
use crate::matrix::{self, Cell, Job, Plan, Scale};
use crate::outputs;
use crate::protocol;
use crate::report;
use crate::runner::{device_name, run_cells, select};
use crate::slurm;
use crate::workspace::{spat_binary, workspace_root};

/// The options of `cargo xtask reproduce`.
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
    /// Output directory (default: `results/<id>-<scale>`).
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
    #[arg(long, default_value_t = 1, conflicts_with_all = ["devices", "slurm"], value_parser = jobs)]
    pub jobs: usize,
    /// Run independent cells in parallel, one per device: CUDA ordinals (`0,1,2,3`) or device
    /// names (`cuda:0,cuda:1`, `cpu`).
    #[arg(long, value_delimiter = ',', conflicts_with = "device")]
    pub devices: Vec<String>,
    /// Run only these cells (numbers as in --dry-run's `#` column, or names) and write no report:
    /// what one Slurm array task runs. A measurement cell needs its training cell finished.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["dry_run", "slurm"])]
    pub cell: Vec<String>,
    /// Write results.md from finished cells only, running nothing; fails naming any unfinished
    /// cell (the last job of a Slurm submission).
    #[arg(long, conflicts_with_all = ["cell", "dry_run", "slurm"])]
    pub assemble: bool,
    /// The Slurm options (`--slurm` and what it takes).
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
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

/// `--dry-run`: the cells with their commands and estimated costs, and every plan's settings
/// with their sources; as one JSON object with `--json`.
fn dry_run(
    plans: &[Plan],
    scale: Scale,
    cells: &[Cell],
    ctx: &Context,
    as_json: bool,
) -> Result<()> {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&dry_run_json(plans, scale, cells, ctx))?
        );
        return Ok(());
    }
    let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
    let device_kind = if scale == Scale::Smoke { "CPU" } else { "GPU" };
    println!(
        "reproduce {} at scale {scale}: {} cells under {}/runs/",
        ids.join(", "),
        cells.len(),
        ctx.out.display()
    );
    println!();
    let rows = cells.iter().enumerate().map(|(i, c)| {
        [
            (i + 1).to_string(),
            c.name.clone(),
            c.label.clone(),
            hours(matrix::estimated_seconds(c.flops, scale)),
            format!("`spat {}`", quote(&spat_args(ctx, c))),
        ]
    });
    let time = format!("est. {device_kind} time");
    print!(
        "{}",
        markdown::table(&["#", "cell", "serves", &time, "command"], rows)
    );
    println!();
    let total = total_seconds(cells, scale);
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

fn total_seconds(cells: &[Cell], scale: Scale) -> f64 {
    cells
        .iter()
        .map(|c| matrix::estimated_seconds(c.flops, scale))
        .sum()
}

/// `--dry-run --json`: the plan as one object.
fn dry_run_json(plans: &[Plan], scale: Scale, cells: &[Cell], ctx: &Context) -> Value {
    let ids: Vec<&str> = plans.iter().map(|p| p.id.as_str()).collect();
    let cells_json: Vec<Value> = cells
        .iter()
        .map(|c| {
            let command: Vec<String> = std::iter::once("spat".to_string())
                .chain(spat_args(ctx, c))
                .collect();
            json!({
                "name": c.name,
                "label": c.label,
                "job": c.job,
                "command": command,
                "estimated_flops": c.flops,
                "estimated_hours": matrix::estimated_seconds(c.flops, scale) / 3600.0,
            })
        })
        .collect();
    let settings: serde_json::Map<String, Value> = plans
        .iter()
        .map(|p| {
            let lines = protocol::setting_lines(&protocol::listing(p));
            (p.id.clone(), json!(lines))
        })
        .collect();
    json!({
        "ids": ids,
        "scale": scale,
        "settings": settings,
        "device": ctx.device,
        "out": ctx.out,
        "cells": cells_json,
        "estimated_hours": total_seconds(cells, scale) / 3600.0,
        "cost_basis": matrix::COST_BASIS,
    })
}

/// `--jobs`: a positive count within [`spat_spec::limits::WORKERS`].
fn jobs(s: &str) -> Result<usize, String> {
    slurm::workers(s).map(|n| n as usize)
}

/// `cargo xtask reproduce`: a dry run, a Slurm submission, or the cells run here and the report.
pub fn run(args: Args) -> Result<()> {
    let r = Reproduction::resolve(&args)?;
    if args.dry_run {
        return dry_run(&r.plans, args.scale, &r.cells, &r.ctx, args.json);
    }
    // Every file the reproduction may write is checked before anything is created.
    spat_spec::fs::check_path("--out", &r.ctx.out)?;
    outputs::writes(&r.plans, &r.cells, &r.ctx, r.single()).check()?;
    if args.slurm.slurm {
        return r.submit();
    }
    r.run_and_report()
}

/// One command line, resolved: the ids whose data is here, their plans and cells (each once),
/// and where and on which devices they run.
struct Reproduction<'a> {
    args: &'a Args,
    ids: Vec<String>,
    plans: Vec<Plan>,
    cells: Vec<Cell>,
    ctx: Context,
    slots: Vec<String>,
}

impl<'a> Reproduction<'a> {
    fn resolve(args: &'a Args) -> Result<Self> {
        let ids = ids_of(&args.id)?;
        ensure!(args.jobs >= 1, "--jobs must be at least 1");
        let scale = args.scale;
        let slots = slots_of(args)?;
        let out = args.out.clone().unwrap_or_else(|| {
            workspace_root()
                .join("results")
                .join(format!("{}-{scale}", args.id))
        });
        let ctx = Context {
            out,
            device: slots[0].clone(),
            dirs: DataDirs::resolve(args.data_dir.as_deref(), scale),
        };
        let ids = with_data(args, &ids, &ctx.dirs)?;
        let plans: Vec<Plan> = ids
            .iter()
            .map(|id| matrix::plan(id, scale).expect("known id"))
            .collect();
        Ok(Reproduction {
            args,
            cells: merge(&plans),
            ids,
            plans,
            ctx,
            slots,
        })
    }

    /// Whether one id was asked for (its report goes into the output directory itself).
    fn single(&self) -> bool {
        self.ids.len() == 1 && self.args.id != "all"
    }

    /// `--slurm`: the unfinished cells as job arrays, or the report if none is left.
    fn submit(&self) -> Result<()> {
        let ctx = slurm::prepare(&self.args.slurm, &self.ctx)?;
        if self.cells.iter().all(|c| finished(&ctx, c)) {
            report::write_all(&self.plans, &ctx, self.single())?;
            eprintln!(
                "xtask: all {} cells under {} are finished: nothing to submit; wrote results.md",
                self.cells.len(),
                ctx.out.display()
            );
            return Ok(());
        }
        let tasks = slurm::Tasks {
            id: &self.args.id,
            scale: self.args.scale,
            data_dir: self.args.data_dir.as_deref(),
            skip_missing_data: self.args.skip_missing_data,
        };
        slurm::submit(&self.args.slurm, tasks, &self.cells, &ctx)
    }

    /// Runs the unfinished cells (or those `--cell` names) on the slots; then, unless `--cell`,
    /// writes the report once every cell is finished (`--assemble`: only that).
    fn run_and_report(&self) -> Result<()> {
        let (args, ctx) = (self.args, &self.ctx);
        let start = Instant::now();
        if !args.assemble {
            let selected = if args.cell.is_empty() {
                self.cells.clone()
            } else {
                select(&self.cells, &args.cell)?
            };
            // Built only when some cell still has to run, so a finished matrix re-renders its
            // report alone.
            if selected.iter().any(|c| !finished(ctx, c)) {
                let spat = spat_binary(self.slots.iter().any(|d| d.starts_with("cuda")))?;
                fs::create_dir_all(&ctx.out)
                    .with_context(|| format!("creating {}", ctx.out.display()))?;
                run_cells(&spat, &selected, ctx, &self.slots)?;
            }
            if !args.cell.is_empty() {
                return Ok(());
            }
        }
        let unfinished: Vec<&str> = self
            .cells
            .iter()
            .filter(|c| !finished(ctx, c))
            .map(|c| c.name.as_str())
            .collect();
        ensure!(
            unfinished.is_empty(),
            "{} of {} cells under {} are not finished: {}",
            unfinished.len(),
            self.cells.len(),
            ctx.out.display(),
            unfinished.join(", ")
        );
        report::write_all(&self.plans, ctx, self.single())?;
        eprintln!(
            "xtask: {} at scale {} done in {:.1} s; results in {}",
            self.ids.join(", "),
            args.scale,
            start.elapsed().as_secs_f64(),
            ctx.out.display()
        );
        Ok(())
    }
}

/// The ids `id` stands for: itself, or every id for `all`.
fn ids_of(id: &str) -> Result<Vec<String>> {
    if id == "all" {
        Ok(matrix::IDS.iter().map(|s| s.to_string()).collect())
    } else if matrix::IDS.contains(&id) {
        Ok(vec![id.to_string()])
    } else {
        bail!(
            "unknown id `{id}`; expected one of: {}, all",
            matrix::IDS.join(", ")
        )
    }
}

/// The devices cells run on, one cell per slot at a time: `--devices`, else `--jobs` times
/// `--device` (CPU for the smoke scale, the first GPU otherwise).
fn slots_of(args: &Args) -> Result<Vec<String>> {
    if !args.devices.is_empty() {
        return args.devices.iter().map(|d| device_name(d)).collect();
    }
    let device = args.device.clone().unwrap_or_else(|| {
        if args.scale == Scale::Smoke {
            "cpu".into()
        } else {
            "cuda:0".into()
        }
    });
    Ok(vec![device; args.jobs])
}

/// The ids among `ids` whose data is here; the others fail the command naming what is missing,
/// or with `--skip-missing-data` are skipped (a dry run lists every id).
fn with_data(args: &Args, ids: &[String], dirs: &DataDirs) -> Result<Vec<String>> {
    let mut here = Vec::new();
    let mut problems = Vec::new();
    for id in ids {
        match missing_data(id, args.scale, dirs) {
            Some(m) if args.skip_missing_data && !args.dry_run => {
                eprintln!("xtask: skipping {id}: {m}")
            }
            Some(m) if !args.dry_run => problems.push(m),
            _ => here.push(id.clone()),
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    ensure!(!here.is_empty(), "nothing to run: no id has its data here");
    Ok(here)
}
