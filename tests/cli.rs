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

/// The real CIFAR-10 copy of `$SPAT_DATA_DIR` (CI: ../shared/data, all 50,000 training records),
/// or the embedded sample when it is unset: counts must be the records the files hold (from their
/// sizes), and the whole training set must have its well-known balance and channel statistics.
#[test]
fn data_info_on_real_cifar10() {
    let dir = std::env::var_os("SPAT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(mini_data);
    let bins = if dir.join("cifar-10-batches-bin").is_dir() {
        dir.join("cifar-10-batches-bin")
    } else {
        dir.clone()
    };
    let records = |names: &[&str]| -> u64 {
        names
            .iter()
            .filter_map(|n| std::fs::metadata(bins.join(n)).ok())
            .map(|m| m.len() / 3073)
            .sum()
    };
    let v = stdout_json(&run(spat()
        .args(["data-info", "--json", "--data-dir"])
        .arg(&dir)));
    let train_files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ];
    assert_eq!(v["train"]["count"], records(&train_files));
    assert_eq!(v["test"]["count"], records(&["test_batch.bin"]));
    for split in ["train", "test"] {
        let per_class = as_f64s(&v[split]["per_class"]);
        assert_eq!(
            per_class.iter().sum::<f64>(),
            v[split]["count"].as_f64().unwrap()
        );
    }
    if v["train"]["count"] == 50_000 {
        assert_eq!(as_f64s(&v["train"]["per_class"]), vec![5000.0; 10]);
        let mean = as_f64s(&v["train"]["mean"]);
        let std = as_f64s(&v["train"]["std"]);
        for (got, want) in mean.iter().zip([0.4914, 0.4822, 0.4465]) {
            assert!((got - want).abs() < 5e-4, "mean {mean:?}");
        }
        for (got, want) in std.iter().zip([0.2470, 0.2435, 0.2616]) {
            assert!((got - want).abs() < 5e-4, "std {std:?}");
        }
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
fn model_info_unknown_model_is_a_clear_error() {
    let msg = one_line_error(&run(spat().args(["model-info", "wrn-99-1"])));
    assert!(msg.contains("wrn-99-1") && msg.contains("6n + 4"), "{msg}");
    let msg = one_line_error(&run(spat().args(["model-info", "vgg-16"])));
    assert!(
        msg.contains("vgg-16") && msg.contains("dm-wrn-D-W") && msg.contains("tiny"),
        "{msg}"
    );
}

/// Sizes by name (dry builds), RobustBench entries by name, and entries spat cannot build.
#[test]
fn model_info_names_any_size_and_robustbench_entries() {
    let count = |args: &[&str]| {
        let v = stdout_json(&run(spat().arg("model-info").args(args).arg("--json")));
        v["parameters"].as_u64().unwrap()
    };
    assert_eq!(count(&["dm-wrn-70-16-swish"]), 266_796_506);
    assert_eq!(count(&["dm-preact-resnet-18-silu"]), 12_548_426);
    assert_eq!(count(&["wrn-34-15"]), 103_819_674);
    assert_eq!(
        count(&["rb:cifar10/Linf/Wang2023Better_WRN-28-10"]),
        36_479_194
    );
    // A CIFAR-100 entry counts 100 classes.
    assert_eq!(
        count(&["rb:cifar100/Linf/Wang2023Better_WRN-28-10"]),
        36_536_884
    );
    let text =
        success(run(spat().args([
            "model-info",
            "rb:Rebuffi2021Fixing_70_16_cutmix_extra",
        ])));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("rb:cifar10/Linf/Rebuffi2021Fixing_70_16_cutmix_extra is dm-wrn-70-16-silu")
            && text.contains("rb:cifar10/L2/"),
        "{text}"
    );
    let out = run(spat().args(["model-info", "rb:Kang2021Stable"]));
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not built by spat: SODEF"), "{text}");
    let listed = stdout_json(&run(spat().args([
        "model-info",
        "--list-robustbench",
        "--json",
    ])));
    assert_eq!(listed.as_array().unwrap().len(), 135);
}

// ---- train / eval / sweep-alpha / visualize -------------------------------------------------

/// `spat train` on the embedded sample with the tiny model: few images, so each epoch takes seconds.
fn tiny_train(out: &Path, epochs: u32, seed: u32) -> Command {
    tiny_train_by(&["--method", "madry"], out, epochs, seed)
}

/// [`tiny_train`] with the method (and its options) given by `method`.
fn tiny_train_by(method: &[&str], out: &Path, epochs: u32, seed: u32) -> Command {
    let mut cmd = spat();
    cmd.args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args(["--model", "tiny"])
        .args(method)
        .arg("--epochs")
        .arg(epochs.to_string())
        .args([
            "--batch-size",
            "32",
            "--train-subset",
            "64",
            "--test-subset",
            "8",
            "--seed",
        ])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out);
    cmd
}

fn success(out: Output) -> Output {
    assert!(
        out.status.success(),
        "spat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Width and height from a PNG's IHDR chunk (after checking the signature).
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

fn tensor_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    names
}

/// `--val-subset` holds training images out (recorded in config.json) and every epoch is evaluated
/// on them; `--eps` and `--attack-step-size` are kept as given.
#[test]
fn train_holds_out_a_validation_split_and_takes_rst_radius_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    success(run(tiny_train(&run_dir, 1, 0).args([
        "--val-subset",
        "16",
        "--eps",
        "0.031",
        "--attack-step-size",
        "0.007",
    ])));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["val_subset"], 16);
    assert_eq!(
        (config["eps"].as_f64(), config["attack_step_size"].as_f64()),
        (Some(0.031), Some(0.007))
    );
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(line["eval_examples"], 16, "{metrics}");
    assert!(run_dir.join("best.safetensors").is_file());
}

