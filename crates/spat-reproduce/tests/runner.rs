//! The runner of `cargo xtask reproduce` with several runners at once: `--jobs` slots, two
//! processes sharing one output directory, a killed runner's lock taken over, `--cell` and
//! `--assemble` (what Slurm tasks run), and the job arrays `--slurm` writes and submits (to a
//! stand-in `sbatch` here; tests/slurm.rs submits to a real Slurm). The stand-in `spat` of
//! tests/common records every call, so every cell's runs can be counted.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    calls, cell_names, comparable_report, events, fake_spat, make_executable, ok, xtask, Event,
};
use spat_reproduce::cell::{attempts, runner_dir, ATTEMPTS, DONE, LOCK};

fn reproduce(out: &Path, spat: &Path, extra: &[&str]) -> Command {
    let mut c = xtask();
    c.args(["reproduce", "table6.1", "--scale", "smoke", "--out"])
        .arg(out)
        .args(extra)
        .env("SPAT_BIN", spat)
        .env_remove("RAYON_NUM_THREADS");
    c
}

fn err(out: std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Start and end time of each call, by what it ran.
fn spans(ev: &[Event]) -> BTreeMap<String, (f64, f64)> {
    let mut m = BTreeMap::new();
    for e in ev.iter().filter(|e| e.start) {
        let end = ev
            .iter()
            .find(|x| !x.start && x.what == e.what && x.time >= e.time)
            .unwrap_or_else(|| panic!("{} never ended", e.what));
        assert!(
            m.insert(e.what.clone(), (e.time, end.time)).is_none(),
            "{} ran twice",
            e.what
        );
    }
    m
}

#[test]
fn two_jobs_run_side_by_side_after_their_dependencies_and_write_the_sequential_report() {
    let tmp = tempfile::tempdir().unwrap();
    let seq_dir = tmp.path().join("seq");
    let par_dir = tmp.path().join("par");
    fs::create_dir_all(&seq_dir).unwrap();
    fs::create_dir_all(&par_dir).unwrap();
    let seq_spat = fake_spat(&seq_dir);
    let par_spat = fake_spat(&par_dir);
    ok(reproduce(&seq_dir.join("out"), &seq_spat, &[])
        .env("FAKE_SPAT_SLEEP", "0.2")
        .output()
        .unwrap());
    ok(reproduce(&par_dir.join("out"), &par_spat, &["--jobs", "2"])
        .env("FAKE_SPAT_SLEEP", "0.2")
        .output()
        .unwrap());
    assert_eq!(
        comparable_report(&par_dir.join("out")),
        comparable_report(&seq_dir.join("out"))
    );
    let ev = events(&par_dir);
    let s = spans(&ev);
    assert_eq!(
        s.len(),
        15,
        "5 trainings + 10 evaluations (last and best), each once: {s:#?}"
    );
    // Never more than two at once, and two at once at some point.
    let mut level = 0i32;
    let mut peak = 0;
    let mut sorted = ev.clone();
    sorted.sort_by(|a, b| a.time.total_cmp(&b.time));
    for e in &sorted {
        level += if e.start { 1 } else { -1 };
        peak = peak.max(level);
    }
    assert_eq!(peak, 2);
    for (what, (start, _)) in &s {
        if let Some(eval) = what.strip_prefix("eval:") {
            let train = eval.split('/').next().unwrap();
            assert!(
                s[train].1 <= *start,
                "{what} started before its training ended"
            );
        }
    }
    // Two CPU jobs share the cores.
    let cores = std::thread::available_parallelism().unwrap().get();
    let threads = (cores / 2).max(1).to_string();
    assert!(
        ev.iter()
            .filter(|e| e.start)
            .all(|e| e.threads.as_deref() == Some(&threads)),
        "{ev:#?}"
    );
    // The sequential runner leaves the thread count to spat.
    assert!(events(&seq_dir)
        .iter()
        .filter(|e| e.start)
        .all(|e| e.threads.as_deref() == Some("unset")));
}

#[test]
fn two_runners_sharing_a_directory_never_run_a_cell_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("out");
    let spawn = |extra: &[&str]| {
        reproduce(&out, &spat, extra)
            .env("FAKE_SPAT_SLEEP", "0.5")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&["--jobs", "2"]);
    let b = spawn(&[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let a = ok(a);
    let b = ok(b);
    let c = calls(tmp.path());
    assert_eq!(c.len(), 15, "each of the 15 cells once: {c:#?}");
    spans(&events(tmp.path()));
    for name in cell_names("table6.1", "smoke") {
        let dir = out.join("runs").join(&name);
        let own = runner_dir(&out, &name);
        let at = attempts(&own).unwrap();
        assert_eq!(at.len(), 1, "{name}: {at:#?}");
        assert_eq!(at[0].outcome.as_deref(), Some("finished"));
        assert!(!own.join(LOCK).exists(), "{name}: lock released");
        assert!(dir.join(DONE).is_file(), "{name}");
    }
    // Both runners did some of the work, and one waited for the other at least once.
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(log.contains("is being run by pid"), "{log}");
    assert!(out.join("results.md").is_file());
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_runner_s_lock_is_taken_over_and_its_training_resumed() {
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("out");
    let names = cell_names("table6.1", "smoke");
    let first = out.join("runs").join(&names[0]);
    // Its own process group, so that the runner and its spat die together, as on a crash.
    let mut runner = reproduce(&out, &spat, &[])
        .env("FAKE_SPAT_SLEEP", "60")
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for(
        "the first training to start",
        Duration::from_secs(60),
        || first.join("config.json").is_file(),
    );
    let status = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", runner.id())])
        .status()
        .unwrap();
    assert!(status.success());
    runner.wait().unwrap();
    assert!(
        runner_dir(&out, &names[0]).join(LOCK).is_file(),
        "the killed runner left its lock"
    );
    assert!(!first.join(DONE).exists());

    let t0 = Instant::now();
    let rerun = ok(reproduce(&out, &spat, &[]).output().unwrap());
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "taken over at once, not after the lease"
    );
    let log = String::from_utf8_lossy(&rerun.stderr);
    assert!(
        log.contains("taking over the lock") && log.contains("no longer exists"),
        "{log}"
    );
    let c = calls(tmp.path());
    assert_eq!(c.len(), 16, "the killed call, then all 15 cells: {c:#?}");
    assert!(
        c[1].starts_with("train --resume") && c[1].contains(&names[0]),
        "{}",
        c[1]
    );
    let at = attempts(&runner_dir(&out, &names[0])).unwrap();
    assert_eq!(at.len(), 2, "{at:#?}");
    assert_eq!((at[0].resumed, at[0].outcome.as_deref()), (false, None));
    assert_eq!(
        (at[1].resumed, at[1].outcome.as_deref()),
        (true, Some("finished"))
    );
    for name in &names[1..] {
        assert_eq!(attempts(&runner_dir(&out, name)).unwrap().len(), 1);
    }
}

#[test]
fn cell_runs_exactly_one_cell_and_assemble_runs_none() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let out = tmp.path().join("out");
    let names = cell_names("table6.1", "smoke");
    // An evaluation needs its training.
    let e = err(reproduce(&out, &spat, &["--cell", "6"]).output().unwrap());
    assert!(e.contains("training cell") && e.contains(&names[0]), "{e}");
    let e = err(reproduce(&out, &spat, &["--cell", "16"]).output().unwrap());
    assert!(e.contains("cells 1 to 15"), "{e}");
    let e = err(reproduce(&out, &spat, &["--cell", "no-such-cell"])
        .output()
        .unwrap());
    assert!(e.contains("no cell of that name"), "{e}");

    ok(reproduce(&out, &spat, &["--cell", "1"]).output().unwrap());
    assert_eq!(calls(tmp.path()).len(), 1);
    assert!(out.join("runs").join(&names[0]).join(DONE).is_file());
    assert!(!out.join("results.md").exists(), "a task writes no report");
    ok(reproduce(&out, &spat, &["--cell", &names[5]])
        .output()
        .unwrap());
    assert_eq!(calls(tmp.path()).len(), 2);
    ok(reproduce(&out, &spat, &["--cell", "1"]).output().unwrap());
    assert_eq!(calls(tmp.path()).len(), 2, "a finished cell is skipped");

    let e = err(reproduce(&out, &spat, &["--assemble"]).output().unwrap());
    assert!(e.contains("13 of 15 cells") && e.contains(&names[1]), "{e}");
    ok(
        reproduce(&out, &spat, &["--cell", "2,3,4,5,7,8,9,10,11,12,13,14,15"])
            .output()
            .unwrap(),
    );
    ok(reproduce(&out, &spat, &["--assemble"])
        .env("SPAT_BIN", "/nonexistent/spat")
        .output()
        .unwrap());
    assert_eq!(calls(tmp.path()).len(), 15);
    assert!(out.join("results.md").is_file());
    // The history names the one runner that ran the cell, and its marker the command it ran.
    let first = out.join("runs").join(&names[0]);
    assert!(runner_dir(&out, &names[0]).join(ATTEMPTS).is_file());
    let at = attempts(&runner_dir(&out, &names[0])).unwrap();
    assert_eq!(at.len(), 1);
    let done: spat_spec::report::CellDone =
        serde_json::from_str(&fs::read_to_string(first.join(DONE)).unwrap()).unwrap();
    assert_eq!(done.command[0], "train");
    assert_eq!(Some(done.seconds), at[0].seconds);
    assert_ne!(
        at[0].runner.pid,
        std::process::id(),
        "the xtask process, not the test"
    );
}

/// A stand-in `sbatch` in `dir/bin`: logs its arguments and answers job ids 101, 102, ...
fn fake_sbatch(dir: &Path) -> String {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let path = bin.join("sbatch");
    fs::write(
        &path,
        r#"#!/usr/bin/env bash
log="$(dirname "$0")/../sbatch.log"
echo "$*" >> "$log"
echo "$(( $(wc -l < "$log") + 100 ));cluster"
"#,
    )
    .unwrap();
    make_executable(&path);
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

fn sbatch_calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("sbatch.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn submission(out: &Path, n: usize) -> PathBuf {
    out.join("slurm").join(n.to_string())
}

#[test]
fn slurm_print_writes_arrays_of_the_unfinished_cells_and_submits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let path = fake_sbatch(tmp.path());
    let out = tmp.path().join("out");
    let names = cell_names("table6.1", "smoke");
    ok(reproduce(&out, &spat, &["--cell", "1,2,6"])
        .output()
        .unwrap());
    let printed = ok(reproduce(
        &out,
        &spat,
        &[
            "--slurm",
            "--print",
            "--partition",
            "debug",
            "--time",
            "00:30:00",
            "--account",
            "lab",
            "--sbatch-arg=--qos=high",
        ],
    )
    .env("PATH", &path)
    .output()
    .unwrap());
    assert!(
        sbatch_calls(tmp.path()).is_empty(),
        "--print submits nothing"
    );
    let sub = submission(&out, 1);
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(
        stdout.contains(&sub.join("submit.sh").display().to_string()),
        "{stdout}"
    );

    let train = fs::read_to_string(sub.join("train.sbatch")).unwrap();
    let measure = fs::read_to_string(sub.join("measure.sbatch")).unwrap();
    let assemble = fs::read_to_string(sub.join("assemble.sbatch")).unwrap();
    assert!(train.contains("#SBATCH --array=3-5\n"), "{train}");
    assert!(measure.contains("#SBATCH --array=7-15\n"), "{measure}");
    for (k, name) in names.iter().enumerate() {
        let line = format!("  {}) cell={name} ;;", k + 1);
        let script = if k < 5 { &train } else { &measure };
        assert_eq!(
            script.contains(&line),
            ![0, 1, 5].contains(&k),
            "cell {}: {script}",
            k + 1
        );
    }
    for s in [&train, &measure] {
        for line in [
            "#SBATCH --partition=debug",
            "#SBATCH --account=lab",
            "#SBATCH --time=00:30:00",
            "#SBATCH --qos=high",
            "#SBATCH --requeue",
            "--cell \"$cell\"",
            "--scale smoke",
        ] {
            assert!(s.contains(line), "{line}: {s}");
        }
        assert!(!s.contains("--gres"), "no GPU for a CPU device: {s}");
    }
    assert!(
        assemble.contains("--assemble") && !assemble.contains("--array"),
        "{assemble}"
    );
    assert!(assemble.contains("#SBATCH --partition=debug"));
    let submit = fs::read_to_string(sub.join("submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterany:$train "), "{submit}");
    assert!(
        submit.contains("--dependency=afterok:$train:$measure --kill-on-invalid-dep=yes"),
        "{submit}"
    );
    // The scripts run frozen copies of both binaries.
    let bins: Vec<String> = fs::read_dir(out.join("slurm/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(bins.iter().any(|b| b.starts_with("spat-")), "{bins:?}");
    assert!(bins.iter().any(|b| b.starts_with("xtask-")), "{bins:?}");
    assert!(train.contains(&out.join("slurm/bin").display().to_string()));

    // Bad option values never reach a script.
    let e = err(
        reproduce(&out, &spat, &["--slurm", "--print", "--time", "1 day"])
            .env("PATH", &path)
            .output()
            .unwrap(),
    );
    assert!(e.contains("one word"), "{e}");
    let e = err(reproduce(&out, &spat, &["--slurm", "--jobs", "2"])
        .output()
        .unwrap());
    assert!(e.contains("cannot be used with"), "{e}");
}

#[test]
fn slurm_submission_chains_arrays_and_resubmission_skips_finished_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let spat = fake_spat(tmp.path());
    let path = fake_sbatch(tmp.path());
    let out = tmp.path().join("out");
    let submitted = ok(reproduce(&out, &spat, &["--slurm"])
        .env("PATH", &path)
        .output()
        .unwrap());
    assert_eq!(
        String::from_utf8_lossy(&submitted.stdout).trim(),
        "101 102 103"
    );
    let sub = submission(&out, 1);
    let s = sbatch_calls(tmp.path());
    assert_eq!(
        s,
        [
            format!("--parsable {}", sub.join("train.sbatch").display()),
            format!(
                "--parsable --dependency=afterany:101 {}",
                sub.join("measure.sbatch").display()
            ),
            format!(
                "--parsable --dependency=afterok:101:102 --kill-on-invalid-dep=yes {}",
                sub.join("assemble.sbatch").display()
            ),
        ]
    );
    let record: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(sub.join("submission.json")).unwrap()).unwrap();
    let ids: Vec<&str> = record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["101", "102", "103"]);

    // The training array ran; one evaluation did not: only that one is submitted again, with no
    // dependency on a training array.
    ok(
        reproduce(&out, &spat, &["--cell", "1,2,3,4,5,6,7,8,9,10,11,12,13,14"])
            .output()
            .unwrap(),
    );
    ok(reproduce(&out, &spat, &["--slurm"])
        .env("PATH", &path)
        .output()
        .unwrap());
    let sub2 = submission(&out, 2);
    let s = sbatch_calls(tmp.path());
    assert_eq!(s.len(), 5, "{s:#?}");
    assert_eq!(
        s[3],
        format!("--parsable {}", sub2.join("measure.sbatch").display())
    );
    assert!(s[4].contains("--dependency=afterok:104 "), "{}", s[4]);
    assert!(!sub2.join("train.sbatch").exists());
    let measure = fs::read_to_string(sub2.join("measure.sbatch")).unwrap();
    assert!(measure.contains("#SBATCH --array=15\n"), "{measure}");

    // Everything finished: nothing is submitted and results.md is written here.
    ok(reproduce(&out, &spat, &["--cell", "15"]).output().unwrap());
    let done = ok(reproduce(&out, &spat, &["--slurm"])
        .env("PATH", &path)
        .output()
        .unwrap());
    assert_eq!(sbatch_calls(tmp.path()).len(), 5);
    assert!(String::from_utf8_lossy(&done.stderr).contains("nothing to submit"));
    assert!(out.join("results.md").is_file());
    assert!(!submission(&out, 3).exists());
}
