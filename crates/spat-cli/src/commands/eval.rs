//! `spat eval`: clean accuracy and accuracy under a list of attacks.

use anyhow::Result;
use spat_attacks::AttackSpec;

use super::common::{eval_batches, eval_loader, parse_device, AttackRunArgs, CheckpointArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: CheckpointArgs,
    /// Comma-separated attacks: clean, fgsm, pgdN (PGD-CE), cwN (CW∞ by PGD), pgd-kl / pgdN-kl,
    /// pgd-ls:A / pgdN-ls:A (PGD-LS), any with @eps/10 for step ε/10 or @step=S; AutoAttack's
    /// apgd-ce, apgd-dlr, apgd-t, fab-t, square (apgdNxR-ce, squareQ, @targets=K, @eot=K), and
    /// autoattack (standard) / autoattack-rand. Default: §6.1.1's clean,fgsm,pgd20,cw30.
    #[arg(long, default_value = "clean,fgsm,pgd20,cw30")]
    pub attacks: String,
    #[command(flatten)]
    pub run: AttackRunArgs,
    /// Print one JSON object instead of a table: {"examples", "eps", "norm", "accuracy": {"ATTACK": %},
    /// "worst_case": %}, attacks by their canonical names (`pgd-kl` is `pgd20-kl`); with an
    /// AutoAttack, also "autoattack": {"NAME": {"stages": [{"attack", "robust", "seconds"}],
    /// "robust", "seconds", "warnings", ...}}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<()> {
    // Attack names are checked before anything slow happens.
    let specs = AttackSpec::parse_list(&a.attacks)?;
    let eps = a.run.eps(a.target.dataset)?;
    let device = parse_device(&a.run.device)?;
    let model = a.target.load_model(&device)?;
    let test = a.target.load_test(a.run.test_subset)?;
    let loader = eval_loader(test, a.run.batch_size);
    let report = spat_attacks::evaluate(
        &*model,
        eval_batches(&loader, &device),
        &specs,
        eps,
        a.run.norm,
        a.run.seed,
        true,
    )?;
    tracing::info!(examples = report.examples, eps = report.eps, norm = %report.norm, "evaluated");
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} test images, {} eps {:.5}:",
            report.examples, report.norm, report.eps
        );
        for (name, acc) in &report.accuracy {
            println!("  {name:<16} {acc:>6.2} %");
        }
        println!("  {:<16} {:>6.2} %", "worst case", report.worst_case);
        for (name, aa) in &report.autoattack {
            println!(
                "{name} ({:.1} s), robust accuracy after each attack:",
                aa.seconds
            );
            for stage in &aa.stages {
                println!(
                    "  {:<16} {:>6.2} %  ({:.1} s)",
                    stage.attack, stage.robust, stage.seconds
                );
            }
            for w in &aa.warnings {
                println!("  warning: {w}");
            }
        }
    }
    Ok(())
}