/// `spat eval --validation-of RUN` measures a run's checkpoints on the validation split the run
/// held out, rebuilt from its config.json: clean and PGD-20 at the run's radius give exactly the
/// per-epoch numbers of metrics.jsonl for the epoch of the last checkpoint and for the best one,
/// whose robust accuracies differ (so an evaluation on other images, or of the other epoch,
/// fails). With the run's seed (5) and evaluation batch size taken by default, each batch's PGD
/// start is the trainer's; on this data PGD-20 finds the same examples from any start, so the
/// check pins the images and the attack, and the start only where it matters.
#[test]
fn eval_on_a_runs_validation_split_gives_its_per_epoch_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    // A radius small enough that robust accuracy stays above zero on the tiny model.
    success(run(spat()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args([
            "--model",
            "tiny",
            "--method",
            "trades",
            "--spat-alpha",
            "0.1",
        ])
        .args([
            "--eps",
            "2/255",
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--lr",
            "0.05",
        ])
        .args([
            "--train-subset",
            "256",
            "--val-subset",
            "128",
            "--test-subset",
            "8",
        ])
        .args(["--seed", "5", "--out"])
        .arg(&run_dir)));
    let records = epoch_records(&run_dir);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("state.json")).unwrap())
            .unwrap();
    let best = state["best_epoch"].as_u64().unwrap() as usize;
    let at = |epoch: usize, key: &str| records[epoch - 1][key].as_f64().unwrap();
    assert_ne!(best, 3, "the best epoch is not the last: {records:?}");
    assert_ne!(at(best, "robust_acc"), at(3, "robust_acc"), "{records:?}");
    for (checkpoint, epoch) in [
        ("checkpoint-0003.safetensors", 3),
        ("best.safetensors", best),
    ] {
        let out = success(run(eval_command(
            "tiny",
            &run_dir.join(checkpoint),
            "clean,pgd20",
        )
        .arg("--validation-of")
        .arg(&run_dir)
        .args(["--eps", "2/255"])));
        let v = stdout_json(&out);
        assert_eq!(v["examples"], 128, "{v}");
        assert_eq!(
            v["split"].as_str().unwrap(),
            format!("validation of {}", run_dir.display())
        );
        assert_eq!(
            (
                v["accuracy"]["clean"].as_f64(),
                v["accuracy"]["pgd20"].as_f64()
            ),
            (Some(at(epoch, "clean_acc")), Some(at(epoch, "robust_acc"))),
            "{checkpoint} against metrics.jsonl's epoch {epoch}: {v}"
        );
    }
    // Without --validation-of the same command measures test images, and says so.
    let out = eval_tiny_on(128, &run_dir.join("best.safetensors"), "clean", &[]);
    assert_eq!(stdout_json(&out)["split"], "test");
}

#[test]
fn train_then_eval_sweep_and_visualize() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    success(run(&mut tiny_train(&run_dir, 1, 0)));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["method"], "madry");
    assert_eq!(config["epochs"], 1);
    // An L∞ run's config.json is what it was before norms existed (no `norm`), so a run started
    // by an older spat resumes.
    assert!(config.get("norm").is_none(), "{config}");
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{metrics}");
    for key in ["epoch", "loss", "clean_acc", "robust_acc"] {
        assert!(lines[0][key].is_number(), "{key} missing: {metrics}");
    }
    let weights = run_dir.join("model.safetensors");
    let names = tensor_names(&weights);
    // PyTorch state_dict names of the WideResNet layout.
    assert!(
        names.contains(&"conv1.weight".to_string()) && names.contains(&"fc.weight".to_string()),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("running_mean")),
        "{names:?}"
    );

    let eval = stdout_json(&run(spat()
        .args(["eval", "--model", "tiny", "--checkpoint"])
        .arg(&weights)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args([
            "--attacks",
            "clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3",
            "--test-subset",
            "8",
            "--json",
        ])));
    assert_eq!(eval["examples"], 8);
    let accuracy = eval["accuracy"].as_object().unwrap();
    // Keyed by canonical spec: `pgd-kl` is PGD-KL with 20 steps.
    let keys: Vec<&str> = accuracy.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["clean", "cw30", "fgsm", "pgd20", "pgd20-kl", "pgd20-ls:0.3"],
        "{eval}"
    );
    let worst = eval["worst_case"].as_f64().unwrap();
    for (k, v) in accuracy {
        let v = v.as_f64().unwrap();
        // 8 images: every accuracy is a multiple of 12.5 %.
        assert!(
            (0.0..=100.0).contains(&v) && (v / 12.5 - (v / 12.5).round()).abs() < 1e-9,
            "{k} = {v}"
        );
        assert!(worst <= v, "worst case {worst} above {k} = {v}");
    }

    let sweep_dir = dir.path().join("sweep");
    let out = success(run(spat()
        .args(["sweep-alpha", "--model", "tiny", "--checkpoint"])
        .arg(&weights)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args([
            "--alphas",
            "0,0.5,1",
            "--test-subset",
            "8",
            "--json",
            "--out",
        ])
        .arg(&sweep_dir)));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("sweep.json")).unwrap())
            .unwrap();
    assert_eq!(printed, saved);
    let attacks: Vec<&str> = saved["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attack"].as_str().unwrap())
        .collect();
    assert_eq!(attacks, ["pgd-ls", "pgd-ls", "pgd-ls", "pgd-ce", "pgd-kl"]);
    // PGD-LS with α = 0 is PGD-CE: same loss, same starts.
    assert_eq!(saved["rows"][0]["accuracy"], saved["rows"][3]["accuracy"]);
    assert_eq!(
        png_size(&std::fs::read(sweep_dir.join("sweep.png")).unwrap()),
        (900, 600)
    );
    assert!(std::fs::read_to_string(sweep_dir.join("sweep.md"))
        .unwrap()
        .contains("| pgd-kl |"));

    let png = dir.path().join("grid.png");
    let v = stdout_json(&run(visualize_tiny(&weights)
        .args([
            "--attacks",
            "pgd20,pgd-ls:0.8",
            "--eps",
            "32/255,8/255",
            "--classes",
            "ship,horse,horse",
            "--json",
            "--out",
        ])
        .arg(&png)));
    let (w, h) = png_size(&std::fs::read(&png).unwrap());
    assert_eq!(
        (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
        (w as u64, h as u64)
    );
    assert_eq!(
        v["columns"].as_array().unwrap().len(),
        5,
        "original + 2 attacks x 2 radii: {v}"
    );
    let rows = v["rows"].as_array().unwrap();
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["ship", "horse", "horse"]);
    assert_ne!(rows[1]["index"], rows[2]["index"], "two different horses");
    // Five 32x32 images magnified 4x side by side, three rows of them.
    assert!(w >= 5 * 128 && h >= 3 * 128, "{w}x{h}");

    // Figure 4.1's grid: the original and one input-gradient column per checkpoint.
    let png = dir.path().join("gradients.png");
    let best = run_dir.join("best.safetensors");
    let v = stdout_json(&run(spat()
        .args(["gradients", "--model", "tiny", "--checkpoint"])
        .arg(format!("last={}", weights.display()))
        .arg("--checkpoint")
        .arg(&best)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args(["--classes", "cat,dog", "--json", "--out"])
        .arg(&png)));
    assert_eq!(
        png_size(&std::fs::read(&png).unwrap()).0 as u64,
        v["width"].as_u64().unwrap()
    );
    assert_eq!(
        v["columns"],
        serde_json::json!(["original", "grad last", "grad best"])
    );
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    let e = run(spat()
        .args([
            "gradients",
            "--model",
            "tiny",
            "--checkpoint",
            "=x",
            "--dataset",
            "cifar10",
        ])
        .args(["--data-dir", "data", "--out"])
        .arg(&png));
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("LABEL=PATH"));
}

