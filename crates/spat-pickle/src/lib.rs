//! Python pickles and PyTorch checkpoints, read without running any of their code.
//!
//! Python's pickle format is a small stack machine whose `GLOBAL` + `REDUCE` opcodes call any
//! importable function, which is why `pickle.load` (and `torch.load(weights_only=False)`) on an
//! untrusted file is arbitrary code execution. This crate interprets the machine instead: values
//! are plain data in an arena, and the few callables a tensor or numpy file names
//! (`torch._utils._rebuild_tensor_v2`, `collections.OrderedDict`, `numpy.core.multiarray._reconstruct`,
//! ...) are evaluated by this crate's own code. Any other callable is either refused
//! ([`Policy::Refuse`]) or kept as an inert record of its name ([`Policy::Opaque`]); nothing is
//! ever imported or executed.
//!
//! Every reader is bounded before it allocates ([`Limits`]): nesting depth, the bytes a length
//! field may claim (never more than the input holds), the interpreter's total memory, and the
//! bytes of tensors a checkpoint may materialise. The value arena is flat, so neither building
//! nor dropping a value recurses, whatever the nesting.
//!
//! * [`Pickle::load`]: one pickle stream, with accessors for dicts, lists, numpy arrays.
//! * [`torch::read`]: a `torch.save` file (zip since PyTorch 1.6, the legacy stream of 0.4–1.5,
//!   or the tar of PyTorch before 0.1.10) into named raw tensors (dtype, shape, strides, offset,
//!   little-endian bytes).
//!
//! The crate has no ML-framework dependency, so it is fuzzed on its own (`fuzz/`).
#![warn(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;
mod machine;
pub mod numpy;
pub mod torch;

pub use machine::{Bytes, Global, Object, Pickle, TensorRef, Value};

/// Errors of this crate. Callers add the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A pickle stream that is malformed, refused or beyond a limit, at byte `offset` of the
    /// stream; `part` names the stream inside a container (`archive/data.pkl`, ...).
    #[error("{}pickle (byte {offset}): {message}", part.as_deref().map(|p| format!("{p}: ")).unwrap_or_default())]
    Pickle {
        /// The container member holding the stream, if the pickle is inside one.
        part: Option<String>,
        /// Byte offset in the stream of the opcode where reading stopped.
        offset: usize,
        /// What is wrong there.
        message: String,
    },
    /// A container or value that is not what a checkpoint must be.
    #[error("{0}")]
    Format(String),
}

impl Error {
    pub(crate) fn format(message: impl Into<String>) -> Self {
        Error::Format(message.into())
    }

    /// The same error, located in the container member `part`.
    pub(crate) fn in_part(self, part: &str) -> Self {
        match self {
            Error::Pickle {
                part: None,
                offset,
                message,
            } => Error::Pickle {
                part: Some(part.to_string()),
                offset,
                message,
            },
            other => other,
        }
    }
}

/// `Result` with spat-pickle's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bounds a reader checks before it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of containers (tuples, lists, dicts, objects) a pickle may build. The
    /// deepest a real checkpoint nests is under ten (a dict of a dict of tensors whose arguments
    /// are tuples); Python itself cannot print or compare much beyond a thousand.
    pub max_depth: usize,
    /// Bytes the interpreter may hold for values, its stack and its memo (not counting the input,
    /// which strings, byte strings and array data are borrowed from).
    pub max_interpreter_bytes: usize,
    /// Bytes of tensors that reading a checkpoint may produce beyond those stored in the file:
    /// a tensor whose strides repeat elements (a broadcast view) or a byte-swapped storage
    /// counts here, so a small hostile file cannot ask for gigabytes.
    pub max_extra_tensor_bytes: usize,
    /// Dimensions of one tensor or array.
    pub max_dims: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 200,
            max_interpreter_bytes: 1 << 30,
            max_extra_tensor_bytes: 1 << 30,
            max_dims: 64,
        }
    }
}

/// What the interpreter does with a callable it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse the pickle at the `GLOBAL` opcode (a file of known shape, such as RST's dict of
    /// numpy arrays, has no business naming anything else).
    Refuse,
    /// Keep `module.name` as an inert [`Object::Opaque`] record of the call, never resolved or
    /// called: a checkpoint dict may hold an `argparse.Namespace` or optimiser objects beside its
    /// state dict, and reading the state dict must not depend on them.
    Opaque,
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
