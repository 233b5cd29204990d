//! `cargo xtask reproduce --slurm` on a real Slurm: the smoke matrix of Table 6.1 (5 trainings,
//! 10 evaluations: last and best checkpoints) submitted as job arrays, run by the real `spat`, checked with sacct and each
//! cell's attempts.json, and its results.md compared with the sequential runner's.
//!
//! They need a running cluster and are ignored otherwise: start one with
//! `scripts/slurm-local.sh start && source target/slurm-local/env` (root, Debian's slurm-wlm,
//! slurmdbd, munge and mariadb-server), then
//! `cargo test --release -p spat-reproduce --test slurm -- --ignored --nocapture`. Run without a cluster,
//! they fail. `.ci/run` does all of this, with `SPAT_SLURM_REFERENCE` pointing at its own
//! sequential smoke run of Table 6.1 so that it is not run twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{
    cell_names, comparable_report, ok, report_body, slurm, start_now, wait_until_gone, xtask,
};
use spat_reproduce::cell::{attempts, runner_dir, Attempt, DONE};

/// One cluster, two CPUs: the tests take turns.
static CLUSTER: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A fresh directory for this test process's runs, and the real `spat`.
fn setup() -> (PathBuf, PathBuf) {
    static SETUP: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let idle = slurm("sinfo", &["-h", "-o", "%t"]);
            assert!(
                idle.lines()
                    .any(|l| l.trim() == "idle" || l.trim() == "mix"),
                "no idle node: {idle}"
            );
            let work = root().join("target/slurm-tests");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).unwrap();
            let spat = spat_reproduce::workspace::spat_binary(false).unwrap();
            (work, spat)
        })
        .clone()
}

fn reproduce(out: &Path, spat: &Path) -> Command {
    let mut c = xtask();
    c.args(["reproduce", "table6.1", "--scale", "smoke", "--out"])
        .arg(out)
        .env("SPAT_BIN", spat)
        .env_remove("RAYON_NUM_THREADS");
    c
}