/// The L2 threat model end to end: TRADES + SPAT trained with PGD-L2 adversaries (stopped after
/// one epoch and resumed), then the issue's interface — `spat eval --norm l2 --eps 0.1 --attacks
/// clean,fgsm,apgd-ce,autoattack --json` with each accuracy under the name given (the CI smoke of
/// AutoAttack-L2, 32 images) — an L2 α sweep and an L2 `visualize` grid.
#[test]
fn l2_training_evaluation_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("l2");
    let mut train = tiny_train_by(&["--method", "trades"], &run_dir, 2, 3);
    train.args(["--norm", "l2", "--spat-alpha", "0.1"]);
    success(run(train.args(["--stop-after-epochs", "1"])));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (&config["norm"], &config["eps"], &config["attack_step_size"]),
        (&"l2".into(), &0.5.into(), &0.125.into()),
        "{config}"
    );
    success(run(spat().args(["train", "--resume"]).arg(&run_dir)));
    let weights = run_dir.join("model.safetensors");
    assert!(weights.is_file());

    let attacks = "clean,fgsm,apgd-ce,autoattack";
    let mut eval = eval_command("tiny", &weights, attacks);
    eval.args(["--test-subset", "32", "--norm", "l2", "--eps", "0.1"]);
    let out = run(eval.env("RUST_LOG", "info"));
    let v = stdout_json(&out);
    // With RUST_LOG=info each AutoAttack stage says when it ends: a long run's only progress.
    let log = String::from_utf8_lossy(&out.stderr);
    let done: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("autoattack stage done"))
        .collect();
    assert_eq!(done.len(), 4, "{log}");
    for (line, attack) in done.iter().zip(["apgd-ce", "apgd-t", "fab-t", "square"]) {
        assert!(
            line.contains(&format!("attack={attack} ")) && line.contains("of=32 "),
            "{line}"
        );
    }
    assert_eq!(
        (&v["norm"], &v["eps"], &v["examples"]),
        (&"l2".into(), &0.1.into(), &32.into())
    );
    let acc = &v["accuracy"];
    assert_eq!(
        keys_of(acc),
        ["apgd-ce", "autoattack", "clean", "fgsm"],
        "{v}"
    );
    let aa = &v["autoattack"]["autoattack"];
    assert_eq!(aa["norm"], "l2");
    let stages: Vec<&str> = aa["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attack"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["apgd-ce", "apgd-t", "fab-t", "square"]);
    assert_eq!(aa["robust"], acc["autoattack"]);
    let pct = |k: &str| acc[k].as_f64().unwrap();
    assert!(pct("clean") > 0.0, "{v}");
    assert!(
        pct("autoattack") <= pct("apgd-ce") && pct("apgd-ce") <= pct("clean"),
        "{v}"
    );
    assert!(pct("fgsm") <= pct("clean"), "{v}");

    let sweep = stdout_json(&run(spat()
        .args(["sweep-alpha", "--model", "tiny", "--checkpoint"])
        .arg(&weights)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args(["--norm", "l2", "--alphas", "0,1", "--steps", "5"])
        .args(["--test-subset", "16", "--json"])));
    assert_eq!((&sweep["norm"], &sweep["eps"]), (&"l2".into(), &0.5.into()));
    assert_eq!(sweep["rows"].as_array().unwrap().len(), 4, "{sweep}");

    // A figure of L2 adversarial examples, at the norm's default radii.
    let png = dir.path().join("l2.png");
    let grid = stdout_json(&run(visualize_tiny(&weights)
        .args(["--norm", "l2", "--attacks", "pgd10", "--indices", "0,1"])
        .args(["--json", "--out"])
        .arg(&png)));
    assert_eq!(
        grid["columns"],
        serde_json::json!(["original", "pgd10 L2 2", "pgd10 L2 1", "pgd10 L2 0.5"])
    );
}

/// The per-epoch records of a run (metrics.jsonl) without their timings, which no two runs share.
fn epoch_records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let record = v.as_object_mut().unwrap();
            for timing in ["seconds", "images_per_sec"] {
                assert!(record.remove(timing).is_some(), "{timing} in {l}");
            }
            v
        })
        .collect()
}

