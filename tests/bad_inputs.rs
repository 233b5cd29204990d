//! The bad-input suite: hostile or broken data files, pickles, checkpoints, command-line values and
//! run folders given to the `spat` binary. Every case must end with a non-zero exit status (not a
//! signal), exactly one line on stderr that names the file or option and the problem, no panic,
//! and not one file changed, added or removed anywhere under the case's folders or the embedded
//! data (hashed before and after). The test prints the tally the issue asks for.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};

fn mini_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path)
}

/// Every file under `roots`, by path, with its FNV-1a checksum.
fn snapshot(roots: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            out.insert(p, "folder".into());
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.insert(p, spat_spec::Fnv1a::hex_of(&bytes));
        }
    }
    out
}

/// What the test needs to build the cases: a scratch root and helpers that make files in it.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn folder(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A CIFAR-10 folder holding the embedded sample's training and test files, then `edit`ed.
    fn cifar10(&self, rel: &str, edit: impl FnOnce(&Path)) -> PathBuf {
        let dir = self.folder(rel);
        for f in ["data_batch_1.bin", "test_batch.bin"] {
            std::fs::copy(mini_data().join(f), dir.join(f)).unwrap();
        }
        edit(&dir);
        dir
    }

    /// Weights of the tiny model with `edit` applied to its tensors.
    fn weights(
        &self,
        rel: &str,
        edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
    ) -> PathBuf {
        let model = spat_models::build("tiny", 10, &Device::Cpu, 0).unwrap();
        let mut tensors = model.var_store().state_dict();
        edit(&mut tensors);
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        spat_core::store::save_tensors(&tensors, &p).unwrap();
        p
    }
}

fn spat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spat"))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

struct Case {
    name: String,
    args: Vec<OsString>,
    /// Substrings the one error line must contain: the file or option, and the problem.
    needles: Vec<String>,
}

