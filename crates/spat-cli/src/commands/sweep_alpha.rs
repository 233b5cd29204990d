//! `spat sweep-alpha`: robust accuracy under PGD-LS(α) for a grid of α, with PGD-CE and PGD-KL
//! (§5.2: Tables 5.1 / 5.2, Figure 5.3). Writes sweep.md, sweep.json and sweep.png.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use spat_attacks::{SweepAttack, SweepConfig, SweepReport};
use spat_spec::fs::{is_json_of, is_marked_text, mark_text, Outputs, Own};
use spat_spec::limits::{ATTACK_STEPS, LIST};

use super::common::{
    count, eval_batches, eval_loader, parse_alpha, parse_device, AttackRunArgs, CheckpointArgs,
    EVAL_BATCH_SIZE,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: CheckpointArgs,
    /// Comma-separated α values of PGD-LS (default §5.2's 0, 0.1, ..., 1; Table 5.1 uses
    /// 1e-2..1e-5, Table 5.2 0.1..0.5).
    #[arg(long, value_parser = parse_alpha, allow_negative_numbers = true,
        value_delimiter = ',', default_value = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1")]
    pub alphas: Vec<f64>,
    #[command(flatten)]
    pub run: AttackRunArgs,
    /// PGD steps of every attack (default 20: PGD-20, §5.2).
    #[arg(long, value_parser = count(ATTACK_STEPS), default_value = "20", allow_negative_numbers = true)]
    pub steps: usize,
    /// Step size ε/10 (§6.2's evaluation) instead of the TRADES/MART scripts' 0.003 at 8/255.
    #[arg(long)]
    pub step_eps_over_10: bool,
    /// Directory for sweep.md, sweep.json and sweep.png (default: print only).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the report as one JSON object (default: markdown).
    #[arg(long)]
    pub json: bool,
}

fn markdown(r: &SweepReport) -> String {
    let mut s = format!(
        "Robust accuracy (%) under PGD-{} at eps = {:.5} ({}) on {} test images; clean accuracy {:.2} %.\n\n| attack | alpha | accuracy |\n| --- | --- | --- |\n",
        r.steps, r.eps, r.norm, r.examples, r.clean_accuracy
    );
    for row in &r.rows {
        let alpha = row.alpha.map_or("-".to_string(), |a| a.to_string());
        s.push_str(&format!(
            "| {} | {alpha} | {:.2} |\n",
            row.attack.as_str(),
            row.accuracy
        ));
    }
    s
}

fn plot(r: &SweepReport) -> spat_report::LinePlot {
    let ls: Vec<(f64, Option<f64>)> = r
        .rows
        .iter()
        .filter(|x| x.attack == SweepAttack::PgdLs)
        .filter_map(|x| x.alpha.map(|a| (a, Some(x.accuracy))))
        .collect();
    let (lo, hi) = ls
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            (l.min(p.0), h.max(p.0))
        });
    let flat = |label: &str, y: f64| spat_report::Series {
        label: label.into(),
        points: vec![(lo, Some(y)), (hi, Some(y))],
        dashed: true,
    };
    let mut series = vec![spat_report::Series {
        label: "PGD-LS(alpha)".into(),
        points: ls,
        dashed: false,
    }];
    for row in r.rows.iter().filter(|x| x.attack != SweepAttack::PgdLs) {
        series.push(flat(&row.attack.as_str().to_uppercase(), row.accuracy));
    }
    series.push(flat("clean", r.clean_accuracy));
    spat_report::LinePlot {
        title: format!("Robust accuracy vs alpha, PGD-{}", r.steps),
        x_label: "label-smoothing alpha of PGD-LS".into(),
        y_label: "accuracy (%)".into(),
        series,
        y_range: Some((0.0, 100.0)),
    }
}

/// `--out`: a new or empty folder, or one that holds only a previous sweep's sweep.md (ending
/// with spat's mark), sweep.json (a sweep report) and sweep.png (spat's PNG).
fn outputs(dir: &Path) -> Result<Outputs> {
    let outputs = Outputs::new("--out")
        .file(dir.join("sweep.md"), Own::Recognised(is_marked_text))
        .file(
            dir.join("sweep.json"),
            Own::Recognised(is_json_of::<SweepReport>),
        )
        .file(
            dir.join("sweep.png"),
            Own::Recognised(spat_report::is_spat_png),
        )
        .exclusive_folder(dir);
    outputs.check()?;
    Ok(outputs)
}

pub fn run(a: Args) -> Result<()> {
    spat_spec::limits::check_count("--alphas: values", a.alphas.len(), LIST)?;
    let outputs = a.out.as_deref().map(outputs).transpose()?;
    let eps = a.run.eps(a.target.dataset)?;
    let device = parse_device(&a.run.device)?;
    let model = a.target.load_model(&device)?;
    let test = a.target.load_test(a.run.test_subset)?;
    let loader = eval_loader(test, a.run.batch_size_or(EVAL_BATCH_SIZE));
    let config = SweepConfig {
        alphas: a.alphas.clone(),
        eps,
        norm: a.run.norm,
        steps: a.steps,
        step_eps_over_10: a.step_eps_over_10,
        seed: a.run.seed_or(0),
    };
    let report = spat_attacks::sweep_alpha(&*model, eval_batches(&loader, &device), &config, true)?;
    let json = serde_json::to_string_pretty(&report)?;
    let md = markdown(&report);
    if let (Some(dir), Some(outputs)) = (&a.out, &outputs) {
        let mut marked = md.clone();
        mark_text(&mut marked, "spat sweep-alpha");
        outputs.write(&dir.join("sweep.md"), marked.as_bytes())?;
        let png = plot(&report).render(900, 600).to_png();
        outputs.write(&dir.join("sweep.png"), &png.map_err(|e| anyhow!("{e}"))?)?;
        // Written last: its presence means the sweep is complete.
        outputs.write(&dir.join("sweep.json"), json.as_bytes())?;
    }
    if a.json {
        println!("{json}");
    } else {
        print!("{md}");
    }
    Ok(())
}
