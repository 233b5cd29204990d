//! Helpers the attack tests share: a small tanh MLP, tensors as host vectors, the checks of a
//! replay of the reference AutoAttack, and the comparison of accuracies with the reference's.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use spat_attacks::apgd::ApgdRun;
use spat_attacks::{AutoAttack, Norm, SquareDraws};
use spat_core::rng::host_rng;
use spat_core::{Classifier, Mode};

/// tanh(x W1ᵀ) W2ᵀ on flattened images, in the dtype of its weights.
pub struct Mlp {
    pub w1: Tensor,
    pub w2: Tensor,
}

impl Classifier for Mlp {
    fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
        x.flatten_from(1)?
            .matmul(&self.w1.t()?)?
            .tanh()?
            .matmul(&self.w2.t()?)
    }
}

/// An [`Mlp`] with 16 hidden units, first-layer weights `N(0, w1_std²)` and second-layer `N(0, 1)`.
pub fn random_mlp(seed: u64, inputs: usize, classes: usize, w1_std: f32) -> Mlp {
    let mut rng = host_rng(seed, 99);
    Mlp {
        w1: spat_core::rng::normal(&mut rng, (16, inputs), w1_std, &Device::Cpu).unwrap(),
        w2: spat_core::rng::normal(&mut rng, (classes, 16), 1.0, &Device::Cpu).unwrap(),
    }
}

/// All elements of `t`, flattened, as `f32`.
pub fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// All elements of `t`, flattened, as `f64`.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

pub fn usizes(t: &Tensor) -> Vec<usize> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

pub fn labels(t: &Tensor) -> Tensor {
    t.to_dtype(DType::U32).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64s(a)
        .iter()
        .zip(f64s(b))
        .fold(0f64, |m, (x, y)| m.max((x - y).abs()))
}

pub fn assert_close(what: &str, ours: &[f64], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: ours {a}, reference {b}"
        );
    }
}

pub fn assert_run_matches(tag: &str, run: &ApgdRun, t: &HashMap<String, Tensor>, steps: usize) {
    let key = |k: &str| format!("apgd_{tag}_{k}");
    assert_eq!(
        run.checkpoints,
        usizes(&t[&key("checkpoints")]),
        "{tag}: checkpoints"
    );
    let ref_steps = f64s(&t[&key("step_sizes")]);
    let ref_losses = f64s(&t[&key("losses")]);
    let n = run.robust.len();
    for i in 0..steps {
        assert_eq!(
            run.step_sizes[i],
            ref_steps[i * n..(i + 1) * n].to_vec(),
            "{tag}: step sizes of iteration {i}"
        );
        assert_close(
            &format!("{tag}: losses of iteration {i}"),
            &run.losses[i],
            &ref_losses[i * n..(i + 1) * n],
            1e-9,
        );
    }
    let robust: Vec<bool> = usizes(&t[&key("robust")]).iter().map(|&r| r != 0).collect();
    assert_eq!(run.robust, robust, "{tag}: robust");
    assert_close(
        &format!("{tag}: best loss"),
        &run.loss_best,
        &f64s(&t[&key("loss_best")]),
        1e-9,
    );
    for (field, ours) in [("x_best", &run.x_best), ("x_best_adv", &run.x_best_adv)] {
        let d = max_abs_diff(ours, &t[&key(field)]);
        assert!(d <= 1e-9, "{tag}: {field} differs by {d}");
    }
}

/// The draws a reference Square Attack run made, in order.
pub struct Replay {
    pub stripes: Vec<f64>,
    pub ints: VecDeque<usize>,
    pub signs: VecDeque<f64>,
    pub flips: VecDeque<bool>,
}

impl SquareDraws for Replay {
    fn stripes(&mut self, n: usize, c: usize, w: usize) -> Vec<f64> {
        assert_eq!(self.stripes.len(), n * c * w);
        std::mem::take(&mut self.stripes)
    }
    fn int_below(&mut self, high: usize) -> usize {
        let v = self
            .ints
            .pop_front()
            .expect("more window draws than the reference made");
        assert!(v <= high);
        v
    }
    fn signs(&mut self, c: usize) -> Vec<f64> {
        (0..c)
            .map(|_| {
                self.signs
                    .pop_front()
                    .expect("more sign draws than the reference made")
            })
            .collect()
    }
    fn flip(&mut self) -> bool {
        self.flips
            .pop_front()
            .expect("more pattern draws than the reference made")
    }
}

/// A fixture of `tests/fixtures`.
pub fn load_fixture(name: &str) -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    spat_core::store::load_tensors(&path, &Device::Cpu).unwrap()
}

/// The class `model` predicts for each image of `x`.
pub fn predictions(model: &dyn Classifier, x: &Tensor) -> Vec<u32> {
    model
        .logits(x, Mode::Eval)
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
}

