//! `spat train`: adversarial training (Madry / TRADES / MART / RST, each optionally with SPAT),
//! crash-safe, resumable with `--resume RUN`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use spat_data::{Augmentation, BatchSource, Dataset, Loader, MixedLoader, Split};
use spat_train::{Method, RstBase, TrainConfig};

use super::common::{
    load_split, parse_alpha, parse_device, parse_eps, parse_positive, PrecisionArg,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Continue the killed run in RUN: its settings come from RUN/config.json and RUN/run.json;
    /// only --device may be given with it.
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "dataset", "data_dir", "model", "method", "spat_alpha", "rst_base", "eps", "epochs", "batch_size",
        "lr", "weight_decay", "train_subset", "test_subset", "pseudo_labeled", "unlabeled_fraction", "seed", "out",
        "precision"
    ])]
    pub resume: Option<PathBuf>,
    /// Data set: cifar10 | cifar100 (§6.1.1) | stl10 (§6.1.3).
    #[arg(long, required_unless_present = "resume")]
    pub dataset: Option<Dataset>,
    /// Folder holding cifar-10-batches-bin / cifar-100-binary / stl10_binary (or that folder itself);
    /// `cargo xtask fetch-data <name>` puts them in data/.
    #[arg(long, required_unless_present = "resume")]
    pub data_dir: Option<PathBuf>,
    /// Model preset: wrn-34-10 (§6.1.1), wrn-28-10 (§6.1.2), resnet-18 (§6.1.3), resnet-50 (§6.2),
    /// preact-resnet-18, wrn-16-2, tiny.
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Training method: madry | trades | mart | rst (§4.3, §6.1) | standard (no attack: the
    /// standard model of chapter 5, trained as madry with ε = 0 and no attack steps).
    #[arg(long, required_unless_present = "resume")]
    pub method: Option<String>,
    /// SPAT: craft training adversaries with PGD-LS(α) (label smoothing α in [0, 1], §4.2). Paper:
    /// TRADES + SPAT α = 0.1; MART + SPAT α = 0.3 (CIFAR-10), 0.2 (CIFAR-100, STL-10). Default: off.
    #[arg(long, value_parser = parse_alpha)]
    pub spat_alpha: Option<f64>,
    /// RST's outer objective: trades (RST's own) | mart (Table 6.3 "MART"). Default trades.
    #[arg(long)]
    pub rst_base: Option<String>,
    /// Training radius, as 8/255 or 0.031 (default 8/255, §6.1.1; §6.2 also uses 4/255 and 16/255).
    #[arg(long, value_parser = parse_eps)]
    pub eps: Option<f64>,
    /// Epochs (default: 100 for CIFAR §6.1.1, 200 for STL-10 §6.1.3 and RST §6.1.2).
    #[arg(long, value_parser = parse_positive)]
    pub epochs: Option<usize>,
    /// Batch size (default: 128 for CIFAR, 32 for STL-10, 256 for RST).
    #[arg(long, value_parser = parse_positive)]
    pub batch_size: Option<usize>,
    /// Initial learning rate (default 0.1, §6.1.1; ÷10 at 75% and 90% of the epochs).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight decay (default 7e-4 as MART, §6.1.1; CIFAR-100: TRADES/Madry 2e-4, MART 3.5e-3 as the
    /// original code; RST 5e-4).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Train on a seeded random subset of N training images (default: all).
    #[arg(long, value_parser = parse_positive)]
    pub train_subset: Option<usize>,
    /// Evaluate on a seeded subset of N test images after each epoch and at the end (default: 1,000
    /// after each epoch and the whole test set at the end).
    #[arg(long, value_parser = parse_positive)]
    pub test_subset: Option<usize>,
    /// RST's pseudo-labelled images (ti_500K_pseudo_labeled.pickle, §6.1.2), mixed into every
    /// batch: with --method rst or trades this is RST (TRADES objective), with --method mart it is
    /// RST with MART's objective (Table 6.3's "MART" rows).
    #[arg(long)]
    pub pseudo_labeled: Option<PathBuf>,
    /// Fraction of each batch drawn from --pseudo-labeled (RST default 0.5).
    #[arg(long)]
    pub unlabeled_fraction: Option<f64>,
    /// Seed of the initialisation, data order, augmentation and attack starts (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory: config.json, run.json, metrics.jsonl, checkpoints, model.safetensors.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Arithmetic: fp32 | tf32 (default; TF32 tensor cores for f32 convolutions and matrix
    /// products on CUDA, as PyTorch's cuDNN default) | bf16 (mixed precision: bf16 convolutions
    /// and matrix products, f32 master weights, BN, loss and optimiser). CPU: tf32 = fp32.
    #[arg(long)]
    pub precision: Option<PrecisionArg>,
    /// Stop after this many epochs in total, checkpointed, as if killed (tests, job splitting).
    #[arg(long, hide = true)]
    pub stop_after_epochs: Option<usize>,
}

