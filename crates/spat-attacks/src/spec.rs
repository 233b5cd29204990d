//! Attacks from their specs (spat-spec's [`AttackSpec`]: `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3`).

use spat_spec::{AttackSpec, StepRule};

use crate::attack::{evaluation_step_size, Attack, Fgsm, Pgd};
use crate::restarts::PgdRestarts;

fn step_size(step: StepRule, eps: f64) -> f64 {
    match step {
        StepRule::EvaluationScripts => evaluation_step_size(eps),
        StepRule::EpsOver10 => eps / 10.0,
        StepRule::Fixed(size) => size.value(),
    }
}

/// The attack `spec` names, at radius `eps` (or the spec's own radius, `@eps=E`); `None` for
/// [`AttackSpec::Clean`].
pub fn build(spec: &AttackSpec, eps: f64) -> Option<Box<dyn Attack>> {
    match *spec {
        AttackSpec::Clean => None,
        AttackSpec::Fgsm => Some(Box::new(Fgsm::new(eps))),
        AttackSpec::Pgd { steps, loss, step } => {
            let mut pgd = Pgd::evaluation(eps, steps, loss);
            pgd.step_size = step_size(step, eps);
            Some(Box::new(pgd))
        }
        AttackSpec::PgdRestarts {
            steps,
            restarts,
            step,
            eps: own,
            every_iterate,
        } => {
            let eps = own.map_or(eps, |r| r.value());
            Some(Box::new(PgdRestarts::rst(
                eps,
                steps,
                step_size(step, eps),
                restarts,
                every_iterate,
            )))
        }
    }
}
