//! `spat gradients`: PNG grid of test images and the input gradient of each of several models
//! (thesis Figure 4.1: a standard and an adversarially trained model), the model's prediction
//! under each gradient.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use spat_data::Dataset;
use spat_report::Canvas;
use spat_spec::limits::LIST;
use spat_spec::Precision;

use super::common::{
    load_model, load_split, original_rows, output_file, parse_device, parse_normalization,
    pick_rows, save_grid,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model preset of every checkpoint (see `spat model-info`).
    #[arg(long)]
    pub model: String,
    /// A checkpoint per gradient column, as LABEL=PATH (or PATH, labelled by its file name); give
    /// it once per model, e.g. `--checkpoint standard=runs/std/model.safetensors --checkpoint
    /// madry=runs/madry/model.safetensors` for Figure 4.1.
    #[arg(long, required = true)]
    pub checkpoint: Vec<String>,
    /// Data set: cifar10 | cifar100 | stl10.
    #[arg(long)]
    pub dataset: Dataset,
    /// Folder holding the data set's official files.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Arithmetic: fp32 | tf32 | bf16.
    #[arg(long, default_value = "tf32")]
    pub precision: Precision,
    /// The models expect normalised inputs: cifar10 | cifar100 | MEAN,STD (as for `eval`);
    /// gradients are still taken with respect to [0, 1] pixels.
    #[arg(long, value_parser = parse_normalization)]
    pub normalize: Option<spat_core::Normalization>,
    /// Rows: the first unused test image of each named class.
    #[arg(
        long,
        default_value = "ship,horse,bird,horse,automobile",
        conflicts_with = "indices"
    )]
    pub classes: String,
    /// Rows: these test-set indices instead of --classes.
    #[arg(long, value_delimiter = ',')]
    pub indices: Option<Vec<usize>>,
    /// Nearest-neighbour magnification, 1 to 32 (default: 4 for 32×32 images, 1 for 96×96).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=32), allow_negative_numbers = true)]
    pub scale: Option<u16>,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output PNG file.
    #[arg(long)]
    pub out: PathBuf,
    /// Also print one JSON object describing the grid (indices, labels, predictions).
    #[arg(long)]
    pub json: bool,
}

/// `LABEL=PATH` or `PATH` (labelled by its file stem).
fn labelled(arg: &str) -> Result<(String, PathBuf)> {
    let (label, path) = match arg.split_once('=') {
        Some((l, p)) => (l.trim().to_string(), PathBuf::from(p.trim())),
        None => {
            let p = PathBuf::from(arg.trim());
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, p)
        }
    };
    if label.is_empty() || path.as_os_str().is_empty() {
        bail!("--checkpoint `{arg}`: expected LABEL=PATH or PATH");
    }
    Ok((label, path))
}

pub fn run(a: Args) -> Result<()> {
    let checkpoints: Vec<(String, PathBuf)> = a
        .checkpoint
        .iter()
        .map(|c| labelled(c))
        .collect::<Result<_>>()?;
    let device = parse_device(&a.device)?;
    let outputs = output_file("--out", &a.out, spat_report::is_spat_png)?;
    spat_spec::limits::check_count("--checkpoint: files", a.checkpoint.len(), LIST)?;
    let names = a.dataset.class_names();
    let test = load_split(a.dataset, &a.data_dir, spat_data::Split::Test, None)?;
    let rows_ix = pick_rows(a.indices.as_deref(), &a.classes, test.labels(), &names)?;
    let (c, h, w) = test.shape();
    let scale = a.scale.map_or(if w <= 32 { 4 } else { 1 }, usize::from);
    let batch = test.to_batch(&rows_ix, &device)?;

    let mut headers = vec!["original".to_string()];
    let mut grid = original_rows(&test, &rows_ix, &names)?;
    let mut predictions: Vec<Vec<String>> = vec![Vec::new(); rows_ix.len()];
    for (label, path) in &checkpoints {
        let model = load_model(
            &a.model,
            a.dataset,
            path,
            &device,
            a.precision,
            a.normalize.as_ref(),
            a.dataset.image_shape().0,
        )?;
        let gradients = spat_attacks::input_gradients(&*model, &batch)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let predicted = spat_attacks::predictions(&*model, &batch.images)?;
        headers.push(format!("grad {label}"));
        let per = c * h * w;
        for (r, row) in grid.iter_mut().enumerate() {
            let img = Canvas::from_planar_signed(&gradients[r * per..(r + 1) * per], c, h, w)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            let name = names[predicted[r] as usize].clone();
            predictions[r].push(name.clone());
            row.push((img, name));
        }
    }
    let labels: Vec<String> = rows_ix
        .iter()
        .map(|&i| names[test.labels()[i] as usize].clone())
        .collect();
    let rows = rows_ix.iter().copied().zip(labels).zip(predictions);
    save_grid(&outputs, &a.out, a.json, headers, grid, scale, rows)
}