/// What the CLI needs besides the TrainConfig to rebuild a run: written before training starts.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct RunSpec {
    dataset: Dataset,
    data_dir: PathBuf,
    model: String,
    /// As given on the command line (`standard` is recorded as such).
    method: String,
    train_subset: Option<usize>,
    pseudo_labeled: Option<PathBuf>,
    unlabeled_fraction: f64,
    /// Runs recorded before `--precision` existed computed in tf32 (the default).
    #[serde(default)]
    precision: PrecisionArg,
}

const RUN_SPEC: &str = "run.json";

fn method_config(a: &Args, dataset: Dataset, method: &str) -> Result<TrainConfig> {
    let pseudo = a.pseudo_labeled.is_some();
    let (m, base) = match (method, pseudo) {
        ("standard", false) => (Method::Madry, None),
        ("standard", true) => bail!("--method standard cannot use --pseudo-labeled"),
        ("madry", true) => {
            bail!("--pseudo-labeled needs --method rst, trades or mart (RST's objectives)")
        }
        ("trades", true) => (Method::Rst, Some(RstBase::Trades)),
        ("mart", true) => (Method::Rst, Some(RstBase::Mart)),
        (m, _) => (m.parse::<Method>()?, None),
    };
    if m == Method::Rst && !pseudo {
        bail!("--method rst needs --pseudo-labeled FILE (ti_500K_pseudo_labeled.pickle; `cargo xtask fetch-data ti500k`)");
    }
    let mut c = TrainConfig::for_dataset(dataset, m);
    if let Some(b) = base {
        c.rst_base = b;
    }
    if let Some(b) = &a.rst_base {
        c.rst_base = b.parse()?;
    }
    if method == "standard" {
        // No adversary: a zero-radius ball holds only x itself, and no step is taken.
        c.eps = 0.0;
        c.attack_steps = 0;
        c.attack_step_size = 0.0;
    }
    Ok(c)
}

fn fresh(a: &Args) -> Result<(TrainConfig, RunSpec, PathBuf)> {
    let (dataset, data_dir, model, method, out) =
        match (a.dataset, &a.data_dir, &a.model, &a.method, &a.out) {
            (Some(d), Some(dd), Some(m), Some(me), Some(o)) => {
                (d, dd.clone(), m.clone(), me.to_ascii_lowercase(), o.clone())
            }
            _ => bail!(
            "spat train needs --dataset, --data-dir, --model, --method and --out (or --resume RUN)"
        ),
        };
    spat_models::model_info(&model, dataset.num_classes())?;
    let mut c = method_config(a, dataset, &method)?;
    if let Some(alpha) = a.spat_alpha {
        if method == "standard" {
            bail!("--spat-alpha needs an adversarial method (madry, trades, mart, rst)");
        }
        c.spat_alpha = Some(alpha);
    }
    if let Some(eps) = a.eps {
        if method != "standard" {
            c.eps = eps;
            c.attack_step_size = eps / 4.0;
        }
    }
    if let Some(n) = a.epochs {
        c.epochs = n;
    }
    if let Some(n) = a.batch_size {
        c.batch_size = n;
    }
    if let Some(lr) = a.lr {
        c.lr = lr;
    }
    if let Some(wd) = a.weight_decay {
        c.weight_decay = wd;
    }
    if let Some(s) = a.seed {
        c.seed = s;
    }
    if let Some(n) = a.test_subset {
        c.eval_examples = n;
        c.final_full_eval = false;
    }
    c.stop_after_epochs = a.stop_after_epochs;
    c.validate()?;
    let fraction = a.unlabeled_fraction.unwrap_or(0.5);
    let spec = RunSpec {
        dataset,
        data_dir,
        model,
        method,
        train_subset: a.train_subset,
        pseudo_labeled: a.pseudo_labeled.clone(),
        unlabeled_fraction: fraction,
        precision: a.precision.unwrap_or_default(),
    };
    Ok((c, spec, out))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a valid run file", path.display()))
}

