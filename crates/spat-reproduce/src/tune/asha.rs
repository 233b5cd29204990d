//! Asynchronous successive halving (ASHA; Li et al., MLSys 2020, arXiv 1810.05934, Algorithm 2),
//! replayed in virtual time so that its decisions never depend on which worker finished first.
//!
//! A trial is trained in segments: rung `k` takes it to [`Rungs::epochs`]`(k)` epochs, after which
//! its [`Metric`] is measured once. [`schedule`] replays the search from scratch on `slots`
//! virtual workers where a segment of `E` epochs occupies its slot for `E` time units, and applies
//! a segment's result only at its virtual end time (ties: lowest slot first). Whenever a slot is
//! free, ASHA's `get_job` decides its work: for rung `k` from the second highest down to 0, the
//! best trial among the top ⌊n_k/η⌋ of the n_k results that have arrived at rung `k` that is not
//! yet promoted goes on to rung `k + 1`; failing that the next trial starts at rung 0; failing that
//! the slot idles and is offered work again after every later event (slots in index order). The
//! replay stops at the first event whose result is not known yet, so the same results always give
//! the same decisions: a killed and resumed search, one worker or several, locally or on Slurm.
//!
//! Trials are ranked by robust accuracy (higher first), then clean accuracy (higher first), then
//! trial id (lower first); a NaN ranks below every number.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The largest top-rung epoch count [`Rungs::new`] accepts (checkpoints are named with 4 digits).
pub const MAX_EPOCHS: usize = 9999;

/// The rungs of a search: rung `k` trains a trial to `min_epochs · eta^k` epochs, for
/// `k = 0..count`. Built (and read back from JSON) only through [`Rungs::new`]'s checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RungsFields")]
pub struct Rungs {
    /// Epochs of rung 0 (`R0`).
    pub min_epochs: usize,
    /// The reduction factor η: a rung promotes its top 1/η.
    pub eta: usize,
    /// How many rungs there are (`K`).
    pub count: usize,
}

/// [`Rungs`] as read from JSON, before [`Rungs::new`] checks it.
#[derive(Deserialize)]
struct RungsFields {
    min_epochs: usize,
    eta: usize,
    count: usize,
}

impl TryFrom<RungsFields> for Rungs {
    type Error = anyhow::Error;
    fn try_from(f: RungsFields) -> Result<Self> {
        Rungs::new(f.min_epochs, f.eta, f.count)
    }
}

impl Rungs {
    /// Rungs of `min_epochs · eta^k` epochs for `k = 0..count`: `min_epochs` at least 1, `eta` at
    /// least 2, `count` at least 1, and the top rung at most [`MAX_EPOCHS`] epochs.
    pub fn new(min_epochs: usize, eta: usize, count: usize) -> Result<Self> {
        if min_epochs == 0 {
            bail!("ASHA's minimum epochs (--min-epochs) must be at least 1, not 0");
        }
        if eta < 2 {
            bail!("ASHA's reduction factor η (--eta) must be at least 2, not {eta}");
        }
        if count == 0 {
            bail!("an ASHA search needs at least one rung, not 0");
        }
        let top = u32::try_from(count - 1)
            .ok()
            .and_then(|k| eta.checked_pow(k))
            .and_then(|p| p.checked_mul(min_epochs))
            .filter(|&top| top <= MAX_EPOCHS);
        if top.is_none() {
            bail!(
                "ASHA's top rung ({min_epochs}·{eta}^{} epochs) is above {MAX_EPOCHS} epochs: \
                 use fewer rungs, a smaller η or fewer minimum epochs",
                count - 1
            );
        }
        Ok(Rungs {
            min_epochs,
            eta,
            count,
        })
    }

    /// Epochs a trial has trained when it reaches `rung`: `min_epochs · eta^rung`.
    pub fn epochs(&self, rung: usize) -> usize {
        self.min_epochs * self.eta.pow(rung as u32)
    }

    /// Epochs of the top rung (`R`), the length every trial's run is planned for.
    pub fn max_epochs(&self) -> usize {
        self.epochs(self.count.saturating_sub(1))
    }

    /// Epochs the exhaustive grid spends: every one of `trials` trained to the top rung.
    pub fn exhaustive_epochs(&self, trials: usize) -> usize {
        trials * self.max_epochs()
    }
}

