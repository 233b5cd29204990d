//! The training loop, its evaluation, and crash-safe checkpoints.
//!
//! Files in the output directory:
//!
//! * `config.json` — the [`TrainConfig`], written (atomically) before the first step;
//! * `metrics.jsonl` — one [`EpochMetrics`] object per finished epoch;
//! * `checkpoint.safetensors` — weights and buffers after the last finished epoch (PyTorch
//!   `state_dict` names); `optimizer.safetensors` — SGD momentum buffers by parameter name;
//! * `state.json` — epochs done, RNG counter, best robust accuracy and an FNV-1a checksum of the
//!   two files above. It is written last, so a crash between files leaves a checksum mismatch
//!   that resuming reports instead of silently mixing epochs;
//! * `best.safetensors` — weights of the epoch with the best robust accuracy;
//! * `model.safetensors` and `summary.json` — final weights and final evaluation.
//!
//! Randomness: the adversary of global step `s` draws from `host_rng(seed, ATTACK + s)`, the
//! loader is a pure function of `(its seed, epoch)`, and evaluation never changes the model, so
//! resuming needs only the epoch counter to reproduce an uninterrupted run bit for bit (CPU).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use spat_attacks::{evaluate, Attack, AttackLoss, AttackSpec, Pgd, RandomStart};
use spat_core::rng::{host_rng, streams, HostRng};
use spat_core::{Batch, Mode, Network};
use spat_data::{BatchSource, ImageSet};

use crate::config::{Method, TrainConfig};
use crate::error::{Error, Result};
use crate::objectives;
use crate::sgd::{Sgd, SgdConfig};

/// What one finished epoch looked like (one line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's examples.
    pub loss: f64,
    /// Clean accuracy (percent) on the evaluation subset.
    pub clean_acc: f64,
    /// Accuracy (percent) under the evaluation attack on the evaluation subset.
    pub robust_acc: f64,
    pub lr: f64,
    /// Training throughput (adversary + update), evaluation excluded.
    pub images_per_sec: f64,
    /// Wall time of the epoch, evaluation and checkpointing included.
    pub seconds: f64,
    pub eval_examples: usize,
}

/// The outcome of [`train`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainSummary {
    pub epochs_done: usize,
    /// Epochs that were already done when this call started (resume).
    pub resumed_from: Option<usize>,
    /// Whether training stopped at `stop_after_epochs` before the configured epoch count.
    pub stopped_early: bool,
    pub best_robust_acc: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Final clean / robust accuracy (percent) on the whole test set (or the evaluation subset if
    /// `final_full_eval` is off); `None` when stopped early.
    pub final_clean_acc: Option<f64>,
    pub final_robust_acc: Option<f64>,
    pub final_eval_examples: Option<usize>,
    pub history: Vec<EpochMetrics>,
}

/// Saved after every epoch, last of all files.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RunState {
    epochs_done: usize,
    seed: u64,
    /// Steps taken so far: the counter of the adversary's RNG stream.
    global_step: u64,
    best_robust_acc: Option<f64>,
    best_epoch: Option<usize>,
    checkpoint_fnv1a64: String,
    optimizer_fnv1a64: String,
}

const CONFIG: &str = "config.json";
const METRICS: &str = "metrics.jsonl";
const CHECKPOINT: &str = "checkpoint.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const BEST: &str = "best.safetensors";
const FINAL: &str = "model.safetensors";
const SUMMARY: &str = "summary.json";

/// The training adversary of `config`: PGD with the method's loss (CE for Madry and MART, KL for
/// TRADES), or PGD-LS(α) under SPAT; the method's start (uniform for Madry, `x + 0.001 N(0, 1)`
/// for TRADES and MART, as their code) so that SPAT(α = 0) differs from the plain method only in
/// the loss; run in `config.adversary_mode`.
pub fn training_adversary(config: &TrainConfig) -> Pgd {
    let objective = config.objective();
    let loss = match (config.spat_alpha, objective) {
        (Some(alpha), _) => AttackLoss::LabelSmoothed { alpha },
        (None, Method::Trades) => AttackLoss::Kl,
        (None, _) => AttackLoss::CrossEntropy,
    };
    let random_start = match objective {
        Method::Madry => RandomStart::Uniform,
        _ => RandomStart::Gaussian { std: 0.001 },
    };
    Pgd {
        eps: config.eps,
        step_size: config.attack_step_size,
        steps: config.attack_steps,
        loss,
        random_start,
        mode: config.adversary_mode,
    }
}

