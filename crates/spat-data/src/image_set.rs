use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use spat_core::rng::{host_rng, streams};
use spat_core::Batch;
use spat_spec::Fnv1a;

use crate::augment::{write_image, Placement};
use crate::error::{Error, Result};

/// A labelled set of `u8` images, each stored planar CHW (all red rows, then green, then blue).
///
/// Images stay `u8` in memory (a quarter of `f32`); batches are converted on the way out.
#[derive(Debug, Clone)]
pub struct ImageSet {
    images: Vec<u8>,
    labels: Vec<u32>,
    shape: (usize, usize, usize),
    num_classes: usize,
    source: PathBuf,
}

impl ImageSet {
    /// Builds a set from concatenated CHW images. `source` names where the data came from (used
    /// in error messages). Fails if the sizes disagree or a label is `>= num_classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: (usize, usize, usize),
        num_classes: usize,
        source: impl Into<PathBuf>,
    ) -> Result<Self> {
        let source = source.into();
        let (c, h, w) = shape;
        let per_image = c * h * w;
        if per_image == 0 {
            return Err(Error::Invalid(format!(
                "{}: image shape {shape:?} has no pixels",
                source.display()
            )));
        }
        if images.len() != labels.len() * per_image {
            return Err(Error::Invalid(format!(
                "{}: {} image bytes do not make {} images of shape {shape:?} ({} bytes expected)",
                source.display(),
                images.len(),
                labels.len(),
                labels.len() * per_image
            )));
        }
        if let Some((record, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= num_classes)
        {
            return Err(Error::Label {
                path: source,
                record,
                label: label as i64,
                expected: format!("0..{num_classes}"),
            });
        }
        Ok(Self {
            images,
            labels,
            shape,
            num_classes,
            source,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes of the data set (10 for CIFAR-10), not the number of labels present.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `(C, H, W)` of one image.
    pub fn shape(&self) -> (usize, usize, usize) {
        self.shape
    }

    /// Bytes per image (`C * H * W`).
    pub fn image_len(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// One label per image, each below [`ImageSet::num_classes`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Image `i`, planar CHW. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// All images, concatenated.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// Where the data came from (a file or directory).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The first `n` images (all of them if `n > len()`).
    pub fn first(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            shape: self.shape,
            num_classes: self.num_classes,
            source: self.source.clone(),
        }
    }

    /// `n` distinct images drawn uniformly without replacement with the `(seed, SUBSET)` stream,
    /// kept in their original order (all of them if `n >= len()`).
    pub fn sample(&self, n: usize, seed: u64) -> ImageSet {
        if n >= self.len() {
            return self.clone();
        }
        let mut rng = host_rng(seed, streams::SUBSET);
        let mut indices = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        indices.sort_unstable();
        self.select(&indices)
    }

    /// A validation split: `n` distinct images drawn uniformly without replacement with the
    /// `(seed, VALIDATION)` stream, and the images it leaves, both in their original order (as
    /// Rice et al.'s `generate_validation.py` holds out a seeded 1,000 of CIFAR-10's training
    /// images). `n >= len()` holds out everything.
    pub fn hold_out(&self, n: usize, seed: u64) -> (ImageSet, ImageSet) {
        let n = n.min(self.len());
        let mut rng = host_rng(seed, streams::VALIDATION);
        let mut held = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        held.sort_unstable();
        let mut is_held = vec![false; self.len()];
        for &i in &held {
            is_held[i] = true;
        }
        let rest: Vec<usize> = (0..self.len()).filter(|&i| !is_held[i]).collect();
        (self.select(&held), self.select(&rest))
    }

    /// The images at `indices`, in that order (repeats allowed). Panics on an index `>= len()`.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let per = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            num_classes: self.num_classes,
            source: self.source.clone(),
        }
    }

    /// FNV-1a (16 hex digits) of the set's shape, class count, labels and pixels, in order: equal
    /// for the same images with the same labels, wherever they were read from.
    pub fn fingerprint(&self) -> String {
        let mut h = Fnv1a::new();
        let (c, height, w) = self.shape;
        for n in [c, height, w, self.num_classes, self.len()] {
            h.update(&(n as u64).to_le_bytes());
        }
        for &l in &self.labels {
            h.update(&l.to_le_bytes());
        }
        h.update(&self.images);
        h.hex()
    }

    /// The images at `indices` as one batch: `f32` in `[0, 1]`, NCHW, on `device`; no augmentation.
    pub fn to_batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Invalid(format!(
                "{}: index {bad} out of range for a set of {} images",
                self.source.display(),
                self.len()
            )));
        }
        make_batch(
            indices.iter().map(|&i| (self, i, Placement::IDENTITY)),
            indices.len(),
            self.shape,
            device,
        )
    }
}

/// Images of a batch (`f32` in `[0, 1]`, NCHW) back as planar `u8` images, concatenated: each value
/// scaled by 255 and rounded to the nearest byte (the inverse of the `v / 255` of a batch).
pub fn to_u8_images(images: &Tensor) -> Result<Vec<u8>> {
    Ok((images.to_dtype(DType::F32)? * 255.0)?
        .round()?
        .clamp(0f32, 255f32)?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?)
}

