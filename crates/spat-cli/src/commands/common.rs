//! Argument parsing and loading shared by the commands: devices, radii, data sets, models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use spat_core::{Batch, Network, Normalization, Normalized};
use spat_data::{BatchSource, Dataset, ImageSet, Loader, Split};
use spat_spec::fs::{Outputs, Own};
use spat_spec::limits::{self, Limit, BATCH, IMAGES, LIST};
use spat_spec::run::files;
use spat_spec::{ModelName, Norm, Precision, RunConfig};

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

/// A radius or step written as `8/255` or as a number such as `0.031` or `0.5`, in whatever norm:
/// its range is checked against the norm once that is known ([`check_radius`]).
pub fn parse_radius(s: &str) -> Result<f64, String> {
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
    Ok(v)
}

/// Checks the radius or step `value` given as `option` in `norm` for `dataset`'s images: in
/// `[0, 1]` for L∞, finite, `>= 0` and at most the image cube's diameter for L2.
pub fn check_radius(option: &str, value: f64, norm: Norm, dataset: Dataset) -> Result<()> {
    let (c, h, w) = dataset.image_shape();
    norm.check_radius(option, value, c * h * w)?;
    Ok(())
}

/// A label-smoothing α in [0, 1].
pub fn parse_alpha(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad alpha `{s}`: expected a number in [0, 1]"))?;
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!("bad alpha `{s}`: must lie in [0, 1]"));
    }
    Ok(v)
}

/// `--normalize`: `cifar10`, `cifar100`, or per-channel `MEAN,STD` values.
pub fn parse_normalization(s: &str) -> Result<Normalization, String> {
    Normalization::parse(s).map_err(|e| e.to_string())
}

fn parse_finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a finite number")),
    }
}

/// A finite number > 0 (learning rates).
pub fn parse_positive_f64(s: &str) -> Result<f64, String> {
    match parse_finite(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number")),
    }
}

/// A finite number >= 0 (weight decay).
pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    match parse_finite(s)? {
        v if v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is negative; it must be a number >= 0")),
    }
}

/// A fraction strictly between 0 and 1.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match parse_finite(s)? {
        v if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("`{s}` must lie strictly between 0 and 1")),
    }
}

/// The parser of a positive count at most `limit.max` (batch sizes, epochs, subsets, steps;
/// the bounds and their reasons are [`spat_spec::limits`]); clap names the option.
pub fn count(limit: Limit) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |s| limits::parse_count("", s, limit).map_err(|e| e.to_string())
}

/// [`count`], also taking 0 (`bench --warmup`).
pub fn count_or_zero(limit: Limit) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |s| match s.trim() {
        "0" => Ok(0),
        _ => count(limit)(s),
    }
}

/// The one output file `path` given as `option`, which spat replaces only if `ours` accepts its
/// bytes as spat's output of this kind; checked before anything is created (see
/// [`spat_spec::fs::Outputs`]).
pub fn output_file(option: &str, path: &Path, ours: fn(&[u8]) -> bool) -> Result<Outputs> {
    let outputs = Outputs::new(option).file(path, Own::Recognised(ours));
    outputs.check()?;
    Ok(outputs)
}

/// The configuration of the training run in the folder `run`, named on the command line by
/// `option`: its `config.json`, checked. `missing` says what to do when the folder has none.
pub fn read_run_config(option: &str, run: &Path, missing: &str) -> Result<RunConfig> {
    if !run.is_dir() {
        bail!("{option} {}: no such run directory", run.display());
    }
    let config_path = run.join(files::CONFIG);
    if !spat_spec::fs::present(&config_path)
        .with_context(|| format!("{option} {}", config_path.display()))?
    {
        bail!(
            "{option} {}: no {} there ({missing})",
            run.display(),
            files::CONFIG
        );
    }
    let config: RunConfig = spat_spec::fs::read_json(&config_path, "a run configuration")?;
    config
        .validate()
        .with_context(|| format!("{option} {}", config_path.display()))?;
    Ok(config)
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
    /// Network of the checkpoint: wrn-D-W, dm-wrn-D-W[-relu|-silu|-swish],
    /// dm-preact-resnet-18|34[-ACT], resnet-18, resnet-50,
    /// preact-resnet-18[-input-shortcut][-final-bn], tiny, or rb:NAME for a RobustBench entry
    /// (see `spat model-info`).
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
    /// The model expects normalised inputs: cifar10 | cifar100 | MEAN,STD (per channel, means
    /// then standard deviations, e.g. 0.49,0.48,0.45,0.25,0.24,0.26). Attacks still work on
    /// [0, 1] pixels; the model sees (x - mean) / std. A checkpoint that carries `mu`/`sigma`
    /// (or `mean`/`std`) buffers (RobustBench) is normalised with them without this option;
    /// the DeepMind networks and RobustBench entries that normalise default to their own.
    #[arg(long, value_parser = parse_normalization)]
    pub normalize: Option<Normalization>,
}