/// The outer loss of one batch: crafts the adversary (drawing its start from `rng`), then runs
/// the model in `Mode::Train` on the clean batch (TRADES, MART) and on the adversarial one.
///
/// The references run `model(x_natural)` before `model(x_adv)`; so do we. TRADES' code calls
/// `model(x_natural)` twice (once for CE, once for the KL target); here the clean logits are
/// computed once and used for both, which gives the same loss and gradient but moves the BN
/// running statistics by one clean batch fewer per step.
pub fn training_loss(
    config: &TrainConfig,
    model: &dyn Network,
    batch: &Batch,
    rng: &mut HostRng,
) -> Result<Tensor> {
    let adversary = training_adversary(config);
    let x_adv = adversary.perturb(model, &batch.images, &batch.labels, rng)?;
    let y = &batch.labels;
    let loss = match config.objective() {
        Method::Madry => objectives::cross_entropy(&model.logits(&x_adv, Mode::Train)?, y)?,
        Method::Trades => {
            let clean = model.logits(&batch.images, Mode::Train)?;
            let adv = model.logits(&x_adv, Mode::Train)?;
            objectives::trades_loss(&clean, &adv, y, config.trades_beta)?
        }
        Method::Mart => {
            let clean = model.logits(&batch.images, Mode::Train)?;
            let adv = model.logits(&x_adv, Mode::Train)?;
            objectives::mart_loss(&clean, &adv, y, config.mart_lambda)?
        }
        Method::Rst => unreachable!("objective() resolves RST to its base"),
    };
    Ok(loss)
}

/// One optimisation step; returns the loss (checked to be finite before the update is applied:
/// a non-finite loss leaves the weights untouched and is reported as
/// [`Error::NonFiniteLoss`] with `epoch`/`step` from the arguments).
pub fn train_step(
    config: &TrainConfig,
    model: &dyn Network,
    optimizer: &mut Sgd,
    batch: &Batch,
    rng: &mut HostRng,
) -> Result<f32> {
    let loss = training_loss(config, model, batch, rng)?;
    let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Ok(value);
    }
    let grads = loss.backward()?;
    optimizer.step(&grads)?;
    Ok(value)
}

fn sgd_config(config: &TrainConfig) -> SgdConfig {
    SgdConfig {
        lr: config.lr,
        momentum: config.momentum,
        dampening: 0.0,
        nesterov: config.nesterov,
        weight_decay: config.weight_decay,
        decay_1d: config.decay_1d_params,
    }
}

/// FNV-1a, 64 bit: cheap, dependency-free, and enough to tell a file from another epoch's.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn file_checksum(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:016x}", fnv1a64(&bytes)))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Config(format!("cannot serialise {}: {e}", path.display())))?;
    text.push('\n');
    Ok(spat_core::fs::write_atomic(path, text.as_bytes())?)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not a valid file of this kind ({e})"),
    })
}

/// A config as compared on resume: the run's identity without `stop_after_epochs`.
fn identity(config: &TrainConfig) -> TrainConfig {
    TrainConfig {
        stop_after_epochs: None,
        ..config.clone()
    }
}

struct Resumed {
    state: RunState,
    history: Vec<EpochMetrics>,
}

