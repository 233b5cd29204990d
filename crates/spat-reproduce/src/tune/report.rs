//! The report of a search: `search.md` (tables), `search.json` (the same data, for programs) and
//! `search.png` (a heat map of ε × α → the robust metric at the highest rung each trial reached),
//! written through [`Outputs`] so that a file spat did not write is never replaced.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use spat_spec::fs::{is_marked_text, mark_text, Outputs, Own};

use super::asha::{self, Metric, Rungs, Schedule, Segment};
use crate::markdown::table;

mod heat_map;

pub use heat_map::{marks, render};

/// The `schema` of `search.json`, by which spat knows the file as its own.
pub const SCHEMA: &str = "spat-search/1";

/// The report's file names in the search's folder.
pub const FILES: [&str; 3] = ["search.md", "search.json", "search.png"];

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

/// `search.json`: the report's data for programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchJson {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What was searched.
    pub title: String,
    /// The objective.
    pub objective: String,
    /// The search's rungs.
    pub rungs: Rungs,
    /// Epochs of each rung.
    pub rung_epochs: Vec<usize>,
    /// How many virtual slots ASHA scheduled on.
    pub slots: usize,
    /// Whether the search is over.
    pub finished: bool,
    /// Epochs trained by the segments with results, all trials together.
    pub epochs_spent: usize,
    /// Epochs the exhaustive grid spends (every trial to the top rung).
    pub exhaustive_epochs: usize,
    /// Every trial.
    pub trials: Vec<TrialJson>,
    /// Every segment ASHA decided, in decision order.
    pub segments: Vec<Segment>,
    /// The winner and its test-set numbers, once evaluated.
    pub winner: Option<WinnerJson>,
    /// Every option of the search with its value, in the order given.
    pub settings: Vec<SettingJson>,
}

/// A trial in `search.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialJson {
    /// Its id.
    pub id: usize,
    /// Its run's name.
    pub name: String,
    /// Its training radius as given.
    pub eps: String,
    /// Its training radius as a number.
    pub eps_value: f64,
    /// Its SPAT weight α (`null`: no SPAT).
    pub alpha: Option<f64>,
    /// The highest rung with a result (`null`: none yet).
    pub rung_reached: Option<usize>,
    /// Epochs trained by its segments with results.
    pub epochs_spent: usize,
    /// Its result at each rung it reached.
    pub metrics: Vec<RungMetric>,
}

/// A trial's result at one rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungMetric {
    /// The rung.
    pub rung: usize,
    /// Epochs trained at that rung.
    pub epochs: usize,
    /// Robust accuracy, %.
    pub robust: f64,
    /// Clean accuracy, %.
    pub clean: f64,
}

/// The winner in `search.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinnerJson {
    /// The winning trial's id.
    pub trial: usize,
    /// Its run's name.
    pub name: String,
    /// How many test images it was evaluated on.
    pub test_images: usize,
    /// Per checkpoint, accuracy under each attack.
    pub checkpoints: Vec<CheckpointJson>,
}

/// One checkpoint's test-set accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointJson {
    /// "last" or "best".
    pub checkpoint: String,
    /// (attack, accuracy %) in the order evaluated.
    pub accuracy: Vec<AttackAccuracy>,
}

/// Accuracy under one attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackAccuracy {
    /// The attack ("clean" for none).
    pub attack: String,
    /// Accuracy, %.
    pub accuracy: f64,
}

/// One option of the search and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingJson {
    /// The option.
    pub option: String,
    /// Its value.
    pub value: String,
}

/// Whether `bytes` are a `search.json` spat wrote (its `schema` is [`SCHEMA`]).
pub fn is_search_json(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Head {
        schema: String,
    }
    serde_json::from_slice::<Head>(bytes).is_ok_and(|h| h.schema == SCHEMA)
}

/// The report's files in `dir`, each replaced only if spat wrote it: check them before a search
/// starts so that a foreign file is refused before any training.
pub fn outputs(dir: &Path) -> Outputs {
    Outputs::new("--out")
        .file(dir.join(FILES[0]), Own::Recognised(is_marked_text))
        .file(dir.join(FILES[1]), Own::Recognised(is_search_json))
        .file(
            dir.join(FILES[2]),
            Own::Recognised(spat_report::is_spat_png),
        )
}

