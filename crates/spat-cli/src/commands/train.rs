//! `spat train`: adversarial training (Madry / TRADES / MART / RST, each optionally with SPAT, or
//! standard training), crash-safe, resumable with `--resume RUN`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use spat_spec::run::files;
use spat_spec::{Dataset, Fnv1a, InitWeights, Method, Norm, Precision, RunConfig};
use spat_train::{RunRequest, TrainOptions};

use spat_spec::limits::{BATCH, EPOCHS, IMAGES};

use super::common::{
    build_network, check_radius, count, count_or_zero, normalized, own_normalization, parse_alpha,
    parse_device, parse_fraction, parse_non_negative, parse_positive_f64, parse_radius,
    read_run_config,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Continue the killed or stopped run in RUN: its settings come from RUN/config.json; only
    /// --device, --data-dir (the same data, read from another place) and --stop-after-epochs may
    /// be given with it.
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "dataset", "model", "method", "spat_alpha", "norm", "eps", "attack_step_size", "epochs",
        "batch_size", "lr", "weight_decay", "train_subset", "val_subset", "test_subset",
        "pseudo_labeled", "unlabeled_fraction", "seed", "out", "precision", "init"
    ])]
    pub resume: Option<PathBuf>,
    /// Data set: cifar10 | cifar100 (§6.1.1) | stl10 (§6.1.3).
    #[arg(long, required_unless_present = "resume")]
    pub dataset: Option<Dataset>,
    /// Folder holding cifar-10-batches-bin / cifar-100-binary / stl10_binary (or that folder itself);
    /// `cargo xtask fetch-data <name>` puts them in data/.
    #[arg(long, required_unless_present = "resume")]
    pub data_dir: Option<PathBuf>,
    /// Network: wrn-34-10 (§6.1.1), wrn-28-10 (§6.1.2), resnet-18 (§6.1.3), resnet-50 (§6.2),
    /// preact-resnet-18, wrn-16-2, tiny; any wrn-D-W, dm-wrn-D-W[-relu|-silu|-swish],
    /// dm-preact-resnet-18|34[-ACT], preact-resnet-18[-input-shortcut][-final-bn], or a
    /// RobustBench entry's network as rb:NAME. The DeepMind networks normalise their input with
    /// the data set's statistics inside the model.
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Training method: madry | trades | mart | rst (§4.3, §6.1) | standard (no attack: the
    /// standard model of chapter 5). With --pseudo-labeled, trades and mart train as RST does
    /// (rst is RST's TRADES).
    #[arg(long, required_unless_present = "resume")]
    pub method: Option<Method>,
    /// SPAT: craft training adversaries with PGD-LS(α) (label smoothing α in [0, 1], §4.2). Paper:
    /// TRADES + SPAT α = 0.1; MART + SPAT α = 0.3 (CIFAR-10), 0.2 (CIFAR-100, STL-10). Default: off.
    #[arg(long, value_parser = parse_alpha, allow_negative_numbers = true)]
    pub spat_alpha: Option<f64>,
    /// The threat model's norm: linf (default, the thesis's) or l2. In l2 every training
    /// adversary (PGD-CE, PGD-KL, PGD-LS under SPAT) is PGD-L2 with the method's loss and start,
    /// and the per-epoch evaluation's PGD-20 is PGD-L2 too.
    #[arg(long)]
    pub norm: Option<Norm>,
    /// Radius in --norm, as 8/255, 0.031 or 0.5 (default 8/255, §6.1.1; RST 0.031; §6.2 also
    /// trains at 4/255 and 16/255; l2: 0.5); the training adversary steps ε/4 unless
    /// --attack-step-size is given. Standard training uses it for its evaluation only.
    #[arg(long, value_parser = parse_radius, allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// PGD step of the training adversary, as 2/255 or 0.007 (default ε/4, §6.1.1; RST 0.007).
    #[arg(long, value_parser = parse_radius, allow_hyphen_values = true)]
    pub attack_step_size: Option<f64>,
    /// Epochs (default: 90 for CIFAR as MART's train_wideresnet.py, 200 for STL-10 §6.1.3 and
    /// RST).
    #[arg(long, value_parser = count(EPOCHS), allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Batch size (default: 128 for CIFAR, 32 for STL-10, 256 for RST).
    #[arg(long, value_parser = count(BATCH), allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Initial learning rate (default 0.1, §6.1.1; ÷10 at epochs 75 and 90 of 90, scaled to other
    /// epoch counts; cosine for RST).
    #[arg(long, value_parser = parse_positive_f64, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Weight decay (default 7e-4 as MART, §6.1.1; CIFAR-100: TRADES/Madry 2e-4, MART 7e-4 as the
    /// original code; RST 5e-4).
    #[arg(long, value_parser = parse_non_negative, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Train on a seeded random subset of N training images (default: all; more than the
    /// split holds is the whole split, and config.json records that count).
    #[arg(long, value_parser = count(IMAGES), allow_negative_numbers = true)]
    pub train_subset: Option<usize>,
    /// Hold out a seeded N of the training images, never trained on: each epoch is evaluated on
    /// them instead of test images, and best.safetensors is the epoch with the highest robust
    /// accuracy on them (default: none held out).
    #[arg(long, value_parser = count(IMAGES), allow_negative_numbers = true)]
    pub val_subset: Option<usize>,
    /// Evaluate on a seeded subset of N test images after each epoch and at the end (default: 1,000
    /// after each epoch and the whole test set at the end; more than the test set holds is the
    /// whole test set, and config.json records that count).
    #[arg(long, value_parser = count(IMAGES), allow_negative_numbers = true)]
    pub test_subset: Option<usize>,
    /// RST's pseudo-labelled images (ti_500K_pseudo_labeled.pickle, §6.1.2), mixed into every
    /// batch: with --method rst or trades this is RST (TRADES objective), with --method mart it is
    /// RST with MART's objective (Table 6.3's "MART" rows).
    #[arg(long)]
    pub pseudo_labeled: Option<PathBuf>,
    /// Fraction of each batch drawn from --pseudo-labeled, strictly between 0 and 1 (RST default
    /// 0.5).
    #[arg(long, value_parser = parse_fraction, requires = "pseudo_labeled", allow_negative_numbers = true)]
    pub unlabeled_fraction: Option<f64>,
    /// Seed of the initialisation, data order, augmentation and attack starts (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Run directory: config.json, metrics.jsonl, checkpoints, model.safetensors. A new or empty
    /// folder (spat never writes into a folder that holds files and no spat run).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Arithmetic: fp32 | tf32 (default; TF32 tensor cores for f32 convolutions and matrix
    /// products on CUDA, as PyTorch's cuDNN default) | bf16 (mixed precision: bf16 convolutions
    /// and matrix products, f32 master weights, BN, loss and optimiser). CPU: tf32 = fp32.
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Fine-tune: start from these weights (spat's safetensors or a PyTorch .pt/.pth checkpoint)
    /// instead of the seeded initialisation. Recorded in config.json with the file's checksum.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Stop after epoch K of a run planned for --epochs, its learning-rate schedule staying the
    /// one for --epochs; continue later with `--resume RUN --stop-after-epochs K2` (or without it
    /// to the end): the weights and metrics end as an uninterrupted run's. Epoch K's
    /// checkpoint-000K.safetensors stays until the run continues. K counts all epochs of the
    /// run, not those of this call; K at or beyond --epochs runs to the end; 0 only creates the
    /// run.
    #[arg(long, value_name = "K", value_parser = count_or_zero(EPOCHS), allow_negative_numbers = true)]
    pub stop_after_epochs: Option<usize>,
}

/// The request of a fresh run, from the command line.
fn request(a: &Args) -> Result<(RunRequest, PathBuf)> {
    let (Some(dataset), Some(data_dir), Some(model), Some(method), Some(out)) =
        (a.dataset, &a.data_dir, &a.model, a.method, &a.out)
    else {
        bail!(
            "spat train needs --dataset, --data-dir, --model, --method and --out (or --resume RUN)"
        )
    };
    let norm = a.norm.unwrap_or_default();
    for (option, value) in [("--eps", a.eps), ("--attack-step-size", a.attack_step_size)] {
        if let Some(v) = value {
            check_radius(option, v, norm, dataset)?;
        }
    }
    let mut r = RunRequest::new(model.clone(), dataset, data_dir.clone(), method);
    r.norm = norm;
    r.pseudo_labeled = a.pseudo_labeled.clone();
    r.unlabeled_fraction = a.unlabeled_fraction;
    r.spat_alpha = a.spat_alpha;
    r.eps = a.eps;
    r.attack_step_size = a.attack_step_size;
    r.epochs = a.epochs;
    r.batch_size = a.batch_size;
    r.lr = a.lr;
    r.weight_decay = a.weight_decay;
    r.train_subset = a.train_subset;
    r.val_subset = a.val_subset;
    r.test_subset = a.test_subset;
    r.precision = a.precision.unwrap_or_default();
    r.seed = a.seed.unwrap_or(0);
    Ok((r, out.clone()))
}

/// The configuration saved in `run`, with its data read from `--data-dir` if given.
fn resumed(run: &std::path::Path, a: &Args) -> Result<RunConfig> {
    let mut c = read_run_config(
        "--resume",
        run,
        "the run never started; start it again without --resume",
    )?;
    if let Some(dir) = &a.data_dir {
        c.data_dir = dir.clone();
    }
    Ok(c)
}

/// Loads `init` into `model` after checking that the file is the one the run recorded and that
/// it normalises its input as the network does (`own`).
fn load_init(
    model: &dyn spat_core::Network,
    init: &InitWeights,
    own: Option<&spat_core::Normalization>,
) -> Result<()> {
    let path = &init.path;
    let bytes = spat_spec::fs::read_input(path)
        .with_context(|| format!("--init {}: cannot read it", path.display()))?;
    let got = Fnv1a::hex_of(&bytes);
    if got != init.fnv1a64 {
        bail!(
            "--init {}: checksum {got} does not match {} recorded in the run's {}; the file \
             changed since the run started",
            path.display(),
            init.fnv1a64,
            files::CONFIG
        );
    }
    let report = spat_models::load_weights(model, path)
        .with_context(|| format!("--init {}", path.display()))?;
    for note in &report.notes {
        tracing::info!("{}: {note}", path.display());
    }
    if let Some(file) = report.normalization.as_ref().filter(|&n| Some(n) != own) {
        bail!(
            "--init {}: the checkpoint normalises its input with mean {:?}, std {:?} (`mu`/`sigma`), \
             but the network {}; its weights would be trained on other inputs",
            path.display(),
            file.mean,
            file.std,
            match own {
                Some(n) => format!("normalises with mean {:?}, std {:?}", n.mean, n.std),
                None => "takes pixels as they are".to_string(),
            }
        );
    }
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    let device = parse_device(&a.device)?;
    let (config, out, resume) = match &a.resume {
        Some(run) => (resumed(run, &a)?, run.clone(), true),
        None => {
            let (request, out) = request(&a)?;
            spat_spec::fs::check_path("--out", &out)?;
            let name = request
                .model
                .parse()
                .with_context(|| "--model".to_string())?;
            spat_models::Architecture::from_name(
                &name,
                Some(request.dataset),
                request.dataset.num_classes(),
            )?
            .info()?;
            let mut config = request.configure()?;
            if let Some(path) = &a.init {
                let bytes = spat_spec::fs::read_input(path)
                    .with_context(|| format!("--init {}: cannot read it", path.display()))?;
                config.init = Some(InitWeights {
                    path: path.clone(),
                    fnv1a64: Fnv1a::hex_of(&bytes),
                });
            }
            let kind = spat_train::inspect_run_dir(&out).with_context(|| "--out".to_string())?;
            if kind == spat_train::RunDir::Run {
                bail!(
                    "--out {}: already holds a run; continue it with `spat train --resume {}` or choose another --out",
                    out.display(),
                    out.display()
                );
            }
            (config, out, false)
        }
    };
    // Everything that can fail on bad input (data, pseudo-labels, model) is done before the run
    // directory is touched.
    let data = spat_train::load_data(&config)
        .with_context(|| format!("reading the {} data of the run", config.dataset))?;
    // config.json records what runs: a subset larger than its split is the split.
    let config = if resume { config } else { data.fit(&config) };
    let (name, model) = build_network(
        &config.model,
        config.dataset,
        &device,
        config.seed,
        config.precision,
    )?;
    let own = own_normalization(&name, config.dataset)?;
    // A run that has committed an epoch resumes from its own checkpoint; one that has not starts
    // from its initial weights again.
    if let Some(init) = &config.init {
        let state = out.join(files::STATE);
        let committed = resume
            && spat_spec::fs::present(&state)
                .with_context(|| format!("--resume {}", state.display()))?;
        if !committed {
            load_init(&*model, init, own.as_ref())?;
        }
    }
    let model = normalized(model, own.as_ref(), &device)?;
    tracing::info!(run = %out.display(), model = %config.model, method = %config.method, precision = %config.precision, resume, "training");
    let options = TrainOptions {
        resume,
        stop_after_epochs: a.stop_after_epochs,
    };
    let summary = spat_train::train_with_validation(
        &config,
        &*model,
        &*data.train,
        data.validation.as_ref(),
        &data.test,
        &out,
        options,
    )?;
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
        out.join(files::FINAL).display()
    );
    Ok(())
}
