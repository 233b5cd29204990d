//! Mini-batch sources.
//!
//! Every random choice of epoch `e` comes from two host streams of the loader's seed: the order
//! (shuffle, and for [`MixedLoader`] the pseudo-labelled draws) from `(seed, SHUFFLE + e)` and the
//! crops / flips from `(seed, AUGMENT + e)`. An epoch is therefore a pure function of
//! `(seed, epoch)`: a resumed run re-creates it exactly, on any device.

use std::sync::Arc;

use candle_core::Device;
use rand::seq::SliceRandom;
use rand::Rng;
use spat_core::rng::{host_rng, streams, HostRng};
use spat_core::Batch;

use crate::augment::Augmentation;
use crate::error::{Error, Result};
use crate::image_set::{make_batch, ImageSet};

/// Anything that yields the mini-batches of an epoch.
pub trait BatchSource {
    /// Batches in one epoch (the last partial batch counted unless it is dropped).
    fn num_batches(&self) -> usize;
    /// Images per full batch.
    fn batch_size(&self) -> usize;
    /// FNV-1a (16 hex digits) of the images and labels the batches are drawn from, as
    /// [`ImageSet::fingerprint`]: what a resumed run checks it trains on again.
    fn fingerprint(&self) -> String;
    /// Deterministic in (loader seed, epoch): same arguments -> bit-identical batches.
    fn epoch<'a>(
        &'a self,
        epoch: u64,
        device: &'a Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a>;
}

/// Batches over one [`ImageSet`]: in order or shuffled, optionally augmented.
#[derive(Debug, Clone)]
pub struct Loader {
    set: Arc<ImageSet>,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    aug: Augmentation,
    drop_last: bool,
}

impl Loader {
    /// In order, no augmentation, the last partial batch kept.
    pub fn new(set: Arc<ImageSet>, batch_size: usize) -> Self {
        Self {
            set,
            batch_size,
            seed: 0,
            shuffle: false,
            aug: Augmentation::none(),
            drop_last: false,
        }
    }

    /// A fresh permutation every epoch, from the `(seed, SHUFFLE + epoch)` stream.
    pub fn shuffled(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.shuffle = true;
        self
    }

    /// Random crops / flips from the `(seed, AUGMENT + epoch)` stream, `seed` being the shuffle
    /// seed (0 if the loader is not shuffled).
    pub fn augmented(mut self, aug: Augmentation) -> Self {
        self.aug = aug;
        self
    }

    /// Whether the last batch of an epoch is dropped when it is smaller than the batch size
    /// (default: kept).
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// The images the batches are drawn from.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }
}

impl BatchSource for Loader {
    fn fingerprint(&self) -> String {
        self.set.fingerprint()
    }

    fn num_batches(&self) -> usize {
        if self.batch_size == 0 {
            return 0;
        }
        if self.drop_last {
            self.set.len() / self.batch_size
        } else {
            self.set.len().div_ceil(self.batch_size)
        }
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn epoch<'a>(
        &'a self,
        epoch: u64,
        device: &'a Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a> {
        if self.batch_size == 0 {
            return Box::new(std::iter::once(Err(Error::Invalid(
                "batch size must be positive".into(),
            ))));
        }
        let mut order: Vec<usize> = (0..self.set.len()).collect();
        if self.shuffle {
            order.shuffle(&mut host_rng(
                self.seed,
                streams::SHUFFLE.wrapping_add(epoch),
            ));
        }
        order.truncate(self.num_batches() * self.batch_size);
        let mut aug_rng = host_rng(self.seed, streams::AUGMENT.wrapping_add(epoch));
        let set = &*self.set;
        let aug = self.aug;
        let shape = set.shape();
        let batch_size = self.batch_size;
        let mut start = 0;
        Box::new(std::iter::from_fn(move || {
            if start >= order.len() {
                return None;
            }
            let end = (start + batch_size).min(order.len());
            let chunk = &order[start..end];
            start = end;
            let items = chunk.iter().map(|&i| (set, i, aug.draw(&mut aug_rng)));
            Some(make_batch(items, chunk.len(), shape, device))
        }))
    }
}

/// Labelled plus pseudo-labelled data in every batch, the way RST's `SemiSupervisedSampler`
/// (yaircarmon/semisup-adv, `datasets.py`) draws them:
///
/// * each batch holds `u = floor(batch_size * unlabeled_fraction)` pseudo-labelled images and up
///   to `batch_size - u` labelled ones;
/// * the labelled images are consecutive chunks of a random permutation of the labelled set; when
///   the permutation runs out, a new one starts (a chunk cut short by the end of a permutation is
///   topped up with extra pseudo-labelled images, so every batch has `batch_size` images);
/// * the pseudo-labelled images are drawn uniformly *with* replacement;
/// * the images of a batch are shuffled together (so labelled and pseudo-labelled examples are
///   not in two blocks, which matters for batch normalisation);
/// * an epoch is `ceil(len(labelled) / batch_size)` batches, i.e. it passes `len(labelled)`
///   images in all, not `len(labelled)` labelled ones. (RST fixes `num_batches =
///   ceil(50000 / batch_size)` for CIFAR-10: with fraction 0.5 an "epoch" sees half the labelled
///   set and as many pseudo-labelled images.) Override with [`MixedLoader::with_num_batches`].
///
/// Both kinds of image get the same augmentation.
#[derive(Debug, Clone)]
pub struct MixedLoader {
    labeled: Arc<ImageSet>,
    unlabeled: Arc<ImageSet>,
    batch_size: usize,
    unlabeled_per_batch: usize,
    num_batches: usize,
    seed: u64,
    aug: Augmentation,
}

