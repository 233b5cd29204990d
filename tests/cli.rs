//! End-to-end tests of the `spat` binary: argument handling, JSON outputs, error messages, and
//! crash-safe resumption of training. Wired as a test target of spat-cli so that
//! `CARGO_BIN_EXE_spat` names the freshly built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spat"))
}

fn mini_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn spat")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "spat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A failed run: exit status not 0 and exactly one non-empty line on stderr, which is returned.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr should be one line: {err}");
    lines[0].to_string()
}

fn as_f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn data_info_on_embedded_sample() {
    let v = stdout_json(&run(spat()
        .args(["data-info", "--dataset", "cifar10", "--json", "--data-dir"])
        .arg(mini_data())));
    for split in ["train", "test"] {
        assert_eq!(v[split]["count"], 512, "{v}");
        let per_class: Vec<f64> = as_f64s(&v[split]["per_class"]);
        assert_eq!(per_class.len(), 10);
        assert_eq!(per_class.iter().sum::<f64>(), 512.0);
        for (m, s) in as_f64s(&v[split]["mean"])
            .iter()
            .zip(as_f64s(&v[split]["std"]))
        {
            assert!((0.3..0.6).contains(m) && (0.15..0.35).contains(&s), "{v}");
        }
    }
}

#[test]
fn data_info_on_real_cifar10() {
    let dir = std::env::var("SPAT_DATA_DIR").expect(
        "set SPAT_DATA_DIR to the folder holding cifar-10-batches-bin (CI: ../shared/data)",
    );
    let v = stdout_json(&run(spat().args([
        "data-info",
        "--json",
        "--data-dir",
        &dir,
    ])));
    assert_eq!(v["train"]["count"], 50_000);
    assert_eq!(as_f64s(&v["train"]["per_class"]), vec![5000.0; 10]);
    // The well-known CIFAR-10 training-set channel means and standard deviations.
    let mean = as_f64s(&v["train"]["mean"]);
    let std = as_f64s(&v["train"]["std"]);
    for (got, want) in mean.iter().zip([0.4914, 0.4822, 0.4465]) {
        assert!((got - want).abs() < 5e-4, "mean {mean:?}");
    }
    for (got, want) in std.iter().zip([0.2470, 0.2435, 0.2616]) {
        assert!((got - want).abs() < 5e-4, "std {std:?}");
    }
}

#[test]
fn data_info_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let msg = one_line_error(&run(spat()
        .args(["data-info", "--dataset", "cifar100", "--data-dir"])
        .arg(dir.path())));
    assert!(msg.contains("cifar-100-binary/train.bin"), "{msg}");
    assert!(msg.contains("cargo xtask fetch-data cifar100"), "{msg}");

    // A truncated CIFAR-10 file: the size is not a whole number of records.
    let bad = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&bad).unwrap();
    for f in ["data_batch_1.bin", "test_batch.bin"] {
        let bytes = std::fs::read(mini_data().join(f)).unwrap();
        std::fs::write(bad.join(f), &bytes[..3073 * 3 + 100]).unwrap();
    }
    let msg = one_line_error(&run(spat()
        .args(["data-info", "--data-dir"])
        .arg(dir.path())));
    assert!(
        msg.contains("data_batch_1.bin") && msg.contains("not a multiple"),
        "{msg}"
    );
}

#[test]
fn model_info_counts_wrn_34_10() {
    let v = stdout_json(&run(spat().args(["model-info", "wrn-34-10", "--json"])));
    assert_eq!(v["parameters"], 46_160_474);
    assert!(v["buffers"].as_u64().unwrap() > 0 && v["flops"].as_u64().unwrap() > 1_000_000_000);
    let v100 = stdout_json(&run(spat().args([
        "model-info",
        "wrn-34-10",
        "--classes",
        "100",
        "--json",
    ])));
    // 640 inputs * 90 extra classes + 90 biases.
    assert_eq!(v100["parameters"], 46_160_474 + 640 * 90 + 90);
}

#[test]
fn model_info_unknown_preset_is_a_clear_error() {
    let msg = one_line_error(&run(spat().args(["model-info", "wrn-99-1"])));
    assert!(
        msg.contains("wrn-99-1") && msg.contains("wrn-34-10") && msg.contains("tiny"),
        "{msg}"
    );
}
