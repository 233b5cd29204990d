//! Kills `spat train` at every named fault point of the run directory's protocol
//! (`spat_train::faults`: before and after each temporary write, fsync, rename and directory
//! fsync of every file a run writes, and after each removal of the previous checkpoint
//! generation), at its first and second hit, then continues the run as a user or `cargo xtask
//! reproduce` would (`--resume` if `config.json` exists, else the same command again) and checks
//! that the final weights, the best weights and the metrics are bit-identical to an uninterrupted
//! run's, and that nothing is left behind.
//!
//! The fault points exist only in a binary built with the `failpoints` feature:
//!
//! ```text
//! cargo test --release -p spat-cli --features failpoints --test kill_points
//! ```
//!
//! Without it the test is ignored (run with `--ignored`, it fails: no point is ever reached).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spat_train::faults;

fn mini_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

/// Two epochs of the tiny model on 32 images: two commits, so every point of the second commit
/// (which replaces a generation) is reached as well as those of the first. Standard training,
/// because the protocol is the same for every method and ~86 runs must stay CI-cheap (a Madry
/// run is 4x slower); that an adversarial run resumes to the same bits, attack RNG streams
/// included, is `cli.rs`'s `killed_training_resumes_to_identical_weights`.
fn train(out: &Path, seed: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spat"));
    cmd.args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args(["--model", "tiny", "--method", "standard", "--epochs", "2"])
        .args([
            "--batch-size",
            "16",
            "--train-subset",
            "32",
            "--test-subset",
            "8",
        ])
        // A small radius, so that accuracies move between epochs.
        .args(["--eps", "1/255", "--seed"])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .env_remove("FAILPOINTS");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn spat")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The directory's files by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The reproducible fields of each metrics line (wall times differ between runs).
fn metrics(text: &[u8]) -> Vec<(u64, u64, u64, u64, u64)> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let bits = |k: &str| v[k].as_f64().unwrap().to_bits();
            (
                v["epoch"].as_u64().unwrap(),
                bits("loss"),
                bits("clean_acc"),
                bits("robust_acc"),
                bits("lr"),
            )
        })
        .collect()
}

/// What a killed run directory must hold at any instant: `metrics.jsonl` and `curves.json` show
/// only committed epochs (a prefix of `state.json`'s history, at most one behind it).
fn check_killed_state(dir: &Path, label: &str) {
    let Ok(state) = std::fs::read(dir.join("state.json")) else {
        return;
    };
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    let done = state["epochs_done"].as_u64().unwrap();
    let lines = std::fs::read(dir.join("metrics.jsonl")).unwrap_or_default();
    let epochs: Vec<u64> = metrics(&lines).iter().map(|m| m.0).collect();
    assert!(
        epochs.iter().copied().eq(1..=epochs.len() as u64)
            && (epochs.len() as u64 == done || epochs.len() as u64 + 1 == done),
        "{label}: metrics.jsonl shows epochs {epochs:?} while state.json has {done} committed"
    );
    if let Ok(curves) = std::fs::read(dir.join("curves.json")) {
        let curves: serde_json::Value = serde_json::from_slice(&curves).unwrap();
        let drawn = curves["panels"][0]["curves"][0]["points"]
            .as_array()
            .unwrap()
            .len() as u64;
        assert!(
            drawn == done || drawn + 1 == done,
            "{label}: curves.json draws {drawn} epochs while state.json has {done} committed"
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs the failpoints feature: cargo test --release -p spat-cli --features failpoints --test kill_points"
)]
fn every_kill_point_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    // The first seed under which epoch 2 beats epoch 1, so that both commits write best weights
    // and commit.best is hit twice (a property of the numerics, so it is searched, not assumed).
    let whole = tmp.path().join("whole");
    let seed = (0..30)
        .find(|&seed| {
            let _ = std::fs::remove_dir_all(&whole);
            let out = run(&mut train(&whole, seed));
            assert!(out.status.success(), "{}", stderr(&out));
            let state: serde_json::Value =
                serde_json::from_slice(&std::fs::read(whole.join("state.json")).unwrap()).unwrap();
            state["best_epoch"] == 2
        })
        .expect("no seed in 0..30 makes epoch 2 the best");
    let reference = files(&whole);

    let points = faults::points();
    let (mut tried, mut killed, mut resumed, mut identical) = (0, 0, 0, 0);
    let mut not_reached = Vec::new();
    for point in &points {
        for hit in 1..=2 {
            tried += 1;
            let label = format!("{point} (hit {hit})");
            let dir = tmp.path().join(format!("{point}-{hit}"));
            let action = if hit == 1 {
                "return".to_string()
            } else {
                format!("{}*off->return", hit - 1)
            };
            let out = run(train(&dir, seed).env("FAILPOINTS", format!("{point}={action}")));
            match out.status.code() {
                Some(faults::EXIT_STATUS) => killed += 1,
                Some(0) => {
                    not_reached.push(label);
                    continue;
                }
                _ => panic!("{label}: spat ended with {} {}", out.status, stderr(&out)),
            }
            check_killed_state(&dir, &label);
            let again = if dir.join("config.json").exists() {
                run(Command::new(env!("CARGO_BIN_EXE_spat"))
                    .args(["train", "--resume"])
                    .arg(&dir)
                    .env_remove("FAILPOINTS"))
            } else {
                run(&mut train(&dir, seed))
            };
            assert!(
                again.status.success(),
                "{label}: continuing the killed run failed: {}",
                stderr(&again)
            );
            resumed += 1;
            let got = files(&dir);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                reference.keys().collect::<Vec<_>>(),
                "{label}: the run directory holds other files than an uninterrupted run's"
            );
            // The curves are drawn from state.json alone (no wall times), so they are the same
            // bytes too, whether the resumed run redrew them or the killed one had.
            for name in [
                "model.safetensors",
                "best.safetensors",
                "checkpoint-0002.safetensors",
                "curves.json",
                "curves.png",
            ] {
                assert!(got[name] == reference[name], "{label}: {name} differs");
            }
            assert_eq!(
                metrics(&got["metrics.jsonl"]),
                metrics(&reference["metrics.jsonl"]),
                "{label}: metrics.jsonl"
            );
            identical += 1;
        }
    }
    println!(
        "seed {seed}; fault points {}: {tried} kills tried, {killed} killed the process, {resumed} resumed, \
         {identical} bit-identical; not reached (points hit once per run): {}",
        points.len(),
        not_reached.join(", ")
    );
    // Every point is reached at least once, and only a point hit once per run misses its second.
    for point in &points {
        assert!(
            !not_reached.contains(&format!("{point} (hit 1)")),
            "{point} is never reached"
        );
    }
    for label in &not_reached {
        assert!(
            label.starts_with("open.")
                || label.starts_with("finish.")
                || label.starts_with("commit.prune."),
            "{label}: a per-epoch point missed its second epoch"
        );
    }
    assert_eq!((killed, resumed, identical), (killed, killed, killed));
}