/// Writes search.md, search.json, search.png in `dir` through spat_spec::fs::Outputs (never over a
/// file spat did not write). search.md: every trial's (ε, α), rungs reached, metric per rung,
/// epochs spent vs the exhaustive grid's (trials × max_epochs), the winner and its test numbers.
/// search.png: heat map ε × α → robust metric at the highest rung the trial reached (cells
/// labelled with the value and the rung; random samples: coloured squares at their (α, ε)).
/// search.json is written last, so its presence means the report is complete.
pub fn write(dir: &Path, report: &SearchReport) -> Result<()> {
    let outputs = outputs(dir);
    outputs.check()?;
    let mut md = markdown(report)?;
    mark_text(&mut md, "cargo xtask tune");
    let png = render(report)?
        .to_png()
        .map_err(|e| anyhow!("search.png: {e}"))?;
    let mut json = serde_json::to_string_pretty(&json(report)?)?;
    json.push('\n');
    outputs.write(&dir.join(FILES[0]), md.as_bytes())?;
    outputs.write(&dir.join(FILES[2]), &png)?;
    outputs.write(&dir.join(FILES[1]), json.as_bytes())?;
    Ok(())
}

/// Refuses a report whose trials are not numbered 0.. in order, or whose results or winner name
/// a trial or rung the search does not have (every function here that reads a report checks it).
pub fn check(report: &SearchReport) -> Result<()> {
    if let Some((i, t)) = report.trials.iter().enumerate().find(|(i, t)| t.id != *i) {
        bail!("search report: trial row {i} has id {}, not {i}", t.id);
    }
    let n = report.trials.len();
    if let Some((t, k)) = report
        .results
        .keys()
        .find(|(t, k)| *t >= n || *k >= report.rungs.count)
    {
        bail!("search report: a result of trial {t} at rung {k}, but there are {n} trials and {} rungs", report.rungs.count);
    }
    if let Some(w) = report.winner.as_ref().filter(|w| w.trial >= n) {
        bail!(
            "search report: the winner is trial {}, but there are {n} trials",
            w.trial
        );
    }
    Ok(())
}

/// The winner shown: the evaluated one, else ASHA's best so far.
fn chosen_winner(report: &SearchReport) -> Option<usize> {
    let evaluated = report.winner.as_ref().map(|w| w.trial);
    evaluated.or_else(|| asha::winner(&report.rungs, &report.results))
}

/// The highest rung `trial` has a result at, and that result.
pub fn reached(report: &SearchReport, trial: usize) -> Option<(usize, Metric)> {
    report
        .results
        .range((trial, 0)..(trial + 1, 0))
        .next_back()
        .map(|(&(_, rung), &m)| (rung, m))
}

