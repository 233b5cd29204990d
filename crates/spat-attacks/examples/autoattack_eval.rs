//! spat's side of `scripts/autoattack_compare.sh`: clean, PGD-20, APGD-CE, APGD-T and AutoAttack
//! (standard) accuracy of a checkpoint on the first N CIFAR-10 test images, with wall times, as one
//! JSON object. Until `spat eval --attacks autoattack` exists (CLI wiring), this is the command:
//!
//! ```text
//! cargo run --release -p spat-attacks --example autoattack_eval -- \
//!     --model tiny --checkpoint runs/tiny-madry/model.safetensors \
//!     --data-dir ../shared/data --n 1000 --eps 8/255 [--normalize cifar10] [--batch 250] [--seed 0]
//! ```
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use spat_attacks::{evaluate, Apgd, ApgdLoss, ApgdTargeted, Attack, AttackSpec, AutoAttack};
use spat_core::{Batch, Classifier, Mode, Normalization, Normalized};
use spat_data::{BatchSource, Dataset, Loader, Split};

fn parse_eps(s: &str) -> Result<f64, String> {
    let v = match s.split_once('/') {
        Some((a, b)) => a
            .trim()
            .parse::<f64>()
            .ok()
            .zip(b.trim().parse::<f64>().ok())
            .map(|(a, b)| a / b),
        None => s.trim().parse().ok(),
    };
    v.filter(|e: &f64| e.is_finite() && *e >= 0.0)
        .ok_or(format!("bad eps `{s}`"))
}

/// One attack of the ensemble run alone on every clean-correct example, as the reference's
/// `run_standard_evaluation` with a single attack does.
fn alone(
    model: &dyn Classifier,
    batches: &[Batch],
    attack: &dyn Attack,
    seed: u64,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (mut ok, mut n) = (0usize, 0usize);
    for (b, batch) in batches.iter().enumerate() {
        let mut rng =
            spat_core::rng::host_rng(seed, spat_core::rng::streams::EVAL_ATTACK + b as u64);
        let adv = attack.perturb(model, &batch.images, &batch.labels, &mut rng)?;
        let pred = model
            .logits(&adv, Mode::Eval)?
            .argmax(1)?
            .to_vec1::<u32>()?;
        let y = batch.labels.to_vec1::<u32>()?;
        ok += pred.iter().zip(&y).filter(|(p, l)| p == l).count();
        n += y.len();
    }
    Ok((
        100.0 * ok as f64 / n as f64,
        started.elapsed().as_secs_f64(),
    ))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model_name = "tiny".to_string();
    let mut checkpoint: Option<PathBuf> = None;
    let mut data_dir = PathBuf::from("../shared/data");
    let (mut n, mut batch, mut seed, mut eps) = (1000usize, 250usize, 0u64, 8.0 / 255.0);
    let mut normalize: Option<Normalization> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model_name = value()?,
            "--checkpoint" => checkpoint = Some(value()?.into()),
            "--data-dir" => data_dir = value()?.into(),
            "--n" => n = value()?.parse()?,
            "--batch" => batch = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--eps" => eps = parse_eps(&value()?)?,
            "--normalize" => normalize = Some(Normalization::parse(&value()?)?),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let checkpoint = checkpoint.ok_or("--checkpoint is required")?;
    let dev = Device::Cpu;
    let net = spat_models::build(&model_name, 10, &dev, 0)?;
    spat_models::load_weights(&*net, &checkpoint)?;
    let model: Box<dyn Classifier> = match &normalize {
        Some(norm) => Box::new(Normalized::new(net, norm, &dev)?),
        None => Box::new(net),
    };
    let test = spat_data::load(Dataset::Cifar10, &data_dir, Split::Test)?.first(n);
    let loader = Loader::new(Arc::new(test), batch);
    let batches: Vec<Batch> = loader.epoch(0, &dev).collect::<Result<_, _>>()?;
    let examples: usize = batches.iter().map(Batch::len).sum();

    let mut out = serde_json::Map::new();
    let mut seconds = serde_json::Map::new();
    out.insert("examples".into(), examples.into());
    out.insert("eps".into(), eps.into());
    out.insert(
        "threads".into(),
        candle_core::utils::get_num_threads().into(),
    );

    let started = Instant::now();
    let specs = AttackSpec::parse_list("clean,pgd20")?;
    let report = evaluate(
        model.as_ref(),
        batches.iter().cloned().map(Ok),
        &specs,
        eps,
        seed,
        false,
    )?;
    seconds.insert("clean+pgd20".into(), started.elapsed().as_secs_f64().into());
    out.insert("clean".into(), report.accuracy["clean"].into());
    out.insert("pgd20".into(), report.accuracy["pgd20"].into());

    let (acc, s) = alone(
        model.as_ref(),
        &batches,
        &Apgd::new(eps, ApgdLoss::CrossEntropy),
        seed,
    )?;
    out.insert("apgd-ce".into(), acc.into());
    seconds.insert("apgd-ce".into(), s.into());
    let (acc, s) = alone(model.as_ref(), &batches, &ApgdTargeted::new(eps), seed)?;
    out.insert("apgd-t".into(), acc.into());
    seconds.insert("apgd-t".into(), s.into());

    let started = Instant::now();
    let aa = AutoAttack::standard(eps).evaluate(
        model.as_ref(),
        batches.iter().cloned().map(Ok),
        seed,
    )?;
    seconds.insert("autoattack".into(), started.elapsed().as_secs_f64().into());
    out.insert("autoattack".into(), aa.robust.into());
    let after: serde_json::Map<String, serde_json::Value> = aa
        .after
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    out.insert("autoattack_after".into(), after.into());
    let parts: serde_json::Map<String, serde_json::Value> = aa
        .seconds
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    out.insert("autoattack_seconds_per_attack".into(), parts.into());
    out.insert("autoattack_warnings".into(), aa.warnings.clone().into());
    out.insert("seconds".into(), seconds.into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
