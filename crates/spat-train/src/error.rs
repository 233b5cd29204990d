use std::path::PathBuf;

/// Errors of `spat-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Core(#[from] spat_core::Error),
    #[error(transparent)]
    Data(#[from] spat_data::Error),
    #[error(transparent)]
    Attack(#[from] spat_attacks::Error),
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    /// The training curves could not be drawn.
    #[error("{0}")]
    Report(#[from] spat_report::Error),
    /// A checkpoint, state or metrics file that cannot be used to resume.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// The training loss stopped being a finite number; the last checkpoint is left untouched.
    #[error("training loss is {loss} at epoch {epoch}, step {step} (of {steps}); stopping, the last good checkpoint (epoch {last_good_epoch}) is kept")]
    NonFiniteLoss {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f32,
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