/// A run killed after an epoch and resumed, and a run stopped after epoch 1 of 4
/// (`--stop-after-epochs 1`), resumed to epoch 3 and then to its end, both end with the weights,
/// best weights and per-epoch records (learning rates included: a stopped run keeps the schedule
/// of its --epochs) of an uninterrupted run, bit for bit; a stop beyond --epochs runs to the end.
#[test]
fn killed_or_stopped_training_resumes_to_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    success(run(&mut tiny_train(&whole, 4, 7)));
    let same_as_whole = |r: &Path, what: &str| {
        for file in ["model.safetensors", "best.safetensors"] {
            let (a, b) = (std::fs::read(r.join(file)), std::fs::read(whole.join(file)));
            assert!(
                a.unwrap() == b.unwrap(),
                "{what}: {file} differs from an uninterrupted run's"
            );
        }
        assert_eq!(epoch_records(r), epoch_records(&whole), "{what}");
    };

    let killed = dir.path().join("killed");
    let mut child = tiny_train(&killed, 4, 7)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first epoch's checkpoint is complete once state.json (written last) exists.
    let start = std::time::Instant::now();
    while !killed.join("state.json").exists() {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "spat train ended before its first checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !killed.join("model.safetensors").exists(),
        "killed before the end"
    );
    success(run(spat().args(["train", "--resume"]).arg(&killed)));
    same_as_whole(&killed, "killed and resumed");

    let stopped = dir.path().join("stopped");
    success(run(
        tiny_train(&stopped, 4, 7).args(["--stop-after-epochs", "1"])
    ));
    assert_eq!(epochs_done(&stopped), 1);
    let resume_to = |k: &str| {
        success(run(spat()
            .args(["train", "--resume"])
            .arg(&stopped)
            .args(["--stop-after-epochs", k])))
    };
    resume_to("3");
    assert_eq!(epochs_done(&stopped), 3);
    assert!(stopped.join("checkpoint-0003.safetensors").is_file());
    assert!(
        !stopped.join("model.safetensors").exists(),
        "stopped at 3 of 4 epochs"
    );
    assert_eq!(epoch_records(&stopped)[..], epoch_records(&whole)[..3]);
    resume_to("9");
    assert_eq!(epochs_done(&stopped), 4);
    same_as_whole(&stopped, "stopped at 1, resumed to 3, then to the end");
}