/// How the test set is attacked, shared by `eval` and `sweep-alpha`.
#[derive(clap::Args, Debug)]
pub struct AttackRunArgs {
    /// The threat model's norm: linf (default, the thesis's) or l2 (RobustBench's second
    /// leaderboard). Every attack of the run uses it, under its usual name: in l2, fgsm is FGM,
    /// pgdN / cwN / pgd-kl / pgd-ls are PGD-L2 with their loss, autoattack is the reference's L2
    /// version.
    #[arg(long, default_value = "linf")]
    pub norm: Norm,
    /// Attack radius in --norm, as 8/255, 0.031 or 0.5 (default: 8/255 for linf, §6.1; 0.5 for
    /// l2, RobustBench's CIFAR-10 radius).
    #[arg(long, value_parser = parse_radius, allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// Evaluate on the first N test images (default: the whole test set).
    #[arg(long, value_parser = count(IMAGES), allow_negative_numbers = true)]
    pub test_subset: Option<usize>,
    /// Evaluation batch size (default 200; with `eval --validation-of RUN`, the run's
    /// evaluation batch size). Attacks draw their random starts per batch, so a result depends on
    /// it.
    #[arg(long, value_parser = count(BATCH), allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Seed of the attacks' random starts (default 0; with `eval --validation-of RUN`, the run's
    /// seed, which its per-epoch evaluation used).
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `--batch-size` when not given and no run supplies one.
pub const EVAL_BATCH_SIZE: usize = 200;

impl AttackRunArgs {
    /// `--batch-size`, else `default`.
    pub fn batch_size_or(&self, default: usize) -> usize {
        self.batch_size.unwrap_or(default)
    }

    /// `--seed`, else `default`.
    pub fn seed_or(&self, default: u64) -> u64 {
        self.seed.unwrap_or(default)
    }

    /// The radius (given or the norm's default), checked in the norm for `dataset`.
    pub fn eps(&self, dataset: Dataset) -> Result<f64> {
        let eps = self.eps.unwrap_or(self.norm.default_eps());
        check_radius("--eps", eps, self.norm, dataset)?;
        Ok(eps)
    }
}

impl CheckpointArgs {
    pub fn load_model(&self, device: &Device) -> Result<Box<dyn Network>> {
        load_model(
            &self.model,
            self.dataset,
            &self.checkpoint,
            device,
            self.precision,
            self.normalize.as_ref(),
            self.dataset.image_shape().0,
        )
    }

