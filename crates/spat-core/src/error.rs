use std::path::PathBuf;

/// Errors of `spat-core`: tensor errors, I/O on a named file, and checkpoint mismatches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A weights file that cannot be read, or whose tensors do not match the network.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Weights whose names or shapes do not match the network's variables.
    #[error("{0}")]
    Mismatch(Box<crate::store::Mismatch>),
    /// A file could not be read or written (named), or a vocabulary value is invalid.
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    /// Any other invalid argument or state, described in words (a variable registered twice, a bad
    /// normalisation).
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// An I/O error on the file at `path`, naming it.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        spat_spec::Error::io(path, source).into()
    }
}

/// `Result` with spat-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
