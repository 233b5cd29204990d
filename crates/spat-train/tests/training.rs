//! The training loop on the embedded CIFAR-10 sample with the tiny model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use spat_attacks::Attack;
use spat_core::rng::host_rng;
use spat_core::{Batch, Mode, Network};
use spat_data::{BatchSource, Dataset, ImageSet, Loader, Split};
use spat_train::{
    objectives, train, train_step, train_with_validation, training_adversary, training_loss, Error,
    LrSchedule, Method, PseudoLabeled, RunConfig, RunRequest, Sgd, SgdConfig, TrainOptions,
};

const FRESH: TrainOptions = TrainOptions {
    resume: false,
    stop_after_epochs: None,
};
const RESUME: TrainOptions = TrainOptions {
    resume: true,
    stop_after_epochs: None,
};

fn stop_after(epochs: usize) -> TrainOptions {
    TrainOptions {
        resume: false,
        stop_after_epochs: Some(epochs),
    }
}

fn mini() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

fn sets() -> (Arc<ImageSet>, ImageSet) {
    let train = spat_data::load(Dataset::Cifar10, &mini(), Split::Train).unwrap();
    let test = spat_data::load(Dataset::Cifar10, &mini(), Split::Test).unwrap();
    (Arc::new(train), test)
}

fn tiny(seed: u64) -> Box<dyn Network> {
    spat_models::build("tiny", 10, &Device::Cpu, seed).unwrap()
}

/// A fast configuration: short adversary, small evaluation.
fn quick(method: Method) -> RunConfig {
    let mut request = RunRequest::new("tiny", Dataset::Cifar10, mini(), method);
    if method == Method::Rst {
        request.pseudo_labeled = Some("stand-in for the pseudo-labelled set".into());
    }
    let mut c = request.configure().unwrap();
    c.epochs = 2;
    c.batch_size = 32;
    c.attack_steps = 2;
    c.eval_examples = 32;
    c.eval_attack = "pgd3".parse().unwrap();
    c.eval_batch_size = 32;
    c.final_full_eval = false;
    c.seed = 7;
    c
}

fn batch16() -> Batch {
    let (train_set, _) = sets();
    train_set
        .to_batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap()
}

fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

fn weights(model: &dyn Network) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = model
        .var_store()
        .iter()
        .map(|(n, var, _)| {
            let t = var.as_tensor().flatten_all().unwrap();
            let bytes = match t.dtype() {
                DType::I64 => t
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                _ => t
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_bits().to_le_bytes())
                    .collect(),
            };
            (n.to_string(), bytes)
        })
        .collect();
    v.sort();
    v
}

fn one_step(config: &RunConfig) -> Vec<(String, Vec<u8>)> {
    let (train_set, _) = sets();
    let model = tiny(3);
    let batch = train_set
        .to_batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let sgd = SgdConfig::new(config.lr, config.weight_decay);
    let mut opt = Sgd::new(model.var_store(), sgd);
    let loss = train_step(config, &*model, &mut opt, &batch, &mut host_rng(1, 2)).unwrap();
    assert!(loss.is_finite());
    weights(&*model)
}

#[test]
fn spat_alpha_zero_equals_plain_madry_and_mart_bit_for_bit() {
    for method in [Method::Madry, Method::Mart] {
        let plain = quick(method);
        let spat = RunConfig {
            spat_alpha: Some(0.0),
            ..plain.clone()
        };
        let a = one_step(&plain);
        assert_eq!(a, one_step(&spat), "{method}");
        // And a real SPAT alpha gives a different step, so the comparison can fail.
        let other = RunConfig {
            spat_alpha: Some(0.5),
            ..plain.clone()
        };
        assert_ne!(a, one_step(&other), "{method}");
    }
}

#[test]
fn adversary_mode_controls_running_statistics() {
    let (train_set, _) = sets();
    let batch = train_set
        .to_batch(&(0..16).collect::<Vec<_>>(), &Device::Cpu)
        .unwrap();
    let buffers = |m: &dyn Network| -> Vec<(String, Vec<u8>)> {
        let names: Vec<String> = m
            .var_store()
            .buffers()
            .map(|(n, _)| n.to_string())
            .collect();
        weights(m)
            .into_iter()
            .filter(|(n, _)| names.contains(n))
            .collect()
    };
    for (mode, should_change) in [
        (Mode::Eval, false),
        (Mode::TrainFrozenBn, false),
        (Mode::Train, true),
    ] {
        let model = tiny(3);
        let before = buffers(&*model);
        assert!(!before.is_empty());
        let config = RunConfig {
            adversary_mode: mode,
            ..quick(Method::Madry)
        };
        let adv = training_adversary(&config).unwrap();
        assert_eq!(adv.mode, mode);
        let x_adv = adv
            .perturb(&*model, &batch.images, &batch.labels, &mut host_rng(0, 0))
            .unwrap();
        let gap = (x_adv - &batch.images)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap > 0.0 && gap <= (config.eps as f32) + 1e-6, "{gap}");
        assert_eq!(before != buffers(&*model), should_change, "{mode:?}");
    }
}

