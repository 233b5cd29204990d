//! Times training epochs on the embedded CIFAR-10 sample (512 images).
//!
//! `cargo run --release -p spat-train --example epoch_time -- <preset> <method> <epochs> [batch]`
//! e.g. `... -- resnet-18 madry 1 128`. Prints one JSON line per epoch (metrics.jsonl records)
//! with the per-epoch evaluation restricted to 64 test images so that the training part dominates.

use std::path::Path;
use std::sync::Arc;

use spat_data::{Augmentation, Dataset, Loader, Split};
use spat_train::{train, Method, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().map_or("tiny", String::as_str);
    let method: Method = args.get(1).map_or("madry", String::as_str).parse()?;
    let epochs: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(128), |s| s.parse())?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let train_set = Arc::new(spat_data::load(Dataset::Cifar10, &data, Split::Train)?);
    let test_set = spat_data::load(Dataset::Cifar10, &data, Split::Test)?;
    let mut config = TrainConfig::paper_defaults("cifar10", method)?;
    config.epochs = epochs;
    config.batch_size = batch;
    config.eval_examples = 64;
    config.final_full_eval = false;
    let loader = Loader::new(train_set, batch)
        .shuffled(config.seed)
        .augmented(Augmentation::for_dataset(Dataset::Cifar10));
    let device = candle_core::Device::Cpu;
    let model = spat_models::build(preset, 10, &device, config.seed)?;
    let out = tempfile::tempdir()?;
    let summary = train(&config, &*model, &loader, &test_set, out.path(), false)?;
    for m in &summary.history {
        println!("{}", serde_json::to_string(m)?);
    }
    Ok(())
}
