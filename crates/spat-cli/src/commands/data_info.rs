//! `spat data-info`: record counts, class balance and per-channel statistics of both splits.

use std::path::PathBuf;

use anyhow::Context;
use spat_data::{Dataset, Split};
use spat_spec::report::DataInfo;

#[derive(clap::Args)]
pub struct Args {
    /// Data set: cifar10 | cifar100 | stl10 (paper: CIFAR-10/100 in §6.1.1, STL-10 in §6.1.3).
    #[arg(long, default_value = "cifar10")]
    pub dataset: Dataset,
    /// Directory holding the official files (or the folder above `cifar-10-batches-bin` etc.).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Print one JSON object `{"train": {...}, "test": {...}}` instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let stats = |split: Split| {
        spat_data::load(args.dataset, &args.data_dir, split)
            .map(|set| spat_data::split_stats(&set))
            .with_context(|| format!("reading the {split} split of {}", args.dataset))
    };
    let info = DataInfo {
        train: stats(Split::Train)?,
        test: stats(Split::Test)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        for (name, s) in [("train", &info.train), ("test", &info.test)] {
            println!(
                "{name}: {} images, per class {:?}\n  mean {}\n  std  {}",
                s.count,
                s.per_class,
                fmt_channels(&s.mean),
                fmt_channels(&s.std)
            );
        }
    }
    Ok(())
}

fn fmt_channels(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("({})", parts.join(", "))
}
