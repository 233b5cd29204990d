//! PyTorch checkpoints of every container and wrapping, made by
//! `scripts/golden/torch_checkpoints.py` (tests/fixtures/torch/), loaded into the `tiny` preset
//! and compared with PyTorch's logits; and the files that must be refused.

mod common;
use common::max_rel_err;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use spat_core::{CheckpointFormat, Classifier, Mode, Network};
use spat_pickle::torch::Format;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/torch")
        .join(name)
}

fn golden(key: &str) -> Tensor {
    let mut t =
        spat_core::store::load_tensors(&fixture("logits.safetensors"), &Device::Cpu).unwrap();
    t.remove(key).unwrap()
}

fn tiny() -> Box<dyn Network> {
    spat_models::build("tiny", 10, &Device::Cpu, 0).unwrap()
}

fn weights(m: &dyn Network) -> Vec<(String, Vec<f64>)> {
    m.var_store()
        .iter()
        .map(|(n, v, _)| {
            let t = v.as_tensor().to_dtype(candle_core::DType::F64).unwrap();
            (
                n.to_string(),
                t.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            )
        })
        .collect()
}

/// Loads `name`, checks its format and notes, and returns the model.
fn load(name: &str, format: CheckpointFormat, notes: &[&str]) -> Box<dyn Network> {
    let m = tiny();
    let report = spat_models::load_weights(m.as_ref(), &fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.format, format, "{name}");
    let all = report.notes.join(" | ");
    for n in notes {
        assert!(all.contains(n), "{name}: notes lack `{n}`: {all}");
    }
    m
}

#[test]
fn every_container_and_wrapping_gives_pytorch_logits_from_identical_weights() {
    let x = golden("input");
    let want = golden("logits");
    let sub = "dropped 12 `sub_block1.*` tensors";
    let reference = load("zip.pt", CheckpointFormat::Torch(Format::Zip), &[sub]);
    let err = max_rel_err(&reference.logits(&x, Mode::Eval).unwrap(), &want);
    assert!(err < 1e-4, "zip.pt logits rel err {err}");
    let cases: &[(&str, Format, &[&str])] = &[
        ("legacy.pt", Format::Legacy, &[sub]),
        ("tar.pt", Format::Tar, &[sub]),
        ("views.pt", Format::Zip, &[sub]),
        ("big_endian.pt", Format::Zip, &[sub]),
        (
            "wrapped_zip.pt",
            Format::Zip,
            &[
                "read the state dict under `state_dict`",
                "`epoch`",
                "stripped the `module.` prefix",
                sub,
            ],
        ),
        (
            "wrapped_legacy.pt",
            Format::Legacy,
            &["`state_dict`", "`module.`", sub],
        ),
    ];
    for (name, format, notes) in cases {
        let m = load(name, CheckpointFormat::Torch(*format), notes);
        assert!(
            weights(m.as_ref()) == weights(reference.as_ref()),
            "{name}: weights differ from zip.pt's"
        );
        let err = max_rel_err(&m.logits(&x, Mode::Eval).unwrap(), &want);
        assert!(err < 1e-4, "{name} logits rel err {err}");
    }
}

#[test]
fn half_bfloat16_and_double_tensors_are_widened_to_f32() {
    let m = load("mixed_dtypes.pt", CheckpointFormat::Torch(Format::Zip), &[]);
    let err = max_rel_err(
        &m.logits(&golden("input"), Mode::Eval).unwrap(),
        &golden("logits_mixed"),
    );
    assert!(err < 1e-4, "mixed dtypes logits rel err {err}");
}

#[test]
fn robustbench_normalisation_is_reported_not_loaded() {
    let m = tiny();
    let report = spat_models::load_weights(m.as_ref(), &fixture("robustbench.pt")).unwrap();
    let norm = report.normalization.expect("mu/sigma found");
    assert_eq!(norm.mean, vec![0.4914, 0.4822, 0.4465]);
    assert_eq!(norm.std, vec![0.2471, 0.2435, 0.2616]);
    assert!(report.notes.iter().any(|n| n.contains("`model.` prefix")));
    let err = max_rel_err(
        &m.logits(&golden("input"), Mode::Eval).unwrap(),
        &golden("logits"),
    );
    assert!(err < 1e-4, "robustbench.pt logits rel err {err}");
}

#[test]
fn conversion_writes_spat_safetensors_that_load_identically() {
    let dir = tempfile::tempdir().unwrap();
    let reference = load("zip.pt", CheckpointFormat::Torch(Format::Zip), &[]);
    for name in ["wrapped_legacy.pt", "tar.pt", "robustbench.pt"] {
        let out = dir.path().join(format!("{name}.safetensors"));
        let r = spat_core::convert_checkpoint(&fixture(name), &out).unwrap();
        assert!(r
            .notes
            .iter()
            .any(|n| n.contains("prefix") || n.contains("sub_block1")));
        let m = tiny();
        let report = spat_models::load_weights(m.as_ref(), &out).unwrap();
        assert_eq!(report.format, CheckpointFormat::Safetensors);
        assert!(weights(m.as_ref()) == weights(reference.as_ref()), "{name}");
        let again = spat_core::convert_checkpoint(&fixture(name), &out)
            .unwrap_err()
            .to_string();
        assert!(again.contains("refusing to overwrite"), "{again}");
    }
    // mu/sigma survive conversion, so the converted file still says how to normalise.
    let m = tiny();
    let r = spat_models::load_weights(m.as_ref(), &dir.path().join("robustbench.pt.safetensors"))
        .unwrap();
    assert!(r.normalization.is_some());
}

