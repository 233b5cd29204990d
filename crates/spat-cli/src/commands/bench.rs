//! `spat bench`: images per second of the three workloads that decide what adversarial training
//! costs, measured the way `bench/pytorch_reference.py` measures PyTorch, so both can be run in
//! one call on the same card and compared line by line (`--reference`).
//!
//! Workloads (one step on one fixed batch, 3×32×32 inputs, 10 classes):
//! * `standard`: spat's standard training step (`spat_train::train_step` with
//!   `Method::Standard`): `Mode::Train` forward, cross-entropy, backward, SGD step;
//! * `trades-spat-pgd10`: spat's own TRADES+SPAT training step (`spat_train::train_step`):
//!   PGD-LS(α = 0.2) adversary, 10 steps of 2/255 within 8/255, then TRADES' outer loss (β = 6);
//! * `pgd20-eval`: PGD-20 in `Mode::Eval` (input gradients only) and the accuracy of the result.
//!
//! Each step is timed alone between device synchronisations, after untimed warm-up steps; the
//! median step time gives images/s = batch / median.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use spat_attacks::{Attack, Pgd};
use spat_core::{Batch, Classifier, Mode, Network};
use spat_spec::report::{BenchRecord as Record, BenchReport as Report};
use spat_spec::{Dataset, Method, Precision, RunConfig};
use spat_train::{RunRequest, Sgd, SgdConfig};

use spat_spec::limits::{BATCH, REPEATS};

use super::common::{count, count_or_zero, output_file, parse_device};

pub const WORKLOADS: &[&str] = &["standard", "trades-spat-pgd10", "pgd20-eval"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Models, comma-separated: any network `spat model-info` names (a preset such as
    /// wrn-16-2, a DeepMind network such as dm-wrn-16-2-silu, an rb: entry), at seed 0.
    #[arg(long, default_value = "resnet-18,wrn-34-10")]
    pub models: String,
    /// Workloads, comma-separated: standard, trades-spat-pgd10, pgd20-eval.
    #[arg(long, default_value = "standard,trades-spat-pgd10,pgd20-eval")]
    pub workloads: String,
    /// Precisions, comma-separated: fp32, tf32, bf16 (see `spat train --help`).
    #[arg(long, default_value = "fp32,tf32,bf16")]
    pub precisions: String,
    #[arg(long, default_value = "128", value_parser = count(BATCH))]
    pub batch: usize,
    /// Untimed steps before measuring (kernel compilation, cuDNN plans, allocator warm-up).
    #[arg(long, default_value = "5", value_parser = count_or_zero(REPEATS))]
    pub warmup: usize,
    /// Timed steps; the median is reported.
    #[arg(long, default_value = "20", value_parser = count(REPEATS))]
    pub repeats: usize,
    /// cpu | cuda | cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write the results as JSON (the schema of `bench/pytorch_reference.py --json`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// JSON written by `bench/pytorch_reference.py --json`: adds its images/s and the ratio
    /// spat / PyTorch for every matching (model, workload, precision, batch), against the
    /// fastest of the modes it measured that row in (named in the table).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Ablation: let attacks compute weight gradients too (as candle's plain autograd does),
    /// to measure what skipping them saves.
    #[arg(long)]
    pub attack_weight_grads: bool,
    /// Also print where the timed steps spent their time: spat's convolution (per direction)
    /// and batch-norm kernels per layer shape, and the rest of the step (CPU kernels only).
    #[arg(long)]
    pub profile: bool,
}

/// A model seen through [`Classifier::logits`] only: its attacks then differentiate the weights
/// too (the `--attack-weight-grads` ablation).
struct TrackedWeights<'a>(&'a dyn Network);

impl Classifier for TrackedWeights<'_> {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.0.logits(x, mode)
    }
}

impl Network for TrackedWeights<'_> {
    fn var_store(&self) -> &spat_core::VarStore {
        self.0.var_store()
    }
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
}

fn list<'a>(s: &'a str, what: &str, allowed: &[&str]) -> Result<Vec<&'a str>> {
    items(s, what, |i| {
        if !allowed.contains(&i) {
            bail!(
                "--{what}: unknown `{i}`; expected one of {}",
                allowed.join(", ")
            );
        }
        Ok(())
    })
}

