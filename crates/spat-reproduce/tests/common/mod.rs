//! Helpers shared by the harness's integration tests: the xtask binary (what `cargo xtask` runs),
//! its dry-run plan, and a stand-in `spat` that records its calls, so that no model is trained.

#![allow(dead_code)] // each test binary uses a part

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `cargo xtask`'s binary: $XTASK_BIN, else built by cargo from this checkout, as the harness
/// builds `spat` ([`spat_reproduce::workspace::workspace_binary`]).
pub fn xtask() -> Command {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| match std::env::var_os("XTASK_BIN") {
        Some(p) => PathBuf::from(p),
        None => spat_reproduce::workspace::workspace_binary("xtask", "xtask", None)
            .unwrap_or_else(|e| panic!("building xtask: {e:#}")),
    });
    Command::new(bin)
}

pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "xtask failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn plan(id: &str, scale: &str) -> Value {
    let out = ok(xtask()
        .args([
            "reproduce",
            id,
            "--scale",
            scale,
            "--dry-run",
            "--json",
            "--out",
            "/tmp/unused",
        ])
        .output()
        .unwrap());
    serde_json::from_slice(&out.stdout).expect("dry-run --json prints one JSON object")
}

/// The cell names of a plan, in its order (cell K of `--dry-run` is `names[K - 1]`).
pub fn cell_names(id: &str, scale: &str) -> Vec<String> {
    plan(id, scale)["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// A stand-in for `spat`: logs its arguments to `calls.log` and, with a time stamp, the start and
/// end of each call to `events.log` (`<time> start|end <what> threads=<RAYON_NUM_THREADS>`, where
/// `what` is a run directory's name, or `eval:<training run>/<checkpoint>`), and writes what each command
/// would write. `FAKE_SPAT_SLEEP` seconds pass between a training run's config.json and its
/// weights (and before any other command's output).
pub fn fake_spat(dir: &Path) -> PathBuf {
    let path = dir.join("fake-spat.sh");
    let script = r#"#!/usr/bin/env bash
set -eu
log="$(dirname "$0")"
echo "$*" >> "$log/calls.log"
cmd="$1"; shift
out=""; attacks=""; resume=""; checkpoint=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift;;
    --attacks) attacks="$2"; shift;;
    --resume) resume="$2"; shift;;
    --checkpoint) checkpoint="$2"; shift;;
  esac
  shift
done
case "$cmd" in
  train) what="$(basename "${resume:-$out}")";;
  eval) what="eval:$(basename "$(dirname "$checkpoint")")/$(basename "$checkpoint" .safetensors)";;
  *) what="$cmd:$(basename "$out")";;
esac
echo "$(date +%s.%N) start $what threads=${RAYON_NUM_THREADS:-unset}" >> "$log/events.log"
pause() { sleep "${FAKE_SPAT_SLEEP:-0}"; }
case "$cmd" in
  train)
    dir="${resume:-$out}"
    # As spat does: --out is a new or empty folder (or a spat run); nothing else is written into.
    if [ -z "$resume" ] && [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/config.json" ]; then
      echo "error: --out: $out: the folder is not empty and holds no spat run" >&2; exit 2
    fi
    mkdir -p "$dir"; cp "$log/run-config.json" "$dir/config.json"; pause
    cp "$log/run-state.json" "$dir/state.json"; echo weights > "$dir/model.safetensors";;
  eval)
    pause
    printf '{"examples": 64, "eps": 0.031, "worst_case": 42.5, "accuracy": {'; sep=""
    for a in ${attacks//,/ }; do printf '%s"%s": 42.5' "$sep" "$a"; sep=", "; done; printf '}}\n';;
  visualize|gradients)
    pause; mkdir -p "$(dirname "$out")"; printf 'PNG' > "$out";;
  sweep-alpha)
    pause; mkdir -p "$out"
    rows=""; for a in 0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1; do rows="$rows{\"attack\":\"pgd-ls\",\"alpha\":$a,\"accuracy\":$(awk "BEGIN{print 10+50*$a}")},"; done
    echo "{\"examples\":256,\"eps\":0.031,\"steps\":20,\"clean_accuracy\":50,\"rows\":[$rows{\"attack\":\"pgd-ce\",\"alpha\":null,\"accuracy\":10},{\"attack\":\"pgd-kl\",\"alpha\":null,\"accuracy\":30}]}" > "$out/sweep.json";;
  *) echo "unexpected command $cmd" >&2; exit 2;;
