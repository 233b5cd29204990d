//! Times training epochs on the embedded CIFAR-10 sample (512 images).
//!
//! `cargo bench -p spat-train --bench epoch_time -- <preset> <method> <epochs> [batch]`
//! e.g. `... -- resnet-18 madry 1 128`. Prints one JSON line per epoch (metrics.jsonl records)
//! with the per-epoch evaluation restricted to 64 test images so that the training part dominates.

use std::path::Path;

use spat_data::Dataset;
use spat_train::{load_data, train, Method, RunRequest, TrainOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect(); // cargo bench adds it
    let preset = args.first().map_or("tiny", String::as_str);
    let method: Method = args.get(1).map_or("madry", String::as_str).parse()?;
    let epochs: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(128), |s| s.parse())?;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let mut request = RunRequest::new(preset, Dataset::Cifar10, data, method);
    request.epochs = Some(epochs);
    request.batch_size = Some(batch);
    request.test_subset = Some(64);
    let config = request.configure()?;
    let data = load_data(&config)?;
    let device = candle_core::Device::Cpu;
    let model = spat_models::build(preset, 10, &device, config.seed)?;
    let out = tempfile::tempdir()?;
    let summary = train(
        &config,
        &*model,
        &*data.train,
        &data.test,
        out.path(),
        TrainOptions::default(),
    )?;
    for m in &summary.history {
        println!("{}", serde_json::to_string(m)?);
    }
    Ok(())
}
