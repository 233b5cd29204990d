//! `cargo xtask tune` with the real `spat`: a 2 × 2 search (4 trials, rungs of 1 and 2 epochs,
//! η = 2, two workers) on a few hundred images, run to the end; the same search killed
//! (SIGKILL of its whole process group) after a result, during a training segment, during a
//! measurement and during the winner's evaluation, and resumed each time, ends in the same
//! state file, byte for byte; a changed search and foreign files in `--out` are refused, and bad
//! options are one-line errors. The Slurm test (ignored without a cluster: start one as
//! tests/slurm.rs says; `.ci/run` does) runs the search as a job array of two workers, requeues
//! one task and cancels the other mid-segment, and ends in the same state file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{ok, slurm, start_now, wait_until_gone, xtask};
use spat_reproduce::workspace::workspace_root as root;

/// The real `spat` ($SPAT_BIN, else built once).
fn spat() -> PathBuf {
    static SPAT: OnceLock<PathBuf> = OnceLock::new();
    SPAT.get_or_init(|| spat_reproduce::workspace::spat_binary(false).unwrap())
        .clone()
}

/// Real CIFAR-10 under $SPAT_DATA_DIR if it is there, else the embedded sample (512 images: the
/// search below holds out 128 and trains on 256).
fn data() -> PathBuf {
    std::env::var_os("SPAT_DATA_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("cifar-10-batches-bin/data_batch_1.bin").is_file())
        .unwrap_or_else(|| root().join("data/cifar-10-mini"))
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/tune-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// The small search's options.
const SEARCH: [(&str, &str); 16] = [
    ("--method", "trades"),
    ("--scale", "smoke"),
    ("--train-eps", "4/255,8/255"),
    ("--alpha", "0,0.2"),
    ("--eval-eps", "2/255"),
    ("--train-subset", "256"),
    ("--val-subset", "128"),
    ("--batch-size", "64"),
    ("--test-images", "64"),
    ("--min-epochs", "1"),
    ("--eta", "2"),
    ("--rungs", "2"),
    ("--jobs", "2"),
    ("--objective", "pgd20"),
    ("--norm", "linf"),
    ("--seed", "0"),
];

/// The small search's command with the options of `changed` (pairs of option and value) in
/// place of its own. One thread per `spat`, so that every run computes the same bits.
fn tune(out: &Path, changed: &[&str]) -> Command {
    let mut c = xtask();
    c.arg("tune");
    let changed: Vec<(&str, &str)> = changed.chunks(2).map(|p| (p[0], p[1])).collect();
    for (option, value) in SEARCH {
        let value = changed
            .iter()
            .find(|(o, _)| *o == option)
            .map_or(value, |(_, v)| v);
        c.args([option, value]);
    }
    for (option, value) in &changed {
        if !SEARCH.iter().any(|(o, _)| o == option) {
            c.args([option, value]);
        }
    }
    c.arg("--data-dir")
        .arg(data())
        .arg("--out")
        .arg(out)
        .env("SPAT_BIN", spat())
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "succeeded: {out:?}");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!text.contains("panicked"), "{text}");
    text
}

fn state(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The uninterrupted search, run once per test process: its directory.
fn reference() -> &'static Path {
    static REF: OnceLock<PathBuf> = OnceLock::new();
    REF.get_or_init(|| {
        let out = scratch("reference");
        let t = Instant::now();
        let o = ok(tune(&out, &[]).output().unwrap());
        println!(
            "reference search: {:.1} s\n{}",
            t.elapsed().as_secs_f64(),
            String::from_utf8_lossy(&o.stdout)
        );
        out
    })
}

#[test]
fn a_small_search_runs_to_the_end_and_writes_its_report() {
    let out = reference();
    for f in ["search.md", "search.json", "search.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let s = state(out);
    let results = s["results"].as_array().unwrap();
    let rung0 = results.iter().filter(|r| r["rung"] == 0).count();
    let rung1 = results.iter().filter(|r| r["rung"] == 1).count();
    assert_eq!(
        (rung0, rung1),
        (4, 2),
        "every trial at rung 0, the top half promoted"
    );
    assert_eq!(s["schedule"]["finished"], true);
    let spent: u64 = s["epochs_spent"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(spent, 6, "4 × 1 epoch, then 2 × 1 more (the grid: 8)");
    let winner = &s["winner"];
    let trial = winner["trial"].as_u64().unwrap();
    assert!(results
        .iter()
        .any(|r| r["trial"].as_u64() == Some(trial) && r["rung"] == 1));
    let tests = winner["test"].as_array().unwrap();
    let checkpoints: Vec<&str> = tests
        .iter()
        .map(|t| t["checkpoint"].as_str().unwrap())
        .collect();
    assert_eq!(checkpoints, ["last", "best"]);
    for t in tests {
        assert_eq!(t["examples"], 64);
        for a in ["clean", "pgd20", "autoattack"] {
            let acc = t["accuracy"][a].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&acc), "{a}: {acc}");
        }
    }
    // The same command again finds it finished: it trains and evaluates nothing.
    let before = std::fs::read(out.join("state.json")).unwrap();
    let again = ok(tune(out, &[]).output().unwrap());
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        !log.contains("spat train") && !log.contains("spat eval"),
        "{log}"
    );
    assert_eq!(std::fs::read(out.join("state.json")).unwrap(), before);
}

