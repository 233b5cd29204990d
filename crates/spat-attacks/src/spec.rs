//! Attacks from their specs (spat-spec's [`AttackSpec`]: `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3`,
//! `apgd-ce,apgd-t,autoattack`).

use spat_spec::{AttackSpec, AutoAttackVersion};

use crate::apgd::{Apgd, ApgdTargeted};
use crate::attack::{Attack, Fgsm, Pgd};
use crate::autoattack::{AutoAttack, Part};
use crate::fab::Fab;
use crate::restarts::PgdRestarts;
use crate::square::Square;

/// The AutoAttack attack `spec` names at radius `eps`, with the reference's settings for what the
/// spec does not say; `None` for any other spec.
pub fn autoattack_part(spec: &AttackSpec, eps: f64) -> Option<Part> {
    Some(match *spec {
        AttackSpec::Apgd {
            loss,
            steps,
            restarts,
            eot,
        } => {
            let mut a = Apgd::new(eps, loss);
            a.config.steps = steps;
            a.config.restarts = restarts;
            a.config.eot_iter = eot;
            Part::Apgd(a)
        }
        AttackSpec::ApgdTargeted {
            steps,
            restarts,
            targets,
        } => {
            let mut a = ApgdTargeted::new(eps);
            a.config.steps = steps;
            a.config.restarts = restarts;
            a.target_classes = targets;
            Part::ApgdTargeted(a)
        }
        AttackSpec::Fab {
            steps,
            restarts,
            targets,
        } => {
            let mut a = match targets {
                Some(k) => Fab {
                    target_classes: k,
                    ..Fab::targeted(eps)
                },
                None => Fab::untargeted(eps),
            };
            a.steps = steps;
            a.restarts = restarts;
            Part::Fab(a)
        }
        AttackSpec::Square { queries, restarts } => Part::Square(Square {
            queries,
            restarts,
            ..Square::new(eps)
        }),
        _ => return None,
    })
}

/// The AutoAttack ensemble `spec` names at radius `eps`; `None` for any other spec.
pub fn autoattack(spec: &AttackSpec, eps: f64) -> Option<AutoAttack> {
    match *spec {
        AttackSpec::AutoAttack {
            version: AutoAttackVersion::Standard,
        } => Some(AutoAttack::standard(eps)),
        AttackSpec::AutoAttack {
            version: AutoAttackVersion::Rand,
        } => Some(AutoAttack::rand(eps)),
        _ => None,
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
            pgd.step_size = step.size(eps);
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
                step.size(eps),
                restarts,
                every_iterate,
            )))
        }
        AttackSpec::Apgd { .. }
        | AttackSpec::ApgdTargeted { .. }
        | AttackSpec::Fab { .. }
        | AttackSpec::Square { .. } => autoattack_part(spec, eps).map(Part::into_attack),
        AttackSpec::AutoAttack { .. } => {
            autoattack(spec, eps).map(|a| Box::new(a) as Box<dyn Attack>)
        }
    }
}
