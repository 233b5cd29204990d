//! `spat data-info`: record counts, class balance and per-channel statistics of both splits.

use std::path::PathBuf;

use anyhow::Context;
use spat_data::{Dataset, Split};

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
    let mut out = serde_json::Map::new();
    let mut table = String::new();
    for (name, split) in [("train", Split::Train), ("test", Split::Test)] {
        let set = spat_data::load(args.dataset, &args.data_dir, split)
            .with_context(|| format!("reading the {name} split of {}", args.dataset))?;
        let stats = spat_data::split_stats(&set);
        table.push_str(&format!(
            "{name}: {} images, per class {:?}\n  mean {}\n  std  {}\n",
            stats.count,
            stats.per_class,
            fmt_channels(&stats.mean),
            fmt_channels(&stats.std)
        ));
        out.insert(name.to_string(), serde_json::to_value(&stats)?);
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        print!("{table}");
    }
    Ok(())
}

fn fmt_channels(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("({})", parts.join(", "))
}
