//! The workers of a search: each repeatedly reads the state, asks ASHA which segments are
//! decided and unmeasured, takes the first one whose lock is free
//! (`<out>/segments/<trial>-r<rung>/LOCK`, [`crate::lock`]: one writer per segment, stale locks of
//! dead or requeued workers taken over), trains the trial's run to the rung and measures it, and
//! records the result under the state lock. A half-done segment continues its run
//! (`spat train --resume`); a measured one is never run again.
//!
//! `--jobs N` runs N such workers as threads of one process; `--slurm` runs one in each array task.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context as _, Result};
use spat_spec::report::EvalReport;
use spat_spec::run::{files, RunState};
use spat_spec::{AttackSpec, Method};

use super::asha::Segment;
use super::search::Search;
use super::state::{self, Measured};
use crate::lock::{self, Acquired, Lock};
use crate::runner::{cpu_threads, SpatRun};

/// How often a worker whose every pending segment is held by others looks again.
const POLL: Duration = Duration::from_millis(500);

/// The `spat` commands of one segment: train trial `trial` to rung `rung`, then measure it.
pub struct SegmentPlan<'a> {
    s: &'a Search,
    trial: usize,
    rung: usize,
    device: &'a str,
}

impl<'a> SegmentPlan<'a> {
    /// The segment of `trial` at `rung`, run on the first worker's device.
    pub fn new(s: &'a Search, trial: usize, rung: usize) -> Self {
        SegmentPlan {
            s,
            trial,
            rung,
            device: &s.slots[0],
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.s.trial_dir(self.trial)
    }

    /// Epochs the run has trained when the segment ends.
    pub fn to_epochs(&self) -> usize {
        self.s.def.rungs.epochs(self.rung)
    }

    /// `--stop-after-epochs` unless the segment ends the run.
    fn stop(&self) -> Vec<String> {
        if self.to_epochs() < self.s.def.max_epochs() {
            words(&["--stop-after-epochs", &self.to_epochs().to_string()])
        } else {
            Vec::new()
        }
    }

    /// `spat train` starting the run (planned for the top rung's epochs).
    fn fresh_args(&self) -> Vec<String> {
        let (s, d) = (self.s, &self.s.def);
        let t = &d.trials[self.trial];
        let mut a = words(&["train", "--dataset", d.dataset.as_str()]);
        a.extend(words(&["--data-dir", &path(s.data_dir())]));
        a.extend(words(&[
            "--model",
            &d.model,
            "--method",
            &d.method.to_string(),
        ]));
        if let Some(alpha) = t.alpha {
            a.extend(words(&["--spat-alpha", &alpha.to_string()]));
        }
        a.extend(words(&[
            "--norm",
            &d.norm.to_string(),
            "--eps",
            &t.eps.to_string(),
        ]));
        a.extend(words(&["--epochs", &d.max_epochs().to_string()]));
        a.extend(words(&["--batch-size", &d.batch_size.to_string()]));
        if let Some(n) = d.train_subset {
            a.extend(words(&["--train-subset", &n.to_string()]));
        }
        a.extend(words(&["--val-subset", &d.val_subset.to_string()]));
        a.extend(words(&["--test-subset", &d.monitor_images.to_string()]));
        if d.method == Method::Rst {
            a.extend(words(&[
                "--pseudo-labeled",
                &path(&s.dirs.pseudo_labeled()),
            ]));
        }
        a.extend(words(&["--seed", &d.seed.to_string()]));
        a.extend(self.stop());
        a.extend(words(&[
            "--device",
            self.device,
            "--out",
            &path(&self.run_dir()),
        ]));
        a
    }

    /// `spat train --resume` continuing the run to the segment's end.
    fn resume_args(&self) -> Vec<String> {
        let mut a = words(&["train", "--resume", &path(&self.run_dir())]);
        a.extend(words(&["--data-dir", &path(self.s.data_dir())]));
        a.extend(self.stop());
        a.extend(words(&["--device", self.device]));
        a
    }

    /// The weights the segment is measured with: the checkpoint of its last epoch.
    fn checkpoint(&self) -> PathBuf {
        self.run_dir().join(files::checkpoint(self.to_epochs()))
    }

    /// `spat eval` of the objective on the run's validation split.
    fn eval_args(&self) -> Vec<String> {
        let d = &self.s.def;
        let mut a = model_args(self.s, &self.checkpoint());
        a.extend(words(&["--validation-of", &path(&self.run_dir())]));
        let attacks = format!("clean,{}", d.objective);
        a.extend(words(&[
            "--attacks",
            &attacks,
            "--json",
            "--device",
            self.device,
        ]));
        a
    }

    /// The commands of the segment (its training as a fresh run for rung 0), for `--dry-run`.
    pub fn commands(&self) -> Vec<Vec<String>> {
        let train = if self.rung == 0 {
            self.fresh_args()
        } else {
            self.resume_args()
        };
        vec![train, self.eval_args()]
    }
}

/// `spat eval --model M --checkpoint W --dataset D --data-dir DIR --norm N --eps E`.
pub(crate) fn model_args(s: &Search, weights: &Path) -> Vec<String> {
    let d = &s.def;
    let mut a = words(&["eval", "--model", &d.model, "--checkpoint", &path(weights)]);
    a.extend(words(&[
        "--dataset",
        d.dataset.as_str(),
        "--data-dir",
        &path(s.data_dir()),
    ]));
    a.extend(words(&[
        "--norm",
        &d.norm.to_string(),
        "--eps",
        &d.eval_eps.to_string(),
    ]));
    a
}

pub(crate) fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Epochs a run directory has committed (0 if it has none).
pub(crate) fn epochs_done(run: &Path) -> Result<usize> {
    let state = run.join(files::STATE);
    if !state.exists() {
        return Ok(0);
    }
    let s: RunState = spat_spec::fs::read_json(&state, "a run's state")?;
    Ok(s.epochs_done)
}

/// Parses `spat eval --json`'s report and the accuracy under `spec`.
pub(crate) fn accuracy(stdout: &[u8], spec: &str, what: &str) -> Result<(EvalReport, f64)> {
    let report: EvalReport = serde_json::from_slice(stdout)
        .with_context(|| format!("`spat eval` printed no evaluation report for {what}"))?;
    let spec: AttackSpec = spec.parse()?;
    let acc = report
        .accuracy_of(&spec)
        .ok_or_else(|| anyhow!("`spat eval` reported no {spec} accuracy for {what}"))?;
    Ok((report, acc))
}

/// One worker's way of running `spat`.
pub(crate) struct Worker<'a> {
    pub(crate) s: &'a Search,
    pub(crate) spat: &'a Path,
    pub(crate) device: &'a str,
    pub(crate) tag: Option<String>,
    pub(crate) threads: Option<usize>,
}

