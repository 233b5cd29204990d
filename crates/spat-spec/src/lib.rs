//! The vocabulary of spat, with no ML dependency.
//!
//! Everything two spat crates must agree on, and that xtask and spat-report (which never link
//! candle) must be able to name, lives here:
//!
//! * [`Dataset`], [`Split`] and the official file layouts ([`dataset`]);
//! * [`Mode`], [`Precision`], the model presets and their sizes ([`model`]); networks by name at
//!   any size ([`ModelName`]) and RobustBench's model zoo as names ([`robustbench`]);
//! * attack specs and their grammar ([`AttackSpec`], [`AttackLoss`]), and radii as written
//!   ([`Radius`]: `8/255` or `0.031`), and the [`Norm`] they are measured in (L∞ or L2);
//! * training [`Method`]s and the one run configuration [`RunConfig`] (`config.json`);
//! * the typed schema of every file the `spat` binary writes or prints ([`run`], [`report`],
//!   [`curves`]);
//! * crash-safe file writes and typed JSON reads ([`fs`]), and the checksum spat uses ([`Fnv1a`]).
//!
//! It holds data and the rules that define it (what a name means, how a schedule decays); numerics
//! live in the crates that run them, training policy (defaults per method and data set) in
//! spat-policy.
#![warn(missing_docs)]

pub mod attack;
pub mod curves;
pub mod dataset;
pub mod fs;
pub mod fuzzing;
pub mod hash;
pub mod limits;
pub mod model;
pub mod model_name;
pub mod norm;
pub mod radius;
pub mod report;
pub mod robustbench;
pub mod run;

pub use attack::{
    autoattack_parts, evaluation_start, evaluation_step_size, ApgdLoss, AttackLoss, AttackSpec,
    AutoAttackVersion, RandomStart, StepRule, CW_KAPPA, SPEC_FORMS,
};
pub use dataset::{Dataset, Split};
pub use hash::Fnv1a;
pub use model::{model_size, Mode, ModelSize, Precision, MODEL_SIZES, PRESETS};
pub use model_name::{Activation, ModelName, PreActShortcut, MODEL_FORMS};
pub use norm::Norm;
pub use radius::Radius;
pub use run::{InitWeights, LrSchedule, Method, PseudoLabeled, RunConfig};

use std::path::PathBuf;

/// Errors of spat-spec: a name that means nothing, or a file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name, spec or configuration value outside the vocabulary.
    #[error("{0}")]
    Invalid(String),
    /// I/O on a named file. The OS error is part of the message and not a `source`, so an error
    /// chain printed as one line (`{:#}`) names it once.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// A file that exists but does not hold what its kind requires.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What it holds instead, or what is wrong with it.
        message: String,
    },
}

impl Error {
    /// An I/O error on the file at `path`, naming it.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}

/// `Result` with spat-spec's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
