//! Random restarts for any attack: run it again on the examples every earlier run failed to fool,
//! keeping the first adversarial example found (the restart scheme of the reference AutoAttack's
//! `perturb`). A library type only: the spec `pgdNxR` means semisup-adv's evaluation PGD
//! ([`crate::PgdRestarts`]), which judges every iterate; this wrapper judges each run's output.

use candle_core::Tensor;
use spat_core::rng::HostRng;
use spat_core::{Classifier, Mode};

use crate::attack::Attack;
use crate::{rows, Error, Result};

/// `attack` run up to `restarts` times per example, each run only on the examples every earlier
/// run failed to fool; the random draws of successive runs follow each other in the caller's
/// generator. Inputs and output as [`Attack::perturb`]'s.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use spat_attacks::Attack;
/// let dev = Device::Cpu;
/// let model = spat_models::build("tiny", 10, &dev, 0)?; // any spat_core::Classifier
/// let mut rng = spat_core::rng::host_rng(0, 0);
/// let x = spat_core::rng::uniform(&mut rng, (4, 3, 32, 32), 0.0, 1.0, &dev)?; // images in [0, 1]
/// let y = Tensor::new(&[0u32, 1, 2, 3], &dev)?; // labels
/// use spat_attacks::{Pgd, WithRestarts};
/// let pgd_x5 = WithRestarts::new(Pgd::pgd20(8.0 / 255.0), 5);
/// let x_adv = pgd_x5.perturb(model.as_ref(), &x, &y, &mut rng)?;
/// assert_eq!(x_adv.dims(), x.dims());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WithRestarts<A> {
    /// The attack run on each round's survivors.
    pub attack: A,
    /// Most runs per example, ≥ 1.
    pub restarts: usize,
    /// How the model runs when deciding which examples are fooled.
    pub mode: Mode,
}

impl<A> WithRestarts<A> {
    /// `attack` up to `restarts` times, judged with the model in `Mode::Eval`.
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
