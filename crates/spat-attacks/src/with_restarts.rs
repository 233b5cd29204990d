//! Random restarts for any attack: run it again on the examples every earlier run failed to fool,
//! keeping the first adversarial example found (the restart scheme of the reference AutoAttack's
//! `perturb`). A library type only: the spec `pgdNxR` means semisup-adv's evaluation PGD
//! ([`crate::PgdRestarts`]), which judges every iterate; this wrapper judges each run's output.

use candle_core::Tensor;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::Attack;
use crate::{rows, Error, Result};

/// `attack` run up to `restarts` times per example; the random draws of successive runs follow
/// each other in the caller's generator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WithRestarts<A> {
    pub attack: A,
    pub restarts: usize,
    /// How the model runs when deciding which examples are fooled.
    pub mode: Mode,
}

impl<A> WithRestarts<A> {
    pub fn new(attack: A, restarts: usize) -> Self {
        Self {
            attack,
            restarts,
            mode: Mode::Eval,
        }
    }
}

impl<A: Attack> Attack for WithRestarts<A> {
    fn perturb(
        &self,
        model: &dyn Classifier,
        x: &Tensor,
        y: &Tensor,
        rng: &mut HostRng,
    ) -> Result<Tensor> {
        if self.restarts == 0 {
            return Err(Error::InvalidArgument(
                "an attack needs at least one run (restarts >= 1)".into(),
            ));
        }
        let x = x.detach();
        let robust = rows::correct(model, &x, y, self.mode)?;
        let (adv, _) = rows::on_survivors(&x, y, robust, self.restarts, |xs, ys, _| {
            let adv = self.attack.perturb(model, xs, ys, rng)?;
            let fooled = rows::misclassified(model, &adv, ys, self.mode)?;
            Ok((adv, fooled))
        })?;
        Ok(adv)
    }
}
