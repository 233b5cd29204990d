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
//! test prefix in `shared/data`) load as what they are.

mod augment;
mod dataset;
mod error;
mod formats;
#[doc(hidden)]
pub mod fuzzing;
mod image_set;
mod loader;
mod pickle;
mod stats;

pub use augment::Augmentation;
pub use dataset::{cifar100_coarse_class_names, Dataset, Split};
pub use error::{Error, Result};
pub use formats::{
    load, load_cifar10, load_cifar100, load_stl10, parse_cifar10, parse_cifar100, parse_stl10,
    CIFAR100_RECORD_BYTES, CIFAR10_RECORD_BYTES, STL10_IMAGE_BYTES,
};
pub use image_set::ImageSet;
pub use loader::{BatchSource, Loader, MixedLoader};
pub use pickle::{load_pseudo_labeled, parse_pseudo_labeled};
pub use stats::{split_stats, SplitStats};