/// `spat plot` overlays runs, labelled by method and α, with the numbers it draws beside the
/// picture equal to each run's metrics.jsonl; it replaces its own picture and refuses a file it
/// did not write, a folder without a run, and a metric it does not know.
#[test]
fn plot_overlays_runs_and_refuses_what_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let (madry, spat_run) = (dir.path().join("madry"), dir.path().join("spat"));
    success(run(&mut tiny_train(&madry, 2, 0)));
    let trades_spat = ["--method", "trades", "--spat-alpha", "0.1"];
    success(run(&mut tiny_train_by(&trades_spat, &spat_run, 2, 0)));
    let out = dir.path().join("overlay.png");
    let plot = |out: &Path| {
        let mut cmd = spat();
        cmd.arg("plot")
            .arg(&madry)
            .arg(&spat_run)
            .arg("--out")
            .arg(out);
        cmd
    };
    success(run(&mut plot(&out)));
    let png = std::fs::read(&out).unwrap();
    let (w, h) = png_size(&png);
    assert!(w >= 800 && h >= 300, "{w}x{h}");
    let curves: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("overlay.json")).unwrap()).unwrap();
    let drawn = curves["panels"][0]["curves"].as_array().unwrap();
    let labels: Vec<&str> = drawn.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["Madry", "TRADES + SPAT (α = 0.1)"]);
    for (curve, run_dir) in drawn.iter().zip([&madry, &spat_run]) {
        let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        let want: Vec<(u64, u64)> = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|m| {
                (
                    m["epoch"].as_u64().unwrap(),
                    m["robust_acc"].as_f64().unwrap().to_bits(),
                )
            })
            .collect();
        let got: Vec<(u64, u64)> = curve["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["epoch"].as_u64().unwrap(),
                    p["value"].as_f64().unwrap().to_bits(),
                )
            })
            .collect();
        assert_eq!(got, want, "{}", curve["label"]);
    }
    // Its own picture is replaced; a file it did not write is not, nor a folder without a run.
    success(run(&mut plot(&out)));
    let foreign = dir.path().join("mine.png");
    std::fs::write(&foreign, b"the user's picture").unwrap();
    let e = one_line_error(&run(&mut plot(&foreign)));
    assert!(
        e.contains("mine.png") && e.contains("not written by"),
        "{e}"
    );
    assert_eq!(std::fs::read(&foreign).unwrap(), b"the user's picture");
    std::fs::write(dir.path().join("other.json"), b"{}").unwrap();
    let e = one_line_error(&run(&mut plot(&dir.path().join("other.png"))));
    assert!(e.contains("other.json"), "{e}");
    assert!(!dir.path().join("other.png").exists());
    let e = one_line_error(&run(spat()
        .arg("plot")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("x.png"))));
    assert!(e.contains("not a spat run directory"), "{e}");
    let e = one_line_error(&run(spat()
        .arg("plot")
        .arg(&madry)
        .args(["--metric", "accuracy", "--out"])
        .arg(dir.path().join("x.png"))));
    assert!(e.contains("robust-acc"), "{e}");
    assert!(!dir.path().join("x.png").exists());
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corrupted_checkpoint_is_a_clear_error_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    success(run(
        tiny_train(&run_dir, 2, 0).args(["--stop-after-epochs", "1"])
    ));
    let ckpt = run_dir.join("checkpoint-0001.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let n = bytes.len();
    bytes[n - 16..].copy_from_slice(&[0xAB; 16]);
    std::fs::write(&ckpt, &bytes).unwrap();
    let before = snapshot(&run_dir);
    let msg = one_line_error(&run(spat().args(["train", "--resume"]).arg(&run_dir)));
    assert!(msg.contains("checkpoint-0001.safetensors"), "{msg}");
    assert_eq!(
        snapshot(&run_dir),
        before,
        "a failed resume must not touch the run"
    );

    // Resuming on other data (the first 300 records of the sample instead of the sample) is
    // refused before anything is written.
    let other = dir.path().join("other-data");
    std::fs::create_dir(&other).unwrap();
    for f in ["data_batch_1.bin", "test_batch.bin"] {
        let bytes = std::fs::read(mini_data().join(f)).unwrap();
        std::fs::write(other.join(f), &bytes[..3073 * 300]).unwrap();
    }
    let msg = one_line_error(&run(spat()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .arg("--data-dir")
        .arg(&other)));
    assert!(msg.contains("state.json") && msg.contains("data"), "{msg}");
    assert_eq!(snapshot(&run_dir), before);

    // Garbage as weights for eval: named, one line.
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not safetensors").unwrap();
    let msg = one_line_error(&run(spat()
        .args(["eval", "--model", "tiny", "--checkpoint"])
        .arg(&garbage)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())));
    assert!(
        msg.contains("garbage.safetensors") && msg.contains("safetensors"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&garbage).unwrap(), b"this is not safetensors");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.safetensors");
    let mini = mini_data();
    let mini = mini.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let mut c = spat();
        c.args(["eval", "--model", "tiny", "--checkpoint"])
            .arg(&weights)
            .args(["--dataset", "cifar10", "--data-dir", mini])
            .args(extra);
        c
    };
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let train = |model: &str, method: &str, extra: &[&str]| {
        let mut c = spat();
        c.args([
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            mini,
            "--model",
            model,
            "--method",
            method,
        ])
        .args(["--epochs", "1", "--out", out])
        .args(extra);
        c
    };
    let cases: Vec<(Command, &[&str])> = vec![
        (eval(&[]), &["w.safetensors", "not found"]),
        (eval(&["--eps", "2"]), &["--eps 2", "L∞", "[0, 1]"]),
        (
            eval(&["--norm", "l2", "--eps", "-1"]),
            &["--eps -1", "L2", ">= 0"],
        ),
        (eval(&["--eps", "eight"]), &["bad eps `eight`"]),
        (
            eval(&["--attacks", "clean,pgd20,fgsm9"]),
            &["unknown attack `fgsm9`", "pgd-ls"],
        ),
        (
            eval(&["--attacks", "pgd-ls:1.5"]),
            &["alpha must lie in [0, 1]"],
        ),
        (eval(&["--device", "cuda:0"]), &["cuda"]),
        (eval(&["--device", "tpu"]), &["bad --device `tpu`"]),
        (
            train("wrn-99", "madry", &[]),
            &["bad model `wrn-99`", "DEPTH-WIDTH such as 28-10"],
        ),
        (
            train("tiny", "fgsm-at", &[]),
            &["unknown training method `fgsm-at`"],
        ),
        (
            train("tiny", "madry", &["--spat-alpha", "1.5"]),
            &["bad alpha `1.5`"],
        ),
        (
            train("tiny", "rst", &[]),
            &["--pseudo-labeled", "fetch-data ti500k"],
        ),
        (
            train("tiny", "madry", &["--batch-size", "0"]),
            &["`0` is not a positive integer"],
        ),
        (
            {
                let mut c = spat();
                c.args([
                    "train",
                    "--dataset",
                    "cifar10",
                    "--data-dir",
                    "/nonexistent/data",
                    "--model",
                    "tiny",
                ])
                .args(["--method", "madry", "--out", out]);
                c
            },
            &["/nonexistent/data", "cargo xtask fetch-data cifar10"],
        ),
        (
            {
                let mut c = spat();
                c.args(["train", "--resume"])
                    .arg(dir.path().join("nothing-here"));
                c
            },
            &["nothing-here", "no such run directory"],
        ),
        (
            {
                let mut c = spat();
                c.args(["train", "--norm", "l2", "--resume"])
                    .arg(dir.path().join("nothing-here"));
                c
            },
            &["--norm", "--resume"],
        ),
        (
            {
                let mut c = spat();
                c.args(["train", "--dataset", "cifar10", "--model", "tiny"]);
                c
            },
            &["--data-dir", "--method"],
        ),
        (
            {
                let mut c = visualize_tiny(&weights);
                c.args(["--classes", "unicorn", "--out", "x.png"]);
                c
            },
            &["unknown class `unicorn`", "automobile"],
        ),
    ];
    for (mut cmd, needles) in cases {
        let msg = one_line_error(&run(&mut cmd));
        for n in needles {
            assert!(msg.contains(n), "{cmd:?}: `{msg}` lacks `{n}`");
        }
    }
    assert!(
        !Path::new(out).exists(),
        "no failed command created the run directory"
    );
}