/// Validates and loads everything of a previous run; writes nothing.
fn load_run(
    dir: &Path,
    config: &TrainConfig,
    model: &dyn Network,
    optimizer: &mut Sgd,
) -> Result<Resumed> {
    let state_path = dir.join(STATE);
    let state: RunState = read_json(&state_path)?;
    let config_path = dir.join(CONFIG);
    let saved: TrainConfig = read_json(&config_path)?;
    if identity(&saved) != identity(config) {
        return Err(Error::Checkpoint {
            path: config_path,
            message: "the run in this directory has a different configuration; \
                      resume it with the same settings or train into a new directory"
                .into(),
        });
    }
    if state.seed != config.seed {
        return Err(Error::Checkpoint {
            path: state_path,
            message: format!(
                "seed {} does not match the config's {}",
                state.seed, config.seed
            ),
        });
    }
    for (name, want) in [
        (CHECKPOINT, &state.checkpoint_fnv1a64),
        (OPTIMIZER, &state.optimizer_fnv1a64),
    ] {
        let path = dir.join(name);
        let got = file_checksum(&path)?;
        if &got != want {
            return Err(Error::Checkpoint {
                path,
                message: format!(
                    "checksum {got} does not match {want} recorded in {STATE} for epoch {} \
                     (corrupted, or written by an interrupted later epoch)",
                    state.epochs_done
                ),
            });
        }
    }
    let weights: HashMap<String, Tensor> =
        spat_core::store::load_tensors(&dir.join(CHECKPOINT), model.var_store().device())?;
    let momentum =
        spat_core::store::load_tensors(&dir.join(OPTIMIZER), model.var_store().device())?;
    // Check both before changing anything, so a bad file leaves model and optimizer as they were.
    let mut probe = Sgd::new(model.var_store(), *optimizer.config());
    probe.load_state(momentum.clone(), &dir.join(OPTIMIZER))?;
    model.var_store().assign(weights, &dir.join(CHECKPOINT))?;
    optimizer.load_state(momentum, &dir.join(OPTIMIZER))?;

    let metrics_path = dir.join(METRICS);
    let mut history = Vec::new();
    if metrics_path.exists() {
        let text =
            std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let m: EpochMetrics = serde_json::from_str(line).map_err(|e| Error::Checkpoint {
                path: metrics_path.clone(),
                message: format!("line {} is not an epoch record ({e})", i + 1),
            })?;
            // Lines of epochs after the checkpoint belong to work that is about to be redone.
            if m.epoch <= state.epochs_done {
                history.push(m);
            }
        }
    }
    Ok(Resumed { state, history })
}

fn write_metrics(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for m in history {
        text.push_str(&serde_json::to_string(m).expect("plain numbers serialise"));
        text.push('\n');
    }
    Ok(spat_core::fs::write_atomic(path, text.as_bytes())?)
}

struct Evaluation {
    clean: f64,
    robust: f64,
    examples: usize,
}