/// The `--models` list, each name one `spat_models::build` takes, written as the user wrote it
/// (the key the PyTorch reference's records are matched on).
fn model_names(s: &str) -> Result<Vec<&str>> {
    items(s, "models", |i| match i.parse::<spat_spec::ModelName>() {
        Ok(_) => Ok(()),
        Err(e) => bail!("--models: {e}"),
    })
}

/// The non-empty items of the comma list `s` given to `--what`, each accepted by `check`.
fn items<'a>(s: &'a str, what: &str, check: impl Fn(&str) -> Result<()>) -> Result<Vec<&'a str>> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if items.is_empty() {
        bail!("--{what}: empty list");
    }
    for i in &items {
        check(i)?;
    }
    Ok(items)
}

/// Batch of the benchmark: uniform images and labels `i mod 10`, fixed across repeats.
fn fixed_batch(batch: usize, device: &Device) -> Result<Batch> {
    let images = spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(0, 0),
        (batch, 3, 32, 32),
        0.0,
        1.0,
        device,
    )?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    Ok(Batch {
        images,
        labels: Tensor::new(labels.as_slice(), device)?,
    })
}

/// The paper's CIFAR-10 configuration of `method` (the data are the benchmark's fixed batch).
fn config(method: Method, spat_alpha: Option<f64>) -> Result<RunConfig> {
    let mut r = RunRequest::new("tiny", Dataset::Cifar10, "", method);
    r.spat_alpha = spat_alpha;
    Ok(r.configure()?)
}

/// The training configurations of the step workloads, built once per measurement.
struct Configs {
    standard: RunConfig,
    /// TRADES + SPAT (α = 0.2).
    trades_spat: RunConfig,
}