#[test]
fn resumed_run_is_bit_identical_and_metrics_are_not_duplicated() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(64));
    for method in [Method::Trades] {
        let config = quick(method);
        let loader = Loader::new(train_set.clone(), config.batch_size).shuffled(config.seed);

        let straight_dir = tempfile::tempdir().unwrap();
        let straight = tiny(5);
        let s = train(
            &config,
            &*straight,
            &loader,
            &test,
            straight_dir.path(),
            FRESH,
        )
        .unwrap();
        assert_eq!(s.epochs_done, 2);

        let dir = tempfile::tempdir().unwrap();
        let part = train(
            &config,
            &*tiny(5),
            &loader,
            &test,
            dir.path(),
            stop_after(1),
        )
        .unwrap();
        assert!(part.stopped_early && part.final_clean_acc.is_none());
        // A fresh process: a new model (its initial weights are replaced by the checkpoint).
        let resumed = tiny(99);
        let r = train(&config, &*resumed, &loader, &test, dir.path(), RESUME).unwrap();
        assert_eq!(r.resumed_from, Some(1));
        assert_eq!(weights(&*straight), weights(&*resumed), "{method}");
        assert_eq!(s.history.len(), r.history.len());
        for (a, b) in s.history.iter().zip(&r.history) {
            assert_eq!(
                (a.epoch, a.loss, a.clean_acc, a.robust_acc, a.lr),
                (b.epoch, b.loss, b.clean_acc, b.robust_acc, b.lr)
            );
        }
        let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        let epochs: Vec<u64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(epochs, vec![1, 2]);
        // The last generation of checkpoint files and nothing else is left (but the run's lock
        // file, kept so that a later writer locks the same file).
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "best.safetensors",
                "checkpoint-0002.safetensors",
                "config.json",
                "curves.json",
                "curves.png",
                "metrics.jsonl",
                "model.safetensors",
                "optimizer-0002.safetensors",
                "run.lock",
                "state.json",
                "summary.json",
            ]
        );
        check_curves(dir.path());
        for f in ["curves.json", "curves.png"] {
            let read = |d: &Path| std::fs::read(d.join(f)).unwrap();
            assert!(read(dir.path()) == read(straight_dir.path()), "{f}");
        }
    }
}

/// `curves.json` holds exactly the numbers of `metrics.jsonl` (bit for bit, every metric of every
/// committed epoch) and `state.json`'s best epoch, and `curves.png` is a spat PNG that decodes to
/// the size spat-report draws those curves at.
fn check_curves(dir: &Path) {
    use spat_spec::curves::{Curves, EpochMetric};
    use spat_spec::run::{EpochMetrics, RunState};
    let metrics: Vec<EpochMetrics> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!metrics.is_empty());
    let curves: Curves =
        serde_json::from_slice(&std::fs::read(dir.join("curves.json")).unwrap()).unwrap();
    let state: RunState =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(curves.marked_epoch, state.best_epoch);
    let mut drawn = Vec::new();
    for curve in curves.panels.iter().flat_map(|p| &p.curves) {
        let want: Vec<(usize, u64)> = metrics
            .iter()
            .map(|m| (m.epoch, curve.metric.of(m).to_bits()))
            .collect();
        let got: Vec<(usize, u64)> = curve
            .points
            .iter()
            .map(|p| (p.epoch, p.value.to_bits()))
            .collect();
        assert_eq!(got, want, "{}", curve.label);
        drawn.push(curve.metric);
    }
    drawn.sort_by_key(|m| m.as_str());
    let mut all = EpochMetric::ALL.to_vec();
    all.sort_by_key(|m| m.as_str());
    assert_eq!(drawn, all, "every metric drawn once");
    let png = std::fs::read(dir.join("curves.png")).unwrap();
    assert!(spat_report::is_spat_png(&png));
    let reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    let (w, h) = spat_report::curves::size(&curves);
    assert_eq!(
        (reader.info().width, reader.info().height),
        (w as u32, h as u32)
    );
}

