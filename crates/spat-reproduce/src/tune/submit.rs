//! `cargo xtask tune --slurm`: the search's workers as one Slurm job array of `--jobs` tasks, for
//! a cluster whose nodes share `--out`.
//!
//! Each array task runs the same command with `--worker`: one worker of the search (its segments
//! claimed under their locks, so tasks never run one twice), then, once the search is finished,
//! the winner's evaluation and the report by the first task that takes the final lock (the others
//! leave it to that one). Tasks ask for `--requeue`: a requeued task takes over its own segment's
//! lock from its previous incarnation and continues the run. Re-running the `--slurm` command
//! after a task was cancelled submits a new array that continues the search. The `spat` and
//! `xtask` binaries are copied into `<out>/slurm/bin/` at submission, as for `reproduce`.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::search::Search;
use super::Args;
use crate::cell::Context;
use crate::slurm::{self, sh_quote, Stage};
use crate::workspace::spat_binary;

/// The options every task repeats: the search's definition, its data and output, `--worker`.
fn worker_words(a: &Args, s: &Search) -> Result<Vec<String>> {
    let d = &s.def;
    let r = &d.rungs;
    let mut w: Vec<String> = vec!["tune".into()];
    let mut opt = |k: &str, v: String| {
        w.push(format!("--{k}"));
        w.push(sh_quote(&v));
    };
    opt("method", d.method.to_string());
    opt("dataset", d.dataset.to_string());
    opt("model", d.model.clone());
    opt("eval-eps", d.eval_eps.to_string());
    opt("norm", d.norm.to_string());
    opt("train-eps", a.train_eps.clone());
    opt("alpha", a.alpha.clone());
    if let Some(n) = &a.samples {
        opt("samples", n.clone());
    }
    opt("seed", d.seed.to_string());
    opt("scale", d.scale.clone());
    opt("objective", d.objective.clone());
    opt("eta", r.eta.to_string());
    opt("min-epochs", r.min_epochs.to_string());
    opt("rungs", r.count.to_string());
    if let Some(n) = d.train_subset {
        opt("train-subset", n.to_string());
    }
    opt("val-subset", d.val_subset.to_string());
    opt("batch-size", d.batch_size.to_string());
    if let Some(n) = d.test_images {
        opt("test-images", n.to_string());
    }
    opt("jobs", d.slots.to_string());
    opt("device", s.slots[0].clone());
    let data = slurm::absolute(&s.dirs.root)?;
    opt("data-dir", data.display().to_string());
    opt("out", s.out.display().to_string());
    w.push("--worker".into());
    Ok(w)
}

/// The array script: `--jobs` tasks, each one worker.
fn script(a: &Args, s: &Search, dir: &Path, xtask: &Path, spat: &Path) -> Result<String> {
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        "#SBATCH --job-name=spat-tune".to_string(),
        format!("#SBATCH --array=1-{}", s.def.slots),
        format!("#SBATCH --output={}/logs/%x-%A_%a.out", dir.display()),
        // A requeued task appends to its log instead of truncating it.
        "#SBATCH --open-mode=append".into(),
        "#SBATCH --requeue".into(),
    ];
    lines.extend(slurm::account_lines(&a.slurm));
    lines.extend(slurm::task_lines(&a.slurm, &s.slots[0]));
    let mut cmd = vec![sh_quote(&xtask.display().to_string())];
    cmd.extend(worker_words(a, s)?);
    Ok(format!(
        "{header}\n\
         #\n\
         # Written by `cargo xtask tune --slurm`: each array task is one of the search's {n}\n\
         # workers; the first to find the search finished evaluates the winner and writes the\n\
         # report. A requeued task continues the segment it was running.\n\
         set -eu\n\
         {env}\n\
         {threads}\
         exec {cmd}\n",
        header = lines.join("\n"),
        n = s.def.slots,
        env = slurm::environment(spat, None),
        threads = slurm::THREADS,
        cmd = cmd.join(" "),
    ))
}

/// Writes the array script under `<out>/slurm/<n>/` and, unless `--print`, submits it; prints
/// the job id.
pub fn submit(a: &Args, s: &Search) -> Result<()> {
    let ctx = Context {
        out: s.out.clone(),
        device: s.slots[0].clone(),
        dirs: s.dirs.clone(),
    };
    let ctx = slurm::prepare(&a.slurm, &ctx)?;
    let s = Search {
        out: ctx.out.clone(),
        ..s.clone()
    };
    let dir = slurm::submission_dir(&s.out)?;
    fs::create_dir_all(dir.join("logs"))?;
    let bin = s.out.join("slurm").join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let spat = spat_binary(s.slots[0].starts_with("cuda"))?;
    let xtask = std::env::current_exe().context("finding the xtask binary")?;
    let spat = slurm::install(&spat, &bin, "spat")?;
    let xtask = slurm::install(&xtask, &bin, "xtask")?;
    let path = dir.join("tune.sbatch");
    spat_spec::fs::write_atomic(&path, script(a, &s, &dir, &xtask, &spat)?.as_bytes())?;
    if a.slurm.print {
        println!(
            "Wrote {}; submit it with `sbatch {}`",
            path.display(),
            path.display()
        );
        return Ok(());
    }
    let stage = Stage {
        name: "tune",
        script: path.clone(),
        cells: Vec::new(),
        after_any: Vec::new(),
        after_ok: Vec::new(),
        job_id: None,
    };
    let id = slurm::sbatch(&stage, &[])?;
    eprintln!(
        "xtask: submitted {} as Slurm job array {id} ({} workers); logs in {}; the report in {} \
         when it ends",
        path.display(),
        s.def.slots,
        dir.join("logs").display(),
        s.out.join("search.md").display()
    );
    println!("{id}");
    Ok(())
}