fn evaluate_on(
    config: &TrainConfig,
    model: &dyn Network,
    set: &ImageSet,
    spec: &AttackSpec,
    device: &Device,
) -> Result<Evaluation> {
    let n = set.len();
    let bs = config.eval_batch_size;
    let batches = (0..n.div_ceil(bs)).map(|b| {
        let idx: Vec<usize> = (b * bs..((b + 1) * bs).min(n)).collect();
        set.to_batch(&idx, device)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
    let specs = [AttackSpec::Clean, *spec];
    let report = evaluate(model, batches, &specs, config.eps, config.seed, false)?;
    Ok(Evaluation {
        clean: report.accuracy["clean"],
        robust: report.accuracy[&spec.to_string()],
        examples: report.examples,
    })
}

fn progress_bar(len: usize, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} batches [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("static template"),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

/// Trains `model` with `config` on `train`, evaluating on `test` after every epoch, writing into
/// `out_dir` (see the module docs for the files). With `resume`, continues the run saved in
/// `out_dir` (if there is none, starts a new one); without it, refuses a directory that already
/// holds a run.
pub fn train(
    config: &TrainConfig,
    model: &dyn Network,
    train: &dyn BatchSource,
    test: &ImageSet,
    out_dir: &Path,
    resume: bool,
) -> Result<TrainSummary> {
    config.validate()?;
    let eval_spec: AttackSpec = config
        .eval_attack
        .parse()
        .map_err(|e: spat_attacks::Error| Error::Config(format!("eval_attack: {e}")))?;
    if test.is_empty() {
        return Err(Error::Config(format!(
            "{}: the test set is empty",
            test.source().display()
        )));
    }
    if train.num_batches() == 0 {
        return Err(Error::Config(
            "the training loader yields no batches".into(),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let path = |name: &str| -> PathBuf { out_dir.join(name) };
    let device = model.var_store().device().clone();
    let mut optimizer = Sgd::new(model.var_store(), sgd_config(config));

    let (mut state, mut history, resumed_from) = if path(STATE).exists() {
        if !resume {
            return Err(Error::Config(format!(
                "{} already holds a training run ({STATE}); resume it or choose a new directory",
                out_dir.display()
            )));
        }
        let r = load_run(out_dir, config, model, &mut optimizer)?;
        tracing::info!(epochs_done = r.state.epochs_done, "resuming");
        let done = r.state.epochs_done;
        (r.state, r.history, Some(done))
    } else {
        write_json(&path(CONFIG), config)?;
        write_metrics(&path(METRICS), &[])?;
        let state = RunState {
            epochs_done: 0,
            seed: config.seed,
            global_step: 0,
            best_robust_acc: None,
            best_epoch: None,
            checkpoint_fnv1a64: String::new(),
            optimizer_fnv1a64: String::new(),
        };
        (state, Vec::new(), None)
    };
    // Metrics of epochs after the checkpoint (from a killed run) are dropped before new ones.
    write_metrics(&path(METRICS), &history)?;

    let eval_set = if config.eval_examples == 0 || config.eval_examples >= test.len() {
        test.clone()
    } else {
        test.sample(config.eval_examples, config.seed)
    };
    let last_epoch = config
        .stop_after_epochs
        .map_or(config.epochs, |s| s.min(config.epochs));
    let steps = train.num_batches();

    for epoch in state.epochs_done + 1..=last_epoch {
        let span = tracing::info_span!("epoch", epoch);
        let _enter = span.enter();
        let started = Instant::now();
        let lr = config
            .schedule
            .lr(config.lr, epoch, config.epochs, config.warmup_epochs);
        optimizer.set_lr(lr);
        let bar = progress_bar(steps, epoch, config.epochs);
        let mut loss_sum = 0f64;
        let mut seen = 0usize;
        for (step, batch) in train.epoch((epoch - 1) as u64, &device).enumerate() {
            let batch = batch?;
            let mut rng = host_rng(config.seed, streams::ATTACK.wrapping_add(state.global_step));
            let loss = train_step(config, model, &mut optimizer, &batch, &mut rng)?;
            if !loss.is_finite() {
                bar.abandon();
                return Err(Error::NonFiniteLoss {
                    epoch,
                    step: step + 1,
                    steps,
                    loss,
                    last_good_epoch: state.epochs_done,
                });
            }
            state.global_step += 1;
            loss_sum += loss as f64 * batch.len() as f64;
            seen += batch.len();
            bar.inc(1);
            let rate = seen as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} {rate:.1} img/s",
                loss_sum / seen as f64
            ));
        }
        bar.finish_and_clear();
        let train_seconds = started.elapsed().as_secs_f64();
        let eval = evaluate_on(config, model, &eval_set, &eval_spec, &device)?;

        model.var_store().save(&path(CHECKPOINT))?;
        spat_core::store::save_tensors(&optimizer.state(), &path(OPTIMIZER))?;
        if state.best_robust_acc.is_none_or(|b| eval.robust > b) {
            model.var_store().save(&path(BEST))?;
            state.best_robust_acc = Some(eval.robust);
            state.best_epoch = Some(epoch);
        }
        let metrics = EpochMetrics {
            epoch,
            loss: loss_sum / seen.max(1) as f64,
            clean_acc: eval.clean,
            robust_acc: eval.robust,
            lr,
            images_per_sec: seen as f64 / train_seconds,
            seconds: started.elapsed().as_secs_f64(),
            eval_examples: eval.examples,
        };
        tracing::info!(
            loss = metrics.loss,
            clean_acc = metrics.clean_acc,
            robust_acc = metrics.robust_acc,
            lr,
            images_per_sec = metrics.images_per_sec,
            "epoch done"
        );
        history.push(metrics);
        write_metrics(&path(METRICS), &history)?;
        state.epochs_done = epoch;
        state.checkpoint_fnv1a64 = file_checksum(&path(CHECKPOINT))?;
        state.optimizer_fnv1a64 = file_checksum(&path(OPTIMIZER))?;
        write_json(&path(STATE), &state)?;
    }

    let mut summary = TrainSummary {
        epochs_done: state.epochs_done,
        resumed_from,
        stopped_early: state.epochs_done < config.epochs,
        best_robust_acc: state.best_robust_acc,
        best_epoch: state.best_epoch,
        final_clean_acc: None,
        final_robust_acc: None,
        final_eval_examples: None,
        history,
    };
    if !summary.stopped_early {
        model.var_store().save(&path(FINAL))?;
        let set = if config.final_full_eval {
            test
        } else {
            &eval_set
        };
        let _span = tracing::info_span!("final_evaluation", examples = set.len()).entered();
        let eval = evaluate_on(config, model, set, &eval_spec, &device)?;
        summary.final_clean_acc = Some(eval.clean);
        summary.final_robust_acc = Some(eval.robust);
        summary.final_eval_examples = Some(eval.examples);
        write_json(&path(SUMMARY), &summary)?;
    }
    Ok(summary)
}