/// `spat bench` on the CPU: every workload and precision runs, the JSON has the schema of
/// `bench/pytorch_reference.py --json`, and a reference file adds its images/s and the ratio.
#[test]
fn bench_writes_results_and_compares_with_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("spat.json");
    let reference = dir.path().join("pytorch.json");
    std::fs::write(
        &reference,
        r#"{"framework": "pytorch", "framework_version": "2.11.0", "device": "cpu",
            "device_name": "cpu", "records": [{"model": "tiny", "workload": "pgd20-eval",
            "precision": "bf16", "batch": 4, "warmup": 0, "repeats": 1, "median_ms": 1000.0,
            "images_per_s": 4.0}]}"#,
    )
    .unwrap();
    let out = success(run(bench_once("tiny", 4, &ours)
        .arg("--reference")
        .arg(&reference)));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ours).unwrap()).unwrap();
    assert_eq!(v["framework"], "spat");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 9, "3 workloads × 3 precisions: {v}");
    for r in records {
        let ips = r["images_per_s"].as_f64().unwrap();
        let ms = r["median_ms"].as_f64().unwrap();
        assert!(ips > 0.0 && (ips * ms / 1000.0 - 4.0).abs() < 1e-6, "{r}");
        assert!(r["median_cpu_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let row = table
        .lines()
        .find(|l| l.starts_with("| tiny | pgd20-eval | bf16 |"))
        .unwrap_or_else(|| panic!("no bf16 PGD-20 row: {table}"));
    // The reference has images/s but no CPU time: ratio by wall time only.
    assert!(
        row.contains("| 4.0 | – | ") && row.ends_with("× | – |"),
        "{row}"
    );
    let other = table
        .lines()
        .find(|l| l.starts_with("| tiny | standard | fp32 |"))
        .unwrap();
    assert!(other.ends_with("| – | – | – | – |"), "{other}");
}

/// `spat bench` of `models` on a batch of `batch`, one step after no warm-up, its JSON to `json`.
fn bench_once(models: &str, batch: usize, json: &Path) -> Command {
    let mut cmd = spat();
    cmd.args(["bench", "--models", models, "--batch", &batch.to_string()])
        .args(["--warmup", "0", "--repeats", "1", "--json"])
        .arg(json);
    cmd
}

/// `--models` takes any network spat builds, not only the presets: a DeepMind WRN here, whose
/// records carry the name as given (the key PyTorch's records are matched on).
#[test]
fn bench_measures_a_deepmind_network() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("spat.json");
    success(run(bench_once("dm-wrn-10-1-silu", 2, &ours).args([
        "--workloads",
        "pgd20-eval",
        "--precisions",
        "fp32",
    ])));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&ours).unwrap()).unwrap();
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{v}");
    assert_eq!(records[0]["model"], "dm-wrn-10-1-silu", "{v}");
    assert!(records[0]["median_ms"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn bench_rejects_unknown_names_and_bad_references() {
    let e = one_line_error(&run(spat().args(["bench", "--precisions", "fp16"])));
    assert!(e.contains("fp16") && e.contains("bf16"), "{e}");
    let e = one_line_error(&run(spat().args(["bench", "--workloads", "fast"])));
    assert!(e.contains("fast") && e.contains("pgd20-eval"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ref.json");
    std::fs::write(&bad, "{\"records\": 3}").unwrap();
    let e = one_line_error(&run(spat().args([
        "bench",
        "--reference",
        bad.to_str().unwrap(),
    ])));
    assert!(
        e.contains("ref.json") && e.contains("pytorch_reference"),
        "{e}"
    );
}

fn torch_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/torch")
        .join(name)
}

/// The keys of a JSON object, in order.
fn keys_of(v: &serde_json::Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// `spat eval` of the `tiny` preset on the first 64 embedded test images, `--json`.
fn eval_tiny(checkpoint: &Path, attacks: &str, extra: &[&str]) -> Output {
    eval_model("tiny", checkpoint, attacks, extra)
}

/// `spat eval` of `model` on the first 64 embedded test images, `--json`.
fn eval_model(model: &str, checkpoint: &Path, attacks: &str, extra: &[&str]) -> Output {
    eval_on(model, 64, checkpoint, attacks, extra)
}

/// [`eval_tiny`] on the first `images` embedded test images.
/// `spat visualize` of the `tiny` model with `weights` on the embedded data; the caller adds the
/// figure's options.
fn visualize_tiny(weights: &Path) -> Command {
    let mut cmd = spat();
    cmd.args(["visualize", "--model", "tiny", "--checkpoint"])
        .arg(weights)
        .args(["--dataset", "cifar10", "--data-dir"])
        .arg(mini_data());
    cmd
}

fn eval_tiny_on(images: usize, checkpoint: &Path, attacks: &str, extra: &[&str]) -> Output {
    eval_on("tiny", images, checkpoint, attacks, extra)
}

/// `spat eval` of `model` on the first `images` embedded test images, `--json`.
fn eval_on(model: &str, images: usize, checkpoint: &Path, attacks: &str, extra: &[&str]) -> Output {
    let mut cmd = eval_command(model, checkpoint, attacks);
    cmd.args(["--test-subset", &images.to_string()]).args(extra);
    run(&mut cmd)
}

/// `spat eval --json` of `model` with the embedded data, on the images its caller chooses.
fn eval_command(model: &str, checkpoint: &Path, attacks: &str) -> Command {
    let mut cmd = spat();
    cmd.args([
        "eval",
        "--model",
        model,
        "--dataset",
        "cifar10",
        "--data-dir",
    ])
    .arg(mini_data())
    .arg("--checkpoint")
    .arg(checkpoint)
    .args(["--attacks", attacks, "--json"]);
    cmd
}

/// The issue's interface: a TRADES-layout WideResNet saved by PyTorch (with its unused
/// `sub_block1.*`) evaluated under the whole list, each accuracy under the name given, and
/// AutoAttack's per-attack robust accuracy beside its final one.
#[test]
fn eval_reads_pytorch_checkpoints_and_reports_autoattack() {
    let attacks = "clean,fgsm,pgd20,cw30,apgd-ce,apgd-t,autoattack";
    for name in ["zip.pt", "legacy.pt", "wrapped_legacy.pt"] {
        let out = eval_tiny(&torch_fixture(name), attacks, &["--eps", "2/255"]);
        let v = stdout_json(&out);
        let acc = &v["accuracy"];
        assert_eq!(
            keys_of(acc),
            [
                "apgd-ce",
                "apgd-t",
                "autoattack",
                "clean",
                "cw30",
                "fgsm",
                "pgd20"
            ],
            "{name}"
        );
        let aa = &v["autoattack"]["autoattack"];
        let stages: Vec<&str> = aa["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["attack"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["apgd-ce", "apgd-t", "fab-t", "square"], "{name}");
        assert_eq!(aa["robust"], acc["autoattack"], "{name}");
        assert_eq!(aa["clean"], acc["clean"], "{name}");
        assert!(aa["seconds"].as_f64().unwrap() >= 0.0);
        let (clean, robust) = (
            acc["clean"].as_f64().unwrap(),
            acc["autoattack"].as_f64().unwrap(),
        );
        assert!(clean > 0.0 && robust <= clean, "{name}: {v}");
        assert!(v["worst_case"].as_f64().unwrap() <= robust);
    }
}

/// A RobustBench checkpoint's `mu`/`sigma` are applied; `--normalize` applies the same to a
/// checkpoint without them, and contradicting the file's is an error naming it.
#[test]
fn eval_normalises_inputs_as_the_checkpoint_or_the_flag_says() {
    let attacks = "clean,pgd20";
    let with_buffers = stdout_json(&eval_tiny(&torch_fixture("robustbench.pt"), attacks, &[]));
    let flagged = stdout_json(&eval_tiny(
        &torch_fixture("zip.pt"),
        attacks,
        &["--normalize", "cifar10"],
    ));
    let explicit = stdout_json(&eval_tiny(
        &torch_fixture("zip.pt"),
        attacks,
        &["--normalize", "0.4914,0.4822,0.4465,0.2471,0.2435,0.2616"],
    ));
    let plain = stdout_json(&eval_tiny(&torch_fixture("zip.pt"), attacks, &[]));
    assert_eq!(with_buffers, flagged);
    assert_eq!(flagged, explicit);
    assert_ne!(plain, flagged, "the normalisation must change the result");
    let agreeing = stdout_json(&eval_tiny(
        &torch_fixture("robustbench.pt"),
        attacks,
        &["--normalize", "cifar10"],
    ));
    assert_eq!(agreeing, with_buffers);

    let err = one_line_error(&eval_tiny(
        &torch_fixture("robustbench.pt"),
        attacks,
        &["--normalize", "0.5,0.5"],
    ));
    assert!(
        err.contains("robustbench.pt") && err.contains("--normalize") && err.contains("mu"),
        "{err}"
    );
    let err = one_line_error(&eval_tiny(
        &torch_fixture("zip.pt"),
        attacks,
        &["--normalize", "imagenet"],
    ));
    assert!(
        err.contains("--normalize") && err.contains("cifar10"),
        "{err}"
    );
}

/// The issue's interface for DeepMind-layout checkpoints saved by PyTorch: bare (float16, with
/// its own `mean`/`std`) or under `state_dict` with `module.` prefixes (the network's own
/// normalisation), clean and FGSM accuracy equal to RobustBench's class on the same images
/// (`scripts/golden/zoo.py`).
#[test]
fn eval_reads_deepmind_checkpoints_as_pytorch_saves_them() {
    let golden = spat_core::store::load_tensors(
        &torch_fixture("dm_logits.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let pytorch = |key: &str| golden[key].to_vec1::<f64>().unwrap()[0];
    for tag in ["bare", "wrapped"] {
        let file = torch_fixture(&format!("dm_wrn_10_1_silu_{tag}.pt"));
        let v = stdout_json(&eval_model("dm-wrn-10-1-silu", &file, "clean,fgsm", &[]));
        assert_eq!(v["examples"], 64);
        assert_eq!(
            v["accuracy"]["clean"],
            pytorch(&format!("accuracy_clean_{tag}")),
            "{tag}"
        );
        assert_eq!(
            v["accuracy"]["fgsm"],
            pytorch(&format!("accuracy_fgsm_{tag}")),
            "{tag}"
        );
    }
    // The file's own statistics win over the network's, and must agree with --normalize.
    let err = one_line_error(&eval_model(
        "dm-wrn-10-1-silu",
        &torch_fixture("dm_wrn_10_1_silu_bare.pt"),
        "clean",
        &["--normalize", "cifar10"],
    ));
    assert!(err.contains("--normalize"), "{err}");
    // Without an activation the name is the ReLU network, which the same weights do not make:
    // it still loads (weights do not say), and its accuracy differs.
    let relu = stdout_json(&eval_model(
        "dm-wrn-10-1",
        &torch_fixture("dm_wrn_10_1_silu_wrapped.pt"),
        "clean",
        &[],
    ));
    assert_ne!(relu["accuracy"]["clean"], pytorch("accuracy_clean_wrapped"));
}

/// `spat train` runs an epoch of a DeepMind-layout network (SiLU, normalisation inside) on the
/// embedded sample, and `spat eval` reads what it wrote under the same name.
#[test]
fn train_and_eval_a_deepmind_network() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    success(run(spat()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args([
            "--model",
            "dm-wrn-16-2-silu",
            "--method",
            "madry",
            "--epochs",
            "1",
            "--train-subset",
            "32",
            "--test-subset",
            "32",
            "--batch-size",
            "32",
            "--out",
        ])
        .arg(&out)));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"], "dm-wrn-16-2-silu");
    let names = tensor_names(&out.join("model.safetensors"));
    assert!(
        names.iter().any(|n| n == "layer.2.block.1.conv_1.weight")
            && names.iter().any(|n| n == "logits.bias")
            && !names.iter().any(|n| n == "mean"),
        "{names:?}"
    );
    let v = stdout_json(&eval_model(
        "dm-wrn-16-2-silu",
        &out.join("model.safetensors"),
        "clean,fgsm",
        &[],
    ));
    assert_eq!(v["examples"], 64);
}

#[test]
fn convert_writes_what_eval_reads_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zip.safetensors");
    let mut cmd = spat();
    cmd.arg("convert").arg(torch_fixture("zip.pt")).arg(&out);
    let printed = String::from_utf8(success(run(&mut cmd)).stdout).unwrap();
    assert!(printed.contains("sub_block1"), "{printed}");
    let written = std::fs::read(&out).unwrap();
    let attacks = "clean,pgd20";
    assert_eq!(
        stdout_json(&eval_tiny(&out, attacks, &[])),
        stdout_json(&eval_tiny(&torch_fixture("zip.pt"), attacks, &[]))
    );
    let err = one_line_error(&run(spat()
        .arg("convert")
        .arg(torch_fixture("legacy.pt"))
        .arg(&out)));
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), written);
    let err = one_line_error(&run(spat()
        .arg("convert")
        .arg(torch_fixture("evil.pt"))
        .arg(dir.path().join("evil.safetensors"))));
    assert!(err.contains("evil.pt"), "{err}");
    assert!(!dir.path().join("evil.safetensors").exists());
}

/// Epochs committed in `run` (0 before its first commit).
fn epochs_done(run: &Path) -> u64 {
    std::fs::read(run.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0)
}

/// Waits until `run` has committed more than `after` epochs while `child` runs.
fn wait_for_commit(child: &mut std::process::Child, run: &Path, after: u64) {
    let start = std::time::Instant::now();
    while epochs_done(run) <= after {
        assert!(start.elapsed().as_secs() < 300, "no commit after 300 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "spat train ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// One run directory has one writer (issue 26): a `--resume` beside the running original, or
/// beside another `--resume`, is a one-line refusal that changes nothing, and a writer killed
/// with SIGKILL leaves no lock behind.
#[test]
fn a_run_has_one_writer_and_a_killed_writer_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("run");
    let quiet = |mut c: Command| {
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    // The files of `r` that can be read now (the writer may remove one meanwhile).
    let files = |r: &Path| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(r)
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_string_lossy().into_owned();
                Some((name, std::fs::read(&p).ok()?))
            })
            .collect()
    };
    let refused_beside = |what: &str| {
        let before = files(&r);
        let msg = one_line_error(&run(spat().args(["train", "--resume"]).arg(&r)));
        assert!(
            msg.contains("another spat process") && msg.contains("run.lock"),
            "{what}: {msg}"
        );
        // The writer may commit meanwhile; nothing else may change, so compare what the
        // refused process could have touched: the files present before, unless rewritten.
        let after = files(&r);
        for (name, bytes) in &before {
            if let Some((_, now)) = after.iter().find(|(n, _)| n == name) {
                let written = [
                    "state.json",
                    "metrics.jsonl",
                    "best.safetensors",
                    "curves.json",
                    "curves.png",
                ];
                assert!(
                    now == bytes || written.contains(&name.as_str()),
                    "{what}: {name} changed"
                );
            }
        }
    };
    let mut original = quiet(tiny_train(&r, 50, 3)).spawn().unwrap();
    wait_for_commit(&mut original, &r, 0);
    refused_beside("a --resume beside the running original");
    let err = one_line_error(&run(&mut tiny_train(&r, 50, 3)));
    assert!(err.contains("already holds a run"), "{err}");
    original.kill().unwrap(); // SIGKILL: the kernel drops its lock
    original.wait().unwrap();

    let done = epochs_done(&r);
    let mut first = quiet({
        let mut c = spat();
        c.args(["train", "--resume"]).arg(&r);
        c
    })
    .spawn()
    .unwrap();
    wait_for_commit(&mut first, &r, done);
    refused_beside("a second --resume");
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed again: the next resume runs, and finishes what it is asked to.
    let done = epochs_done(&r);
    success(run(spat()
        .args(["train", "--resume"])
        .arg(&r)
        .args(["--stop-after-epochs", &(done + 1).to_string()])));
    assert_eq!(epochs_done(&r), done + 1);
}

/// torch.save files whose archive name has 1, 2, 20, 21 (once refused: issue 26), 22 and 64
/// characters convert, holding what torch.save wrote.
#[test]
fn convert_reads_torch_save_zip_files_under_names_of_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let names = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch/names");
    let mut converted = 0;
    for e in std::fs::read_dir(names).unwrap() {
        let pt = e.unwrap().path();
        let out = dir
            .path()
            .join(pt.with_extension("safetensors").file_name().unwrap());
        success(run(spat().arg("convert").arg(&pt).arg(&out)));
        let t = safetensors::SafeTensors::deserialize(&std::fs::read(&out).unwrap())
            .unwrap()
            .tensor("w")
            .unwrap()
            .data()
            .to_vec();
        let want: Vec<u8> = (0..6).flat_map(|v| (v as f32).to_le_bytes()).collect();
        assert_eq!(t, want, "{}", pt.display());
        converted += 1;
    }
    assert_eq!(converted, 6);
}

/// `--init` starts training from a PyTorch checkpoint, is recorded in config.json with the
/// file's checksum, cannot be combined with `--resume`, and a run restarted from its beginning
/// refuses an init file that changed.
#[test]
fn train_init_fine_tunes_from_a_checkpoint_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.pt");
    std::fs::copy(torch_fixture("zip.pt"), &init).unwrap();
    let run_dir = dir.path().join("run");
    // A learning rate so small that one epoch leaves the weights where --init put them.
    success(run(tiny_train(&run_dir, 1, 0)
        .args(["--lr", "1e-12", "--init"])
        .arg(&init)));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init"]["path"], init.to_str().unwrap());
    assert_eq!(config["init"]["fnv1a64"].as_str().unwrap().len(), 16);
    let converted = dir.path().join("init.safetensors");
    success(run(spat().arg("convert").arg(&init).arg(&converted)));
    let bytes = [
        std::fs::read(run_dir.join("model.safetensors")).unwrap(),
        std::fs::read(&converted).unwrap(),
    ];
    let conv1: Vec<Vec<f32>> = bytes
        .iter()
        .map(|b| {
            let t = safetensors::SafeTensors::deserialize(b).unwrap();
            t.tensor("conv1.weight")
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        })
        .collect();
    let gap = conv1[0]
        .iter()
        .zip(&conv1[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(gap < 1e-6, "trained weights left --init's by {gap}");

    let err = one_line_error(&run(spat()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .arg("--init")
        .arg(&init)));
    assert!(err.contains("--init"), "{err}");

    // Killed before its first epoch was committed: the restart needs the same init file.
    let early = dir.path().join("early");
    success(run(tiny_train(&early, 1, 0)
        .args(["--stop-after-epochs", "0", "--init"])
        .arg(&init)));
    std::fs::copy(torch_fixture("legacy.pt"), &init).unwrap();
    let err = one_line_error(&run(spat().args(["train", "--resume"]).arg(&early)));
    assert!(err.contains("init.pt") && err.contains("checksum"), "{err}");
}

/// config.json records what ran: subsets larger than their split are the split's size.
#[test]
fn config_records_the_subsets_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    success(run(spat()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(mini_data())
        .args(["--model", "tiny", "--method", "standard", "--epochs", "1"])
        .args([
            "--train-subset",
            "100000",
            "--test-subset",
            "100000",
            "--out",
        ])
        .arg(&run_dir)));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    // The embedded sample holds 512 training and 512 test images.
    assert_eq!(
        (&config["train_subset"], &config["eval_examples"]),
        (&serde_json::json!(512), &serde_json::json!(512))
    );
}