fn case(name: &str, args: Vec<OsString>, needles: &[&str]) -> Case {
    Case {
        name: name.into(),
        args,
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

/// `base` (a command and `--flag value` pairs) with the pairs of `extra` replacing those of the
/// same flag or added after them, so a case sets each option once.
fn overriding(base: &[&str], extra: &[&str]) -> Vec<OsString> {
    let mut out = vec![OsString::from(base[0])];
    let given: Vec<&str> = extra.chunks(2).map(|p| p[0]).collect();
    for pair in base[1..].chunks(2) {
        if !given.contains(&pair[0]) {
            out.extend(pair.iter().map(OsString::from));
        }
    }
    out.extend(extra.iter().map(OsString::from));
    out
}

/// `args` with paths spliced in: each `{}` is replaced by the next path.
fn with(args: &[&str], paths: &[&Path]) -> Vec<OsString> {
    let mut paths = paths.iter();
    args.iter()
        .map(|a| {
            if *a == "{}" {
                paths.next().expect("a path per {}").as_os_str().to_owned()
            } else {
                OsString::from(a)
            }
        })
        .collect()
}

#[test]
fn bad_inputs_fail_with_one_clear_line_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Scratch {
        root: tmp.path().to_path_buf(),
    };
    let mini = mini_data();
    let mini_str = mini.to_str().unwrap().to_string();
    let mut cases: Vec<Case> = Vec::new();

    // A committed one-epoch run (standard training, seconds) for the run-folder cases and a real
    // checkpoint for the command-line cases.
    let base = s.path("base-run");
    let out = spat()
        .args(["train", "--dataset", "cifar10", "--data-dir", &mini_str])
        .args(["--model", "tiny", "--method", "standard", "--epochs", "2"])
        .args([
            "--batch-size",
            "32",
            "--train-subset",
            "32",
            "--test-subset",
            "8",
        ])
        .args(["--stop-after-epochs", "1", "--out"])
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = base.join("checkpoint-0001.safetensors");
    let copy_run = |rel: &str| -> PathBuf {
        let dir = s.folder(rel);
        for e in std::fs::read_dir(&base).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        dir
    };

    // ---- data files -----------------------------------------------------------------------
    let data_info = |dir: &Path, dataset: &str| {
        with(
            &["data-info", "--dataset", dataset, "--data-dir", "{}"],
            &[dir],
        )
    };
    let record = 3073;
    let d = s.cifar10("data/truncated", |d| {
        let b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
        std::fs::write(d.join("data_batch_1.bin"), &b[..record * 2 + 17]).unwrap();
    });
    cases.push(case(
        "cifar10 truncated batch",
        data_info(&d, "cifar10"),
        &["data_batch_1.bin", "not a multiple"],
    ));
    let d = s.cifar10("data/empty", |d| {
        std::fs::write(d.join("data_batch_1.bin"), b"").unwrap()
    });
    cases.push(case(
        "cifar10 empty batch",
        data_info(&d, "cifar10"),
        &["data_batch_1.bin", "empty"],
    ));
    let d = s.cifar10("data/label", |d| {
        let mut b = std::fs::read(d.join("test_batch.bin")).unwrap();
        b[record * 5] = 10;
        std::fs::write(d.join("test_batch.bin"), b).unwrap();
    });
    cases.push(case(
        "cifar10 label 10",
        data_info(&d, "cifar10"),
        &["test_batch.bin", "record 5", "label 10"],
    ));
    let d = s.cifar10("data/label255", |d| {
        let mut b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
        b[0] = 255;
        std::fs::write(d.join("data_batch_1.bin"), b).unwrap();
    });
    cases.push(case(
        "cifar10 label 255",
        data_info(&d, "cifar10"),
        &["data_batch_1.bin", "label 255"],
    ));
    let d = s.cifar10("data/batch-is-folder", |d| {
        std::fs::remove_file(d.join("data_batch_1.bin")).unwrap();
        std::fs::create_dir(d.join("data_batch_1.bin")).unwrap();
    });
    cases.push(case(
        "cifar10 data_batch_1.bin is a folder",
        data_info(&d, "cifar10"),
        &["data_batch_1.bin", "is a folder"],
    ));
    let d = s.cifar10("data/test-is-folder", |d| {
        std::fs::remove_file(d.join("test_batch.bin")).unwrap();
        std::fs::create_dir(d.join("test_batch.bin")).unwrap();
    });
    cases.push(case(
        "cifar10 test_batch.bin is a folder",
        data_info(&d, "cifar10"),
        &["test_batch.bin", "is a folder"],
    ));
    let d = s.cifar10("data/gap", |d| {
        for f in ["data_batch_2.bin", "data_batch_4.bin", "data_batch_5.bin"] {
            std::fs::copy(d.join("data_batch_1.bin"), d.join(f)).unwrap();
        }
    });
    cases.push(case(
        "cifar10 data_batch_3.bin missing among five",
        data_info(&d, "cifar10"),
        &["data_batch_3.bin", "not found"],
    ));
    let d = s.cifar10("data/no-test", |d| {
        std::fs::remove_file(d.join("test_batch.bin")).unwrap()
    });
    cases.push(case(
        "cifar10 test file missing",
        data_info(&d, "cifar10"),
        &["test_batch.bin", "not found", "fetch-data cifar10"],
    ));
    cases.push(case(
        "data folder missing",
        data_info(&s.path("data/nowhere"), "cifar10"),
        &["nowhere", "not found"],
    ));
    let f = s.file("data/a-file", b"not a folder");
    cases.push(case(
        "data folder is a file",
        data_info(&f, "cifar10"),
        &["a-file", "is a file, not the folder"],
    ));
    let d = s.folder("data/c100");
    s.file("data/c100/cifar-100-binary/train.bin", &[0u8; 3074 * 3 + 1]);
    cases.push(case(
        "cifar100 truncated",
        data_info(&d, "cifar100"),
        &["train.bin", "not a multiple"],
    ));
    let mut b = vec![0u8; 3074 * 2];
    b[3074 + 1] = 100;
    let d = s.folder("data/c100-label");
    s.file("data/c100-label/cifar-100-binary/train.bin", &b);
    s.file(
        "data/c100-label/cifar-100-binary/test.bin",
        &vec![0u8; 3074],
    );
    cases.push(case(
        "cifar100 fine label 100",
        data_info(&d, "cifar100"),
        &["train.bin", "record 1", "label 100"],
    ));
    cases.push(case(
        "cifar100 missing",
        data_info(&s.folder("data/c100-none"), "cifar100"),
        &["cifar-100-binary/train.bin", "fetch-data cifar100"],
    ));
    let stl = |rel: &str, x: usize, y: &[u8]| {
        let d = s.folder(rel);
        s.file(&format!("{rel}/stl10_binary/train_X.bin"), &vec![7u8; x]);
        s.file(&format!("{rel}/stl10_binary/train_y.bin"), y);
        d
    };
    let d = stl("data/stl-size", 96 * 96 * 3 + 5, &[1]);
    cases.push(case(
        "stl10 images truncated",
        data_info(&d, "stl10"),
        &["train_X.bin", "not a multiple"],
    ));
    let d = stl("data/stl-count", 96 * 96 * 3 * 2, &[1]);
    cases.push(case(
        "stl10 label count",
        data_info(&d, "stl10"),
        &["train_y.bin", "1 labels", "2 images"],
    ));
    let d = stl("data/stl-label", 96 * 96 * 3, &[0]);
    cases.push(case(
        "stl10 label 0",
        data_info(&d, "stl10"),
        &["train_y.bin", "label 0", "1-based"],
    ));
    let d = s.cifar10("data/train-bad", |d| {
        let b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
        std::fs::write(d.join("data_batch_1.bin"), &b[..100]).unwrap();
    });
    cases.push(case(
        "train on a truncated batch",
        with(
            &[
                "train",
                "--dataset",
                "cifar10",
                "--data-dir",
                "{}",
                "--model",
                "tiny",
                "--method",
                "madry",
                "--out",
                "{}",
            ],
            &[&d, &s.path("runs/never1")],
        ),
        &["data_batch_1.bin", "not a multiple"],
    ));

    // ---- pickles (--pseudo-labeled) -----------------------------------------------------------
    let rst = |pickle: &Path, out: &str| {
        with(
            &[
                "train",
                "--dataset",
                "cifar10",
                "--data-dir",
                &mini_str,
                "--model",
                "tiny",
                "--method",
                "trades",
                "--epochs",
                "1",
                "--pseudo-labeled",
                "{}",
                "--out",
                "{}",
            ],
            &[pickle, &s.path(out)],
        )
    };
    let mut deep_tuples = b"\x80\x02)".to_vec();
    deep_tuples.extend(std::iter::repeat_n(b'\x85', 1_000_000));
    deep_tuples.push(b'.');
    let p = s.file("pickles/deep_tuples.pickle", &deep_tuples);
    cases.push(case(
        "pickle nesting 1,000,000 tuples",
        rst(&p, "runs/never2"),
        &["deep_tuples.pickle", "pickle"],
    ));
    let mut deep_lists = b"\x80\x02".to_vec();
    deep_lists.extend(std::iter::repeat_n(b']', 300_000));
    deep_lists.extend(std::iter::repeat_n(b'a', 299_999));
    deep_lists.push(b'.');
    let p = s.file("pickles/deep_lists.pickle", &deep_lists);
    cases.push(case(
        "pickle nesting 300,000 lists",
        rst(&p, "runs/never3"),
        &["deep_lists.pickle", "pickle"],
    ));
    let mut deep_dicts = b"\x80\x02".to_vec();
    deep_dicts.extend(std::iter::repeat_n(b'}', 200_000));
    deep_dicts.push(b'.');
    let p = s.file("pickles/many_dicts.pickle", &deep_dicts);
    cases.push(case(
        "pickle of 200,000 dicts on the stack",
        rst(&p, "runs/never4"),
        &["many_dicts.pickle", "pickle"],
    ));
    let marker = s.path("pickles/PWNED");
    let evil = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
    let p = s.file("pickles/evil.pickle", evil.as_bytes());
    cases.push(case(
        "pickle calling os.system",
        rst(&p, "runs/never5"),
        &["evil.pickle", "os"],
    ));
    for (fx, needle) in [
        ("evil_os_system.pickle", "evil_os_system.pickle"),
        ("bad_count.pickle", "bad_count.pickle"),
        ("bad_dtype.pickle", "bad_dtype.pickle"),
        ("bad_label.pickle", "bad_label.pickle"),
        ("bad_shape.pickle", "bad_shape.pickle"),
        ("no_targets.pickle", "no_targets.pickle"),
    ] {
        let p = s.file(
            &format!("pickles/{fx}"),
            &std::fs::read(fixture(&format!("pickle/{fx}"))).unwrap(),
        );
        cases.push(case(
            &format!("pickle fixture {fx}"),
            rst(&p, &format!("runs/never-{fx}")),
            &[needle],
        ));
    }
    let p = s.file(
        "pickles/truncated.pickle",
        &std::fs::read(fixture("pickle/rst_p2.pickle")).unwrap()[..200],
    );
    cases.push(case(
        "pickle truncated",
        rst(&p, "runs/never6"),
        &["truncated.pickle", "pickle"],
    ));
    let p = s.file("pickles/empty.pickle", b"");
    cases.push(case(
        "pickle empty",
        rst(&p, "runs/never7"),
        &["empty.pickle"],
    ));
    let p = s.file(
        "pickles/huge_string.pickle",
        b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.",
    );
    cases.push(case(
        "pickle declaring an 8 EiB string",
        rst(&p, "runs/never8"),
        &["huge_string.pickle"],
    ));
    let p = s.file("pickles/a_list.pickle", b"\x80\x02]q\x00(K\x01K\x02e.");
    cases.push(case(
        "pickle of a list",
        rst(&p, "runs/never9"),
        &["a_list.pickle"],
    ));
    cases.push(case(
        "pickle missing",
        rst(&s.path("pickles/none.pickle"), "runs/never10"),
        &["none.pickle", "not found"],
    ));
    cases.push(case(
        "pickle is a folder",
        rst(&s.folder("pickles/folder.pickle"), "runs/never11"),
        &["folder.pickle", "directory"],
    ));

    // ---- checkpoints (eval --checkpoint) ------------------------------------------------------
    let eval = |ckpt: &Path, model: &str, dataset: &str| {
        with(
            &[
                "eval",
                "--model",
                model,
                "--checkpoint",
                "{}",
                "--dataset",
                dataset,
                "--data-dir",
                &mini_str,
                "--attacks",
                "clean",
                "--test-subset",
                "4",
            ],
            &[ckpt],
        )
    };
    cases.push(case(
        "checkpoint missing",
        eval(&s.path("ckpt/none.safetensors"), "tiny", "cifar10"),
        &["none.safetensors", "not found"],
    ));
    cases.push(case(
        "checkpoint is a folder",
        eval(&s.folder("ckpt/folder.safetensors"), "tiny", "cifar10"),
        &["folder.safetensors", "is a folder"],
    ));
    let p = s.file(
        "ckpt/garbage.safetensors",
        b"this is not a weights file at all",
    );
    cases.push(case(
        "checkpoint garbage",
        eval(&p, "tiny", "cifar10"),
        &["garbage.safetensors"],
    ));
    let p = s.file("ckpt/empty.safetensors", b"");
    cases.push(case(
        "checkpoint empty",
        eval(&p, "tiny", "cifar10"),
        &["empty.safetensors"],
    ));
    let g = std::fs::read(&good).unwrap();
    let p = s.file("ckpt/truncated.safetensors", &g[..g.len() / 2]);
    cases.push(case(
        "checkpoint truncated",
        eval(&p, "tiny", "cifar10"),
        &["truncated.safetensors"],
    ));
    let mut hdr = g.clone();
    hdr[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = s.file("ckpt/huge_header.safetensors", &hdr);
    cases.push(case(
        "checkpoint header length 2^64-1",
        eval(&p, "tiny", "cifar10"),
        &["huge_header.safetensors"],
    ));
    let scale = |t: &Tensor, v: f32| -> Tensor {
        let ones = Tensor::ones(t.shape(), DType::F32, &Device::Cpu).unwrap();
        (t.ones_like().unwrap() * 0.0)
            .unwrap()
            .add(&(ones * v as f64).unwrap())
            .unwrap()
    };
    let p = s.weights("ckpt/nan.safetensors", |t| {
        let w = t["fc.weight"].clone();
        t.insert("fc.weight".into(), scale(&w, f32::NAN));
    });
    cases.push(case(
        "checkpoint with NaN weights",
        eval(&p, "tiny", "cifar10"),
        &["nan.safetensors", "fc.weight", "non-finite"],
    ));
    let p = s.weights("ckpt/inf.safetensors", |t| {
        let w = t["conv1.weight"].clone();
        t.insert("conv1.weight".into(), scale(&w, f32::INFINITY));
    });
    cases.push(case(
        "checkpoint with inf weights",
        eval(&p, "tiny", "cifar10"),
        &["inf.safetensors", "conv1.weight", "non-finite"],
    ));
    let p = s.weights("ckpt/i64.safetensors", |t| {
        let w = t["fc.weight"].to_dtype(DType::I64).unwrap();
        t.insert("fc.weight".into(), w);
    });
    cases.push(case(
        "checkpoint with an I64 float parameter",
        eval(&p, "tiny", "cifar10"),
        &["i64.safetensors", "fc.weight"],
    ));
    let p = s.weights("ckpt/u8.safetensors", |t| {
        let w = t["fc.bias"].to_dtype(DType::U8).unwrap();
        t.insert("fc.bias".into(), w);
    });
    cases.push(case(
        "checkpoint with a U8 float parameter",
        eval(&p, "tiny", "cifar10"),
        &["u8.safetensors", "fc.bias"],
    ));
    let p = s.weights("ckpt/missing.safetensors", |t| {
        t.remove("fc.bias");
    });
    cases.push(case(
        "checkpoint missing a tensor",
        eval(&p, "tiny", "cifar10"),
        &["missing.safetensors", "fc.bias"],
    ));
    let p = s.weights("ckpt/extra.safetensors", |t| {
        t.insert(
            "fc2.weight".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    cases.push(case(
        "checkpoint with an unexpected tensor",
        eval(&p, "tiny", "cifar10"),
        &["extra.safetensors", "fc2.weight"],
    ));
    let p = s.weights("ckpt/shape.safetensors", |t| {
        t.insert(
            "fc.bias".into(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    cases.push(case(
        "checkpoint with a mis-shaped tensor",
        eval(&p, "tiny", "cifar10"),
        &["shape.safetensors", "fc.bias"],
    ));
    cases.push(case(
        "checkpoint of another model",
        eval(&good, "wrn-16-2", "cifar10"),
        &["checkpoint-0001.safetensors", "missing", "tiny"],
    ));
    cases.push(case(
        "checkpoint for another class count",
        eval(&good, "tiny", "cifar100"),
        &["checkpoint-0001.safetensors", "fc"],
    ));
    cases.push(case(
        "RobustBench name of two networks",
        eval(&good, "rb:Rice2020Overfitting", "cifar10"),
        &[
            "rb:cifar10/Linf/Rice2020Overfitting",
            "rb:cifar10/L2/Rice2020Overfitting",
        ],
    ));
    cases.push(case(
        "RobustBench entry spat does not build",
        eval(&good, "rb:Kang2021Stable", "cifar10"),
        &["Kang2021Stable", "SODEF"],
    ));
    cases.push(case(
        "RobustBench entry of another data set",
        eval(&good, "rb:Carmon2019Unlabeled", "cifar100"),
        &[
            "rb:Carmon2019Unlabeled",
            "cifar100",
            "rb:cifar10/Linf/Carmon2019Unlabeled",
        ],
    ));
    for fx in ["evil.pt", "nan.pt", "int_weight.pt", "whole_model.pt"] {
        let p = s.file(
            &format!("ckpt/{fx}"),
            &std::fs::read(fixture(&format!("torch/{fx}"))).unwrap(),
        );
        cases.push(case(
            &format!("torch fixture {fx}"),
            eval(&p, "tiny", "cifar10"),
            &[fx],
        ));
    }
    let p = s.file("ckpt/deep.pt", &deep_tuples);
    cases.push(case(
        "torch legacy checkpoint nesting 1,000,000 tuples",
        eval(&p, "tiny", "cifar10"),
        &["deep.pt"],
    ));
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend([0xffu8; 60]);
    let p = s.file("ckpt/broken.pt", &zip);
    cases.push(case(
        "torch zip checkpoint with a broken header",
        eval(&p, "tiny", "cifar10"),
        &["broken.pt"],
    ));

    // ---- command-line values --------------------------------------------------------------------
    let train = |extra: &[&str], out: &str| {
        let out = s.path(out);
        overriding(
            &[
                "train",
                "--dataset",
                "cifar10",
                "--data-dir",
                &mini_str,
                "--model",
                "tiny",
                "--method",
                "madry",
                "--epochs",
                "1",
                "--out",
                out.to_str().unwrap(),
            ],
            extra,
        )
    };
    let cli_train: &[(&str, &[&str], &[&str])] = &[
        ("lr negative", &["--lr", "-1"], &["--lr", "positive"]),
        ("lr zero", &["--lr", "0"], &["--lr", "positive"]),
        ("lr NaN", &["--lr", "nan"], &["--lr", "finite"]),
        ("lr inf", &["--lr", "inf"], &["--lr", "finite"]),
        (
            "weight decay negative",
            &["--weight-decay", "-1"],
            &["--weight-decay", "negative"],
        ),
        (
            "weight decay NaN",
            &["--weight-decay", "nan"],
            &["--weight-decay", "finite"],
        ),
        (
            "weight decay text",
            &["--weight-decay", "lots"],
            &["--weight-decay", "finite"],
        ),
        ("epochs zero", &["--epochs", "0"], &["--epochs", "positive"]),
        (
            "batch size zero",
            &["--batch-size", "0"],
            &["--batch-size", "positive"],
        ),
        (
            "batch size negative",
            &["--batch-size", "-3"],
            &["--batch-size"],
        ),
        (
            "train subset zero",
            &["--train-subset", "0"],
            &["--train-subset", "positive"],
        ),
        (
            "test subset zero",
            &["--test-subset", "0"],
            &["--test-subset", "positive"],
        ),
        ("eps above 1", &["--eps", "2"], &["--eps", "[0, 1]"]),
        ("eps NaN", &["--eps", "nan"], &["--eps", "[0, 1]"]),
        (
            "eps division by zero",
            &["--eps", "8/0"],
            &["--eps", "division by zero"],
        ),
        ("eps negative", &["--eps", "-8/255"], &["--eps", "[0, 1]"]),
        (
            "spat alpha above 1",
            &["--spat-alpha", "1.5"],
            &["--spat-alpha", "[0, 1]"],
        ),
        (
            "spat alpha NaN",
            &["--spat-alpha", "nan"],
            &["--spat-alpha", "[0, 1]"],
        ),
        (
            "unlabeled fraction without pseudo-labels",
            &["--unlabeled-fraction", "5"],
            &["--unlabeled-fraction"],
        ),
        (
            "unlabeled fraction without pseudo-labels, in range",
            &["--unlabeled-fraction", "0.3"],
            &["--pseudo-labeled"],
        ),
        (
            "pseudo-labels with madry",
            &["--pseudo-labeled", "x.pickle"],
            &["pseudo-labelled", "madry"],
        ),
        ("seed negative", &["--seed", "-1"], &["--seed"]),
        ("precision fp16", &["--precision", "fp16"], &["fp16"]),
        ("device tpu", &["--device", "tpu"], &["--device", "tpu"]),
        (
            "device cuda without CUDA",
            &["--device", "cuda:0"],
            &["cuda", "without CUDA"],
        ),
    ];
    for (i, (name, extra, needles)) in cli_train.iter().enumerate() {
        cases.push(case(
            &format!("train {name}"),
            train(extra, &format!("runs/cli{i}")),
            needles,
        ));
    }
    let mut a = os(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        &mini_str,
        "--model",
        "tiny",
        "--method",
        "standard",
        "--spat-alpha",
        "0.1",
        "--out",
    ]);
    a.push(s.path("runs/std-spat").into());
    cases.push(case(
        "train standard with --spat-alpha",
        a,
        &["spat_alpha", "standard"],
    ));
    let p = s.file(
        "pickles/rst_p2.pickle",
        &std::fs::read(fixture("pickle/rst_p2.pickle")).unwrap(),
    );
    let mut a = rst(&p, "runs/frac0");
    a.extend(os(&["--unlabeled-fraction", "0"]));
    cases.push(case(
        "unlabeled fraction 0",
        a,
        &["--unlabeled-fraction", "between 0 and 1"],
    ));
    let mut a = rst(&p, "runs/frac1");
    a.extend(os(&["--unlabeled-fraction", "1"]));
    cases.push(case(
        "unlabeled fraction 1",
        a,
        &["--unlabeled-fraction", "between 0 and 1"],
    ));
    cases.push(case(
        "train impossible WideResNet depth",
        train(&["--model", "wrn-99-1"], "runs/m"),
        &["wrn-99-1", "6n + 4"],
    ));
    cases.push(case(
        "train unknown model",
        train(&["--model", "vgg-16"], "runs/m"),
        &["vgg-16", "dm-wrn-D-W"],
    ));
    cases.push(case(
        "train unknown activation",
        train(&["--model", "dm-wrn-28-10-gelu"], "runs/m"),
        &["gelu", "relu, silu or swish"],
    ));
    let mut a = os(&[
        "train",
        "--dataset",
        "imagenet",
        "--data-dir",
        &mini_str,
        "--model",
        "tiny",
        "--method",
        "madry",
        "--out",
    ]);
    a.push(s.path("runs/imagenet").into());
    cases.push(case("train unknown data set", a, &["imagenet"]));
    let mut a = os(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        &mini_str,
        "--model",
        "tiny",
        "--method",
        "fgsm-at",
        "--out",
    ]);
    a.push(s.path("runs/fgsm-at").into());
    cases.push(case("train unknown method", a, &["fgsm-at", "standard"]));
    let eval_good = |extra: &[&str]| {
        overriding(
            &[
                "eval",
                "--model",
                "tiny",
                "--checkpoint",
                good.to_str().unwrap(),
                "--dataset",
                "cifar10",
                "--data-dir",
                &mini_str,
                "--attacks",
                "clean",
                "--test-subset",
                "4",
            ],
            extra,
        )
    };
    cases.push(case(
        "eval unknown attack",
        eval_good(&["--attacks", "clean,fgsm9"]),
        &["fgsm9"],
    ));
    cases.push(case(
        "eval pgd-ls alpha 1.5",
        eval_good(&["--attacks", "pgd-ls:1.5"]),
        &["pgd-ls:1.5", "[0, 1]"],
    ));
    cases.push(case(
        "eval batch size 0",
        eval_good(&["--batch-size", "0"]),
        &["--batch-size", "positive"],
    ));
    cases.push(case(
        "eval eps negative",
        eval_good(&["--eps", "-0.1"]),
        &["--eps", "[0, 1]"],
    ));
    let vis = |extra: &[&str], out: &Path| {
        let mut a = with(
            &[
                "visualize",
                "--model",
                "tiny",
                "--checkpoint",
                "{}",
                "--dataset",
                "cifar10",
                "--data-dir",
                &mini_str,
                "--attacks",
                "fgsm",
                "--eps",
                "8/255",
                "--out",
                "{}",
            ],
            &[&good, out],
        );
        a.extend(os(extra));
        a
    };
    cases.push(case(
        "visualize scale 0",
        vis(&["--scale", "0"], &s.path("vis/a.png")),
        &["--scale", "0"],
    ));
    cases.push(case(
        "visualize scale huge",
        vis(&["--scale", "100000"], &s.path("vis/b.png")),
        &["--scale", "100000"],
    ));
    cases.push(case(
        "visualize unknown class",
        vis(&["--classes", "unicorn"], &s.path("vis/c.png")),
        &["--classes", "unicorn"],
    ));
    cases.push(case(
        "visualize index outside the test set",
        vis(&["--indices", "99999"], &s.path("vis/d.png")),
        &["--indices", "99999"],
    ));
    let user_png = s.file("vis/holiday.png", b"\x89PNG\r\n\x1a\nmy own picture");
    cases.push(case(
        "visualize over a user's file",
        vis(&[], &user_png),
        &["holiday.png", "not written by"],
    ));
    let sweep = |extra: &[&str]| {
        let mut a = with(
            &[
                "sweep-alpha",
                "--model",
                "tiny",
                "--checkpoint",
                "{}",
                "--dataset",
                "cifar10",
                "--data-dir",
                &mini_str,
                "--test-subset",
                "4",
            ],
            &[&good],
        );
        a.extend(os(extra));
        a
    };
    cases.push(case(
        "sweep alpha 2",
        sweep(&["--alphas", "0.1,2"]),
        &["alpha `2`", "[0, 1]"],
    ));
    cases.push(case(
        "sweep steps 0",
        sweep(&["--steps", "0"]),
        &["--steps", "positive"],
    ));
    let user_dir = s.folder("sweep-user");
    s.file("sweep-user/sweep.md", b"# my notes");
    s.file("sweep-user/thesis.tex", b"\\documentclass{article}");
    let mut a = sweep(&["--out"]);
    a.push(user_dir.clone().into());
    cases.push(case(
        "sweep into a user's folder",
        a,
        &["sweep-user", "thesis.tex"],
    ));
    let user_json = s.file("bench/results.json", b"{\"mine\": true}");
    let mut a = os(&[
        "bench",
        "--models",
        "tiny",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    a.push(user_json.into());
    cases.push(case(
        "bench over a user's file",
        a,
        &["results.json", "not written by"],
    ));

    // ---- run folders ------------------------------------------------------------------------
    let user = s.folder("runs/user-folder");
    for f in [
        "metrics.jsonl",
        "model.safetensors",
        "best.safetensors",
        "summary.json",
    ] {
        s.file(
            &format!("runs/user-folder/{f}"),
            format!("the user's own {f}").as_bytes(),
        );
    }
    cases.push(case(
        "train --out a user's folder of spat-named files",
        train(&[], "runs/user-folder"),
        &["user-folder", "not empty", "best.safetensors"],
    ));
    let _ = user;
    s.file("runs/notes/notes.txt", b"mine");
    cases.push(case(
        "train --out a non-empty folder",
        train(&[], "runs/notes"),
        &["notes", "not empty", "notes.txt"],
    ));
    s.file("runs/user-config/config.json", b"{\"learning_rate\": 3}");
    cases.push(case(
        "train --out a folder with a foreign config.json",
        train(&[], "runs/user-config"),
        &["config.json", "not a spat run"],
    ));
    s.file("runs/a-file", b"a file");
    cases.push(case(
        "train --out an existing file",
        train(&[], "runs/a-file"),
        &["a-file", "not a folder"],
    ));
    let a = train(&["--out", base.to_str().unwrap()], "unused");
    cases.push(case(
        "train --out an existing run without --resume",
        a,
        &["base-run", "already holds a run", "--resume"],
    ));
    let resume = |dir: &Path| with(&["train", "--resume", "{}"], &[dir]);
    cases.push(case(
        "resume a missing folder",
        resume(&s.path("runs/none")),
        &["none", "no such run directory"],
    ));
    cases.push(case(
        "resume a folder without config.json",
        resume(&s.folder("runs/empty")),
        &["empty", "config.json"],
    ));
    let r = copy_run("runs/garbage-config");
    std::fs::write(r.join("config.json"), b"{ nope").unwrap();
    cases.push(case(
        "resume with a garbage config.json",
        resume(&r),
        &["config.json", "not"],
    ));
    let r = copy_run("runs/garbage-state");
    std::fs::write(r.join("state.json"), b"[]").unwrap();
    cases.push(case(
        "resume with a garbage state.json",
        resume(&r),
        &["state.json", "not a run state"],
    ));
    let r = copy_run("runs/corrupt-ckpt");
    let mut b = std::fs::read(r.join("checkpoint-0001.safetensors")).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x55;
    std::fs::write(r.join("checkpoint-0001.safetensors"), b).unwrap();
    cases.push(case(
        "resume with a changed checkpoint",
        resume(&r),
        &["checkpoint-0001.safetensors", "checksum"],
    ));
    let r = copy_run("runs/no-optimizer");
    std::fs::remove_file(r.join("optimizer-0001.safetensors")).unwrap();
    cases.push(case(
        "resume with the optimizer file missing",
        resume(&r),
        &["optimizer-0001.safetensors", "No such file"],
    ));
    let r = copy_run("runs/state-path");
    let text = std::fs::read_to_string(r.join("state.json")).unwrap();
    std::fs::write(
        r.join("state.json"),
        text.replace("checkpoint-0001.safetensors", "../../etc/passwd"),
    )
    .unwrap();
    cases.push(case(
        "resume with state.json naming another file",
        resume(&r),
        &["state.json", "../../etc/passwd"],
    ));
    let r = copy_run("runs/edited-config");
    let text = std::fs::read_to_string(r.join("config.json")).unwrap();
    std::fs::write(
        r.join("config.json"),
        text.replace("\"epochs\": 2", "\"epochs\": 3"),
    )
    .unwrap();
    cases.push(case(
        "resume with an edited config.json",
        resume(&r),
        &["config.json", "changed after the run started"],
    ));
    let r = copy_run("runs/best-changed");
    std::fs::write(r.join("best.safetensors"), b"someone else's weights").unwrap();
    std::fs::remove_file(r.join("state.json")).unwrap();
    let state = std::fs::read_to_string(base.join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    // An older best epoch than the last: best.safetensors cannot be rebuilt, so a change is refused.
    let mut v2 = v.clone();
    v2["best_fnv1a64"] = serde_json::json!("0123456789abcdef");
    std::fs::write(
        r.join("state.json"),
        serde_json::to_string_pretty(&v2).unwrap(),
    )
    .unwrap();
    cases.push(case(
        "resume with best.safetensors changed",
        resume(&r),
        &["best.safetensors", "checksum"],
    ));
    let other = s.cifar10("data/other", |d| {
        let b = std::fs::read(d.join("test_batch.bin")).unwrap();
        std::fs::write(d.join("test_batch.bin"), &b[..record * 100]).unwrap();
    });
    let r = copy_run("runs/other-data");
    let mut a = resume(&r);
    a.extend(with(&["--data-dir", "{}"], &[&other]));
    cases.push(case(
        "resume on other test data",
        a,
        &["state.json", "test data"],
    ));
    let mut a = resume(&base);
    a.extend(os(&["--epochs", "5"]));
    cases.push(case("resume with a setting", a, &["--epochs", "--resume"]));

    // ---- run them --------------------------------------------------------------------------
    let roots = [tmp.path(), mini.as_path()];
    let (mut clear, mut crashed, mut accepted, mut changed) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    for c in &cases {
        let before = snapshot(&roots);
        let out = spat()
            .args(&c.args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let after = snapshot(&roots);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut bad = Vec::new();
        match out.status.code() {
            Some(0) => {
                accepted += 1;
                bad.push("exited 0".to_string());
            }
            Some(1 | 2) => {}
            other => {
                crashed += 1;
                bad.push(format!("ended with {other:?} ({})", out.status));
            }
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            crashed += 1;
            bad.push("panicked".into());
        }
        if before != after {
            changed += 1;
            let diff: Vec<_> = after
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .map(|(k, _)| k.display().to_string())
                .chain(
                    before
                        .keys()
                        .filter(|k| !after.contains_key(*k))
                        .map(|k| k.display().to_string()),
                )
                .collect();
            bad.push(format!("changed {diff:?}"));
        }
        if err.matches("(os error").count() > 1 {
            bad.push("repeats its cause".into());
        }
        if lines.len() != 1 {
            bad.push(format!("{} stderr lines", lines.len()));
        }
        let missing: Vec<&String> = c
            .needles
            .iter()
            .filter(|n| !err.contains(n.as_str()))
            .collect();
        if !missing.is_empty() {
            bad.push(format!("lacks {missing:?}"));
        }
        println!("{}: {}", c.name, lines.first().unwrap_or(&""));
        if bad.is_empty() {
            clear += 1;
        } else {
            problems.push(format!("{}: {} — {}", c.name, bad.join("; "), err.trim()));
        }
    }
    assert!(!marker.exists(), "a pickle ran code");
    println!(
        "bad inputs tried {}, clear errors {clear}, panics or aborts {crashed}, silent acceptances \
         {accepted}, files changed {changed}",
        cases.len()
    );
    assert!(cases.len() >= 60, "{} cases", cases.len());
    assert!(
        problems.is_empty(),
        "{} of {} cases failed:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
}
