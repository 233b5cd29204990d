//! Running a matrix's cells on several slots (devices, or CPU jobs) at once.
//!
//! A measurement cell (evaluation, α sweep, figure) needs the final weights of its training cell,
//! so it starts only after that cell is done; independent cells run side by side, one per free
//! slot, in the plan's order (training first). A cell that fails stops only the cells that need it;
//! the rest still run, and [`run`] reports every failure at the end. A cell that another runner is
//! working on (its lock is held) is polled until that runner finishes it or gives it up.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::matrix::{Cell, Job, TrainSpec};

/// What became of a cell that did not fail.
#[derive(Debug)]
pub enum Outcome {
    /// It ran here and is finished.
    Ran,
    /// It was already finished (its `DONE` marker exists).
    Finished,
    /// Another runner holds its lock (described here): try again later.
    Busy(String),
}

/// The training runs whose weights a measurement cell needs (none for a training cell).
pub fn needs(cell: &Cell) -> Vec<&TrainSpec> {
    match &cell.job {
        Job::Train(_) => Vec::new(),
        job => job.trains(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
    /// Held by another runner; retried at the given time.
    Busy(Instant),
    /// Needs a cell that failed.
    Blocked,
}

/// Runs `cells` with at most one cell per slot at a time: `work(index, cell, slot)` runs one
/// cell (`index` is its position in `cells`). `poll` is how often a busy cell is retried.
pub fn run<F>(cells: &[Cell], slots: &[String], poll: Duration, work: F) -> Result<()>
where
    F: Fn(usize, &Cell, &str) -> Result<Outcome> + Sync,
{
    if slots.is_empty() {
        bail!("no slot to run cells on");
    }
    let mut board = Board::new(cells, slots.len(), poll);
    let (tx, rx) = mpsc::channel::<(usize, usize, Result<Outcome>)>();
    std::thread::scope(|scope| loop {
        board.block_dependents_of_failures();
        for (i, slot) in board.take_ready(Instant::now()) {
            let (tx, work, cell, device) = (tx.clone(), &work, &cells[i], &slots[slot]);
            scope.spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| work(i, cell, device)))
                    .unwrap_or_else(|_| Err(anyhow!("the runner of {} panicked", cell.name)));
                let _ = tx.send((i, slot, result));
            });
        }
        let Some(wait) = board.wait() else {
            break;
        };
        let Ok((i, slot, result)) = rx.recv_timeout(wait) else {
            continue; // a busy cell's retry is due
        };
        board.record(i, slot, result);
    });
    board.result()
}

/// The state of every cell and slot of one [`run`].
struct Board<'c> {
    cells: &'c [Cell],
    /// The cells (indices) each cell needs finished first.
    deps: Vec<Vec<usize>>,
    state: Vec<State>,
    /// Whether a busy cell's holder was reported already.
    announced: Vec<bool>,
    errors: Vec<(usize, anyhow::Error)>,
    /// Free slots, the next one last.
    free: Vec<usize>,
    poll: Duration,
}

impl<'c> Board<'c> {
    fn new(cells: &'c [Cell], slots: usize, poll: Duration) -> Self {
        let index: BTreeMap<String, usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        // Dependencies outside `cells` are checked by `work` itself (the cell is told to run alone).
        let deps = cells
            .iter()
            .map(|c| {
                needs(c)
                    .iter()
                    .filter_map(|t| index.get(&t.name()).copied())
                    .collect()
            })
            .collect();
        Board {
            cells,
            deps,
            state: vec![State::Waiting; cells.len()],
            announced: vec![false; cells.len()],
            errors: Vec::new(),
            free: (0..slots).rev().collect(),
            poll,
        }
    }

    /// Blocked: a cell whose dependency failed (or is blocked) will never run here.
    fn block_dependents_of_failures(&mut self) {
        for i in 0..self.cells.len() {
            if self.state[i] == State::Waiting
                && self.deps[i]
                    .iter()
                    .any(|&d| matches!(self.state[d], State::Failed | State::Blocked))
            {
                self.state[i] = State::Blocked;
            }
        }
    }

    /// The cells that may start at `now`, in order, each given a free slot and marked running.
    fn take_ready(&mut self, now: Instant) -> Vec<(usize, usize)> {
        let mut started = Vec::new();
        for i in 0..self.cells.len() {
            if self.free.is_empty() {
                break;
            }
            let ready = match self.state[i] {
                State::Waiting => true,
                State::Busy(at) => at <= now,
                _ => false,
            } && self.deps[i].iter().all(|&d| self.state[d] == State::Done);
            if ready {
                let slot = self.free.pop().expect("checked above");
                self.state[i] = State::Running;
                started.push((i, slot));
            }
        }
        started
    }

