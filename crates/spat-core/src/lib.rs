//! Shared vocabulary of spat.
//!
//! The tensor side of spat's vocabulary (the rest, free of candle, is `spat-spec`): [`Classifier`]
//! is the one thing an attack needs from a model, [`Network`] adds the named variables a trainer
//! needs, [`Batch`] is what a data loader yields, [`VarStore`] holds parameters and buffers under
//! their PyTorch `state_dict` names, [`Normalized`] wraps a classifier that expects normalised
//! inputs so that attacks still work on `[0, 1]` pixels, and [`rng`] makes every random draw come from a seeded host
//! generator so that runs are reproducible. [`Mode`] (how a network treats batch normalisation) is
//! re-exported from spat-spec.
#![warn(missing_docs)]

/// A mini-batch of images and labels ([`Batch`]).
pub mod batch;
pub mod checkpoint;
/// spat-core's [`Error`] and [`Result`].
pub mod error;
pub mod normalize;
pub mod rng;
pub mod store;

pub use batch::Batch;
pub use checkpoint::{
    convert_checkpoint, read_checkpoint, Checkpoint, CheckpointFormat, ConvertReport, LoadReport,
};
pub use error::{Error, Result};
pub use normalize::{Normalization, Normalized};
pub use spat_spec::Mode;
pub use store::{Mismatch, VarKind, VarStore};

use candle_core::Tensor;

/// Anything that maps a batch of images to logits.
///
/// This is all an attack needs: implement it for your own candle model and every attack in
/// `spat-attacks` works on it. Inputs are `f32` images in `[0, 1]`, NCHW; output is `(N, K)` logits.
/// It is `Sync` because attacks in `Mode::Eval` run it on parts of a batch from several threads
/// at once.
pub trait Classifier: Sync {
    /// Logits `(N, K)` of images `x` (`f32` in `[0, 1]`, `(N, C, H, W)`), computed in `mode`
    /// (how batch normalisation behaves). Trainers differentiate it with respect to the weights.
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor>;

    /// Logits for a pass whose only gradient of interest is the one with respect to `x`: an
    /// attack's inner loop, or an evaluation. An implementation may enter its parameters into the
    /// graph as constants, so that backward skips every weight gradient (about a third of the
    /// arithmetic of a forward+backward pass). The values equal [`Classifier::logits`]'s.
    fn logits_wrt_input(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        self.logits(x, mode)
    }
}

impl<C: Classifier + ?Sized> Classifier for &C {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        (**self).logits(x, mode)
    }
    fn logits_wrt_input(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        (**self).logits_wrt_input(x, mode)
    }
}

impl<C: Classifier + ?Sized> Classifier for Box<C> {
    fn logits(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        (**self).logits(x, mode)
    }
    fn logits_wrt_input(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        (**self).logits_wrt_input(x, mode)
    }
}

/// A classifier whose weights live in a [`VarStore`]: what a trainer optimises and checkpoints.
pub trait Network: Classifier {
    /// Parameters (trainable) and buffers (running statistics), under PyTorch `state_dict` names.
    fn var_store(&self) -> &VarStore;
    /// Number of output classes.
    fn num_classes(&self) -> usize;
}

impl<N: Network + ?Sized> Network for Box<N> {
    fn var_store(&self) -> &VarStore {
        (**self).var_store()
    }
    fn num_classes(&self) -> usize {
        (**self).num_classes()
    }
}

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
