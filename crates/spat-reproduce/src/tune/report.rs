//! The report of a search: `search.md` (tables), `search.json` (the same data, for programs) and
//! `search.png` (a heat map of ε × α → the robust metric at the highest rung each trial reached).

use std::collections::BTreeMap;

use super::asha::{Metric, Rungs, Schedule};

/// Everything a search's report shows; the search controller fills it.
#[derive(Debug, Clone)]
pub struct SearchReport {
    /// What was searched, e.g. "TRADES (+SPAT) on cifar10, tiny, smoke".
    pub title: String,
    /// The objective, e.g. "pgd20 at 8/255 (linf) on 1000 validation images".
    pub objective: String,
    /// The search's rungs.
    pub rungs: Rungs,
    /// How many virtual slots ASHA scheduled on.
    pub slots: usize,
    /// Every trial (configuration), in id order.
    pub trials: Vec<TrialRow>,
    /// (trial, rung) -> metric, every result measured.
    pub results: BTreeMap<(usize, usize), Metric>,
    /// ASHA's schedule given `results`.
    pub schedule: Schedule,
    /// The winner and its test-set numbers, once evaluated.
    pub winner: Option<WinnerRow>,
    /// Every option of the search with its value.
    pub settings: Vec<(String, String)>,
}

/// One trial: its id, run name and (ε, α).
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    /// Its id (index in [`SearchReport::trials`]).
    pub id: usize,
    /// Its run's name (`DIR/trials/<name>/`).
    pub name: String,
    /// Its training radius as given, e.g. "8/255".
    pub eps_text: String,
    /// Its training radius as a number.
    pub eps: f64,
    /// Its SPAT weight α; `None`: no SPAT (the method's own adversary).
    pub alpha: Option<f64>,
}

/// The winner's evaluation on the test set.
#[derive(Debug, Clone, PartialEq)]
pub struct WinnerRow {
    /// The winning trial's id.
    pub trial: usize,
    /// How many test images it was evaluated on.
    pub test_images: usize,
    /// Per checkpoint ("last", "best"): (attack, accuracy %) in the order evaluated.
    pub accuracy: Vec<(String, Vec<(String, f64)>)>,
}