    /// How long to wait for a running cell: until the next busy cell's retry, or long; `None`
    /// when nothing runs and nothing waits for a retry (the run is over).
    fn wait(&self) -> Option<Duration> {
        let running = self.state.contains(&State::Running);
        let next_retry = self
            .state
            .iter()
            .filter_map(|s| match s {
                State::Busy(at) => Some(*at),
                _ => None,
            })
            .min();
        if !running && next_retry.is_none() {
            return None;
        }
        Some(next_retry.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        }))
    }

    /// What became of cell `i`, which ran on `slot`.
    fn record(&mut self, i: usize, slot: usize, result: Result<Outcome>) {
        self.free.push(slot);
        let name = &self.cells[i].name;
        self.state[i] = match result {
            Ok(Outcome::Ran | Outcome::Finished) => State::Done,
            Ok(Outcome::Busy(holder)) => {
                if !std::mem::replace(&mut self.announced[i], true) {
                    eprintln!("xtask: {name} is being run by {holder}; waiting for it");
                }
                State::Busy(Instant::now() + self.poll)
            }
            Err(e) => {
                if self.cells.len() > 1 {
                    eprintln!("xtask: {name} failed: {e:#}");
                }
                self.errors.push((i, e));
                State::Failed
            }
        };
    }

    /// Every failure, and the cells they kept from running, as one error.
    fn result(self) -> Result<()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let cells = self.cells;
        let blocked: Vec<&str> = (0..cells.len())
            .filter(|&i| self.state[i] == State::Blocked)
            .map(|i| cells[i].name.as_str())
            .collect();
        let mut msg = format!("{} of {} cells failed:", self.errors.len(), cells.len());
        for (i, e) in &self.errors {
            msg.push_str(&format!("\n  {}: {e:#}", cells[*i].name));
        }
        if !blocked.is_empty() {
            msg.push_str(&format!(
                "\nnot run because a cell they need failed: {}",
                blocked.join(", ")
            ));
        }
        msg.push_str("\nfinished cells are kept; run the same command again to retry the rest");
        bail!("{msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{plan, Scale};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn cells() -> Vec<Cell> {
        plan("table6.1", Scale::Smoke).unwrap().cells
    }

    #[test]
    fn measurements_wait_for_their_training_and_slots_are_never_shared() {
        let cells = cells();
        let slots = vec!["cpu".to_string(), "cpu".to_string(), "cpu".to_string()];
        let log = Mutex::new(Vec::<(usize, bool)>::new()); // (cell, started?)
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        run(&cells, &slots, Duration::from_millis(10), |i, _, _| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            log.lock().unwrap().push((i, true));
            std::thread::sleep(Duration::from_millis(20 + 10 * (i as u64 % 3)));
            log.lock().unwrap().push((i, false));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Outcome::Ran)
        })
        .unwrap();
        let log = log.into_inner().unwrap();
        assert_eq!(log.len(), 2 * cells.len(), "every cell once");
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let pos = |i: usize, start: bool| log.iter().position(|e| *e == (i, start)).unwrap();
        for (i, c) in cells.iter().enumerate() {
            for train in needs(c) {
                let t = cells.iter().position(|c| c.name == train.name()).unwrap();
                assert!(
                    pos(t, false) < pos(i, true),
                    "{} before {}",
                    train.name(),
                    c.name
                );
            }
        }
    }

    #[test]
    fn a_failure_stops_only_what_needs_it_and_busy_cells_are_retried() {
        let cells = cells();
        let failing = &cells[1].name;
        let tries = Mutex::new(BTreeMap::<usize, usize>::new());
        let err = run(
            &cells,
            &["cpu".to_string(), "cpu".to_string()],
            Duration::from_millis(10),
            |i, c, _| {
                let n = {
                    let mut t = tries.lock().unwrap();
                    *t.entry(i).or_default() += 1;
                    t[&i]
                };
                if &c.name == failing {
                    bail!("boom");
                }
                if i == 0 && n < 3 {
                    return Ok(Outcome::Busy("another runner".into()));
                }
                Ok(Outcome::Ran)
            },
        )
        .unwrap_err()
        .to_string();
        let tries = tries.into_inner().unwrap();
        assert_eq!(tries[&0], 3, "the busy cell was polled until free");
        let blocked: Vec<&Cell> = cells
            .iter()
            .filter(|c| needs(c).iter().any(|t| &t.name() == failing))
            .collect();
        assert_eq!(
            blocked.len(),
            2,
            "its last and best checkpoints' evaluations"
        );
        for cell in &blocked {
            let b = cells.iter().position(|c| c.name == cell.name).unwrap();
            assert!(
                !tries.contains_key(&b),
                "the failed training's evaluation never ran"
            );
            assert!(err.contains(&cell.name), "{err}");
        }
        assert_eq!(tries.len(), cells.len() - 2, "everything else ran");
        assert!(
            err.contains(&format!("1 of {} cells failed", cells.len())) && err.contains("boom"),
            "{err}"
        );
    }
}
