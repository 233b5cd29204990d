//! Attacking your own candle model with spat-attacks: a small convolutional network written in
//! plain candle (no spat layer), trained for a few epochs on the CIFAR-10 sample embedded in the
//! repository, then attacked with PGD-20 directly and evaluated under FGSM, PGD-20 and AutoAttack.
//!
//! `cargo run --release -p spat-attacks --example attack_your_model`
//!
//! Everything the attacks need is [`spat_core::Classifier`]: logits `(N, 10)` of images `(N, 3,
//! 32, 32)` in `[0, 1]`. A network that expects normalised inputs is wrapped in
//! `spat_core::Normalized` instead of normalising inside `logits`.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use spat_attacks::{evaluate, losses, Attack, AttackSpec, Norm, Pgd};
use spat_core::{Classifier, Mode};
use spat_data::{Augmentation, BatchSource, Dataset, Loader, Split};

/// Two strided 3×3 convolutions with ReLU, global average pooling and a linear head.
struct SmallCnn {
    conv1: Var,
    conv2: Var,
    head_w: Var,
    head_b: Var,
}

impl SmallCnn {
    /// He initialisation, N(0, 2 / fan_in), from a seeded host generator (reproducible on any
    /// device, as every random draw in spat).
    fn new(device: &Device, seed: u64) -> candle_core::Result<Self> {
        let mut rng = spat_core::rng::host_rng(seed, spat_core::rng::streams::INIT);
        let mut init = |shape: &[usize], fan_in: usize| {
            let std = (2.0 / fan_in as f32).sqrt();
            Var::from_tensor(&spat_core::rng::normal(&mut rng, shape, std, device)?)
        };
        Ok(Self {
            conv1: init(&[32, 3, 3, 3], 27)?,
            conv2: init(&[64, 32, 3, 3], 288)?,
            head_w: init(&[10, 64], 64)?,
            head_b: Var::from_tensor(&Tensor::zeros(10, DType::F32, device)?)?,
        })
    }

    fn vars(&self) -> [&Var; 4] {
        [&self.conv1, &self.conv2, &self.head_w, &self.head_b]
    }
}

impl Classifier for SmallCnn {
    fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
        // conv2d(kernel, padding, stride, dilation, groups)
        let h = x.conv2d(&self.conv1, 1, 2, 1, 1)?.relu()?; // (N, 32, 16, 16)
        let h = h.conv2d(&self.conv2, 1, 2, 1, 1)?.relu()?; // (N, 64, 8, 8)
        let pooled = h.mean((2, 3))?; // (N, 64)
        pooled
            .matmul(&self.head_w.t()?)?
            .broadcast_add(&self.head_b)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let train = Arc::new(spat_data::load(Dataset::Cifar10, &data, Split::Train)?);
    let test = spat_data::load(Dataset::Cifar10, &data, Split::Test)?.first(64);

    // A few epochs of SGD with momentum on cross-entropy, so the attacks have something to break.
    let model = SmallCnn::new(&device, 0)?;
    let mut velocity: Vec<Tensor> = model
        .vars()
        .iter()
        .map(|v| v.zeros_like())
        .collect::<Result<_, _>>()?;
    let loader = Loader::new(train, 64)
        .shuffled(0)
        .augmented(Augmentation::for_dataset(Dataset::Cifar10));
    for epoch in 0..10 {
        let mut total = 0.0;
        for batch in loader.epoch(epoch, &device) {
            let batch = batch?;
            let logits = model.logits(&batch.images, Mode::Train)?;
            let loss = losses::cross_entropy(&logits, &batch.labels)?.mean_all()?;
            total += loss.to_scalar::<f32>()?;
            let grads = loss.backward()?;
            for (var, v) in model.vars().into_iter().zip(&mut velocity) {
                let grad = grads.get(var).ok_or("a parameter got no gradient")?;
                *v = ((&*v * 0.9)? + grad)?;
                var.set(&(var.as_tensor() - (&*v * 0.05)?)?)?;
            }
        }
        println!(
            "epoch {epoch}: mean training loss {:.3}",
            total / loader.num_batches() as f32
        );
    }

    // One attack by hand: PGD-20 on cross-entropy at ε = 8/255, step 2/255, from a random start.
    let eps = 8.0 / 255.0;
    let indices: Vec<usize> = (0..32).collect();
    let batch = test.to_batch(&indices, &device)?;
    let pgd = Pgd::pgd20(eps);
    let x_adv = pgd.perturb(
        &model,
        &batch.images,
        &batch.labels,
        &mut spat_core::rng::host_rng(0, 0),
    )?;
    let gap = (&x_adv - &batch.images)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    println!("PGD-20: largest pixel change {gap:.5} (ε = {eps:.5})");

    // The evaluator: clean accuracy and accuracy under each attack of a list, by spec.
    let attacks = AttackSpec::parse_list("clean,fgsm,pgd20,autoattack")?;
    let batches = (0..test.len()).step_by(64).map(|start| {
        let indices: Vec<usize> = (start..(start + 64).min(test.len())).collect();
        test.to_batch(&indices, &device)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
    let report = evaluate(&model, batches, &attacks, eps, Norm::Linf, 0, false)?;
    println!(
        "accuracy (%) on the first {} test images of the sample:",
        report.examples
    );
    for (attack, accuracy) in &report.accuracy {
        println!("  {attack:<12} {accuracy:6.2}");
    }
    for (name, run) in &report.autoattack {
        for stage in &run.stages {
            println!(
                "  {name} after {:<8} {:6.2} ({:.1} s)",
                stage.attack, stage.robust, stage.seconds
            );
        }
    }
    Ok(())
}