impl MixedLoader {
    /// Batches of `batch_size` images, `round(batch_size · unlabeled_fraction)` of them drawn from
    /// `unlabeled` and the rest from `labeled`, both shuffled from `seed` and augmented by `aug`.
    /// An error for a batch size of 0, a fraction outside `[0, 1)`, or an empty labelled set.
    pub fn new(
        labeled: Arc<ImageSet>,
        unlabeled: Arc<ImageSet>,
        batch_size: usize,
        unlabeled_fraction: f64,
        seed: u64,
        aug: Augmentation,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Invalid("batch size must be positive".into()));
        }
        if !(0.0..1.0).contains(&unlabeled_fraction) {
            return Err(Error::Invalid(format!(
                "unlabeled fraction must be in [0, 1), got {unlabeled_fraction}"
            )));
        }
        if labeled.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the labelled set is empty",
                labeled.source().display()
            )));
        }
        if labeled.shape() != unlabeled.shape() || labeled.num_classes() != unlabeled.num_classes()
        {
            return Err(Error::Invalid(format!(
                "labelled set {} ({:?}, {} classes) and pseudo-labelled set {} ({:?}, {} classes) do not match",
                labeled.source().display(),
                labeled.shape(),
                labeled.num_classes(),
                unlabeled.source().display(),
                unlabeled.shape(),
                unlabeled.num_classes()
            )));
        }
        // Same rounding as RST: int(batch_size * unsup_fraction).
        let unlabeled_per_batch = (batch_size as f64 * unlabeled_fraction).floor() as usize;
        if unlabeled_per_batch > 0 && unlabeled.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: the pseudo-labelled set is empty but the unlabeled fraction is {unlabeled_fraction}",
                unlabeled.source().display()
            )));
        }
        Ok(Self {
            num_batches: labeled.len().div_ceil(batch_size),
            labeled,
            unlabeled,
            batch_size,
            unlabeled_per_batch,
            seed,
            aug,
        })
    }

    /// Sets the epoch length in batches (RST's `num_batches`).
    pub fn with_num_batches(mut self, num_batches: usize) -> Self {
        self.num_batches = num_batches;
        self
    }

    /// Pseudo-labelled images in a batch whose labelled chunk is complete.
    pub fn unlabeled_per_batch(&self) -> usize {
        self.unlabeled_per_batch
    }

    /// Labelled images in a batch whose labelled chunk is complete.
    pub fn labeled_per_batch(&self) -> usize {
        self.batch_size - self.unlabeled_per_batch
    }

    /// Which images make up each batch of `epoch`: `(from_unlabeled, index)` pairs, in batch order.
    /// This is the sampling plan [`BatchSource::epoch`] turns into tensors.
    pub fn epoch_plan(&self, epoch: u64) -> Vec<Vec<(bool, usize)>> {
        let mut rng = host_rng(self.seed, streams::SHUFFLE.wrapping_add(epoch));
        let n_lab = self.labeled.len();
        let per_lab = self.labeled_per_batch();
        let mut perm: Vec<usize> = Vec::new();
        let mut pos = n_lab; // forces a permutation on the first batch
        let mut plan = Vec::with_capacity(self.num_batches);
        for _ in 0..self.num_batches {
            if pos >= n_lab {
                perm = fresh_permutation(n_lab, &mut rng);
                pos = 0;
            }
            let end = (pos + per_lab).min(n_lab);
            let mut batch: Vec<(bool, usize)> =
                perm[pos..end].iter().map(|&i| (false, i)).collect();
            pos = end;
            while batch.len() < self.batch_size {
                batch.push((true, rng.random_range(0..self.unlabeled.len())));
            }
            batch.shuffle(&mut rng);
            plan.push(batch);
        }
        plan
    }
}

fn fresh_permutation(n: usize, rng: &mut HostRng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(rng);
    p
}

impl BatchSource for MixedLoader {
    fn fingerprint(&self) -> String {
        let (lab, unl) = (self.labeled.fingerprint(), self.unlabeled.fingerprint());
        spat_spec::Fnv1a::hex_of(format!("{lab}+{unl}").as_bytes())
    }

    fn num_batches(&self) -> usize {
        self.num_batches
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn epoch<'a>(
        &'a self,
        epoch: u64,
        device: &'a Device,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + 'a> {
        let plan = self.epoch_plan(epoch);
        let mut aug_rng = host_rng(self.seed, streams::AUGMENT.wrapping_add(epoch));
        let (lab, unl, aug) = (&*self.labeled, &*self.unlabeled, self.aug);
        let shape = lab.shape();
        Box::new(plan.into_iter().map(move |batch| {
            let n = batch.len();
            let items = batch.into_iter().map(|(from_unl, i)| {
                let set = if from_unl { unl } else { lab };
                (set, i, aug.draw(&mut aug_rng))
            });
            make_batch(items, n, shape, device)
        }))
    }
}
