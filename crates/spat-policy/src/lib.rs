//! spat's training policy, without any ML dependency: the thesis's settings for every method and
//! data set, each with its source, and how a user's request becomes the one [`RunConfig`](spat_spec::RunConfig) of a
//! run. The trainer (spat-train, which re-exports this crate) and the reproduction harness
//! (spat-reproduce, which lists every setting with its source) both read it, so the two cannot
//! disagree.
//!
//! Where the thesis is silent, the reference repository it names decides (file and line at the
//! commit read, [`Ref`]); what neither states is spat's choice and says why ([`Source::Spat`]).
//! In short ([`PaperSettings`] has each setting with its source):
//!
//! * CIFAR-10 (§6.1.1, "we follow all the settings in MART"): SGD momentum 0.9, weight decay
//!   7e-4, lr 0.1 ÷10 at epochs 75 and 90, PGD-10 with step ε/4 at ε = 8/255, TRADES β 6, MART
//!   λ 5; batch 128 and 90 epochs from MART's `train_wideresnet.py`.
//! * CIFAR-100: the same, with each method's own weight decay (TRADES 2e-4, MART 7e-4, Madry
//!   2e-4).
//! * STL-10 (§6.1.3): 200 epochs, batch 32, drops at 150 and 180 (spat's choice).
//! * With pseudo-labelled data (RST, §6.1.2): semisup-adv's `robust_self_training.py` defaults:
//!   batch 256, half pseudo-labelled, 200 epochs of 50,000 images, cosine lr 0.1, Nesterov
//!   momentum, weight decay 5e-4, ε 0.031 with step 0.007, β 6.
//! * The training adversary ([`training_adversary`]) starts and runs batch norm as each method's
//!   reference does; an ε given by the user brings the step ε/4 with it unless the step is given
//!   too; a validation split is held out only when asked.
//!
//! ```
//! use spat_policy::{PaperSettings, RunRequest};
//! use spat_spec::{Dataset, Method};
//! let mut request = RunRequest::new("wrn-34-10", Dataset::Cifar100, "data", Method::Trades);
//! request.spat_alpha = Some(0.1); // TRADES + SPAT
//! let config = request.configure()?;
//! let settings = PaperSettings::of_config(&config);
//! assert_eq!(config.weight_decay, settings.weight_decay.value);
//! println!("weight decay {} from {}", config.weight_decay, settings.weight_decay.source);
//! # Ok::<(), spat_spec::Error>(())
//! ```
#![warn(missing_docs)]

mod adversary;
mod paper;
mod request;
mod source;

pub use adversary::{training_adversary, TrainingAdversary};
pub use paper::{
    paper_config, AdversaryStart, AttackSteps, LearningRate, Momentum, PaperSettings, Step,
    PAPER_EPS, RST_EPS, RST_STEP, RST_UNLABELED_FRACTION,
};
pub use request::RunRequest;
pub use source::{Ref, Source, Sourced};

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