/// The output directory of the sequential runner: `$SPAT_SLURM_REFERENCE` (an absolute path to
/// the output of `cargo xtask reproduce table6.1 --scale smoke` of this checkout: CI's smoke step),
/// else run once per test process. Compared through [`comparable_report`].
fn sequential_report() -> String {
    static REPORT: OnceLock<String> = OnceLock::new();
    REPORT
        .get_or_init(|| {
            if let Some(dir) = std::env::var_os("SPAT_SLURM_REFERENCE") {
                return comparable_report(Path::new(&dir));
            }
            let (work, spat) = setup();
            let out = work.join("sequential");
            let t = Instant::now();
            ok(reproduce(&out, &spat).output().unwrap());
            println!(
                "sequential runner: table6.1 smoke in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            comparable_report(&out)
        })
        .clone()
}

/// Submits and returns the job ids xtask printed (train, measure, assemble).
fn submit(out: &Path, spat: &Path) -> Vec<String> {
    let o = ok(reproduce(out, spat).arg("--slurm").output().unwrap());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// `JobID|JobName|State|ExitCode|Elapsed` of every job and array task (not their steps), with
/// every incarnation of a requeued task (`--duplicates`), once accounting has them all final.
fn sacct(jobs: &[String], expected: usize) -> Vec<Vec<String>> {
    let start = Instant::now();
    loop {
        let text = slurm(
            "sacct",
            &[
                "-D",
                "-n",
                "-P",
                "-X",
                "--format=JobID,JobName%30,State,ExitCode,Elapsed",
                "-j",
                &jobs.join(","),
            ],
        );
        let lines: Vec<Vec<String>> = text
            .lines()
            .map(|l| l.split('|').map(String::from).collect())
            .collect();
        let settled = lines
            .iter()
            .all(|l| !["PENDING", "RUNNING", "COMPLETING"].contains(&l[2].as_str()));
        if settled && lines.len() >= expected {
            println!(
                "$ sacct -D -X -j {} --format=JobID,JobName%30,State,ExitCode,Elapsed",
                jobs.join(",")
            );
            for l in &lines {
                println!("{}", l.join(" | "));
            }
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "accounting did not settle: {text}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The states of `id` (its first word: sacct writes "CANCELLED by 0").
fn state_of<'a>(lines: &'a [Vec<String>], id: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l[0] == id)
        .map(|l| l[2].split_whitespace().next().unwrap_or(""))
        .collect()
}

fn cell_attempts(out: &Path, name: &str) -> Vec<Attempt> {
    attempts(&runner_dir(out, name)).unwrap()
}

/// The Slurm array task (`<array job>_<task>`) and restart count an attempt ran in.
fn slurm_task(a: &Attempt) -> (String, u32) {
    let s = a.runner.slurm.as_ref().expect("ran inside Slurm");
    (s.id(), s.restart_count)
}

fn wait_for_epoch(run: &Path, timeout: Duration) {
    let start = Instant::now();
    let state = run.join("state.json");
    loop {
        if let Ok(text) = std::fs::read_to_string(&state) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["epochs_done"].as_u64() >= Some(1) {
                assert!(
                    !run.join(DONE).exists(),
                    "{} finished before it could be interrupted",
                    run.display()
                );
                return;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{} committed no epoch",
            run.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs a running Slurm (scripts/slurm-local.sh)"]
fn slurm_arrays_run_every_cell_once_and_write_the_sequential_report() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (work, spat) = setup();
    let reference = sequential_report();
    let out = work.join("array");
    let names = cell_names("table6.1", "smoke");

    let t = Instant::now();
    let jobs = submit(&out, &spat);
    assert_eq!(
        jobs.len(),
        3,
        "train array, measure array, assemble: {jobs:?}"
    );
    wait_until_gone(&jobs, Duration::from_secs(1800));
    println!(
        "Slurm: table6.1 smoke submitted and assembled in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let lines = sacct(&jobs, 16);
    for (k, name) in names.iter().enumerate() {
        let n = k + 1;
        let array = if n <= 5 { &jobs[0] } else { &jobs[1] };
        let task = format!("{array}_{n}");
        assert_eq!(state_of(&lines, &task), ["COMPLETED"], "{task} ran once");
        let at = cell_attempts(&out, name);
        assert_eq!(at.len(), 1, "{name}: {at:#?}");
        assert_eq!(at[0].outcome.as_deref(), Some("finished"));
        assert_eq!(slurm_task(&at[0]), (task, 0), "{name}");
    }
    assert_eq!(state_of(&lines, &jobs[2]), ["COMPLETED"]);
    assert_eq!(lines.len(), 16, "nothing else ran");
    assert_eq!(
        comparable_report(&out),
        reference,
        "the Slurm run's results.md is the sequential runner's"
    );

    // Re-submitting a finished matrix submits nothing and runs nothing.
    let again = ok(reproduce(&out, &spat).arg("--slurm").output().unwrap());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(log.contains("nothing to submit"), "{log}");
    assert!(!out.join("slurm/2").exists());
    for name in &names {
        assert_eq!(cell_attempts(&out, name).len(), 1, "{name}");
    }
}

#[test]
#[ignore = "needs a running Slurm (scripts/slurm-local.sh)"]
fn a_cancelled_task_is_resubmitted_and_a_requeued_one_resumes_its_run() {
    let _turn = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let (work, spat) = setup();
    let reference = sequential_report();
    let out = work.join("interrupted");
    let names = cell_names("table6.1", "smoke");
    let runs = out.join("runs");
    // Cells 3 and 4 (MART, TRADES + SPAT) run together once cells 1 and 2 are done.
    let (cancelled, requeued) = (&names[2], &names[3]);

    let t = Instant::now();
    let jobs = submit(&out, &spat);
    let train = &jobs[0];
    wait_for_epoch(&runs.join(cancelled), Duration::from_secs(900));
    slurm("scancel", &[&format!("{train}_3")]);
    println!("cancelled {train}_3 after its first epoch");
    wait_for_epoch(&runs.join(requeued), Duration::from_secs(900));
    let task4 = format!("{train}_4");
    slurm("scontrol", &["requeue", &task4]);
    start_now(&task4);
    println!("requeued {task4} after its first epoch");
    wait_until_gone(&jobs, Duration::from_secs(1800));
    let first = sacct(&jobs, 17);
    assert_eq!(state_of(&first, &format!("{train}_3")), ["CANCELLED"]);
    assert_eq!(state_of(&first, &task4), ["REQUEUED", "COMPLETED"]);
    // The evaluations of the cancelled training (cells 10, 11: its last and best weights) failed;
    // the others ran.
    for n in 6..=15 {
        let want = if n == 10 || n == 11 {
            "FAILED"
        } else {
            "COMPLETED"
        };
        assert_eq!(
            state_of(&first, &format!("{}_{n}", jobs[1])),
            [want],
            "cell {n}"
        );
    }
    assert_eq!(state_of(&first, &jobs[2]), ["CANCELLED"], "no results.md");
    assert!(!out.join("results.md").exists());
    // The requeued incarnation took over its own lock and resumed the run directory.
    let at = cell_attempts(&out, requeued);
    assert_eq!(at.len(), 2, "{at:#?}");
    assert_eq!((at[0].resumed, at[0].outcome.as_deref()), (false, None));
    assert_eq!(
        (at[1].resumed, at[1].outcome.as_deref()),
        (true, Some("finished"))
    );
    assert_eq!(slurm_task(&at[1]), (task4.clone(), 1));
    assert_eq!(cell_attempts(&out, cancelled).len(), 1);

    // Re-submission: only the cancelled training and its evaluations.
    let again = submit(&out, &spat);
    let sub = std::fs::read_to_string(out.join("slurm/2/train.sbatch")).unwrap();
    assert!(sub.contains("#SBATCH --array=3\n"), "{sub}");
    let sub = std::fs::read_to_string(out.join("slurm/2/measure.sbatch")).unwrap();
    assert!(sub.contains("#SBATCH --array=10-11\n"), "{sub}");
    wait_until_gone(&again, Duration::from_secs(1800));
    println!(
        "Slurm: interrupted, re-submitted and assembled in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let second = sacct(&again, 4);
    assert_eq!(state_of(&second, &format!("{}_3", again[0])), ["COMPLETED"]);
    for n in [10, 11] {
        assert_eq!(
            state_of(&second, &format!("{}_{n}", again[1])),
            ["COMPLETED"]
        );
    }
    assert_eq!(state_of(&second, &again[2]), ["COMPLETED"]);
    assert_eq!(second.len(), 4, "nothing else ran");
    let at = cell_attempts(&out, cancelled);
    assert_eq!(at.len(), 2, "{at:#?}");
    assert_eq!(
        (at[1].resumed, at[1].outcome.as_deref()),
        (true, Some("finished"))
    );
    assert_eq!(slurm_task(&at[1]), (format!("{}_3", again[0]), 0));
    for (k, name) in names.iter().enumerate() {
        let want = if k == 2 || k == 3 { 2 } else { 1 };
        assert_eq!(
            cell_attempts(&out, name).len(),
            want,
            "{name} ran {want} time(s)"
        );
    }
    // Resumed trainings record `spat train --resume` as what ran; the numbers are the same.
    let body = reference.split_once("\n### What ran\n").unwrap().0;
    assert_eq!(
        report_body(&out),
        body,
        "interrupted and resumed runs end in the sequential runner's results"
    );
}