/// The objective measured once per trial and rung, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Robust accuracy under the search's objective attack (ranks first).
    pub robust: f64,
    /// Clean accuracy (breaks ties of robust accuracy).
    pub clean: f64,
}

/// One decided piece of work: train `trial` from `from_epochs` to `to_epochs` (reaching `rung`) on
/// virtual slot `slot` from virtual time `start`, then measure its [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The trial (configuration) trained.
    pub trial: usize,
    /// The rung it reaches.
    pub rung: usize,
    /// The virtual slot it occupies.
    pub slot: usize,
    /// Its virtual start time (one unit per epoch).
    pub start: u64,
    /// Epochs trained before it (0 at rung 0).
    pub from_epochs: usize,
    /// Epochs trained after it.
    pub to_epochs: usize,
}

impl Segment {
    /// Epochs this segment trains.
    pub fn epochs(&self) -> usize {
        self.to_epochs - self.from_epochs
    }

    /// Its virtual end time, when its result is applied.
    pub fn end(&self) -> u64 {
        self.start + self.epochs() as u64
    }
}

/// What ASHA decided given the results known so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Every decided segment in the order the replay decided them. A schedule computed with more
    /// results extends one computed with fewer: its segments start with the other's.
    pub segments: Vec<Segment>,
    /// Whether the search is over: nothing is running and no slot gets work.
    pub finished: bool,
}

impl Schedule {
    /// Decided segments whose result is not in `results` (at most `slots`).
    pub fn pending(&self, results: &BTreeMap<(usize, usize), Metric>) -> Vec<Segment> {
        self.segments
            .iter()
            .filter(|s| !results.contains_key(&(s.trial, s.rung)))
            .copied()
            .collect()
    }

    /// Epochs trained per trial by the segments with results: every trial with a decided segment
    /// is listed (0 while none of its segments has a result).
    pub fn epochs_spent(
        &self,
        results: &BTreeMap<(usize, usize), Metric>,
    ) -> BTreeMap<usize, usize> {
        let mut spent = BTreeMap::new();
        for s in &self.segments {
            let done = results.contains_key(&(s.trial, s.rung));
            *spent.entry(s.trial).or_insert(0) += if done { s.epochs() } else { 0 };
        }
        spent
    }

    /// The segments whose results the replay applied, in the order it applied them (virtual end
    /// time, then slot): the sequence of reports a sequential ASHA would have seen.
    pub fn arrivals(&self, results: &BTreeMap<(usize, usize), Metric>) -> Vec<Segment> {
        let mut by_end = self.segments.clone();
        by_end.sort_by_key(|s| (s.end(), s.slot));
        by_end
            .into_iter()
            .take_while(|s| results.contains_key(&(s.trial, s.rung)))
            .collect()
    }
}

/// The search's ranking: `Less` when `a` is better than `b` (robust accuracy higher, then clean
/// accuracy higher, then trial id lower; NaN below every number), for sorting best first.
pub fn best_first(a: &(usize, Metric), b: &(usize, Metric)) -> Ordering {
    fn score(x: f64) -> f64 {
        if x.is_nan() {
            f64::NEG_INFINITY
        } else {
            x
        }
    }
    let desc = |x: f64, y: f64| score(y).partial_cmp(&score(x)).unwrap_or(Ordering::Equal);
    desc(a.1.robust, b.1.robust)
        .then_with(|| desc(a.1.clean, b.1.clean))
        .then_with(|| a.0.cmp(&b.0))
}

/// The trials a rung may promote: the best ⌊n/η⌋ of the `n` results that have `arrived` there
/// (trial, metric), best first. Empty while fewer than η results have arrived.
pub fn promotable(eta: usize, arrived: &[(usize, Metric)]) -> Vec<usize> {
    let mut ranked = arrived.to_vec();
    ranked.sort_by(best_first);
    ranked.truncate(arrived.len() / eta.max(1));
    ranked.into_iter().map(|(trial, _)| trial).collect()
}