    pub fn load_test(&self, subset: Option<usize>) -> Result<ImageSet> {
        load_split(self.dataset, &self.data_dir, Split::Test, subset)
    }
}

/// A named network for `dataset` with weights from any weights file spat reads (safetensors or
/// torch.save), fed normalised inputs of `channels` channels if the file carries `mu`/`sigma`
/// (or `mean`/`std`), `normalize` is given (they must agree), or the network normalises inside
/// (the DeepMind networks, RobustBench entries), in that order of precedence.
pub fn load_model(
    name: &str,
    dataset: Dataset,
    checkpoint: &Path,
    device: &Device,
    precision: Precision,
    normalize: Option<&Normalization>,
    channels: usize,
) -> Result<Box<dyn Network>> {
    let classes = dataset.num_classes();
    let (parsed, model) = build_network(name, dataset, device, 0, precision)?;
    if checkpoint.is_dir() {
        bail!(
            "{}: is a folder, not a weights file (a run's weights are its model.safetensors)",
            checkpoint.display()
        );
    }
    if !spat_spec::fs::present(checkpoint).unwrap_or(true) {
        bail!("{}: checkpoint not found", checkpoint.display());
    }
    let report = spat_models::load_weights(&*model, checkpoint)
        .with_context(|| format!("loading {name} weights (for {classes} classes)"))?;
    for note in &report.notes {
        tracing::info!("{}: {note}", checkpoint.display());
    }
    let normalization = match (report.normalization, normalize) {
        (Some(file), Some(given)) if !same_normalization(&file, given) => bail!(
            "{}: the checkpoint normalises its input with mean {:?}, std {:?} (`mu`/`sigma`), \
             but --normalize gives mean {:?}, std {:?}; drop --normalize to use the checkpoint's",
            checkpoint.display(),
            file.mean,
            file.std,
            given.mean,
            given.std
        ),
        (Some(file), _) => Some((
            file,
            format!(
                "{}: the checkpoint's input normalisation (`mu`/`sigma`)",
                checkpoint.display()
            ),
        )),
        (None, Some(given)) => Some((given.clone(), "--normalize".to_string())),
        (None, None) => own_normalization(&parsed, dataset)?
            .map(|n| (n, format!("{name}'s own input normalisation"))),
    };
    let Some((n, source)) = normalization else {
        return Ok(model);
    };
    if let Some(c) = n.channels().filter(|&c| c != channels) {
        bail!(
            "{source} has {c} values per statistic, but the images have {channels} \
             channels: one value, or one per channel"
        );
    }
    tracing::info!(mean = ?n.mean, std = ?n.std, "inputs normalised");
    normalized(model, Some(&n), device).with_context(|| source)
}

/// The network `name` names for `dataset`, bare (see [`normalized`]), with the parsed name.
pub fn build_network(
    name: &str,
    dataset: Dataset,
    device: &Device,
    seed: u64,
    precision: Precision,
) -> Result<(ModelName, Box<dyn Network>)> {
    let parsed: ModelName = name.parse()?;
    let model = spat_models::build_named(
        &parsed,
        Some(dataset),
        dataset.num_classes(),
        device,
        seed,
        spat_models::use_precision(precision),
    )
    .with_context(|| format!("--model {name}"))?;
    Ok((parsed, model))
}

/// The input normalisation a network applies inside when its weights carry none.
pub fn own_normalization(name: &ModelName, dataset: Dataset) -> Result<Option<Normalization>> {
    Ok(name
        .input_normalization(dataset)?
        .map(|(mean, std)| Normalization::from_channels(mean, std)))
}

/// `model` fed `normalization`'s `(x - mean) / std` if there is one.
pub fn normalized(
    model: Box<dyn Network>,
    normalization: Option<&Normalization>,
    device: &Device,
) -> Result<Box<dyn Network>> {
    Ok(match normalization {
        Some(n) => Box::new(Normalized::new(model, n, device)?),
        None => model,
    })
}

/// Whether two normalisations compute the same thing (a single value stands for every channel).
fn same_normalization(a: &Normalization, b: &Normalization) -> bool {
    let channels = a
        .mean
        .len()
        .max(a.std.len())
        .max(b.mean.len())
        .max(b.std.len());
    let expand = |v: &[f32]| -> Vec<f32> {
        if v.len() == 1 {
            vec![v[0]; channels]
        } else {
            v.to_vec()
        }
    };
    expand(&a.mean) == expand(&b.mean) && expand(&a.std) == expand(&b.std)
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
        limits::check_count("--indices: images", ix.len(), LIST)?;
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
    limits::check_count("--classes: images", rows.len(), LIST)?;
    Ok(rows)
}

/// Draws `grid` (one row per test image: its `(index, label)` and each column's prediction) to
/// the PNG `out`, one of `outputs`, and prints the grid's [`GridSummary`](spat_spec::report::GridSummary) with `json`, else its
/// path and size.
pub fn save_grid(
    outputs: &Outputs,
    out: &Path,
    json: bool,
    headers: Vec<String>,
    grid: Vec<Vec<(spat_report::Canvas, String)>>,
    scale: usize,
    rows: impl Iterator<Item = ((usize, String), Vec<String>)>,
) -> Result<()> {
    let image = spat_report::ImageGrid {
        column_headers: headers.clone(),
        rows: grid,
        scale,
    }
    .render()
    .map_err(|e| anyhow!("{e}"))?;
    outputs.write(out, &image.to_png().map_err(|e| anyhow!("{e}"))?)?;
    if json {
        let summary = spat_spec::report::GridSummary {
            image: out.to_path_buf(),
            width: image.width,
            height: image.height,
            columns: headers,
            rows: rows
                .map(|((index, label), predictions)| spat_spec::report::GridRow {
                    index,
                    label,
                    predictions,
                })
                .collect(),
        };
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{} ({}x{} px)", out.display(), image.width, image.height);
    }
    Ok(())
}

/// The first column of an image grid: the test images `rows`, each captioned with its true class.
pub fn original_rows(
    test: &ImageSet,
    rows: &[usize],
    names: &[String],
) -> Result<Vec<Vec<(spat_report::Canvas, String)>>> {
    let (c, h, w) = test.shape();
    rows.iter()
        .map(|&i| {
            let label = names[test.labels()[i] as usize].clone();
            spat_report::Canvas::from_planar(test.image(i), c, h, w)
                .map(|img| vec![(img, label)])
                .map_err(|e| anyhow!("{e}"))
        })
        .collect()
}