/// The search's data as written to `search.json`.
pub fn json(report: &SearchReport) -> Result<SearchJson> {
    check(report)?;
    let spent = report.schedule.epochs_spent(&report.results);
    let rungs = report.rungs;
    let trials = report
        .trials
        .iter()
        .map(|t| TrialJson {
            id: t.id,
            name: t.name.clone(),
            eps: t.eps_text.clone(),
            eps_value: t.eps,
            alpha: t.alpha,
            rung_reached: reached(report, t.id).map(|(k, _)| k),
            epochs_spent: spent.get(&t.id).copied().unwrap_or(0),
            metrics: (0..rungs.count)
                .filter_map(|k| {
                    let m = report.results.get(&(t.id, k))?;
                    Some(RungMetric {
                        rung: k,
                        epochs: rungs.epochs(k),
                        robust: m.robust,
                        clean: m.clean,
                    })
                })
                .collect(),
        })
        .collect();
    Ok(SearchJson {
        schema: SCHEMA.into(),
        title: report.title.clone(),
        objective: report.objective.clone(),
        rungs,
        rung_epochs: (0..rungs.count).map(|k| rungs.epochs(k)).collect(),
        slots: report.slots,
        finished: report.schedule.finished,
        epochs_spent: spent.values().sum(),
        exhaustive_epochs: rungs.exhaustive_epochs(report.trials.len()),
        trials,
        segments: report.schedule.segments.clone(),
        winner: report.winner.as_ref().map(|w| winner_json(report, w)),
        settings: report
            .settings
            .iter()
            .map(|(option, value)| SettingJson {
                option: option.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}

fn winner_json(report: &SearchReport, w: &WinnerRow) -> WinnerJson {
    WinnerJson {
        trial: w.trial,
        name: report.trials[w.trial].name.clone(),
        test_images: w.test_images,
        checkpoints: w
            .accuracy
            .iter()
            .map(|(checkpoint, accs)| CheckpointJson {
                checkpoint: checkpoint.clone(),
                accuracy: accs
                    .iter()
                    .map(|(attack, accuracy)| AttackAccuracy {
                        attack: attack.clone(),
                        accuracy: *accuracy,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// A number with at most 4 decimals, trailing zeros dropped (α = 0.1, not 0.1000).
pub fn short(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// A trial's α as shown: the number, or "none" (no SPAT: the method's own adversary).
pub fn alpha_text(alpha: Option<f64>) -> String {
    alpha.map_or_else(|| "none".into(), short)
}

fn pct(m: &Metric) -> String {
    format!("{:.1} / {:.1}", m.robust, m.clean)
}

/// The report as markdown (without spat's mark): the trials table, the budget, the winner and the
/// settings.
pub fn markdown(report: &SearchReport) -> Result<String> {
    check(report)?;
    let mut md = format!("# {}\n\n", report.title);
    let r = report.rungs;
    let epochs: Vec<String> = (0..r.count).map(|k| r.epochs(k).to_string()).collect();
    md.push_str(&format!(
        "Objective: {} (robust % / clean %; ranked by robust, then clean). ASHA with η = {}, \
         rungs at {} epochs, on {} slot(s). {}\n\n",
        report.objective,
        r.eta,
        epochs.join(", "),
        report.slots,
        status(report)
    ));
    md.push_str(&trials_md(report));
    md.push_str(&budget_md(report));
    md.push_str(&winner_md(report));
    md.push_str("\n## Settings\n\n");
    md.push_str(&table(
        &["option", "value"],
        report
            .settings
            .iter()
            .map(|(o, v)| [o.as_str(), v.as_str()]),
    ));
    Ok(md)
}

fn status(report: &SearchReport) -> String {
    let pending = report.schedule.pending(&report.results).len();
    if report.schedule.finished {
        "The search is finished.".into()
    } else {
        format!("The search is not finished: {pending} segment(s) running or to run.")
    }
}

fn trials_md(report: &SearchReport) -> String {
    let r = report.rungs;
    let spent = report.schedule.epochs_spent(&report.results);
    let mut header: Vec<String> = ["trial", "ε", "α", "rung reached"]
        .map(String::from)
        .to_vec();
    header.extend((0..r.count).map(|k| format!("rung {k} ({} ep)", r.epochs(k))));
    header.push("epochs".into());
    let rows = report.trials.iter().map(|t| {
        let mut row = vec![t.name.clone(), t.eps_text.clone(), alpha_text(t.alpha)];
        row.push(reached(report, t.id).map_or("–".into(), |(k, _)| k.to_string()));
        row.extend((0..r.count).map(|k| report.results.get(&(t.id, k)).map_or("–".into(), pct)));
        row.push(spent.get(&t.id).copied().unwrap_or(0).to_string());
        row
    });
    format!("## Trials\n\n{}", table(&header, rows))
}

fn budget_md(report: &SearchReport) -> String {
    let spent: usize = report.schedule.epochs_spent(&report.results).values().sum();
    let n = report.trials.len();
    let grid = report.rungs.exhaustive_epochs(n);
    let share = if grid == 0 {
        0.0
    } else {
        100.0 * spent as f64 / grid as f64
    };
    format!(
        "\n## Budget\n\nEpochs trained: {spent}, against the exhaustive grid's {grid} ({n} trials × \
         {} epochs): {share:.1} %.\n",
        report.rungs.max_epochs()
    )
}

fn winner_md(report: &SearchReport) -> String {
    let mut md = String::from("\n## Winner\n\n");
    let Some(best) = chosen_winner(report) else {
        md.push_str("No trial has a result yet.\n");
        return md;
    };
    let t = &report.trials[best];
    let (rung, m) = reached(report, best).unwrap_or((
        0,
        Metric {
            robust: f64::NAN,
            clean: f64::NAN,
        },
    ));
    md.push_str(&format!(
        "{} (ε = {}, α = {}): {} on the validation split at rung {rung} ({} epochs).\n\n",
        t.name,
        t.eps_text,
        alpha_text(t.alpha),
        pct(&m),
        report.rungs.epochs(rung)
    ));
    match &report.winner {
        Some(w) => md.push_str(&test_md(report, w)),
        None => md.push_str("Not evaluated on the test set yet.\n"),
    }
    md
}

fn test_md(report: &SearchReport, w: &WinnerRow) -> String {
    let mut attacks: Vec<&str> = Vec::new();
    for (_, accs) in &w.accuracy {
        for (a, _) in accs {
            if !attacks.contains(&a.as_str()) {
                attacks.push(a);
            }
        }
    }
    let mut header = vec!["checkpoint"];
    header.extend(attacks.iter().copied());
    let rows = w.accuracy.iter().map(|(checkpoint, accs)| {
        let mut row = vec![checkpoint.clone()];
        row.extend(attacks.iter().map(|a| {
            accs.iter()
                .find(|(x, _)| x == a)
                .map_or("–".into(), |(_, v)| format!("{v:.1}"))
        }));
        row
    });
    format!(
        "Test set ({} images), accuracy % of {}:\n\n{}",
        w.test_images,
        report.trials[w.trial].name,
        table(&header, rows)
    )
}