/// Assembles a batch from `(set, index, placement)` items; every set must have image shape `shape`.
pub(crate) fn make_batch<'s>(
    items: impl Iterator<Item = (&'s ImageSet, usize, Placement)>,
    n: usize,
    shape: (usize, usize, usize),
    device: &Device,
) -> Result<Batch> {
    let per = shape.0 * shape.1 * shape.2;
    let mut pixels = vec![0f32; n * per];
    let mut labels = Vec::with_capacity(n);
    for ((set, i, placement), dst) in items.zip(pixels.chunks_exact_mut(per)) {
        write_image(set.image(i), dst, shape, placement);
        labels.push(set.labels[i]);
    }
    debug_assert_eq!(labels.len(), n);
    let images = Tensor::from_vec(pixels, (n, shape.0, shape.1, shape.2), device)?;
    let labels = Tensor::from_vec(labels, n, device)?;
    Ok(Batch::new(images, labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> ImageSet {
        let images: Vec<u8> = (0..n * 12).map(|i| i as u8).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
        ImageSet::new(images, labels, (3, 2, 2), 3, "toy").unwrap()
    }

    #[test]
    fn new_rejects_bad_sizes_and_labels() {
        let e = ImageSet::new(vec![0; 11], vec![0], (3, 2, 2), 3, "x.bin").unwrap_err();
        assert!(
            e.to_string().contains("x.bin") && e.to_string().contains("11"),
            "{e}"
        );
        let e = ImageSet::new(vec![0; 24], vec![0, 3], (3, 2, 2), 3, "y.bin").unwrap_err();
        assert!(
            matches!(
                e,
                Error::Label {
                    record: 1,
                    label: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("y.bin"), "{e}");
    }

    #[test]
    fn subsets() {
        let s = toy(10);
        assert_eq!(s.first(3).labels(), &[0, 1, 2]);
        assert_eq!(s.first(99).len(), 10);
        assert_eq!(s.select(&[4, 1]).image(0), s.image(4));
        let a = s.sample(5, 9);
        assert_eq!(a.len(), 5);
        assert_eq!(a.images(), s.sample(5, 9).images(), "seeded");
        assert_ne!(a.images(), s.sample(5, 10).images(), "seed matters");
        // Distinct images (each toy image is unique), in original order.
        let firsts: Vec<u8> = (0..5).map(|i| a.image(i)[0]).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
        assert_eq!(s.sample(20, 1).len(), 10);
    }

    #[test]
    fn hold_out_splits_into_disjoint_seeded_parts() {
        let s = toy(20);
        let (val, rest) = s.hold_out(6, 3);
        assert_eq!((val.len(), rest.len()), (6, 14));
        let firsts =
            |set: &ImageSet| -> Vec<u8> { (0..set.len()).map(|i| set.image(i)[0]).collect() };
        let (v, r) = (firsts(&val), firsts(&rest));
        assert!(v.iter().all(|x| !r.contains(x)), "disjoint: {v:?} {r:?}");
        let mut all: Vec<u8> = v.iter().chain(&r).copied().collect();
        all.sort_unstable();
        assert_eq!(all, firsts(&s), "together the whole set");
        assert!(v.windows(2).all(|w| w[0] < w[1]) && r.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s.hold_out(6, 3).0.images(), val.images(), "seeded");
        assert_ne!(s.hold_out(6, 4).0.images(), val.images(), "seed matters");
        assert_ne!(val.images(), s.sample(6, 3).images(), "its own stream");
        assert_eq!(s.hold_out(99, 0).1.len(), 0);
    }

    #[test]
    fn batch_is_scaled_nchw() {
        let s = toy(4);
        let b = s.to_batch(&[2, 0], &Device::Cpu).unwrap();
        assert_eq!(b.images.dims(), &[2, 3, 2, 2]);
        let v = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = s
            .image(2)
            .iter()
            .chain(s.image(0))
            .map(|&x| x as f32 / 255.0)
            .collect();
        assert_eq!(v, want);
        assert_eq!(b.labels.to_vec1::<u32>().unwrap(), vec![2, 0]);
        assert!(s.to_batch(&[4], &Device::Cpu).is_err());
        let back = to_u8_images(&b.images).unwrap();
        assert_eq!(
            back,
            [s.image(2), s.image(0)].concat(),
            "bytes survive the round trip"
        );
    }

    #[test]
    fn fingerprint_follows_pixels_and_labels_not_the_source() {
        let a = toy(4);
        let b = ImageSet::new(
            a.images().to_vec(),
            a.labels().to_vec(),
            (3, 2, 2),
            3,
            "elsewhere",
        )
        .unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut pixels = a.images().to_vec();
        pixels[5] ^= 1;
        let c = ImageSet::new(pixels, a.labels().to_vec(), (3, 2, 2), 3, "toy").unwrap();
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut labels = a.labels().to_vec();
        labels[0] = 2;
        let d = ImageSet::new(a.images().to_vec(), labels, (3, 2, 2), 3, "toy").unwrap();
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_ne!(a.fingerprint(), a.first(3).fingerprint());
    }
}
