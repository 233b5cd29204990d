//! `spat plot`: one metric of several training runs over epochs, overlaid in one PNG (each run
//! labelled by method and α, its best epoch marked), with the numbers drawn in a JSON file beside
//! it (`FILE.json`, spat-spec's `Curves`).

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use spat_spec::curves::{Curves, EpochMetric};
use spat_spec::fs::{is_json_of, Outputs, Own};

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
        bail!("--out {}: name a .png file", a.out.display());
    }
    let json = spat_report::curves::json_beside(&a.out);
    let outputs = Outputs::new("--out")
        .file(&json, Own::Recognised(is_json_of::<Curves>))
        .file(&a.out, Own::Recognised(spat_report::is_spat_png));
    outputs.check()?;
    let curves = spat_report::curves::overlay_runs(&a.runs, a.metric, a.title)
        .map_err(|e| anyhow!("{e}"))?;
    let (png, numbers) = spat_report::curves::encode(&curves).map_err(|e| anyhow!("{e}"))?;
    outputs.write(&json, &numbers)?;
    outputs.write(&a.out, &png)?;
    println!("{}", a.out.display());
    Ok(())
}
