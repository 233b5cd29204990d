//! Adversarial attacks under an L∞ or L2 ball ([`Norm`]) and robust evaluation, for any model that
//! implements [`spat_core::Classifier`].
//!
//! PGD-LS — PGD on a label-smoothed cross-entropy — is the training adversary of
//! semantics-preserving adversarial training (SPAT); with `alpha = 0` it is PGD-CE.
//!
//! Every attack takes the [`spat_core::Mode`] its model runs in: evaluation attacks use
//! `Mode::Eval`; a trainer that crafts its adversary with batch statistics uses
//! `Mode::TrainFrozenBn` to leave the BN running statistics alone, or `Mode::Train` where the
//! method's reference lets every attack step move them (Madry, as Rice et al.). Input gradients
//! come from candle's autograd on a temporary `Var` through
//! [`spat_core::Classifier::logits_wrt_input`]; the gradient store is dropped inside each step and
//! the returned examples are detached, so an attack leaves no state behind except what `Mode::Train`
//! asks for. Random starts are drawn from the caller's [`HostRng`]: same generator state, same
//! examples. Attacks are named by spat-spec's [`AttackSpec`] and built with [`build`].
//!
//! Attacking your own candle model:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use spat_attacks::{Attack, AttackLoss, Pgd};
//! use spat_core::{Classifier, Mode};
//!
//! /// A linear classifier on flattened 3×4×4 images.
//! struct Linear { w: Tensor }
//! impl Classifier for Linear {
//!     fn logits(&self, x: &Tensor, _mode: Mode) -> candle_core::Result<Tensor> {
//!         x.flatten_from(1)?.matmul(&self.w.t()?)
//!     }
//! }
//!
//! let dev = Device::Cpu;
//! let model = Linear { w: Tensor::randn(0f32, 1., (10, 48), &dev)? };
//! let x = Tensor::rand(0f32, 1., (2, 3, 4, 4), &dev)?;
//! let y = Tensor::new(&[3u32, 7], &dev)?;
//! let pgd = Pgd::training(8.0 / 255.0, AttackLoss::LabelSmoothed { alpha: 0.3 }, Mode::Eval);
//! let mut rng = spat_core::rng::host_rng(0, 0);
//! let x_adv = pgd.perturb(&model, &x, &y, &mut rng)?;
//! let gap = (x_adv - &x)?.abs()?.max_all()?.to_scalar::<f32>()?;
//! assert!(gap <= 8.0 / 255.0 + 1e-6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod apgd;
pub mod attack;
pub mod autoattack;
pub mod eval;
pub mod fab;
pub mod losses;
pub mod restarts;
mod rows;
pub mod spec;
pub mod square;
pub mod with_restarts;

pub use apgd::{Apgd, ApgdConfig, ApgdLoss, ApgdRun, ApgdTargeted, CheckpointSchedule};
pub use attack::{
    correct, evaluation_step_size, l2_start, predictions, Attack, AttackLoss, Fgsm, Norm, Pgd,
    RandomStart, CW_KAPPA,
};
pub use autoattack::AutoAttack;
pub use eval::{
    adversarial_columns, evaluate, input_gradients, sweep_alpha, AdversarialColumn, SweepConfig,
};
pub use fab::{projection_l2, projection_linf, Fab};
pub use restarts::{Judged, PgdRestarts};
pub use spat_core::rng::HostRng;
pub use spat_spec::report::{EvalReport, SweepAttack, SweepReport, SweepRow};
pub use spat_spec::{AttackSpec, StepRule, SPEC_FORMS};
pub use spec::build;
pub use square::{Square, SquareDraws};
pub use with_restarts::WithRestarts;

/// Errors of spat-attacks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (a shape that does not fit the model, a device mismatch, ...).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An attack spec that spat cannot run.
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    /// An argument outside its range (a negative or non-finite ε, zero iterations, more targets
    /// than wrong classes, ...), named with its value.
    #[error("{0}")]
    InvalidArgument(String),
}

/// `Result` with spat-attacks' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
