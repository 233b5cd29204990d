//! Runs cells: each under its lock ([`crate::lock`]), its attempts recorded, its `spat` command
//! watched until it ends, its `DONE` marker written last; several at once on `--jobs` or
//! `--devices` slots ([`crate::schedule`]).

use std::fs;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use spat_spec::report::{CellDone, EvalReport};
use spat_spec::run::files;

use crate::cell::{
    attempts, checksum, finished, holds_done, is_done, outputs, Attempt, Context, ATTEMPTS, DONE,
    EVAL, LOCK,
};
use crate::command::{quote, spat_args};
use crate::lock::{self, Acquired, Lock};
use crate::matrix::{Cell, Job};
use crate::schedule::{self, Outcome};
use crate::workspace::checkout_commit;

/// How one runner runs `spat`.
pub(crate) struct SpatRun<'a> {
    pub(crate) spat: &'a Path,
    /// Prefix for the child's output lines when several cells run at once.
    pub(crate) tag: Option<String>,
    /// RAYON_NUM_THREADS for the child (CPU slots sharing the cores).
    pub(crate) threads: Option<usize>,
    pub(crate) lock: &'a Lock,
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
    pub(crate) fn run(&self, args: &[String], capture_stdout: bool) -> Result<Vec<u8>> {
        let mut child = self.spawn(args, capture_stdout)?;
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
            let status = self.wait_holding_lock(&mut child, args)?;
            let stdout = out.join().map_err(|_| anyhow!("reading spat's output"))?;
            ensure!(status.success(), "`spat {}` failed ({status})", quote(args));
            Ok(stdout)
        })
    }

    /// Starts `spat args`, its output piped where it is captured or tagged.
    fn spawn(&self, args: &[String], capture_stdout: bool) -> Result<Child> {
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
        let pipe = |yes: bool| {
            if yes {
                Stdio::piped()
            } else {
                Stdio::inherit()
            }
        };
        cmd.stdout(pipe(capture_stdout || piped));
        cmd.stderr(pipe(piped));
        cmd.spawn()
            .with_context(|| format!("starting {}", self.spat.display()))
    }

    /// Waits for `child` to end; kills it if another runner takes the cell's lock over.
    fn wait_holding_lock(&self, child: &mut Child, args: &[String]) -> Result<ExitStatus> {
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
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
        }
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
    // A killed training run continues from its last checkpoint with its own config.
    let resumed = matches!(cell.job, Job::Train(_)) && dir.join(files::CONFIG).is_file();
    let args = if resumed {
        let dir = dir.display().to_string();
        ["train", "--resume", &dir, "--device", &ctx.device]
            .map(String::from)
            .to_vec()
    } else {
        spat_args(ctx, cell)
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut history = Attempts::start(&own, &lock, &ctx.device, resumed)?;
    let run = SpatRun {
        spat,
        tag,
        threads,
        lock: &lock,
    };
    let result = run_job(&run, cell, &dir, &args);
    let seconds = start.elapsed().as_secs_f64();
    history.end(seconds, &result)?;
    result?;
    write_done(cell, &dir, args, seconds)?;
    eprintln!("xtask: {} finished in {seconds:.1} s", cell.name);
    Ok(Outcome::Ran)
}

/// A cell's `attempts.json` while this runner holds its lock (only the holder writes it, so
/// reading and replacing it is safe), the last attempt this one.
struct Attempts {
    path: PathBuf,
    history: Vec<Attempt>,
}

impl Attempts {
    /// Records a new attempt by the holder of `lock`.
    fn start(runner_dir: &Path, lock: &Lock, device: &str, resumed: bool) -> Result<Self> {
        let mut history = attempts(runner_dir)?;
        history.push(Attempt {
            started_unix: lock::unix_now(),
            runner: lock.holder().runner.clone(),
            device: device.to_string(),
            resumed,
            outcome: None,
            seconds: None,
        });
        let a = Attempts {
            path: runner_dir.join(ATTEMPTS),
            history,
        };
        spat_spec::fs::write_json(&a.path, &a.history)?;
        Ok(a)
    }

    /// Records how the attempt ended.
    fn end(&mut self, seconds: f64, result: &Result<()>) -> Result<()> {
        if let Some(last) = self.history.last_mut() {
            last.seconds = Some(seconds);
            last.outcome = Some(match result {
                Ok(()) => "finished".into(),
                Err(e) => format!("failed: {e:#}"),
            });
        }
        spat_spec::fs::write_json(&self.path, &self.history)?;
        Ok(())
    }
}

/// The cell's `DONE` marker, with the checksum of each output; written last, by rename: the cell
/// is finished exactly when this file exists.
fn write_done(cell: &Cell, dir: &Path, command: Vec<String>, seconds: f64) -> Result<()> {
    let mut done = CellDone {
        command,
        seconds,
        commit: checkout_commit(),
        outputs: Default::default(),
    };
    for name in outputs(&cell.job) {
        let sum = checksum(&dir.join(name))
            .with_context(|| format!("cell {} finished without {name}", cell.name))?;
        done.outputs.insert(name.to_string(), sum);
    }
    spat_spec::fs::write_json(&dir.join(DONE), &done)?;
    Ok(())
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
pub(crate) fn device_name(d: &str) -> Result<String> {
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

/// RAYON_NUM_THREADS for each `spat` of a CPU slot when several CPU slots share the cores: each
/// gets its part, unless the user chose a thread count.
pub(crate) fn cpu_threads(slots: &[String]) -> Option<usize> {
    let cpu_slots = slots.iter().filter(|d| *d == "cpu").count();
    (cpu_slots > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none()).then(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / cpu_slots).max(1)
    })
}

/// How often a cell held by another runner is looked at again.
const BUSY_POLL: Duration = Duration::from_secs(2);

/// Runs `cells` (unfinished ones) on `slots`, one cell per slot at a time.
pub(crate) fn run_cells(
    spat: &Path,
    cells: &[Cell],
    ctx: &Context,
    slots: &[String],
) -> Result<()> {
    let threads = cpu_threads(slots);
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