#[test]
fn a_winner_below_the_top_rung_is_trained_on_to_it() {
    // Two trials and η = 3: the top third of two is nobody, so the search ends at rung 0.
    let out = scratch("no-promotion");
    let o = ok(tune(&out, &["--alpha", "0.1", "--eta", "3", "--jobs", "1"])
        .output()
        .unwrap());
    let s = state(&out);
    assert_eq!(s["results"].as_array().unwrap().len(), 2, "{s}");
    assert!(s["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["rung"] == 0));
    let winner = s["winner"]["trial"].as_u64().unwrap() as usize;
    let epochs = |t: usize| -> u64 {
        let name = if s["search"]["trials"][t]["eps"] == "4/255" {
            format!("t{t:02}-eps4-a0.1")
        } else {
            format!("t{t:02}-eps8-a0.1")
        };
        let run = out.join("trials").join(name);
        let text = std::fs::read_to_string(run.join("state.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["epochs_done"].as_u64().unwrap()
    };
    assert_eq!(
        epochs(winner),
        3,
        "the winner trained on to the top rung's 3 epochs"
    );
    assert_eq!(epochs(1 - winner), 1, "the other stopped at rung 0");
    assert_eq!(s["winner"]["test"].as_array().unwrap().len(), 2);
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains(&format!("winner: trial {winner}")),
        "{printed}"
    );
}

/// Whether a process of group `pgid` runs with every one of `words` in its command line.
fn group_members_running(pgid: u32, words: &[&str]) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let dir = e.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let group = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|g| g.parse::<u32>().ok());
        let cmdline = std::fs::read(dir.join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        group == Some(pgid) && words.iter().all(|w| cmdline.contains(w))
    })
}