#[test]
fn killed_mid_epoch_metrics_are_rewritten_to_the_checkpoint() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(64));
    let config = RunConfig {
        epochs: 2,
        ..quick(Method::Madry)
    };
    let loader = Loader::new(train_set, config.batch_size);
    let dir = tempfile::tempdir().unwrap();
    train(
        &config,
        &*tiny(1),
        &loader,
        &test,
        dir.path(),
        stop_after(1),
    )
    .unwrap();
    // Simulate a process killed after writing epoch 2's metrics but before its state.json.
    let metrics = dir.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str(&text.replace("\"epoch\":1", "\"epoch\":2"));
    std::fs::write(&metrics, text).unwrap();
    let r = train(&config, &*tiny(1), &loader, &test, dir.path(), RESUME).unwrap();
    assert_eq!(
        r.history.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap().lines().count(),
        2
    );
}

/// What a process killed during a commit can leave — an uncommitted next generation, temporary
/// files, `best.safetensors` and `metrics.jsonl` behind `state.json` — is put right on resume,
/// and the run ends as an uninterrupted one does. (`tests/kill_points.rs` kills the binary at each
/// instant of the protocol; this checks the repairs without the `failpoints` feature.)
#[test]
fn leftovers_of_a_killed_commit_are_removed_and_derived_files_rewritten() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(64));
    let config = quick(Method::Standard);
    let loader = Loader::new(train_set, config.batch_size);
    let whole = tempfile::tempdir().unwrap();
    train(&config, &*tiny(3), &loader, &test, whole.path(), FRESH).unwrap();

    let dir = tempfile::tempdir().unwrap();
    train(
        &config,
        &*tiny(3),
        &loader,
        &test,
        dir.path(),
        stop_after(1),
    )
    .unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write("checkpoint-0002.safetensors", b"half a checkpoint");
    write("optimizer-0002.safetensors.4242.3.tmp", b"half a temp file");
    write("state.json.4242.4.tmp", b"{");
    write("metrics.jsonl", b"");
    write("curves.json", b"{");
    std::fs::remove_file(dir.path().join("curves.png")).unwrap();
    std::fs::remove_file(dir.path().join("best.safetensors")).unwrap();
    write("notes.txt", b"the user's own notes stay");
    train(&config, &*tiny(3), &loader, &test, dir.path(), RESUME).unwrap();

    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let mut expected = names(whole.path());
    expected.push("notes.txt".into());
    expected.sort();
    assert_eq!(names(dir.path()), expected);
    for f in [
        "model.safetensors",
        "best.safetensors",
        "checkpoint-0002.safetensors",
        "curves.json",
        "curves.png",
    ] {
        assert!(
            std::fs::read(dir.path().join(f)).unwrap()
                == std::fs::read(whole.path().join(f)).unwrap(),
            "{f}"
        );
    }
    let epochs = |d: &Path| {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(epochs(dir.path()), epochs(whole.path()));
}