/// Whether `model` classifies each image of `x` as its label in `y`.
pub fn correct(model: &dyn Classifier, x: &Tensor, y: &Tensor) -> Vec<bool> {
    predictions(model, x)
        .iter()
        .zip(y.to_vec1::<u32>().unwrap())
        .map(|(p, l)| *p == l)
        .collect()
}

/// Labels `model` gets right for all but the last example of `x`.
pub fn mostly_correct_labels(model: &dyn Classifier, x: &Tensor, classes: u32) -> Tensor {
    let mut pred = predictions(model, x);
    let last = pred.len() - 1;
    pred[last] = (pred[last] + 1) % classes;
    Tensor::new(pred.as_slice(), &Device::Cpu).unwrap()
}

/// relu(x W1ᵀ + b1) W2ᵀ + b2 on flattened 3×32×32 images (`Mlp` of scripts/golden/autoattack.py).
pub struct TrainedMlp {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Classifier for TrainedMlp {
    fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
        x.flatten_from(1)?
            .matmul(&self.w1.t()?)?
            .broadcast_add(&self.b1)?
            .relu()?
            .matmul(&self.w2.t()?)?
            .broadcast_add(&self.b2)
    }
}

/// Within one point of the reference on the 512 embedded test images (5 images): the two draw
/// different random starts, windows and signs, so only the accuracy, not the examples, can agree.
fn assert_within_a_point(what: &str, ours: f64, reference: f64) {
    assert!(
        (ours - reference).abs() <= 1.0,
        "{what}: spat {ours:.2} %, reference {reference:.2} %"
    );
}

/// AutoAttack in `norm` on the trained MLP of `fixture` (`scripts/golden/autoattack*.py`) over the
/// 512 embedded test images, within a point of the reference's accuracies: the standard version
/// (clean, after each attack, final), APGD-T and Square alone, and the rand version.
pub fn assert_autoattack_matches_the_reference(fixture: &str, norm: Norm) {
    use spat_data::BatchSource;
    let t = load_fixture(fixture);
    let model = TrainedMlp {
        w1: t["weights.fc1.weight"].clone(),
        b1: t["weights.fc1.bias"].clone(),
        w2: t["weights.fc2.weight"].clone(),
        b2: t["weights.fc2.bias"].clone(),
    };
    let eps = f64s(&t["eps"])[0];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let test = spat_data::load(spat_data::Dataset::Cifar10, &dir, spat_data::Split::Test).unwrap();
    assert_eq!(test.len(), 512);
    let loader = spat_data::Loader::new(std::sync::Arc::new(test), 256);
    let batches: Vec<spat_core::Batch> = loader
        .epoch(0, &Device::Cpu)
        .collect::<Result<_, _>>()
        .unwrap();
    let all = || batches.iter().cloned().map(Ok);

    // Standard: clean, after APGD-CE, APGD-T, FAB-T, Square, and the final robust accuracy.
    let reference = f64s(&t["standard"]);
    let aa = AutoAttack::standard(eps).in_norm(norm);
    let report = aa.evaluate(&model, all(), 0).unwrap();
    assert_eq!(report.norm, norm);
    assert!(
        (report.clean - reference[0]).abs() <= 0.2,
        "clean: spat {}, reference {}",
        report.clean,
        reference[0]
    );
    let names: Vec<&str> = report.stages.iter().map(|s| s.attack.as_str()).collect();
    assert_eq!(names, ["apgd-ce", "apgd-t", "fab-t", "square"]);
    for (i, stage) in report.stages.iter().enumerate() {
        let name = &stage.attack;
        assert_within_a_point(
            &format!("AutoAttack ({norm}) after {name}"),
            stage.robust,
            reference[i + 1],
        );
    }
    assert_within_a_point(&format!("AutoAttack ({norm})"), report.robust, reference[5]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // APGD-T and Square alone on every example (APGD-CE alone is the first row above; FAB-T alone,
    // the slowest, is replayed exactly by the replay tests).
    let individual = f64s(&t["individual"]);
    for i in [1, 3] {
        let (part, reference) = (&aa.parts[i], individual[i]);
        let (mut ok, mut n) = (0, 0);
        for (b, batch) in batches.iter().enumerate() {
            let mut rng = host_rng(0, b as u64);
            let adv = part
                .attack()
                .perturb(&model, &batch.images, &batch.labels, &mut rng)
                .unwrap();
            ok += correct(&model, &adv, &batch.labels)
                .iter()
                .filter(|&&c| c)
                .count();
            n += batch.len();
        }
        let name = format!("{} ({norm})", part.name());
        assert_within_a_point(&name, 100.0 * ok as f64 / n as f64, reference);
    }

    // The rand version (on this deterministic model, EOT only averages identical gradients).
    let rand = AutoAttack::rand(eps)
        .in_norm(norm)
        .evaluate(&model, all(), 0)
        .unwrap();
    assert_within_a_point(
        &format!("AutoAttack rand ({norm})"),
        rand.robust,
        f64s(&t["rand"])[0],
    );
}
