use std::path::PathBuf;

/// Errors of `spat-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed (shapes, dtypes, device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Loading or saving variables, checkpoints or normalisation failed.
    #[error(transparent)]
    Core(#[from] spat_core::Error),
    /// Reading the data a configuration names failed.
    #[error(transparent)]
    Data(#[from] spat_data::Error),
    /// An attack (training adversary or evaluation) failed.
    #[error(transparent)]
    Attack(#[from] spat_attacks::Error),
    /// A configuration, attack spec or file of the vocabulary is invalid or unreadable.
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    /// The training curves could not be drawn.
    #[error("{0}")]
    Report(#[from] spat_report::Error),
    /// A checkpoint, state or metrics file that cannot be used to resume.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file that cannot be used.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The training loss stopped being a finite number; the last checkpoint is left untouched.
    #[error("training loss is {loss} at epoch {epoch}, step {step} (of {steps}); stopping, the last good checkpoint (epoch {last_good_epoch}) is kept")]
    NonFiniteLoss {
        /// The epoch in progress (1-based).
        epoch: usize,
        /// The step of the epoch at which the loss was not finite (1-based).
        step: usize,
        /// Steps per epoch.
        steps: usize,
        /// The loss value: NaN or ±∞.
        loss: f32,
        /// The last committed epoch, whose checkpoint is kept (0: none).
        last_good_epoch: usize,
    },
    /// An invalid configuration or argument.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        spat_spec::Error::io(path, source).into()
    }
}

/// `Result` with spat-train's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