/// One step of `workload`, returning once the device has finished it.
fn step(
    workload: &str,
    configs: &Configs,
    model: &dyn Network,
    optimizer: &mut Sgd,
    batch: &Batch,
    rng: &mut spat_core::rng::HostRng,
    device: &Device,
) -> Result<()> {
    match workload {
        "standard" => {
            spat_train::train_step(&configs.standard, model, optimizer, batch, rng)?;
        }
        "trades-spat-pgd10" => {
            spat_train::train_step(&configs.trades_spat, model, optimizer, batch, rng)?;
        }
        "pgd20-eval" => {
            let x_adv =
                Pgd::pgd20(8.0 / 255.0).perturb(model, &batch.images, &batch.labels, rng)?;
            // The predictions are read back, as an evaluation must.
            std::hint::black_box(spat_attacks::predictions(model, &x_adv)?);
        }
        other => bail!("unknown workload {other}"),
    }
    device.synchronize()?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn measure(
    a: &Args,
    preset: &str,
    workload: &str,
    precision: Precision,
    device: &Device,
) -> Result<Record> {
    let model = spat_models::build_with_precision(
        preset,
        10,
        device,
        0,
        spat_models::use_precision(precision),
    )?;
    let tracked = TrackedWeights(&*model);
    let model: &dyn Network = if a.attack_weight_grads {
        &tracked
    } else {
        &*model
    };
    let mut optimizer = Sgd::new(model.var_store(), SgdConfig::new(0.1, 7e-4));
    let batch = fixed_batch(a.batch, device)?;
    let mut rng = spat_core::rng::host_rng(0, spat_core::rng::streams::ATTACK);
    let configs = Configs {
        standard: config(Method::Standard, None)?,
        trades_spat: config(Method::Trades, Some(0.2))?,
    };
    for _ in 0..a.warmup {
        step(
            workload,
            &configs,
            model,
            &mut optimizer,
            &batch,
            &mut rng,
            device,
        )?;
    }
    let mut times = Vec::with_capacity(a.repeats);
    let mut cpu_times = Vec::with_capacity(a.repeats);
    spat_models::profile::take();
    spat_models::profile::set_enabled(a.profile);
    for _ in 0..a.repeats {
        let cpu = spat_models::profile::cpu_seconds();
        let t = Instant::now();
        step(
            workload,
            &configs,
            model,
            &mut optimizer,
            &batch,
            &mut rng,
            device,
        )?;
        times.push(t.elapsed().as_secs_f64());
        cpu_times.extend(
            cpu.zip(spat_models::profile::cpu_seconds())
                .map(|(a, b)| b - a),
        );
    }
    spat_models::profile::set_enabled(false);
    if a.profile {
        let title = format!("{preset} {workload} {}", precision.name());
        eprint!(
            "{}",
            profile_table(&title, &spat_models::profile::take(), &times, &cpu_times)
        );
    }
    let median_cpu_ms = (cpu_times.len() == times.len()).then(|| median(cpu_times) * 1e3);
    let m = median(times);
    Ok(Record {
        model: preset.to_string(),
        workload: workload.to_string(),
        precision: precision.name().to_string(),
        batch: a.batch,
        warmup: a.warmup,
        repeats: a.repeats,
        median_ms: m * 1e3,
        images_per_s: a.batch as f64 / m,
        median_cpu_ms,
        mode: None,
        compile_s: None,
    })
}

/// Where the timed steps went: per kernel and shape, then per kernel, then the remainder of
/// the step (element-wise operations, losses, autograd's bookkeeping, the optimiser), as wall
/// and CPU milliseconds per step, shares of the step's CPU time, and GFLOP/s of CPU time (on
/// one thread, the core's throughput).
fn profile_table(
    title: &str,
    ops: &[spat_models::profile::OpTime],
    steps: &[f64],
    cpu_steps: &[f64],
) -> String {
    let n = steps.len() as f64;
    let step_ms = steps.iter().sum::<f64>() * 1e3 / n;
    let step_cpu_ms = cpu_steps.iter().sum::<f64>() * 1e3 / n;
    let mut out = format!(
        "\nprofile of {title}: mean step {step_ms:.1} ms wall, {step_cpu_ms:.1} ms CPU over {} steps\n\n\
         | kernel | shape | calls/step | ms/step | CPU ms/step | share of CPU | GFLOP/s (CPU) |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        steps.len()
    );
    let row = |op: &str, shape: &str, calls: f64, secs: f64, cpu: f64, flops: f64| {
        let gflops = if flops > 0.0 && cpu > 0.0 {
            format!("{:.1}", flops / cpu / 1e9)
        } else {
            "–".into()
        };
        let (ms, cpu_ms) = (secs * 1e3 / n, cpu * 1e3 / n);
        format!(
            "| {op} | {shape} | {calls:.0} | {ms:.2} | {cpu_ms:.2} | {:.1}% | {gflops} |\n",
            100.0 * cpu_ms / step_cpu_ms
        )
    };
    for t in ops {
        out += &row(
            t.op,
            &t.shape,
            t.calls as f64 / n,
            t.seconds,
            t.cpu_seconds,
            t.flops,
        );
    }
    let mut by_op: BTreeMap<&str, [f64; 4]> = BTreeMap::new();
    for t in ops {
        let e = by_op.entry(t.op).or_default();
        e[0] += t.calls as f64;
        e[1] += t.seconds;
        e[2] += t.cpu_seconds;
        e[3] += t.flops;
    }
    for (op, [calls, secs, cpu, flops]) in &by_op {
        out += &row(op, "all", calls / n, *secs, *cpu, *flops);
    }
    let rest = (steps.iter().sum::<f64>() - ops.iter().map(|t| t.seconds).sum::<f64>()).max(0.0);
    let rest_cpu =
        (cpu_steps.iter().sum::<f64>() - ops.iter().map(|t| t.cpu_seconds).sum::<f64>()).max(0.0);
    out += &row("everything else", "–", 0.0, rest, rest_cpu, 0.0);
    out
}

fn read_reference(path: &std::path::Path) -> Result<Report> {
    let text = spat_spec::fs::read_input_text(path)
        .with_context(|| format!("reading the reference results {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a results file of bench/pytorch_reference.py --json",
            path.display()
        )
    })
}

fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", candle_core::utils::get_num_threads()),
        other => format!("{:?}", other.location()),
    }
}

pub fn run(a: Args) -> Result<()> {
    let models = model_names(&a.models)?;
    let workloads = list(&a.workloads, "workloads", WORKLOADS)?;
    let precisions: Vec<Precision> = list(&a.precisions, "precisions", Precision::NAMES)?
        .into_iter()
        .map(|p| p.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let reference = a.reference.as_deref().map(read_reference).transpose()?;
    let outputs = a
        .json
        .as_deref()
        .map(|path| {
            output_file("--json", path, |b| {
                serde_json::from_slice::<Report>(b).is_ok_and(|r| r.framework == "spat")
            })
        })
        .transpose()?;
    let device = parse_device(&a.device)?;
    let mut records = Vec::new();
    for preset in &models {
        for workload in &workloads {
            for &precision in &precisions {
                let r = measure(&a, preset, workload, precision, &device)
                    .with_context(|| format!("{preset} {workload} {}", precision.name()))?;
                eprintln!(
                    "{} {} {}: {:.1} ms, {:.1} img/s",
                    r.model, r.workload, r.precision, r.median_ms, r.images_per_s
                );
                records.push(r);
            }
        }
    }
    let report = Report {
        framework: "spat".into(),
        framework_version: env!("CARGO_PKG_VERSION").into(),
        device: a.device.clone(),
        device_name: device_name(&device),
        records,
    };
    print!("{}", table(&report, reference.as_ref()));
    if let (Some(path), Some(outputs)) = (&a.json, &outputs) {
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        outputs.write(path, text.as_bytes())?;
    }
    Ok(())
}

type RowKey = (String, String, String, usize);

fn row_key(r: &Record) -> RowKey {
    (
        r.model.clone(),
        r.workload.clone(),
        r.precision.clone(),
        r.batch,
    )
}

/// For one row, the reference's fastest mode by wall time and its fastest CPU time (perhaps
/// another mode's) among `records`, all of that row.
fn fastest<'a>(records: &[&'a Record]) -> Option<(&'a Record, Option<f64>)> {
    let by_wall = records
        .iter()
        .copied()
        .min_by(|a, b| a.median_ms.total_cmp(&b.median_ms))?;
    let by_cpu = records
        .iter()
        .filter_map(|r| r.median_cpu_ms)
        .min_by(f64::total_cmp);
    Some((by_wall, by_cpu))
}

