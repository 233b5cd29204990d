//! An adversarial training loop written from spat's library parts instead of [`spat_train::train`]:
//! a data loader (spat-data), a network (spat-models), the training adversary (spat-attacks' PGD),
//! an outer objective and PyTorch-exact SGD (spat-train), on the CIFAR-10 sample embedded in the
//! repository, then an evaluation under PGD-20.
//!
//! `cargo run --release -p spat-train --example train_loop [-- madry|trades|trades-spat]`
//!
//! * `madry`: PGD-10 on cross-entropy from a uniform start, BN in train mode (Rice et al.), loss
//!   `CE(f(x̂), y)`;
//! * `trades`: PGD-10 on the KL divergence from the clean prediction from a small Gaussian start,
//!   loss `CE(f(x), y) + β · KL(f(x) ‖ f(x̂))` with β = 6;
//! * `trades-spat`: TRADES' loss, its adversary PGD-LS (label-smoothed cross-entropy, α = 0.1).
//!
//! `spat_train::train` does the same with the thesis's settings, checkpoints and resumption.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use spat_attacks::{evaluate, Attack, AttackLoss, AttackSpec, Norm, Pgd, RandomStart};
use spat_core::rng::{host_rng, streams};
use spat_core::{Classifier, Mode, Network};
use spat_data::{Augmentation, BatchSource, Dataset, Loader, Split};
use spat_train::objectives::{cross_entropy, trades_loss};
use spat_train::{Sgd, SgdConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let method = std::env::args().nth(1).unwrap_or_else(|| "madry".into());
    let eps = 8.0 / 255.0;
    let (adversary, trades) = match method.as_str() {
        "madry" => (
            Pgd::training(eps, AttackLoss::CrossEntropy, Mode::Train),
            false,
        ),
        "trades" => (Pgd::training(eps, AttackLoss::Kl, Mode::Eval), true),
        // SPAT changes only the adversary's loss; the start stays TRADES'.
        "trades-spat" => (
            Pgd {
                random_start: RandomStart::Gaussian { std: 0.001 },
                ..Pgd::training(eps, AttackLoss::LabelSmoothed { alpha: 0.1 }, Mode::Eval)
            },
            true,
        ),
        other => {
            return Err(format!("unknown method `{other}` (madry, trades, trades-spat)").into())
        }
    };

    let device = Device::Cpu;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let train = Arc::new(spat_data::load(Dataset::Cifar10, &data, Split::Train)?);
    let test = spat_data::load(Dataset::Cifar10, &data, Split::Test)?.first(128);
    let seed = 0;
    let loader = Loader::new(train, 64)
        .shuffled(seed)
        .augmented(Augmentation::for_dataset(Dataset::Cifar10))
        .drop_last(true);

    // The ~20k-parameter test preset; any `spat_core::Network` trains the same way.
    let model = spat_models::build("tiny", 10, &device, seed)?;
    let mut sgd = Sgd::new(model.var_store(), SgdConfig::new(0.1, 5e-4));
    let mut step = 0u64;
    for epoch in 0..3 {
        let mut total = 0.0;
        for batch in loader.epoch(epoch, &device) {
            let batch = batch?;
            let (x, y) = (&batch.images, &batch.labels);
            // Every random draw comes from a seeded host stream: the same seed gives the same run.
            let mut rng = host_rng(seed, streams::ATTACK + step);
            let x_adv = adversary.perturb(model.as_ref(), x, y, &mut rng)?;
            let loss = if trades {
                let clean = model.logits(x, Mode::Train)?;
                let adv = model.logits(&x_adv, Mode::Train)?;
                trades_loss(&clean, &adv, y, 6.0)?
            } else {
                cross_entropy(&model.logits(&x_adv, Mode::Train)?, y)?
            };
            total += loss.to_scalar::<f32>()?;
            sgd.step(&loss.backward()?)?;
            step += 1;
        }
        println!(
            "{method} epoch {epoch}: mean loss {:.3}",
            total / loader.num_batches() as f32
        );
    }

    let attacks = AttackSpec::parse_list("clean,pgd20")?;
    let batches = (0..test.len()).step_by(64).map(|start| {
        let indices: Vec<usize> = (start..(start + 64).min(test.len())).collect();
        test.to_batch(&indices, &device)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
    let report = evaluate(
        model.as_ref(),
        batches,
        &attacks,
        eps,
        Norm::Linf,
        seed,
        false,
    )?;
    for (attack, accuracy) in &report.accuracy {
        println!(
            "{attack}: {accuracy:.2} % of the first {} test images",
            report.examples
        );
    }
    Ok(())
}
