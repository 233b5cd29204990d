//! Robust evaluation over a data set: clean accuracy, accuracy under each attack, and worst case;
//! the α sweep of Section 5.2; and the adversarial examples of a figure's grid.

use std::collections::BTreeMap;

use candle_core::Tensor;
use spat_core::rng::{host_rng, streams};
use spat_core::{Batch, Classifier};
use spat_spec::report::{EvalReport, SweepAttack, SweepReport, SweepRow};
use spat_spec::{AttackLoss, AttackSpec, Norm, StepRule};

use crate::attack::{correct, input_gradient, predictions};
use crate::autoattack::{AutoAttack, Tally};
use crate::{build, Error, Result};

fn progress_bar(progress: bool) -> indicatif::ProgressBar {
    if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new_spinner();
        // Redrawn while a long attack runs, so that its elapsed time keeps counting.
        bar.enable_steady_tick(std::time::Duration::from_millis(500));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{elapsed_precise}] {pos} images ({per_sec})",
            )
            .expect("static template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Evaluates `model` (in `Mode::Eval`) on `batches` under every attack of `attacks` at radius `eps`
/// in `norm` (every attack in that norm: see [`build`]).
///
/// An example counts as robust to an attack as [`crate::Attack::survivors`] judges it (classified
/// correctly after the attack, or for RST's PGD after every iterate of every restart), and towards
/// `worst_case` only if it is classified correctly clean and robust to every attack. An AutoAttack
/// spec also reports the robust accuracy after each of its attacks (`EvalReport::autoattack`).
/// Every attack on batch `b` starts from a fresh `host_rng(seed, streams::EVAL_ATTACK + b)`,
/// so attacks of one list share their random starts (PGD-LS(0) and PGD-CE give identical results)
/// and no result depends on which other attacks run.
pub fn evaluate<I>(
    model: &dyn Classifier,
    batches: I,
    attacks: &[AttackSpec],
    eps: f64,
    norm: Norm,
    seed: u64,
    progress: bool,
) -> Result<EvalReport>
where
    I: IntoIterator<Item = candle_core::Result<Batch>>,
{
    // A spec given twice (also under two spellings, `pgd-kl` and `pgd20-kl`) is run once: its
    // count is keyed by its canonical name and must not be incremented twice per example.
    let mut built: Vec<(String, Built)> = Vec::new();
    for spec in attacks {
        let name = spec.to_string();
        if built.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let b = match (
            crate::spec::autoattack(spec, eps, norm),
            build(spec, eps, norm),
        ) {
            (Some(aa), _) => Built::AutoAttack(aa, Tally::default()),
            (None, Some(attack)) => Built::Attack(attack),
            (None, None) => Built::Clean,
        };
        built.push((name, b));
    }
    let mut hits: BTreeMap<String, usize> = built.iter().map(|(n, _)| (n.clone(), 0)).collect();
    let clean_name = AttackSpec::Clean.to_string();
    hits.insert(clean_name.clone(), 0);
    let mut worst = 0usize;
    let mut examples = 0usize;
    let bar = progress_bar(progress);
    bar.set_message("evaluating");
    for (b, batch) in batches.into_iter().enumerate() {
        let batch = batch?;
        let clean = correct(model, &batch.images, &batch.labels)?;
        let mut robust = clean.clone();
        *hits.get_mut(&clean_name).expect("inserted") += clean.iter().filter(|&&c| c).count();
        for (name, attack) in &mut built {
            let mut rng = host_rng(seed, streams::EVAL_ATTACK + b as u64);
            let (x, y) = (&batch.images, &batch.labels);
            // Names what runs now: one attack on one batch can take an hour (AutoAttack).
            bar.set_message(format!("{name}, batch {}", b + 1));
            let ok = match attack {
                Built::Clean => continue,
                Built::Attack(attack) => attack.survivors(model, x, y, &mut rng)?,
                Built::AutoAttack(aa, tally) => aa.run_counted(tally, model, x, y, &mut rng)?,
            };
            *hits.get_mut(name.as_str()).expect("inserted") += ok.iter().filter(|&&c| c).count();
            for (r, o) in robust.iter_mut().zip(ok) {
                *r &= o;
            }
        }
        worst += robust.iter().filter(|&&c| c).count();
        examples += batch.len();
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    if examples == 0 {
        return Err(Error::InvalidArgument(
            "evaluation over an empty data set".into(),
        ));
    }
    let pct = |n: usize| 100.0 * n as f64 / examples as f64;
    let accuracy: BTreeMap<String, f64> = hits.into_iter().map(|(k, v)| (k, pct(v))).collect();
    let mut autoattack = BTreeMap::new();
    for (name, b) in &built {
        if let Built::AutoAttack(aa, tally) = b {
            autoattack.insert(name.clone(), aa.report(tally)?);
        }
    }
    Ok(EvalReport {
        examples,
        eps,
        norm,
        accuracy,
        worst_case: pct(worst),
        autoattack,
    })
}

/// An attack of an evaluation's list, ready to run.
enum Built {
    Clean,
    Attack(Box<dyn crate::Attack>),
    /// AutoAttack runs through its own runner, which also counts each of its attacks.
    AutoAttack(AutoAttack, Tally),
}

/// Settings of an α sweep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SweepConfig {
    /// The label-smoothing αs of the PGD-LS rows, each in `[0, 1]`.
    pub alphas: Vec<f64>,
    /// Radius of every attack, in `[0, 1]` pixel units.
    pub eps: f64,
    /// The norm of every attack of the sweep (L∞ in the thesis).
    #[serde(default)]
    pub norm: Norm,
    /// PGD iterations of every row.
    pub steps: usize,
    /// Step size ε/10 (`true`) or the evaluation scripts' rule (`false`).
    pub step_eps_over_10: bool,
    /// Seed of the attacks' random starts.
    pub seed: u64,
}

impl SweepConfig {
    /// Figure 5.3: α from 0 to 1 in steps of 0.1, PGD-20 at ε = 8/255.
    pub fn figure_5_3() -> Self {
        Self {
            alphas: (0..=10).map(|i| i as f64 / 10.0).collect(),
            eps: 8.0 / 255.0,
            norm: Norm::Linf,
            steps: 20,
            step_eps_over_10: false,
            seed: 0,
        }
    }
}

/// The α sweep of Section 5.2 (Tables 5.1, 5.2, Figure 5.3): robust accuracy under PGD-LS(α) for
/// every α of the sweep, and under PGD-CE and PGD-KL, all with the same number of steps.
pub fn sweep_alpha<I>(
    model: &dyn Classifier,
    batches: I,
    config: &SweepConfig,
    progress: bool,
) -> Result<SweepReport>
where
    I: IntoIterator<Item = candle_core::Result<Batch>>,
{
    let SweepConfig {
        alphas,
        eps,
        norm,
        steps,
        step_eps_over_10,
        seed,
    } = config;
    let (eps, steps) = (*eps, *steps);
    let step = if *step_eps_over_10 {
        StepRule::EpsOver10
    } else {
        StepRule::EvaluationScripts
    };
    let mut specs = vec![AttackSpec::Clean];
    specs.extend(alphas.iter().map(|&alpha| AttackSpec::Pgd {
        steps,
        loss: AttackLoss::LabelSmoothed { alpha },
        step,
    }));
    specs.push(AttackSpec::Pgd {
        steps,
        loss: AttackLoss::CrossEntropy,
        step,
    });
    specs.push(AttackSpec::Pgd {
        steps,
        loss: AttackLoss::Kl,
        step,
    });
    let report = evaluate(model, batches, &specs, eps, *norm, *seed, progress)?;
    let acc = |s: &AttackSpec| report.accuracy_of(s).expect("every spec was evaluated");
    let mut rows: Vec<SweepRow> = specs[1..=alphas.len()]
        .iter()
        .zip(alphas)
        .map(|(s, &a)| SweepRow {
            attack: SweepAttack::PgdLs,
            alpha: Some(a),
            accuracy: acc(s),
        })
        .collect();
    rows.push(SweepRow {
        attack: SweepAttack::PgdCe,
        alpha: None,
        accuracy: acc(&specs[alphas.len() + 1]),
    });
    rows.push(SweepRow {
        attack: SweepAttack::PgdKl,
        alpha: None,
        accuracy: acc(&specs[alphas.len() + 2]),
    });
    Ok(SweepReport {
        examples: report.examples,
        eps,
        norm: *norm,
        steps,
        clean_accuracy: acc(&AttackSpec::Clean),
        rows,
    })
}

/// The gradient of the cross-entropy loss with respect to each image of `batch`, the model in
/// `Mode::Eval`: thesis Figure 4.1 after Tsipras et al., where a robust model's input gradient
/// looks like the image and a standard model's like noise. Same shape as the images; each image's
/// gradient is its own (the loss is summed over the batch).
pub fn input_gradients(model: &dyn Classifier, batch: &Batch) -> Result<Tensor> {
    let (g, _) = input_gradient(
        model,
        &batch.images,
        &batch.labels,
        &AttackLoss::CrossEntropy,
        None,
        spat_core::Mode::Eval,
    )?;
    Ok(g)
}

/// The adversarial examples of one attack at one radius, and the model's predictions on them.
#[derive(Debug, Clone)]
pub struct AdversarialColumn {
    /// The attack.
    pub spec: AttackSpec,
    /// Its radius, in `[0, 1]` pixel units.
    pub eps: f64,
    /// Detached, same shape as the batch's images.
    pub images: Tensor,
    /// The model's class for each adversarial example.
    pub predictions: Vec<u32>,
}

/// Every attack of `specs` (clean excluded) at every radius of `radii` on `batch`, attacks outer,
/// radii inner (a figure's columns), each radius in `norm` (the thesis's figures are L∞).
/// Column `(k, j)` draws its random start from `host_rng(seed, EVAL_ATTACK + 1024 k + j)`, so a
/// column does not depend on the others.
pub fn adversarial_columns(
    model: &dyn Classifier,
    batch: &Batch,
    specs: &[AttackSpec],
    radii: &[f64],
    norm: Norm,
    seed: u64,
) -> Result<Vec<AdversarialColumn>> {
    let mut columns = Vec::new();
    for (k, spec) in specs.iter().enumerate() {
        for (j, &eps) in radii.iter().enumerate() {
            let Some(attack) = build(spec, eps, norm) else {
                continue;
            };
            let mut rng = host_rng(seed, streams::EVAL_ATTACK + 1024 * k as u64 + j as u64);
            let images = attack.perturb(model, &batch.images, &batch.labels, &mut rng)?;
            let predictions = predictions(model, &images)?;
            columns.push(AdversarialColumn {
                spec: *spec,
                eps,
                images,
                predictions,
            });
        }
    }
    Ok(columns)
}