/// Markdown table of `report`, with the reference's images/s and the ratio where it has the
/// same (model, workload, precision, batch). A reference that measured a row in several modes
/// (`bench/pytorch_reference.py --modes`) is compared by its fastest: the wall-time ratio
/// against the mode with the shortest step (named), the CPU-time ratio against the least CPU
/// time of any mode.
pub fn table(report: &Report, reference: Option<&Report>) -> String {
    let mut theirs: BTreeMap<RowKey, Vec<&Record>> = BTreeMap::new();
    for r in reference.map_or(&[][..], |rep| &rep.records) {
        theirs.entry(row_key(r)).or_default().push(r);
    }
    let mut out = format!(
        "spat {} on {} ({})",
        report.framework_version, report.device, report.device_name
    );
    if let Some(rep) = reference {
        out += &format!(
            "; reference: {} {} on {} ({})",
            rep.framework, rep.framework_version, rep.device, rep.device_name
        );
    }
    out += "\n\n| model | workload | precision | batch | spat ms | spat CPU ms | spat img/s |";
    if reference.is_some() {
        out += " reference mode | reference img/s | reference CPU ms | spat / reference | by CPU time |";
    }
    out += "\n|---|---|---|---:|---:|---:|---:|";
    if reference.is_some() {
        out += "---|---:|---:|---:|---:|";
    }
    out += "\n";
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    for r in &report.records {
        out += &format!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.1} |",
            r.model,
            r.workload,
            r.precision,
            r.batch,
            r.median_ms,
            ms(r.median_cpu_ms),
            r.images_per_s
        );
        if reference.is_some() {
            let row = theirs.get(&row_key(r)).map(Vec::as_slice).unwrap_or(&[]);
            match fastest(row) {
                Some((t, their_cpu)) => {
                    let by_cpu = match (r.median_cpu_ms, their_cpu) {
                        (Some(ours), Some(theirs)) => format!("{:.2}×", theirs / ours),
                        _ => "–".into(),
                    };
                    out += &format!(
                        " {} | {:.1} | {} | {:.2}× | {by_cpu} |",
                        t.mode.as_deref().unwrap_or("default"),
                        t.images_per_s,
                        ms(their_cpu),
                        r.images_per_s / t.images_per_s
                    )
                }
                None => out += " – | – | – | – | – |",
            }
        }
        out += "\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, precision: &str, ips: f64) -> Record {
        Record {
            model: model.into(),
            workload: "standard".into(),
            precision: precision.into(),
            batch: 128,
            warmup: 5,
            repeats: 20,
            median_ms: 128_000.0 / ips,
            images_per_s: ips,
            median_cpu_ms: None,
            mode: None,
            compile_s: None,
        }
    }

    #[test]
    fn ratio_is_spat_over_reference_for_matching_rows_only() {
        let ours = Report {
            framework: "spat".into(),
            framework_version: "0".into(),
            device: "cuda:0".into(),
            device_name: "card".into(),
            records: vec![
                record("resnet-18", "tf32", 3000.0),
                record("resnet-18", "bf16", 10.0),
            ],
        };
        let theirs = Report {
            framework: "pytorch".into(),
            framework_version: "2.11".into(),
            device: "cuda:0".into(),
            device_name: "card".into(),
            records: vec![record("resnet-18", "tf32", 2000.0)],
        };
        let t = table(&ours, Some(&theirs));
        assert!(
            t.contains("| 3000.0 | default | 2000.0 | – | 1.50× | – |"),
            "{t}"
        );
        assert!(t.contains("| 10.0 | – | – | – | – | – |"), "{t}");
    }

    #[test]
    fn cpu_time_ratio_is_reference_cpu_over_spat_cpu() {
        let with_cpu = |framework: &str, ips: f64, cpu: f64| Report {
            framework: framework.into(),
            framework_version: "0".into(),
            device: "cpu".into(),
            device_name: "cpu".into(),
            records: vec![Record {
                median_cpu_ms: Some(cpu),
                ..record("tiny", "fp32", ips)
            }],
        };
        let t = table(
            &with_cpu("spat", 100.0, 40.0),
            Some(&with_cpu("pytorch", 50.0, 60.0)),
        );
        assert!(
            t.contains("| 40.0 | 100.0 | default | 50.0 | 60.0 | 2.00× | 1.50× |"),
            "{t}"
        );
    }

    /// A reference measured in several modes is compared by its fastest, named: by wall time
    /// the mode with the shortest step, by CPU time the least CPU time of any mode.
    #[test]
    fn several_reference_modes_compare_by_the_fastest() {
        let mode = |name: &str, ips: f64, cpu: f64| Record {
            mode: Some(name.into()),
            median_cpu_ms: Some(cpu),
            ..record("tiny", "fp32", ips)
        };
        let ours = Report {
            framework: "spat".into(),
            framework_version: "0".into(),
            device: "cpu".into(),
            device_name: "cpu".into(),
            records: vec![Record {
                median_cpu_ms: Some(40.0),
                ..record("tiny", "fp32", 100.0)
            }],
        };
        let theirs = Report {
            records: vec![
                mode("default", 40.0, 80.0),
                mode("channels-last", 50.0, 70.0),
                mode("compile", 20.0, 60.0),
            ],
            framework: "pytorch".into(),
            ..ours.clone()
        };
        let t = table(&ours, Some(&theirs));
        assert!(
            t.contains("| 100.0 | channels-last | 50.0 | 60.0 | 2.00× | 1.50× |"),
            "{t}"
        );
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert!(list("standard,fast", "workloads", WORKLOADS).is_err());
        assert!(list("", "workloads", WORKLOADS).is_err());
        assert_eq!(
            list(" standard ", "workloads", WORKLOADS).unwrap(),
            ["standard"]
        );
    }
}