#[test]
fn a_folder_holding_files_but_no_run_is_refused_and_left_untouched() {
    let (train_set, test) = sets();
    let config = quick(Method::Standard);
    let loader = Loader::new(Arc::new(train_set.first(32)), config.batch_size);
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "metrics.jsonl",
        "model.safetensors",
        "best.safetensors",
        "summary.json",
    ] {
        std::fs::write(dir.path().join(f), f.as_bytes()).unwrap();
    }
    for options in [FRESH, RESUME] {
        let e = train(&config, &*tiny(1), &loader, &test, dir.path(), options)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not empty") && e.contains("no spat run"), "{e}");
    }
    for f in [
        "metrics.jsonl",
        "model.safetensors",
        "best.safetensors",
        "summary.json",
    ] {
        assert_eq!(std::fs::read(dir.path().join(f)).unwrap(), f.as_bytes());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[test]
fn exploding_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(128));
    // Epoch 1 at lr 0.05, then lr 5e33 from epoch 2 on.
    let config = RunConfig {
        epochs: 3,
        lr: 0.05,
        schedule: LrSchedule::Piecewise {
            milestones: vec![2],
            reference_epochs: 3,
            factor: 1e35,
        },
        ..quick(Method::Madry)
    };
    let loader = Loader::new(train_set, config.batch_size);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("checkpoint-0001.safetensors");
    let err = train(&config, &*tiny(2), &loader, &test, dir.path(), FRESH).unwrap_err();
    match &err {
        Error::NonFiniteLoss {
            epoch,
            step,
            last_good_epoch,
            ..
        } => {
            assert_eq!((*epoch, *last_good_epoch), (2, 1), "{err}");
            assert!(*step >= 2, "{err}");
        }
        other => panic!("expected a non-finite loss error, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("epoch 2") && msg.contains("step"), "{msg}");
    // The epoch-1 checkpoint is intact and loads: resuming it gets to the same error again.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["epochs_done"], 1);
    let model = tiny(2);
    model.var_store().load(&ckpt).unwrap();
    let again = train(&config, &*tiny(2), &loader, &test, dir.path(), RESUME).unwrap_err();
    assert!(
        matches!(again, Error::NonFiniteLoss { epoch: 2, .. }),
        "{again}"
    );
}

#[test]
fn corrupted_checkpoint_is_named_and_nothing_is_overwritten() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(64));
    let config = quick(Method::Madry);
    let loader = Loader::new(train_set, config.batch_size);
    let dir = tempfile::tempdir().unwrap();
    train(
        &config,
        &*tiny(4),
        &loader,
        &test,
        dir.path(),
        stop_after(1),
    )
    .unwrap();

    let snapshot = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    for (victim, truncate) in [
        ("checkpoint-0001.safetensors", false),
        ("optimizer-0001.safetensors", false),
        ("checkpoint-0001.safetensors", true),
    ] {
        let path = dir.path().join(victim);
        let good = std::fs::read(&path).unwrap();
        let bad = if truncate {
            good[..good.len() / 2].to_vec()
        } else {
            // Flip one byte near the end of the tensor data: still a readable safetensors file.
            let mut bad = good.clone();
            let mid = bad.len() - 8;
            bad[mid] ^= 0x5a;
            bad
        };
        std::fs::write(&path, &bad).unwrap();
        let before = snapshot(dir.path());
        let err = train(&config, &*tiny(4), &loader, &test, dir.path(), RESUME).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(victim) && msg.contains("checksum"), "{msg}");
        assert_eq!(
            before,
            snapshot(dir.path()),
            "files changed after a refused resume"
        );
        std::fs::write(&path, &good).unwrap();
    }
    // Garbage state.json.
    std::fs::write(dir.path().join("state.json"), b"{ not json").unwrap();
    let msg = train(&config, &*tiny(4), &loader, &test, dir.path(), RESUME)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state.json"), "{msg}");
}

#[test]
fn existing_run_needs_resume_and_the_same_config_model_and_data() {
    let (train_set, test) = sets();
    let train_set = Arc::new(train_set.first(32));
    let config = RunConfig {
        epochs: 1,
        ..quick(Method::Madry)
    };
    let loader = Loader::new(train_set.clone(), config.batch_size);
    let dir = tempfile::tempdir().unwrap();
    train(&config, &*tiny(4), &loader, &test, dir.path(), FRESH).unwrap();
    let resume_err = |c: &RunConfig, model: &dyn Network, l: &dyn BatchSource, t: &ImageSet| {
        train(c, model, l, t, dir.path(), RESUME)
            .unwrap_err()
            .to_string()
    };
    let msg = train(&config, &*tiny(4), &loader, &test, dir.path(), FRESH)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("already holds a training run"), "{msg}");
    let changed = RunConfig {
        weight_decay: 1e-3,
        ..config.clone()
    };
    let msg = resume_err(&changed, &*tiny(4), &loader, &test);
    assert!(
        msg.contains("config.json") && msg.contains("different configuration"),
        "{msg}"
    );
    assert!(msg.contains("weight_decay (0.0007 vs 0.001)"), "{msg}");
    // The same configuration on other training data, other test data, or another network.
    let other_train = Loader::new(Arc::new(test.first(32)), config.batch_size);
    let msg = resume_err(&config, &*tiny(4), &other_train, &test);
    assert!(
        msg.contains("state.json") && msg.contains("training data"),
        "{msg}"
    );
    let msg = resume_err(&config, &*tiny(4), &loader, &test.first(100));
    assert!(msg.contains("test data"), "{msg}");
    let wider = spat_models::build("wrn-16-2", 10, &Device::Cpu, 4).unwrap();
    let msg = resume_err(&config, &*wider, &loader, &test);
    assert!(msg.contains("network"), "{msg}");
    // The data may be read from elsewhere: locations are not part of the run.
    let moved = RunConfig {
        data_dir: "/elsewhere/cifar".into(),
        ..config.clone()
    };
    // Resuming a finished run only re-evaluates.
    let r = train(&moved, &*tiny(4), &loader, &test, dir.path(), RESUME).unwrap();
    assert_eq!((r.resumed_from, r.epochs_done), (Some(1), 1));
    assert!(r.final_clean_acc.is_some());
}

