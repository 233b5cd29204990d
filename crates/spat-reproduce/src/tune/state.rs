//! The search's state: one file, `<out>/state.json`, written atomically (temporary file, then
//! rename) under the state lock `<out>/state.lock` after each result.
//!
//! It holds the search's definition ([`SearchDef`]: a resumed search must match it), every
//! measured result, and what follows from them (ASHA's schedule and the epochs each trial has
//! trained, recomputed at each write; never read back), and, once the search is finished, the
//! winner's test evaluation. The results alone decide everything else, so a file is the same
//! after a killed and resumed search as after an uninterrupted one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::asha::{self, Metric, Schedule};
use super::search::{Search, SearchDef};
use crate::lock::{self, Acquired};

/// The state file's name in `--out`.
pub const STATE: &str = "state.json";
/// The lock of the state file's read-modify-write.
pub const STATE_LOCK: &str = "state.lock";
/// The format tag of the state file.
pub const FORMAT: &str = "spat-tune-state/1";

/// The names a search's `--out` holds at its top level besides the report's
/// ([`super::report::FILES`]) and the state lock's own files.
const OURS: [&str; 4] = [STATE, "trials", "segments", "slurm"];

/// One measured segment: a trial's objective after training to a rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// The trial.
    pub trial: usize,
    /// The rung.
    pub rung: usize,
    /// Epochs trained when measured.
    pub epochs: usize,
    /// Robust accuracy (%) under the objective on the validation split.
    pub robust: f64,
    /// Clean accuracy (%) on the validation split.
    pub clean: f64,
}

/// One checkpoint of the winner evaluated on the test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestEval {
    /// `last` (model.safetensors) or `best` (best.safetensors).
    pub checkpoint: String,
    /// Test images evaluated.
    pub examples: usize,
    /// Accuracy (%) per attack (`clean`, `pgd20`, `autoattack`).
    pub accuracy: BTreeMap<String, f64>,
}

/// The winner and its test evaluation, filled in when the search is finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Winner {
    /// The winning trial.
    pub trial: usize,
    /// Its checkpoints' test evaluations, as they are done.
    pub test: Vec<TestEval>,
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT`].
    pub format: String,
    /// The search's definition.
    pub search: SearchDef,
    /// Every measured segment, by trial then rung.
    pub results: Vec<Measured>,
    /// The winner, once the search is finished.
    #[serde(default)]
    pub winner: Option<Winner>,
    /// ASHA's schedule given `results` (derived, written for readers).
    #[serde(default, skip_deserializing)]
    pub schedule: Option<Schedule>,
    /// Epochs trained per trial by the measured segments (derived).
    #[serde(default, skip_deserializing)]
    pub epochs_spent: BTreeMap<usize, usize>,
}

impl State {
    fn new(search: SearchDef) -> Self {
        State {
            format: FORMAT.into(),
            search,
            results: Vec::new(),
            winner: None,
            schedule: None,
            epochs_spent: BTreeMap::new(),
        }
    }

    /// The results as ASHA takes them: (trial, rung) → metric.
    pub fn metrics(&self) -> BTreeMap<(usize, usize), Metric> {
        self.results
            .iter()
            .map(|m| {
                let metric = Metric {
                    robust: m.robust,
                    clean: m.clean,
                };
                ((m.trial, m.rung), metric)
            })
            .collect()
    }

    /// ASHA's schedule given the results so far.
    pub fn schedule(&self) -> Schedule {
        let d = &self.search;
        asha::schedule(d.trials.len(), &d.rungs, d.slots, &self.metrics())
    }

    /// Records a result (a second one for the same segment is ignored: the first stands).
    pub fn record(&mut self, m: Measured) {
        if !self
            .results
            .iter()
            .any(|r| (r.trial, r.rung) == (m.trial, m.rung))
        {
            self.results.push(m);
            self.results.sort_by_key(|r| (r.trial, r.rung));
        }
    }

    /// Whether `(trial, rung)` has a result.
    pub fn has(&self, trial: usize, rung: usize) -> bool {
        self.results
            .iter()
            .any(|r| (r.trial, r.rung) == (trial, rung))
    }

    /// Writes the state with its derived parts, atomically.
    fn write(&mut self, out: &Path) -> Result<()> {
        let schedule = self.schedule();
        self.epochs_spent = schedule.epochs_spent(&self.metrics());
        self.schedule = Some(schedule);
        spat_spec::fs::write_json(&out.join(STATE), self)?;
        Ok(())
    }
}

/// Reads the state of the search in `out`.
pub fn read(out: &Path) -> Result<State> {
    let state: State = spat_spec::fs::read_json(&out.join(STATE), "a tune search's state")?;
    if state.format != FORMAT {
        bail!(
            "{}: format `{}`, expected `{FORMAT}`",
            out.join(STATE).display(),
            state.format
        );
    }
    Ok(state)
}

/// Reads, changes and writes the state under the state lock.
pub fn update<T>(out: &Path, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
    let _lock = state_lock(out)?;
    let mut state = read(out)?;
    let result = change(&mut state)?;
    state.write(out)?;
    Ok(result)
}

/// The state lock, waited for: its holders hold it for one read and one write.
fn state_lock(out: &Path) -> Result<lock::Lock> {
    loop {
        match lock::acquire(&out.join(STATE_LOCK), lock::DEFAULT_LEASE)? {
            Acquired::Held(l) => return Ok(l),
            Acquired::Busy(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Opens the search's output directory: creates it with a fresh state, or checks that it holds
/// this very search (the same definition) and nothing that is not the search's own.
pub fn open(s: &Search) -> Result<()> {
    let out = &s.out;
    let foreign = foreign_entries(out)?;
    if !foreign.is_empty() {
        bail!(
            "--out {}: holds {} that cargo xtask tune did not write; it writes only into a new \
             or empty folder or its own search: choose another --out",
            out.display(),
            foreign.join(", ")
        );
    }
    super::report::outputs(out).check()?;
    if !out.join(STATE).exists() {
        if out.join("trials").exists() || out.join("segments").exists() {
            bail!(
                "--out {}: holds trials/ or segments/ but no {STATE}; choose another --out",
                out.display()
            );
        }
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let _lock = state_lock(out)?;
        if !out.join(STATE).exists() {
            State::new(s.def.clone()).write(out)?;
        }
        return Ok(());
    }
    let state = read(out).map_err(|e| {
        anyhow::anyhow!(
            "--out {}: not the state of a cargo xtask tune search ({e:#})",
            out.display()
        )
    })?;
    let changes = state.search.changes(&s.def);
    if !changes.is_empty() {
        bail!(
            "--out {} holds a search with other settings (changed: {}); a search resumes only \
             with the command that started it: choose another --out",
            out.display(),
            changes.join("; ")
        );
    }
    Ok(())
}

/// The entries of `out`'s top level that are not the search's.
fn foreign_entries(out: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(out) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("--out {}", out.display())),
    };
    let mut foreign = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let ours = |n: &str| OURS.contains(&n) || super::report::FILES.contains(&n);
        let temp = spat_spec::fs::temp_target(&name).is_some_and(ours);
        if !(ours(&name) || name.starts_with(STATE_LOCK) || temp) {
            foreign.push(name);
        }
    }
    foreign.sort();
    Ok(foreign)
}

/// The lock of one segment: `<out>/segments/<trial>-r<rung>/LOCK` (`final` for the winner's
/// evaluation and the report).
pub fn segment_lock(out: &Path, name: &str) -> Result<PathBuf> {
    let dir = out.join("segments").join(name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join("LOCK"))
}