esac
echo "$(date +%s.%N) end $what" >> "$log/events.log"
"#;
    fs::write(&path, script).unwrap();
    make_executable(&path);
    let (config, state) = stand_in_run();
    fs::write(
        dir.join("run-config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    fs::write(
        dir.join("run-state.json"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
    path
}

/// The `config.json` and `state.json` every training run of the stand-in writes: a tiny Madry
/// run of 3 epochs whose robust accuracy on its validation split peaks at epoch 2.
pub fn stand_in_run() -> (spat_spec::RunConfig, spat_spec::run::RunState) {
    use spat_spec::run::{CommittedFile, EpochMetrics, RunIdentity, RunState};
    let mut config = spat_policy::paper_config(
        "tiny",
        spat_spec::Dataset::Cifar10,
        "data".into(),
        spat_spec::Method::Madry,
        None,
    );
    config.epochs = 3;
    config.val_subset = Some(32);
    let history: Vec<EpochMetrics> = [(2.2, 20.0, 10.0), (1.9, 30.0, 18.75), (1.7, 34.5, 15.5)]
        .into_iter()
        .enumerate()
        .map(|(i, (loss, clean_acc, robust_acc))| EpochMetrics {
            epoch: i + 1,
            loss,
            clean_acc,
            robust_acc,
            lr: 0.1,
            images_per_sec: 100.0,
            seconds: 1.0,
            eval_examples: 32,
        })
        .collect();
    let file = |name: &str| CommittedFile {
        file: name.into(),
        fnv1a64: "0000000000000000".into(),
    };
    let fingerprint = "0000000000000000".to_string();
    let state = RunState {
        epochs_done: 3,
        global_step: 6,
        best_robust_acc: Some(18.75),
        best_epoch: Some(2),
        identity: RunIdentity {
            config: fingerprint.clone(),
            model: fingerprint.clone(),
            train_data: fingerprint.clone(),
            test_data: fingerprint,
        },
        checkpoint: file("checkpoint-0003.safetensors"),
        optimizer: file("optimizer-0003.safetensors"),
        best_fnv1a64: None,
        history,
    };
    (config, state)
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// One line of the stand-in's `events.log`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: f64,
    pub start: bool,
    pub what: String,
    /// RAYON_NUM_THREADS as the stand-in saw it (start events only).
    pub threads: Option<String>,
}

pub fn events(dir: &Path) -> Vec<Event> {
    fs::read_to_string(dir.join("events.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Event {
                time: f[0].parse().unwrap(),
                start: f[1] == "start",
                what: f[2].to_string(),
                threads: f
                    .get(3)
                    .map(|t| t.trim_start_matches("threads=").to_string()),
            }
        })
        .collect()
}

/// The results.md under `out`, comparable with another runner's: the output directory written as
/// `<out>` and the seconds each cell took (the one thing that differs between runs of the same
/// commands) blanked in the "What ran" table.
pub fn comparable_report(out: &Path) -> String {
    let md = fs::read_to_string(out.join("results.md"))
        .unwrap_or_else(|e| panic!("{}/results.md: {e}", out.display()));
    let (body, ran) = md
        .split_once("\n### What ran\n")
        .expect("results.md has a \"What ran\" section");
    let ran: Vec<String> = ran
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(" | ").collect();
            if l.starts_with("| ") && f.len() == 4 && f[2] != "seconds" && f[2] != "---" {
                f[2] = "…";
            }
            f.join(" | ")
        })
        .collect();
    let mut text = format!("{body}\n### What ran\n{}", ran.join("\n"))
        .replace(&out.display().to_string(), "<out>");
    // A runner given a relative --out (CI's smoke step) writes it as given, from the root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    if let Ok(rel) = out.strip_prefix(root) {
        text = text.replace(&rel.display().to_string(), "<out>");
    }
    text
}

/// The results.md under `out` without its "What ran" section: the numbers, claims and settings,
/// which do not depend on how the cells were run (a resumed training records `spat train
/// --resume` as its command).
pub fn report_body(out: &Path) -> String {
    let md = comparable_report(out);
    md.split_once("\n### What ran\n").unwrap().0.to_string()
}

/// Runs a Slurm client command (`sinfo`, `squeue`, `scancel`, ...) and returns its stdout; fails
/// the test if it fails (without a running cluster: scripts/slurm-local.sh).
pub fn slurm(cmd: &str, args: &[&str]) -> String {
    let mut c = Command::new(cmd);
    c.args(args);
    let out = c.output().unwrap_or_else(|e| {
        panic!("running {c:?}: {e} (needs a running Slurm: scripts/slurm-local.sh)")
    });
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until Slurm no longer lists any of `jobs`.
pub fn wait_until_gone(jobs: &[String], timeout: Duration) {
    let start = Instant::now();
    loop {
        let q = slurm("squeue", &["-h", "-o", "%i %T %r", "-j", &jobs.join(",")]);
        if q.trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "jobs still queued after {timeout:?}:\n{q}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Starts a requeued task at once: Slurm holds a requeued job two minutes (its BeginTime), and an
/// update sent while the requeue is still under way is lost, so it is sent until the task runs
/// (or has left the queue).
pub fn start_now(task: &str) {
    // slurmd refuses a launch whose credential is not newer than the revocation the requeue
    // made, and both carry whole seconds: started within the requeue's second, the task dies
    // with "Job credential revoked" (seen once in .ci/run under load). Slurm's own requeue delay
    // avoids that; this shortcut must wait past the second too.
    std::thread::sleep(Duration::from_millis(2_000));
    let start = Instant::now();
    loop {
        let _ = Command::new("scontrol")
            .args(["update", &format!("jobid={task}"), "StartTime=now"])
            .stderr(std::process::Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let state = Command::new("squeue")
            .args(["-h", "-o", "%T", "-j", task])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if state.is_empty() || state.contains("RUNNING") || state.contains("COMPLET") {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{task}: {state}");
    }
}
