//! Attacks from their specs (spat-spec's [`AttackSpec`]: `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3`).

use spat_spec::{AttackSpec, StepRule};

use crate::attack::{evaluation_step_size, Attack, Fgsm, Pgd};

/// The attack `spec` names, at radius `eps`; `None` for [`AttackSpec::Clean`].
pub fn build(spec: &AttackSpec, eps: f64) -> Option<Box<dyn Attack>> {
    match *spec {
        AttackSpec::Clean => None,
        AttackSpec::Fgsm => Some(Box::new(Fgsm::new(eps))),
        AttackSpec::Pgd { steps, loss, step } => {
            let mut pgd = Pgd::evaluation(eps, steps, loss);
            pgd.step_size = match step {
                StepRule::EvaluationScripts => evaluation_step_size(eps),
                StepRule::EpsOver10 => eps / 10.0,
            };
            Some(Box::new(pgd))
        }
    }
}
