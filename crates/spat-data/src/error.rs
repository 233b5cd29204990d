use std::path::PathBuf;

/// Errors of `spat-data`. Every error about a file names that file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed while making a batch.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// I/O on a named file.
    #[error(transparent)]
    Spec(#[from] spat_spec::Error),
    /// A data file that is not there.
    #[error("{}: file not found; {hint}", path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
        /// Where the file comes from (`cargo xtask fetch-data ...`) or what to pass instead.
        hint: String,
    },
    /// A file whose size or layout is not what its format requires.
    #[error("{}: {message}", path.display())]
    Format {
        /// The malformed file.
        path: PathBuf,
        /// What is wrong with its size or layout.
        message: String,
    },
    /// A record whose label is outside the data set's classes.
    #[error("{}: record {record} has label {label}, outside {expected}", path.display())]
    Label {
        /// The file holding the record.
        path: PathBuf,
        /// The record's index in the file (0-based).
        record: usize,
        /// The label the record holds.
        label: i64,
        /// The labels allowed, as a range (`0..10`).
        expected: String,
    },
    /// A pickle that the safe reader refuses or cannot parse.
    #[error("{}: pickle (byte {offset}): {message}", path.display())]
    Pickle {
        /// The pickle file.
        path: PathBuf,
        /// Byte offset of the opcode where reading stopped.
        offset: usize,
        /// What is wrong there.
        message: String,
    },
    /// A bad argument (batch size 0, mismatched sets, unknown data-set name, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        spat_spec::Error::io(path, source).into()
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `Result` with spat-data's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