/// Starts the search in its own process group.
fn start(out: &Path) -> Child {
    use std::os::unix::process::CommandExt as _;
    tune(out, &[])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `moment` holds, then SIGKILLs the search's whole process group (xtask and its
/// `spat`s); false if the search ended first.
fn kill_when(child: &mut Child, moment: impl Fn(u32) -> bool, delay_ms: u64) -> bool {
    let pgid = child.id();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if moment(pgid) {
            std::thread::sleep(Duration::from_millis(delay_ms));
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .status();
            child.wait().unwrap();
            return true;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn results(out: &Path) -> usize {
    std::fs::read_to_string(out.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|s| s["results"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn a_search_killed_at_any_moment_resumes_to_the_same_state() {
    let out = scratch("killed");
    // Each moment is a fresh start of the same command on the same directory; the kill comes
    // `delay` after the moment is seen.
    type Moment<'a> = (&'a str, Box<dyn Fn(u32) -> bool + 'a>, u64);
    let moments: [Moment<'_>; 4] = [
        (
            "after the first result",
            Box::new(|_| results(&out) >= 1),
            0,
        ),
        (
            "during a training segment",
            Box::new(|g| group_members_running(g, &["spat", "train", "--resume"])),
            700,
        ),
        (
            "during a measurement",
            Box::new(|g| group_members_running(g, &["eval", "checkpoint-0"])),
            300,
        ),
        (
            "during the winner's test evaluation",
            Box::new(|g| group_members_running(g, &["autoattack"])),
            300,
        ),
    ];
    let mut killed = Vec::new();
    for (what, moment, delay) in &moments {
        let mut child = start(&out);
        if kill_when(&mut child, moment, *delay) {
            killed.push(*what);
        }
        println!("killed {what}: {} results recorded", results(&out));
    }
    assert_eq!(killed.len(), moments.len(), "killed only {killed:?}");
    ok(tune(&out, &[]).output().unwrap());
    let reference = reference();
    assert_eq!(
        std::fs::read_to_string(out.join("state.json")).unwrap(),
        std::fs::read_to_string(reference.join("state.json")).unwrap(),
        "the resumed search's state differs from the uninterrupted one's"
    );
}

#[test]
fn a_changed_search_and_foreign_files_are_refused() {
    let reference = reference();
    let e = err(tune(reference, &["--alpha", "0,0.3"]).output().unwrap());
    assert!(
        e.contains("other settings") && e.contains("the trials"),
        "{e}"
    );
    let e = err(tune(reference, &["--jobs", "1"]).output().unwrap());
    assert!(e.contains("--jobs (2 workers, now 1)"), "{e}");
    let e = err(tune(reference, &["--eta", "3"]).output().unwrap());
    assert!(e.contains("--rungs"), "{e}");

    let out = scratch("foreign");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let e = err(tune(&out, &[]).output().unwrap());
    assert!(
        e.contains("notes.txt") && e.contains("did not write"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    // A report of the user's own where the search writes its report: refused before any training.
    std::fs::write(out.join("search.md"), "my notes").unwrap();
    let e = err(tune(&out, &[]).output().unwrap());
    assert!(
        e.contains("search.md") && e.contains("not written by"),
        "{e}"
    );
    assert!(!out.join("trials").exists() && !out.join("state.json").exists());
    std::fs::remove_file(out.join("search.md")).unwrap();
    std::fs::write(out.join("state.json"), "{\"mine\": 1}").unwrap();
    let e = err(tune(&out, &[]).output().unwrap());
    assert!(
        e.contains("not the state of a cargo xtask tune search"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("state.json")).unwrap(),
        "{\"mine\": 1}"
    );
}

#[test]
fn bad_options_are_one_line_errors_naming_the_option() {
    let out = scratch("bad-options");
    for (args, needle) in [
        (
            &["--alpha", "0,1.5"][..],
            "--alpha 1.5: α must lie in [0, 1]",
        ),
        (&["--train-eps", "0"][..], "--train-eps 0"),
        (&["--objective", "clean"][..], "--objective clean"),
        (&["--objective", "pgdx"][..], "--objective pgdx"),
        (&["--eta", "1"][..], "--eta 1"),
        (&["--rungs", "0"][..], "--rungs"),
        (&["--samples", "3"][..], "--samples draws from ranges"),
        (&["--alpha", "0..0.5"][..], "give --samples N"),
        (&["--method", "standard"][..], "--method standard"),
        (&["--jobs", "0"][..], "--jobs"),
        (&["--val-subset", "60000"][..], "--val-subset 60000"),
        (&["--model", "nonet"][..], "--model nonet"),
    ] {
        let e = err(tune(&out, args).output().unwrap());
        let first = e.lines().next().unwrap_or("");
        assert!(first.contains(needle), "{args:?}: {e}");
    }
    // The smoke scale's own sizes need the real CIFAR-10, not the embedded sample.
    let e = err(xtask()
        .args(["tune", "--method", "trades", "--scale", "smoke"])
        .args(["--train-eps", "8/255", "--alpha", "0", "--data-dir"])
        .arg(root().join("data/cifar-10-mini"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap());
    assert!(e.contains("holds 512 cifar10 training images"), "{e}");
    assert!(!out.exists(), "nothing was created");
}

/// The segment locks held now: (segment, `<array job>_<task>` of the holder).
fn segment_holders(out: &Path) -> Vec<(String, String)> {
    let Ok(dirs) = std::fs::read_dir(out.join("segments")) else {
        return Vec::new();
    };
    let mut held = Vec::new();
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(d.path().join("LOCK")) else {
            continue;
        };
        let Ok(h) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let s = &h["slurm"];
        if let (Some(job), Some(task)) = (s["array_job_id"].as_str(), s["array_task_id"].as_str()) {
            held.push((name, format!("{job}_{task}")));
        }
    }
    held
}

/// Waits until `results` are recorded and a task other than `not` holds a segment's lock, and
/// returns that task.
fn a_task_mid_segment(out: &Path, results_at_least: usize, not: Option<&str>) -> String {
    let start = Instant::now();
    loop {
        if results(out) >= results_at_least {
            let busy = segment_holders(out)
                .into_iter()
                .find(|(seg, task)| seg != "final" && Some(task.as_str()) != not);
            if let Some((seg, task)) = busy {
                println!("{task} runs segment {seg}");
                return task;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no task ran a segment"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs a running Slurm (scripts/slurm-local.sh)"]
fn on_slurm_a_requeued_and_a_cancelled_task_leave_the_same_decisions() {
    let idle = slurm("sinfo", &["-h", "-o", "%t"]);
    assert!(
        idle.lines()
            .any(|l| l.trim() == "idle" || l.trim() == "mix"),
        "no idle node: {idle}"
    );
    let reference = reference();
    let out = scratch("slurm");
    let t = Instant::now();
    let submitted = ok(tune(&out, &[]).arg("--slurm").output().unwrap());
    let job = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string();
    assert!(job.chars().all(|c| c.is_ascii_digit()), "job id: {job}");
    let requeued = a_task_mid_segment(&out, 1, None);
    slurm("scontrol", &["requeue", &requeued]);
    start_now(&requeued);
    println!("requeued {requeued} mid-segment");
    let cancelled = a_task_mid_segment(&out, 2, Some(&requeued));
    slurm("scancel", &[&cancelled]);
    println!("cancelled {cancelled} mid-segment");
    wait_until_gone(std::slice::from_ref(&job), Duration::from_secs(1200));
    println!("Slurm search in {:.1} s", t.elapsed().as_secs_f64());
    let states = slurm(
        "sacct",
        &["-D", "-X", "-n", "-P", "--format=JobID,State", "-j", &job],
    );
    let of = |task: &str| -> Vec<String> {
        states
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(id, _)| *id == task)
            .map(|(_, st)| st.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(of(&requeued), ["REQUEUED", "COMPLETED"], "{states}");
    assert_eq!(of(&cancelled), ["CANCELLED"], "{states}");
    assert_eq!(
        std::fs::read_to_string(out.join("state.json")).unwrap(),
        std::fs::read_to_string(reference.join("state.json")).unwrap(),
        "the Slurm search's state differs from the local one's"
    );
    assert!(out.join("search.json").is_file(), "the report was written");
}