fn resumed(run: &Path, a: &Args) -> Result<(TrainConfig, RunSpec)> {
    if !run.is_dir() {
        bail!("--resume {}: no such run directory", run.display());
    }
    let config_path = run.join("config.json");
    if !config_path.is_file() {
        bail!("--resume {}: no config.json there (the run never started); start it again without --resume", run.display());
    }
    let mut c: TrainConfig = read_json(&config_path)?;
    c.stop_after_epochs = a.stop_after_epochs;
    let spec: RunSpec = read_json(&run.join(RUN_SPEC))?;
    Ok((c, spec))
}

pub fn run(a: Args) -> Result<()> {
    let device = parse_device(&a.device)?;
    let (config, spec, out, resume) = match &a.resume {
        Some(run) => {
            let (c, s) = resumed(run, &a)?;
            (c, s, run.clone(), true)
        }
        None => {
            let (c, s, out) = fresh(&a)?;
            if out.join("config.json").exists() {
                bail!(
                    "{} already holds a run; continue it with `spat train --resume {}` or choose another --out",
                    out.display(),
                    out.display()
                );
            }
            (c, s, out, false)
        }
    };
    // Everything that can fail on bad input (data, pseudo-labels, model) is done before the run
    // directory is touched.
    let classes = spec.dataset.num_classes();
    let train_set = load_split(spec.dataset, &spec.data_dir, Split::Train, None)?;
    let train_set = match spec.train_subset {
        Some(n) => train_set.sample(n, config.seed),
        None => train_set,
    };
    let test_set = load_split(spec.dataset, &spec.data_dir, Split::Test, None)?;
    let aug = Augmentation::for_dataset(spec.dataset);
    let loader: Box<dyn BatchSource> = match &spec.pseudo_labeled {
        Some(p) => {
            let unlabeled = spat_data::load_pseudo_labeled(p).context(
                "reading RST's pseudo-labelled set (get it with `cargo xtask fetch-data ti500k`)",
            )?;
            Box::new(MixedLoader::new(
                Arc::new(train_set),
                Arc::new(unlabeled),
                config.batch_size,
                spec.unlabeled_fraction,
                config.seed,
                aug,
            )?)
        }
        None => Box::new(
            Loader::new(Arc::new(train_set), config.batch_size)
                .shuffled(config.seed)
                .augmented(aug),
        ),
    };
    let model = spat_models::build_with_precision(
        &spec.model,
        classes,
        &device,
        config.seed,
        spec.precision.apply(),
    )?;
    if !resume {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        // Written before the trainer's config.json, so a run that has a config also has this.
        spat_core::fs::write_atomic(
            &out.join(RUN_SPEC),
            serde_json::to_string_pretty(&spec)?.as_bytes(),
        )?;
    }
    tracing::info!(run = %out.display(), model = %spec.model, method = %spec.method, precision = spec.precision.name(), resume, "training");
    let summary = spat_train::train(&config, &*model, &*loader, &test_set, &out, resume)?;
    println!(
        "{}: {} epochs done; final clean {} %, robust {} %; weights in {}",
        out.display(),
        summary.epochs_done,
        summary
            .final_clean_acc
            .map_or("-".into(), |v| format!("{v:.2}")),
        summary
            .final_robust_acc
            .map_or("-".into(), |v| format!("{v:.2}")),
        out.join("model.safetensors").display()
    );
    Ok(())
}
