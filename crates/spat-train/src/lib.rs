//! Adversarial training for spat.
//!
//! [`train`] runs one of the thesis' training methods ([`Method`]: standard, Madry, TRADES, MART,
//! RST), each adversarial one optionally with SPAT's label-smoothed adversary
//! ([`RunConfig::spat_alpha`]), on any [`spat_core::Network`], with PyTorch-exact [`Sgd`],
//! per-epoch [`LrSchedule`]s, evaluation after every epoch, and checkpoints from which a killed run
//! resumes bit-identically on the CPU. The training policy — the thesis's settings per method and
//! data set — is [`RunRequest::configure`]; [`load_data`] reads the data a [`RunConfig`] names.
//!
//! ```no_run
//! use spat_spec::{Dataset, Method};
//! use spat_train::{load_data, train, RunRequest, TrainOptions};
//! let mut request = RunRequest::new("wrn-34-10", Dataset::Cifar10, "data", Method::Trades);
//! request.spat_alpha = Some(0.1); // TRADES + SPAT
//! let config = request.configure()?;
//! let data = load_data(&config)?;
//! let model = spat_models::build("wrn-34-10", 10, &candle_core::Device::Cpu, config.seed)?;
//! let dir = std::path::Path::new("runs/trades-spat");
//! let summary = train(&config, &*model, &*data.train, &data.test, dir, TrainOptions::default())?;
//! println!("best PGD-20 accuracy {:?}", summary.best_robust_acc);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod data;
/// The errors training can end with ([`Error`]).
pub mod error;
pub mod faults;
pub mod objectives;
pub mod sgd;
pub mod trainer;

pub use data::{load_data, training_split, RunData, TrainingSplit};
pub use error::{Error, Result};
pub use sgd::{Sgd, SgdConfig};
/// The training policy: spat-policy, which the reproduction harness reads too.
pub use spat_policy as policy;
pub use spat_policy::{paper_config, RunRequest, RST_UNLABELED_FRACTION};
pub use spat_spec::run::{EpochMetrics, TrainSummary};
pub use spat_spec::{LrSchedule, Method, PseudoLabeled, RunConfig};
pub use trainer::{
    inspect_run_dir, sgd_config, train, train_step, train_with_validation, training_adversary,
    training_loss, EpochOutcome, Run, RunDir, TrainOptions,
};

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