/// Replays ASHA on `slots` virtual workers (0 is taken as 1) up to the first event whose result
/// is not known yet.
///
/// `trials`: how many configurations exist (trial ids 0..trials, started in id order).
/// `results`: (trial, rung) -> metric, every result measured so far; results of segments ASHA has
/// not decided are ignored.
pub fn schedule(
    trials: usize,
    rungs: &Rungs,
    slots: usize,
    results: &BTreeMap<(usize, usize), Metric>,
) -> Schedule {
    let mut replay = Replay::new(trials, rungs, slots.max(1));
    replay.offer_free_slots();
    let finished = loop {
        let Some((slot, segment)) = replay.next_event() else {
            break true;
        };
        let Some(metric) = results.get(&(segment.trial, segment.rung)) else {
            break false;
        };
        replay.apply(slot, segment, *metric);
        replay.offer_free_slots();
    };
    Schedule {
        segments: replay.segments,
        finished,
    }
}

/// The winner: the best trial (same ordering) at the highest rung any trial reached.
pub fn winner(rungs: &Rungs, results: &BTreeMap<(usize, usize), Metric>) -> Option<usize> {
    let top = results
        .keys()
        .map(|&(_, rung)| rung)
        .filter(|&rung| rung < rungs.count)
        .max()?;
    results
        .iter()
        .filter(|((_, rung), _)| *rung == top)
        .map(|(&(trial, _), &metric)| (trial, metric))
        .min_by(best_first)
        .map(|(trial, _)| trial)
}

/// The state of one replay of ASHA in virtual time.
struct Replay<'a> {
    trials: usize,
    rungs: &'a Rungs,
    segments: Vec<Segment>,
    /// Per slot, the index in `segments` of the segment it runs.
    running: Vec<Option<usize>>,
    /// Per rung, the results applied there, in the order they arrived.
    arrived: Vec<Vec<(usize, Metric)>>,
    /// Per rung `k`, the trials promoted from it (started at rung `k + 1`).
    promoted: Vec<BTreeSet<usize>>,
    next_trial: usize,
    now: u64,
}

impl<'a> Replay<'a> {
    fn new(trials: usize, rungs: &'a Rungs, slots: usize) -> Self {
        Replay {
            trials,
            rungs,
            segments: Vec::new(),
            running: vec![None; slots],
            arrived: vec![Vec::new(); rungs.count],
            promoted: vec![BTreeSet::new(); rungs.count],
            next_trial: 0,
            now: 0,
        }
    }

    /// The busy slot whose segment ends first (lowest slot on a tie) and that segment, if any.
    fn next_event(&self) -> Option<(usize, Segment)> {
        let (_, slot, index) = (0..self.running.len())
            .filter_map(|slot| {
                let index = self.running[slot]?;
                Some((self.segments[index].end(), slot, index))
            })
            .min()?;
        Some((slot, self.segments[index]))
    }

    fn apply(&mut self, slot: usize, segment: Segment, metric: Metric) {
        self.now = segment.end();
        self.arrived[segment.rung].push((segment.trial, metric));
        self.running[slot] = None;
    }

    /// Gives every free slot, in index order, ASHA's next job, if there is one.
    fn offer_free_slots(&mut self) {
        for slot in 0..self.running.len() {
            if self.running[slot].is_some() {
                continue;
            }
            let Some((trial, rung)) = self.next_job() else {
                return;
            };
            self.start(slot, trial, rung);
        }
    }

    /// ASHA's `get_job`: a promotion from the highest rung that has one, else a new trial.
    fn next_job(&self) -> Option<(usize, usize)> {
        for rung in (0..self.rungs.count.saturating_sub(1)).rev() {
            let candidates = promotable(self.rungs.eta, &self.arrived[rung]);
            let fresh = candidates
                .into_iter()
                .find(|t| !self.promoted[rung].contains(t));
            if let Some(trial) = fresh {
                return Some((trial, rung + 1));
            }
        }
        (self.next_trial < self.trials).then_some((self.next_trial, 0))
    }

    fn start(&mut self, slot: usize, trial: usize, rung: usize) {
        if rung == 0 {
            self.next_trial += 1;
        } else {
            self.promoted[rung - 1].insert(trial);
        }
        let from_epochs = if rung == 0 {
            0
        } else {
            self.rungs.epochs(rung - 1)
        };
        self.running[slot] = Some(self.segments.len());
        self.segments.push(Segment {
            trial,
            rung,
            slot,
            start: self.now,
            from_epochs,
            to_epochs: self.rungs.epochs(rung),
        });
    }
}
