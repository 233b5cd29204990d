use std::path::PathBuf;

/// Errors of `spat-core`: tensor errors, I/O on a named file, and checkpoint mismatches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A weights file that cannot be read, or whose tensors do not match the network.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// Weights whose names or shapes do not match the network's variables.
    #[error("{0}")]
    Mismatch(Box<crate::store::Mismatch>),
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    #[error("{0}")]
    Msg(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        spat_spec::Error::io(path, source).into()
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
