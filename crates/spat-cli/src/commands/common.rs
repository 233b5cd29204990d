//! Argument parsing and loading shared by the commands: devices, radii, data sets, models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use spat_core::{Batch, Network};
use spat_data::{BatchSource, Dataset, ImageSet, Loader, Split};
use spat_spec::Precision;

/// `cpu`, `cuda` or `cuda:N`. CUDA needs a binary built with `--features cuda`.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match s.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => match rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => bail!("bad --device `{s}`: expected cpu, cuda or cuda:N"),
        },
        None => bail!("bad --device `{s}`: expected cpu, cuda or cuda:N"),
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "--device {s}: this spat was built without CUDA; rebuild with `cargo build --release -p spat-cli --features cuda` (or cudnn)"
        );
    }
    Device::new_cuda(ordinal).map_err(|e| {
        // candle attaches a backtrace to driver errors; the cause alone makes the one-line error.
        let cause = match e {
            candle_core::Error::WithBacktrace { inner, .. } => *inner,
            other => other,
        };
        anyhow::anyhow!("opening CUDA device {ordinal}: {cause}")
    })
}

/// A radius given as `8/255` or as a number such as `0.031`; must lie in [0, 1].
pub fn parse_eps(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.split_once('/') {
        Some((num, den)) => {
            let num: f64 = num
                .trim()
                .parse()
                .map_err(|_| format!("bad eps `{s}`: expected e.g. 8/255 or 0.031"))?;
            let den: f64 = den
                .trim()
                .parse()
                .map_err(|_| format!("bad eps `{s}`: expected e.g. 8/255 or 0.031"))?;
            if den == 0.0 {
                return Err(format!("bad eps `{s}`: division by zero"));
            }
            num / den
        }
        None => t
            .parse()
            .map_err(|_| format!("bad eps `{s}`: expected e.g. 8/255 or 0.031"))?,
    };
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!(
            "bad eps `{s}`: must lie in [0, 1] (images are in [0, 1])"
        ));
    }
    Ok(v)
}

/// A label-smoothing α in [0, 1].
pub fn parse_alpha(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad alpha `{s}`: expected a number in [0, 1]"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("bad alpha `{s}`: must lie in [0, 1]"));
    }
    Ok(v)
}

/// A positive count (batch sizes, epochs, subsets).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive integer")),
    }
}

/// One split of a data set, optionally only its first `subset` images.
pub fn load_split(
    dataset: Dataset,
    dir: &Path,
    split: Split,
    subset: Option<usize>,
) -> Result<ImageSet> {
    let set = spat_data::load(dataset, dir, split)
        .with_context(|| format!("reading the {split} split of {dataset}"))?;
    Ok(match subset {
        Some(n) => set.first(n),
        None => set,
    })
}

/// The model and test data every checkpoint command (`eval`, `sweep-alpha`, `visualize`) reads.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// Model preset of the checkpoint (see `spat model-info`).
    #[arg(long)]
    pub model: String,
    /// Weights: spat's safetensors (model.safetensors) or a PyTorch torch.save file (.pt/.pth;
    /// zip, legacy or tar; a bare state dict or one under state_dict/model/net).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Data set: cifar10 | cifar100 | stl10.
    #[arg(long)]
    pub dataset: Dataset,
    /// Folder holding the data set's official files (`cargo xtask fetch-data <name>` fills data/).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Arithmetic: fp32 | tf32 | bf16 (TF32 and bf16 change results on CUDA only slightly and
    /// only there; on the CPU tf32 is fp32).
    #[arg(long, default_value = "tf32")]
    pub precision: Precision,
}

/// How the test set is attacked, shared by `eval` and `sweep-alpha`.
#[derive(clap::Args, Debug)]
pub struct AttackRunArgs {
    /// Attack radius, as 8/255 or 0.031 (default 8/255, §6.1).
    #[arg(long, value_parser = parse_eps, default_value = "8/255")]
    pub eps: f64,
    /// Evaluate on the first N test images (default: the whole test set).
    #[arg(long, value_parser = parse_positive)]
    pub test_subset: Option<usize>,
    /// Evaluation batch size.
    #[arg(long, value_parser = parse_positive, default_value = "200")]
    pub batch_size: usize,
    /// Seed of the attacks' random starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl CheckpointArgs {
    pub fn load_model(&self, device: &Device) -> Result<Box<dyn Network>> {
        load_model(
            &self.model,
            self.dataset.num_classes(),
            &self.checkpoint,
            device,
            self.precision,
        )
    }

    pub fn load_test(&self, subset: Option<usize>) -> Result<ImageSet> {
        load_split(self.dataset, &self.data_dir, Split::Test, subset)
    }
}

/// A preset with weights from a safetensors checkpoint (spat's or a converted PyTorch state_dict).
pub fn load_model(
    preset: &str,
    classes: usize,
    checkpoint: &Path,
    device: &Device,
    precision: Precision,
) -> Result<Box<dyn Network>> {
    let model = spat_models::build_with_precision(
        preset,
        classes,
        device,
        0,
        spat_models::use_precision(precision),
    )?;
    if !checkpoint.is_file() {
        bail!("{}: checkpoint not found", checkpoint.display());
    }
    let report = spat_models::load_weights(&*model, checkpoint)
        .with_context(|| format!("loading {preset} weights (for {classes} classes)"))?;
    for note in &report.notes {
        tracing::info!("{}: {note}", checkpoint.display());
    }
    // Evaluating without the normalisation the weights were trained with would print wrong
    // accuracies; refuse until the normalising wrapper is wired in.
    if report.normalization.is_some() {
        bail!(
            "{}: the checkpoint normalises its input (`mu`/`sigma` buffers), which this command \
             cannot apply yet",
            checkpoint.display()
        );
    }
    Ok(model)
}

/// An in-order loader over a whole set (no augmentation), for evaluation.
pub fn eval_loader(set: ImageSet, batch_size: usize) -> Loader {
    Loader::new(Arc::new(set), batch_size)
}

/// The loader's batches as the attack library's evaluator takes them (lazily: one batch on the
/// device at a time).
pub fn eval_batches<'a>(
    loader: &'a Loader,
    device: &'a Device,
) -> impl Iterator<Item = candle_core::Result<Batch>> + 'a {
    loader
        .epoch(0, device)
        .map(|b| b.map_err(|e| candle_core::Error::Msg(e.to_string())))
}

/// The test images a figure shows, one per row: `indices` if given, else the first unused test
/// image of each class named in the comma-separated `classes`.
pub fn pick_rows(
    indices: Option<&[usize]>,
    classes: &str,
    labels: &[u32],
    names: &[String],
) -> Result<Vec<usize>> {
    if let Some(ix) = indices {
        if ix.is_empty() {
            bail!("--indices is empty");
        }
        if let Some(bad) = ix.iter().find(|&&i| i >= labels.len()) {
            bail!(
                "--indices: {bad} is outside the test set ({} images)",
                labels.len()
            );
        }
        return Ok(ix.to_vec());
    }
    let mut used = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for name in classes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let class = names.iter().position(|n| n == name).ok_or_else(|| {
            anyhow!(
                "--classes: unknown class `{name}`; classes are: {}",
                names.join(", ")
            )
        })?;
        let i = (0..labels.len())
            .find(|&i| labels[i] as usize == class && !used.contains(&i))
            .ok_or_else(|| anyhow!("--classes: no further test image of class `{name}`"))?;
        used.insert(i);
        rows.push(i);
    }
    if rows.is_empty() {
        bail!("--classes is empty");
    }
    Ok(rows)
}
