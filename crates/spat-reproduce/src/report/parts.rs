//! What every report shares: the heading with the scale's setting in words, the claims' records
//! and their list, the thesis's statements of a figure, number formats and plots.

use std::path::Path;

use anyhow::{anyhow, Result};
use spat_spec::report::{Claim, Measured, Verdict};

use crate::claims::Outcome;
use crate::matrix::{self, Checkpoint, Plan, Scale};
use crate::paper;
use crate::protocol;

/// One id's report: its markdown up to the claims, its measurements, the claims tested on them.
pub(super) struct Body {
    pub md: String,
    pub measured: Measured,
    pub claims: Vec<Claim>,
}

pub(super) fn fmt2(x: f64) -> String {
    format!("{x:.2}")
}

pub(super) fn epoch_text(e: Option<usize>) -> String {
    e.map_or("?".into(), |e| e.to_string())
}

/// What the scale means for the comparison, in words, for `plan`.
pub fn setting(plan: &Plan) -> String {
    match plan.scale {
        Scale::Full => FULL_SETTING.into(),
        Scale::Short => short_setting(plan),
        Scale::Smoke => smoke_setting(plan),
    }
}

const FULL_SETTING: &str = "the thesis's setting where it states one; where it is silent, the \
    reference code it names (file and line below); where neither says, spat's choices (listed \
    below). One run per row, seed 0. Every run holds out a validation split of its training set \
    to choose its best epoch on; the last and the best checkpoint are both evaluated on the test \
    set.";

fn short_setting(plan: &Plan) -> String {
    let mut drops: Vec<String> = Vec::new();
    for t in plan.trains() {
        let c = protocol::configured(t);
        let text = match c.schedule {
            spat_spec::LrSchedule::Cosine => "cosine for RST".to_string(),
            _ => format!(
                "learning-rate drops at epochs {}",
                join(&c.schedule.drops(c.epochs), " and ")
            ),
        };
        if !drops.contains(&text) {
            drops.push(text);
        }
    }
    format!(
        "SHORT: {}; {} epochs ({}); otherwise the full scale's setting (every method, α and ε, \
         the held-out validation split, both checkpoints). Absolute numbers are expected below \
         the thesis's; whether its trends appear after {} epochs is what the claims below \
         test, not something this scale assumes.",
        substitutions(plan).join(", "),
        matrix::SHORT_EPOCHS,
        drops.join("; "),
        matrix::SHORT_EPOCHS,
    )
}

/// The models of an id at the full scale, for the short scale's "X in place of Y".
fn substitutions(plan: &Plan) -> Vec<String> {
    let full = matrix::plan(&plan.id, Scale::Full).expect("a known id");
    let mut out: Vec<String> = Vec::new();
    for (f, s) in full.trains().iter().zip(plan.trains()) {
        let text = format!("{} in place of {}", s.model, f.model);
        if f.model != s.model && !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

fn smoke_setting(plan: &Plan) -> String {
    let params = spat_spec::model_size("tiny").map_or(0, |s| s.parameters);
    let rst = if plan.trains().iter().any(|t| t.pseudo_labeled) {
        let per_epoch =
            matrix::SMOKE_TRAIN_IMAGES.div_ceil(matrix::SMOKE_BATCH) * matrix::SMOKE_BATCH;
        format!(
            " Each epoch is {per_epoch} images, half of them pseudo-labelled ({} labelled + {} \
             pseudo-labelled), as RST's epochs of 50,000.",
            per_epoch / 2,
            per_epoch / 2
        )
    } else {
        String::new()
    };
    format!(
        "SMOKE: the `tiny` model ({params} parameters) trained {} epochs on {} images of the \
         embedded CIFAR-10 sample ({} more held out for validation; subsets of the real data \
         for other data sets), batch {}, evaluated on {} test images ({} for α sweeps), on a \
         CPU.{rst} This checks the pipeline end to end; its numbers are NOT comparable with \
         the thesis's and its claims are not testable at this scale.",
        matrix::SMOKE_EPOCHS,
        matrix::SMOKE_TRAIN_IMAGES,
        matrix::SMOKE_VAL_IMAGES,
        matrix::SMOKE_BATCH,
        matrix::SMOKE_EVAL_IMAGES,
        matrix::SMOKE_SWEEP_IMAGES
    )
}

/// A report's heading: the thesis's table or figure and the scale's setting.
pub(super) fn header(title: &str, plan: &Plan, source: &str, caption: &str) -> String {
    format!(
        "## {title} (scale: {})\n\nThesis: {source}: \"{caption}\"\n\nspat setting: {}\n\n",
        plan.scale,
        setting(plan)
    )
}

/// A claim's record: its verdict on this run (none at the smoke scale).
pub(super) fn claim(
    scale: Scale,
    statement: impl Into<String>,
    source: &str,
    checkpoint: Option<Checkpoint>,
    outcome: Outcome,
) -> Claim {
    let verdict = match (scale, outcome.holds) {
        (Scale::Smoke, _) => Verdict::NotTestableAtThisScale,
        (_, true) => Verdict::Holds,
        (_, false) => Verdict::DoesNotHold,
    };
    Claim {
        statement: statement.into(),
        source: source.into(),
        checkpoint: checkpoint.map(|c| c.as_str().to_string()),
        verdict,
        evidence: outcome.evidence,
    }
}

/// The claims as a list under their heading (nothing when there are none).
pub(super) fn claims_md(claims: &[Claim]) -> String {
    if claims.is_empty() {
        return String::new();
    }
    let mut md = String::from("\n### The thesis's claims, tested on this run\n\n");
    for c in claims {
        let which = c
            .checkpoint
            .as_ref()
            .map(|k| format!(", {k} checkpoint"))
            .unwrap_or_default();
        let verdict = match c.verdict {
            Verdict::NotTestableAtThisScale => c.verdict.as_str().to_string(),
            v => format!("{} in this run", v.as_str()),
        };
        md.push_str(&format!(
            "- \"{}\" ({}{which}) — {verdict} ({})\n",
            c.statement, c.source, c.evidence
        ));
    }
    md
}

/// What the thesis states of a figure that prints no numbers, as a list.
pub(super) fn statements_md(fig: &paper::Figure) -> String {
    let mut s = String::from("What the thesis states (the figure prints no numbers):\n\n");
    for st in fig.statements {
        s.push_str(&format!("- {st}\n"));
    }
    s.push('\n');
    s
}

pub(super) fn statements(fig: &paper::Figure) -> Vec<String> {
    fig.statements.iter().map(|s| s.to_string()).collect()
}

pub(super) fn save_plot(plot: &spat_report::LinePlot, path: &Path) -> Result<()> {
    plot.render(900, 600)
        .save_png(path)
        .map_err(|e| anyhow!("{e}"))
}

/// `items` written with `sep` between them.
pub(super) fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}
