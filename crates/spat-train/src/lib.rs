//! Adversarial training for spat.
//!
//! [`train`] runs one of the thesis' training methods ([`Method`]: Madry, TRADES, MART, RST), each
//! optionally with SPAT's label-smoothed adversary ([`TrainConfig::spat_alpha`]), on any
//! [`spat_core::Network`], with PyTorch-exact [`Sgd`], per-epoch [`LrSchedule`]s, evaluation after
//! every epoch, and checkpoints from which a killed run resumes bit-identically on the CPU.
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use spat_data::{Augmentation, Dataset, Loader, Split};
//! use spat_train::{train, Method, TrainConfig};
//! let dir = Path::new("data");
//! let train_set = Arc::new(spat_data::load(Dataset::Cifar10, dir, Split::Train)?);
//! let test_set = spat_data::load(Dataset::Cifar10, dir, Split::Test)?;
//! let mut config = TrainConfig::paper_defaults("cifar10", Method::Trades)?;
//! config.spat_alpha = Some(0.1); // TRADES + SPAT
//! let loader = Loader::new(train_set, config.batch_size)
//!     .shuffled(config.seed)
//!     .augmented(Augmentation::for_dataset(Dataset::Cifar10));
//! let model = spat_models::build("wrn-34-10", 10, &candle_core::Device::Cpu, config.seed)?;
//! let summary = train(&config, &*model, &loader, &test_set, Path::new("runs/trades-spat"), false)?;
//! println!("best PGD-20 accuracy {:?}", summary.best_robust_acc);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod error;
pub mod objectives;
pub mod sgd;
pub mod trainer;

pub use config::{LrSchedule, Method, RstBase, TrainConfig};
pub use error::{Error, Result};
pub use sgd::{Sgd, SgdConfig};
pub use trainer::{
    train, train_step, training_adversary, training_loss, EpochMetrics, TrainSummary,
};