/// A short real run: Madry on real CIFAR-10 images (the embedded sample) must learn something.
/// One-step PGD at ε = 8/255 (the cheapest Madry adversary) and the adversary in eval-mode BN,
/// which makes the few-epoch result less noisy than `Train` mode on so few batches.
#[test]
fn short_madry_run_learns() {
    let (train_set, test) = sets();
    let mut config = RunRequest::new("tiny", Dataset::Cifar10, mini(), Method::Madry)
        .configure()
        .unwrap();
    config.epochs = 6;
    config.batch_size = 64;
    config.attack_steps = 1;
    config.attack_step_size = config.eps;
    config.adversary_mode = Mode::Eval;
    config.schedule = LrSchedule::Constant;
    config.lr = 0.1;
    config.eval_examples = 64;
    config.eval_attack = "pgd2".parse().unwrap();
    config.eval_batch_size = 256;
    config.final_full_eval = true;
    let loader = Loader::new(train_set, config.batch_size).shuffled(config.seed);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let s = train(&config, &*tiny(0), &loader, &test, dir.path(), FRESH).unwrap();
    let losses: Vec<f64> = s.history.iter().map(|m| m.loss).collect();
    let clean = s.final_clean_acc.unwrap();
    eprintln!(
        "losses {losses:?} clean {clean} robust {:?} in {:?}",
        s.final_robust_acc,
        started.elapsed()
    );
    assert_eq!(s.final_eval_examples, Some(512));
    assert!(
        losses.last().unwrap() < &(losses[0] - LOSS_DROP),
        "{losses:?}"
    );
    assert!(clean > CLEAN_THRESHOLD, "clean accuracy {clean}");
}