impl Worker<'_> {
    pub(crate) fn spat_run<'l>(&'l self, lock: &'l Lock) -> SpatRun<'l> {
        SpatRun {
            spat: self.spat,
            tag: self.tag.clone(),
            threads: self.threads,
            lock,
        }
    }

    /// Trains `plan`'s run to its end (fresh or resumed) unless it is there already.
    pub(crate) fn train(&self, plan: &SegmentPlan<'_>, lock: &Lock) -> Result<()> {
        let dir = plan.run_dir();
        let done = epochs_done(&dir)?;
        ensure!(
            done <= plan.to_epochs(),
            "{} has trained {done} epochs, past its rung's {}",
            dir.display(),
            plan.to_epochs()
        );
        let finished = done == plan.s.def.max_epochs() && dir.join(files::FINAL).is_file();
        if done < plan.to_epochs() || (done == plan.s.def.max_epochs() && !finished) {
            let args = if dir.join(files::CONFIG).is_file() {
                plan.resume_args()
            } else {
                plan.fresh_args()
            };
            self.spat_run(lock).run(&args, false)?;
        }
        Ok(())
    }

    /// Runs segment `seg` under its held `lock` and records its result.
    fn run_segment(&self, seg: &Segment, lock: &Lock) -> Result<()> {
        let plan = SegmentPlan {
            s: self.s,
            trial: seg.trial,
            rung: seg.rung,
            device: self.device,
        };
        let name = self.s.def.trials[seg.trial].name();
        eprintln!(
            "xtask: {}{name} rung {}: epochs {} -> {}",
            self.prefix(),
            seg.rung,
            seg.from_epochs,
            seg.to_epochs
        );
        self.train(&plan, lock)?;
        ensure!(
            plan.checkpoint().is_file(),
            "{} has no {} to measure",
            plan.run_dir().display(),
            files::checkpoint(plan.to_epochs())
        );
        let stdout = self.spat_run(lock).run(&plan.eval_args(), true)?;
        let what = format!("{name} at rung {}", seg.rung);
        let (report, robust) = accuracy(&stdout, &self.s.def.objective, &what)?;
        let (_, clean) = accuracy(&stdout, "clean", &what)?;
        eprintln!(
            "xtask: {}{what}: robust {robust:.2} %, clean {clean:.2} % on {} validation images",
            self.prefix(),
            report.examples
        );
        let m = Measured {
            trial: seg.trial,
            rung: seg.rung,
            epochs: seg.to_epochs,
            robust,
            clean,
        };
        state::update(&self.s.out, |st| {
            st.record(m);
            Ok(())
        })
    }

    fn prefix(&self) -> String {
        self.tag
            .as_ref()
            .map_or(String::new(), |t| format!("[{t}] "))
    }

    /// Runs segments until the search is finished.
    pub(crate) fn work(&self) -> Result<()> {
        loop {
            let st = state::read(&self.s.out)?;
            let schedule = st.schedule();
            if schedule.finished {
                return Ok(());
            }
            if !self.run_a_pending_segment(&schedule.pending(&st.metrics()))? {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Runs the first of `pending` whose lock is free; false if every one is held by another.
    fn run_a_pending_segment(&self, pending: &[Segment]) -> Result<bool> {
        for seg in pending {
            let name = format!("{}-r{}", self.s.def.trials[seg.trial].name(), seg.rung);
            let path = state::segment_lock(&self.s.out, &name)?;
            let Acquired::Held(lock) = lock::acquire(&path, lock::DEFAULT_LEASE)? else {
                continue;
            };
            // Measured by another worker between the read and the lock.
            if state::read(&self.s.out)?.has(seg.trial, seg.rung) {
                return Ok(true);
            }
            self.run_segment(seg, &lock)
                .with_context(|| format!("segment {name} of {}", self.s.out.display()))?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// One worker on `device` until the search is finished (a Slurm array task).
pub fn run_one(s: &Search, spat: &Path, device: &str) -> Result<()> {
    let tag = std::env::var("SLURM_ARRAY_TASK_ID")
        .ok()
        .map(|t| format!("task {t}"));
    Worker {
        s,
        spat,
        device,
        tag,
        threads: None,
    }
    .work()
}

/// A worker per slot, as threads, until the search is finished; every worker's failure is
/// reported.
pub fn run_all(s: &Search, spat: &Path) -> Result<()> {
    let threads = cpu_threads(&s.slots);
    let parallel = s.slots.len() > 1;
    let errors: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = s
            .slots
            .iter()
            .enumerate()
            .map(|(i, device)| {
                let w = Worker {
                    s,
                    spat,
                    device,
                    tag: parallel.then(|| format!("w{}", i + 1)),
                    threads: threads.filter(|_| device == "cpu"),
                };
                scope.spawn(move || w.work())
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(_) => Some("a worker panicked".into()),
            })
            .collect()
    });
    ensure!(
        errors.is_empty(),
        "the search stopped: {}; measured segments are kept: run the same command again to \
         continue",
        errors.join("; ")
    );
    Ok(())
}
