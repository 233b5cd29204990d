//! `spat plot`: one metric of several training runs over epochs, overlaid in one PNG (each run
//! labelled by method and α, its best epoch marked), with the numbers drawn in a JSON file beside
//! it (`FILE.json`, spat-spec's `Curves`).

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use spat_spec::curves::{Curves, EpochMetric};

use super::common::check_output_file;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run directories of `spat train` (each with config.json and at least one committed epoch).
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// What to draw: robust-acc, clean-acc (on each run's per-epoch evaluation set), loss or lr.
    #[arg(long, default_value = "robust-acc")]
    pub metric: EpochMetric,
    /// Title above the plot (default: the metric's name, "robust accuracy over epochs").
    #[arg(long)]
    pub title: Option<String>,
    /// Output PNG; the numbers it draws go beside it, with the extension .json.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    if a.out.extension().is_none_or(|e| e != "png") {
        anyhow::bail!("--out {}: name a .png file", a.out.display());
    }
    let json = spat_report::curves::json_beside(&a.out);
    check_output_file("--out", &a.out, spat_report::is_spat_png)?;
    check_output_file("--out", &json, |b| {
        serde_json::from_slice::<Curves>(b).is_ok()
    })?;
    let curves = spat_report::curves::overlay_runs(&a.runs, a.metric, a.title)
        .map_err(|e| anyhow!("{e}"))?;
    spat_report::curves::save(&curves, &a.out).map_err(|e| anyhow!("{e}"))?;
    println!("{}", a.out.display());
    Ok(())
}