/// A run that holds out a validation split evaluates every epoch on it (never on test images),
/// picks its best epoch by robust accuracy there, trains on the rest, and refuses to train
/// without being given the split.
#[test]
fn validation_split_is_held_out_and_chooses_the_best_epoch() {
    let mut config = quick(Method::Madry);
    config.val_subset = Some(48);
    config.train_subset = Some(96);
    config.epochs = 3;
    let data = spat_train::load_data(&config).unwrap();
    let val = data.validation.as_ref().unwrap();
    assert_eq!((val.len(), data.train.num_batches()), (48, 3));
    // The held-out images are not among the training images.
    let (whole, _) = sets();
    let (held, rest) = whole.hold_out(48, config.seed);
    assert_eq!(held.fingerprint(), val.fingerprint());
    assert_eq!(
        rest.sample(96, config.seed).fingerprint(),
        data.train.fingerprint()
    );

    let dir = tempfile::tempdir().unwrap();
    let e = train(
        &config,
        &*tiny(0),
        &*data.train,
        &data.test,
        dir.path(),
        FRESH,
    )
    .unwrap_err();
    assert!(e.to_string().contains("validation split"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let s = train_with_validation(
        &config,
        &*tiny(0),
        &*data.train,
        Some(val),
        &data.test,
        dir.path(),
        FRESH,
    )
    .unwrap();
    assert!(s.history.iter().all(|m| m.eval_examples == 48));
    let robust: Vec<f64> = s.history.iter().map(|m| m.robust_acc).collect();
    let best = robust.iter().cloned().fold(f64::MIN, f64::max);
    let first_best = robust.iter().position(|&r| r == best).unwrap() + 1;
    assert_eq!(
        (s.best_epoch, s.best_robust_acc),
        (Some(first_best), Some(best))
    );
    // The final evaluation is on test images: the seeded test subset, not the validation split.
    assert_eq!(s.final_eval_examples, Some(32));
    check_curves(dir.path());
    let curves = std::fs::read_to_string(dir.path().join("curves.json")).unwrap();
    assert!(
        curves.contains("the held-out validation split (48 images)"),
        "{curves}"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = train_with_validation(
        &config,
        &*tiny(0),
        &*data.train,
        Some(&data.test),
        &data.test,
        dir.path(),
        FRESH,
    )
    .unwrap_err();
    assert!(e.to_string().contains("holds out 48"), "{e}");
}

// Measured (tiny, seed 0, all 512 training images, 6 epochs): loss 2.309 -> 2.053 and final clean
// accuracy 21.9% on the 512 test images (PGD-2 20.7%); the same run on spat-models' previous CPU
// kernels (last-bit differences only) reached 27.5%, so the outcome varies by several points with
// rounding. Chance is 10% and one standard error at chance is 1.3 points: 17% is > 5 standard
// errors above chance and leaves headroom for that variation.
const LOSS_DROP: f64 = 0.1;
const CLEAN_THRESHOLD: f64 = 17.0;

/// Standard training is cross-entropy on the clean images: no adversary, one forward pass.
#[test]
fn standard_training_is_cross_entropy_on_clean_images() {
    let config = quick(Method::Standard);
    assert!(training_adversary(&config).is_none());
    let batch = batch16();
    let model = tiny(3);
    let loss = training_loss(&config, &*model, &batch, &mut host_rng(1, 2)).unwrap();
    let by_hand = objectives::cross_entropy(
        &tiny(3).logits(&batch.images, Mode::Train).unwrap(),
        &batch.labels,
    )
    .unwrap();
    assert_eq!(scalar(&loss), scalar(&by_hand));
    // At initialisation the network is close to uniform over 10 classes: CE ≈ ln 10.
    assert!(
        (scalar(&loss) - 10f32.ln()).abs() < 0.5,
        "{}",
        scalar(&loss)
    );
}

/// The loss an RST run optimises is its objective's, computed from the logits of its forward
/// passes: TRADES' for `rst` (adversarial pass first), MART's for `mart` with pseudo-labels.
#[test]
fn rst_runs_the_loss_of_its_objective() {
    let batch = batch16();
    let pseudo = Some(PseudoLabeled {
        path: "stand-in".into(),
        fraction: 0.5,
    });
    for (method, mart) in [(Method::Rst, false), (Method::Mart, true)] {
        let config = RunConfig {
            method,
            pseudo_labeled: pseudo.clone(),
            ..quick(Method::Rst)
        };
        let loss = training_loss(&config, &*tiny(3), &batch, &mut host_rng(1, 2)).unwrap();
        // The same adversary and forward passes by hand, on an identical network. In `Mode::Train`
        // the logits depend on the batch only, not on the running statistics the passes move.
        let model = tiny(3);
        let x_adv = training_adversary(&config)
            .unwrap()
            .perturb(&*model, &batch.images, &batch.labels, &mut host_rng(1, 2))
            .unwrap();
        let adv = model.logits(&x_adv, Mode::Train).unwrap();
        let clean = model.logits(&batch.images, Mode::Train).unwrap();
        let y = &batch.labels;
        let mart_loss = objectives::mart_loss(&clean, &adv, y, config.mart_lambda).unwrap();
        let trades_loss = objectives::trades_loss(&clean, &adv, y, config.trades_beta).unwrap();
        let (want, other) = if mart {
            (mart_loss, trades_loss)
        } else {
            (trades_loss, mart_loss)
        };
        assert_eq!(scalar(&loss), scalar(&want), "{method}");
        assert_ne!(scalar(&loss), scalar(&other), "{method}");
    }
}

/// RST over half pseudo-labelled batches, with both outer objectives (Table 6.3 uses MART's too):
/// a run trains on `MixedLoader` batches and records its method and data in config.json.
#[test]
fn rst_trains_on_mixed_batches_with_trades_or_mart_objective() {
    use spat_data::{Augmentation, MixedLoader};
    let (train_set, test) = sets();
    let labeled = Arc::new(train_set.first(32));
    // The test images stand in for the pseudo-labelled set: half of each batch comes from them.
    let pseudo = Arc::new(test.first(64));
    for method in [Method::Rst, Method::Mart] {
        let config = RunConfig {
            epochs: 1,
            method,
            ..quick(Method::Rst)
        };
        let loader = MixedLoader::new(
            labeled.clone(),
            pseudo.clone(),
            16,
            0.5,
            config.seed,
            Augmentation::none(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = train(
            &config,
            &*tiny(6),
            &loader,
            &test.first(32),
            dir.path(),
            FRESH,
        )
        .unwrap();
        assert_eq!(s.history.len(), 1);
        assert!(s.history[0].loss.is_finite() && s.history[0].loss > 0.0);
        let saved: RunConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(saved, config);
        assert!(saved.is_semi_supervised());
    }
}
