//! Data sets for spat.
//!
//! * Readers for the official binary layouts of CIFAR-10 (`cifar-10-batches-bin`), CIFAR-100
//!   (`cifar-100-binary`) and STL-10 (`stl10_binary`), and a pickle reader for RST's
//!   `ti_500K_pseudo_labeled.pickle` that understands only the handful of opcodes and numpy globals
//!   such a file uses, so it can never run code ([`load_pseudo_labeled`]).
//! * [`ImageSet`]: `u8` images, planar CHW, with labels; subsets and plain batches.
//! * [`Loader`] and [`MixedLoader`]: seeded, bit-reproducible mini-batches (`f32` in `[0, 1]`,
//!   NCHW) with random-crop + horizontal-flip [`Augmentation`]. All randomness comes from
//!   [`spat_core::rng::host_rng`], never from candle.
//!
//! Record counts always come from file sizes, so partial files (such as the 1,000-record CIFAR-10
//! test prefix in `shared/data`) load as what they are. The data sets, their names and their file
//! layouts are spat-spec's [`Dataset`]; the readers give them meaning.
#![warn(missing_docs)]

mod augment;
mod error;
mod formats;
#[doc(hidden)]
pub mod fuzzing;
mod image_set;
mod loader;
mod pickle;
mod stats;

pub use augment::Augmentation;
pub use error::{Error, Result};
pub use formats::{
    load, load_cifar10, load_cifar100, load_stl10, parse_cifar10, parse_cifar100, parse_stl10,
};
pub use image_set::{to_u8_images, ImageSet};
pub use loader::{BatchSource, Loader, MixedLoader};
pub use pickle::{load_pseudo_labeled, parse_pseudo_labeled};
pub use spat_spec::dataset::{
    cifar100_coarse_class_names, CIFAR100_RECORD_BYTES, CIFAR10_RECORD_BYTES, STL10_IMAGE_BYTES,
};
pub use spat_spec::report::SplitStats;
pub use spat_spec::{Dataset, Split};
pub use stats::split_stats;

// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