fn refused(name: &str) -> String {
    let m = tiny();
    let before = weights(m.as_ref());
    let msg = spat_models::load_weights(m.as_ref(), &fixture(name))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(name),
        "{name}: error must name the file: {msg}"
    );
    assert!(!msg.contains('\n'), "{name}: one line: {msg}");
    assert!(msg.len() < 400, "{name}: short: {} chars: {msg}", msg.len());
    assert!(
        weights(m.as_ref()) == before,
        "{name}: a refused file must leave the network untouched"
    );
    msg
}

#[test]
fn non_finite_integer_pickled_module_and_hostile_files_are_refused() {
    let m = refused("nan.pt");
    assert!(
        m.contains("`block2.layer.0.conv1.weight` holds 1 non-finite values (element 0 is NaN)"),
        "{m}"
    );
    let m = refused("int_weight.pt");
    assert!(
        m.contains("`conv1.weight` is i64 in the file but the network's parameter is f32"),
        "{m}"
    );
    let m = refused("whole_model.pt");
    assert!(
        m.contains("a whole pickled model") && m.contains("WideResNet` object"),
        "{m}"
    );
    let pwned = Path::new("/tmp/spat-was-pwned");
    let _ = std::fs::remove_file(pwned);
    let m = refused("evil.pt");
    assert!(m.contains("`os.system`"), "{m}");
    assert!(!pwned.exists(), "the pickle's os.system ran");
}

#[test]
fn a_wrong_model_gets_one_short_line_naming_the_presets_that_fit() {
    let m = spat_models::build("wrn-16-2", 10, &Device::Cpu, 0).unwrap();
    let msg = spat_models::load_weights(m.as_ref(), &fixture("zip.pt"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("zip.pt"), "{msg}");
    assert!(
        msg.contains("architectures whose layout fits: tiny (10 classes)"),
        "{msg}"
    );
    assert!(
        !msg.contains('\n') && msg.len() < 600,
        "{} chars: {msg}",
        msg.len()
    );
    // For 100 classes the fc layer is mis-shaped, and the file still names tiny for 10.
    let m = spat_models::build("tiny", 100, &Device::Cpu, 0).unwrap();
    let msg = spat_models::load_weights(m.as_ref(), &fixture("legacy.pt"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("0 missing, 0 unexpected, 2 mis-shaped")
            && msg.contains("fc.weight [10, 32] in the file vs [100, 32]")
            && msg.contains("tiny (10 classes)"),
        "{msg}"
    );
}

/// A DeepMind-layout checkpoint as PyTorch users save it (`scripts/golden/zoo.py`): bare in
/// float16 with its own `mean`/`std`, or under `state_dict` with `module.` prefixes and none. The
/// first normalises with the file's statistics, the second with the network's own (the data
/// set's); both give RobustBench's `DMWideResNet` logits.
#[test]
fn deepmind_checkpoints_bare_or_wrapped_give_robustbench_logits() {
    let golden =
        spat_core::store::load_tensors(&fixture("dm_logits.safetensors"), &Device::Cpu).unwrap();
    let name: spat_spec::ModelName = "dm-wrn-10-1-swish".parse().unwrap();
    let dataset = spat_spec::Dataset::Cifar10;
    for (file, tag, notes) in [
        (
            "dm_wrn_10_1_silu_bare.pt",
            "bare",
            vec!["normalises its input"],
        ),
        (
            "dm_wrn_10_1_silu_wrapped.pt",
            "wrapped",
            vec!["`state_dict`", "`module.` prefix"],
        ),
    ] {
        let m = spat_models::build_named(
            &name,
            Some(dataset),
            10,
            &Device::Cpu,
            0,
            spat_models::Precision::F32,
        )
        .unwrap();
        let report = spat_models::load_weights(m.as_ref(), &fixture(file)).unwrap();
        let all = report.notes.join(" | ");
        for n in notes {
            assert!(all.contains(n), "{file}: notes lack `{n}`: {all}");
        }
        let own = name.input_normalization(dataset).unwrap().unwrap();
        let norm = report
            .normalization
            .unwrap_or_else(|| spat_core::Normalization::from_channels(own.0, own.1));
        if tag == "bare" {
            assert_eq!(norm, spat_core::Normalization::cifar100(), "the file's own");
        }
        let m = spat_core::Normalized::new(m, &norm, &Device::Cpu).unwrap();
        let logits = m.logits(&golden["input"], Mode::Eval).unwrap();
        let e = max_rel_err(&logits, &golden[&format!("logits_{tag}")]);
        assert!(e < 1e-5, "{file}: logits rel err {e}");
    }
}

/// A DeepMind checkpoint given to the wrong network names the DeepMind networks its shapes fit,
/// with each activation (the file does not say which).
#[test]
fn a_deepmind_file_for_the_wrong_network_names_the_deepmind_layouts_that_fit() {
    let m = spat_models::build("tiny", 10, &Device::Cpu, 0).unwrap();
    let msg = spat_models::load_weights(m.as_ref(), &fixture("dm_wrn_10_1_silu_wrapped.pt"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(
            "architectures whose layout fits: dm-wrn-10-1-relu (10 classes), \
             dm-wrn-10-1-silu (10 classes)"
        ),
        "{msg}"
    );
}
