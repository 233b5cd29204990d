//! Attacks from their specs (spat-spec's [`AttackSpec`]: `clean,fgsm,pgd20,cw30,pgd-kl,pgd-ls:0.3`,
//! `apgd-ce,apgd-t,autoattack`).

use spat_spec::{AttackSpec, AutoAttackVersion, Norm};

use crate::apgd::{Apgd, ApgdTargeted};
use crate::attack::{Attack, Fgsm, Pgd};
use crate::autoattack::{AutoAttack, Part};
use crate::fab::Fab;
use crate::restarts::PgdRestarts;
use crate::square::Square;

/// The AutoAttack attack `spec` names at radius `eps` in `norm`, with the reference's settings for
/// what the spec does not say; `None` for any other spec.
pub fn autoattack_part(spec: &AttackSpec, eps: f64, norm: Norm) -> Option<Part> {
    let part = match *spec {
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
    };
    Some(part.in_norm(norm))
}

/// The AutoAttack ensemble `spec` names at radius `eps` in `norm`; `None` for any other spec.
pub fn autoattack(spec: &AttackSpec, eps: f64, norm: Norm) -> Option<AutoAttack> {
    let aa = match *spec {
        AttackSpec::AutoAttack {
            version: AutoAttackVersion::Standard,
        } => AutoAttack::standard(eps),
        AttackSpec::AutoAttack {
            version: AutoAttackVersion::Rand,
        } => AutoAttack::rand(eps),
        _ => return None,
    };
    Some(aa.in_norm(norm))
}

/// The attack `spec` names, at radius `eps` (or the spec's own radius, `@eps=E`) in `norm`; `None`
/// for [`AttackSpec::Clean`]. Every attack has an L2 form: `fgsm` is FGM, the PGD forms (CE, KL,
/// LS, CW margin, RST's restarts) are PGD-L2 with their loss and their step rule's step (the same
/// fraction of ε), and AutoAttack's attacks are the reference's L2 versions.
pub fn build(spec: &AttackSpec, eps: f64, norm: Norm) -> Option<Box<dyn Attack>> {
    match *spec {
        AttackSpec::Clean => None,
        AttackSpec::Fgsm => Some(Box::new(Fgsm {
            norm,
            ..Fgsm::new(eps)
        })),
        AttackSpec::Pgd { steps, loss, step } => {
            let mut pgd = Pgd::evaluation(eps, steps, loss).in_norm(norm);
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
            let mut rst = PgdRestarts::rst(eps, steps, step.size(eps), restarts, every_iterate);
            rst.pgd.norm = norm;
            Some(Box::new(rst))
        }
        AttackSpec::Apgd { .. }
        | AttackSpec::ApgdTargeted { .. }
        | AttackSpec::Fab { .. }
        | AttackSpec::Square { .. } => autoattack_part(spec, eps, norm).map(Part::into_attack),
        AttackSpec::AutoAttack { .. } => {
            autoattack(spec, eps, norm).map(|a| Box::new(a) as Box<dyn Attack>)
        }
    }
}
