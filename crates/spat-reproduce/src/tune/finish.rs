//! The end of a search: the winner trained on to the top rung if it stopped earlier, its last
//! and best checkpoints evaluated on the test set (clean, PGD-20, AutoAttack and the objective at
//! `--eval-eps`), recorded in the state, and the report written. Done by whoever holds
//! `<out>/segments/final/LOCK`; each step is skipped when its result is recorded, so running it
//! again (another worker, a resumed search) only rewrites the report.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use spat_spec::run::files;

use super::asha;
use super::report::{self, SearchReport, TrialRow, WinnerRow};
use super::search::Search;
use super::state::{self, State, TestEval, Winner};
use super::worker::{accuracy, model_args, words, SegmentPlan, Worker};
use crate::lock::{self, Acquired, Lock};
use crate::markdown;

/// What a worker does when another holds the final lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Wait for it (the command run here: it prints the result).
    Wait,
    /// Leave it to that worker (a Slurm task: the holder finishes the search).
    Leave,
}

/// Evaluates the winner and writes the report, unless another worker is doing it.
pub fn finish(s: &Search, spat: &Path, device: &str, waiting: Waiting) -> Result<()> {
    let path = state::segment_lock(&s.out, "final")?;
    loop {
        match lock::acquire(&path, lock::DEFAULT_LEASE)? {
            Acquired::Held(lock) => return finish_holding(s, spat, device, &lock),
            Acquired::Busy(holder) if waiting == Waiting::Leave => {
                eprintln!("xtask: the search is finished; {holder} evaluates the winner");
                return Ok(());
            }
            Acquired::Busy(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn finish_holding(s: &Search, spat: &Path, device: &str, lock: &Lock) -> Result<()> {
    let st = state::read(&s.out)?;
    ensure!(
        st.schedule().finished,
        "the search in {} is not finished",
        s.out.display()
    );
    let rungs = &s.def.rungs;
    let trial = asha::winner(rungs, &st.metrics())
        .ok_or_else(|| anyhow!("the search in {} has no result", s.out.display()))?;
    let w = Worker {
        s,
        spat,
        device,
        tag: None,
        threads: None,
    };
    // A winner below the top rung is trained on to it: its final weights are what it offers.
    w.train(&SegmentPlan::new(s, trial, rungs.count - 1), lock)?;
    for checkpoint in ["last", "best"] {
        let done = st
            .winner
            .as_ref()
            .is_some_and(|w| w.test.iter().any(|t| t.checkpoint == checkpoint));
        if !done {
            let eval = test_eval(&w, trial, checkpoint, lock)?;
            state::update(&s.out, |st| {
                let winner = st.winner.get_or_insert(Winner {
                    trial,
                    test: Vec::new(),
                });
                winner.test.push(eval);
                Ok(())
            })?;
        }
    }
    let st = state::read(&s.out)?;
    report::write(&s.out, &search_report(s, &st))?;
    print_summary(s, &st);
    Ok(())
}

/// The attacks of the winner's test evaluation: clean, PGD-20, AutoAttack and the objective.
fn test_attacks(objective: &str) -> Vec<String> {
    let mut a = words(&["clean", "pgd20", "autoattack"]);
    if !a.iter().any(|x| x == objective) {
        a.push(objective.to_string());
    }
    a
}

/// `checkpoint` (last or best) of `trial` evaluated on the test set.
fn test_eval(w: &Worker<'_>, trial: usize, checkpoint: &str, lock: &Lock) -> Result<TestEval> {
    let d = &w.s.def;
    let file = if checkpoint == "last" {
        files::FINAL
    } else {
        files::BEST
    };
    let mut args = model_args(w.s, &w.s.trial_dir(trial).join(file));
    let attacks = test_attacks(&d.objective);
    args.extend(words(&["--attacks", &attacks.join(","), "--json"]));
    if let Some(n) = d.test_images {
        args.extend(words(&["--test-subset", &n.to_string()]));
    }
    args.extend(words(&["--device", w.device]));
    eprintln!("xtask: the winner, trial {trial}: its {checkpoint} checkpoint on the test set");
    let stdout = w.spat_run(lock).run(&args, true)?;
    let what = format!("the winner's {checkpoint} checkpoint");
    let (report, _) = accuracy(&stdout, "clean", &what)?;
    let mut accuracy_of = std::collections::BTreeMap::new();
    for a in &attacks {
        accuracy_of.insert(a.clone(), accuracy(&stdout, a, &what)?.1);
    }
    Ok(TestEval {
        checkpoint: checkpoint.to_string(),
        examples: report.examples,
        accuracy: accuracy_of,
    })
}

/// The report of a finished search.
pub fn search_report(s: &Search, st: &State) -> SearchReport {
    let d = &s.def;
    let method = match d.trials.iter().any(|t| t.alpha.is_some()) {
        true => format!("{} (+SPAT)", d.method.to_string().to_uppercase()),
        false => d.method.to_string().to_uppercase(),
    };
    let winner = st.winner.as_ref().map(|w| WinnerRow {
        trial: w.trial,
        test_images: w.test.first().map_or(0, |t| t.examples),
        accuracy: w
            .test
            .iter()
            .map(|t| {
                let acc = t.accuracy.iter().map(|(k, v)| (k.clone(), *v)).collect();
                (t.checkpoint.clone(), acc)
            })
            .collect(),
    });
    SearchReport {
        title: format!("{method} on {}, {}, {}", d.dataset, d.model, d.scale),
        objective: format!(
            "{} at {} ({}) on {} validation images",
            d.objective, d.eval_eps, d.norm, d.val_subset
        ),
        rungs: d.rungs,
        slots: d.slots,
        trials: d
            .trials
            .iter()
            .map(|t| TrialRow {
                id: t.id,
                name: t.name(),
                eps_text: t.eps.to_string(),
                eps: t.eps.value(),
                alpha: t.alpha,
            })
            .collect(),
        results: st.metrics(),
        schedule: st.schedule(),
        winner,
        settings: settings(s),
    }
}

/// Every setting of the search with its value, for search.md.
fn settings(s: &Search) -> Vec<(String, String)> {
    let d = &s.def;
    let r = &d.rungs;
    let opt = |v: Option<usize>, none: &str| v.map_or(none.to_string(), |n| n.to_string());
    [
        ("method", d.method.to_string()),
        ("dataset", d.dataset.to_string()),
        ("model", d.model.clone()),
        ("norm", d.norm.to_string()),
        ("eval eps", d.eval_eps.to_string()),
        ("objective", d.objective.clone()),
        ("scale", d.scale.clone()),
        (
            "train subset",
            opt(d.train_subset, "all but the validation split"),
        ),
        ("validation images", d.val_subset.to_string()),
        ("batch size", d.batch_size.to_string()),
        ("test images", opt(d.test_images, "the whole test set")),
        ("R0 (min epochs)", r.min_epochs.to_string()),
        ("eta", r.eta.to_string()),
        ("rungs", r.count.to_string()),
        ("workers (ASHA slots)", d.slots.to_string()),
        ("seed", d.seed.to_string()),
        ("data", s.data_dir().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The trials' last measurements and the winner's test numbers, on stdout.
fn print_summary(s: &Search, st: &State) {
    let rows = s.def.trials.iter().map(|t| {
        let last = st.results.iter().rfind(|m| m.trial == t.id);
        [
            t.id.to_string(),
            t.eps.to_string(),
            t.alpha.map_or("none".into(), |a| a.to_string()),
            last.map_or("-".into(), |m| format!("{} ({} ep.)", m.rung, m.epochs)),
            last.map_or("-".into(), |m| format!("{:.2}", m.robust)),
            last.map_or("-".into(), |m| format!("{:.2}", m.clean)),
        ]
    });
    let header = ["trial", "ε", "α", "rung", "robust %", "clean %"];
    print!("{}", markdown::table(&header, rows));
    let (asha, grid) = s.def.budget();
    let spent: usize = st.schedule().epochs_spent(&st.metrics()).values().sum();
    println!("epochs trained: {spent} (budget at most {asha}; exhaustive grid {grid})");
    if let Some(w) = &st.winner {
        let t = &s.def.trials[w.trial];
        println!(
            "winner: trial {} (ε {}, α {})",
            w.trial,
            t.eps,
            t.alpha.map_or("none".into(), |a| a.to_string())
        );
        for e in &w.test {
            let acc: Vec<String> = e
                .accuracy
                .iter()
                .map(|(k, v)| format!("{k} {v:.2} %"))
                .collect();
            println!(
                "  {} on {} test images: {}",
                e.checkpoint,
                e.examples,
                acc.join(", ")
            );
        }
    }
    for f in ["search.md", "search.json", "search.png", state::STATE] {
        println!("{}", s.out.join(f).display());
    }
}
