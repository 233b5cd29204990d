//! Loaders: order, coverage, augmentation and bit-exact reproducibility.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use spat_core::Batch;
use spat_data::{load, Augmentation, BatchSource, Dataset, ImageSet, Loader, MixedLoader, Split};

fn mini(split: Split) -> Arc<ImageSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    Arc::new(load(Dataset::Cifar10, &dir, split).unwrap())
}

/// `n` images of shape (3, h, w) whose every byte is `id + 1`, label `id % 10`.
fn id_images(n: usize, h: usize, w: usize, source: &str) -> Arc<ImageSet> {
    let per = 3 * h * w;
    let images = (0..n)
        .flat_map(|i| std::iter::repeat_n((i + 1) as u8, per))
        .collect();
    let labels = (0..n as u32).map(|i| i % 10).collect();
    Arc::new(ImageSet::new(images, labels, (3, h, w), 10, source).unwrap())
}

fn flat(b: &Batch) -> (Vec<f32>, Vec<u32>) {
    (
        b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.labels.to_vec1::<u32>().unwrap(),
    )
}

fn collect(src: &dyn BatchSource, epoch: u64) -> Vec<(Vec<f32>, Vec<u32>)> {
    let batches: Vec<_> = src
        .epoch(epoch, &Device::Cpu)
        .map(|b| flat(&b.unwrap()))
        .collect();
    assert_eq!(batches.len(), src.num_batches());
    batches
}

#[test]
fn plain_loader_is_in_order_and_keeps_the_last_partial_batch() {
    let set = mini(Split::Test);
    let loader = Loader::new(set.clone(), 200);
    assert_eq!(loader.num_batches(), 3);
    let batches = collect(&loader, 0);
    assert_eq!(batches[2].1.len(), 112);
    let idx: Vec<usize> = (200..400).collect();
    assert_eq!(batches[1], flat(&set.to_batch(&idx, &Device::Cpu).unwrap()));
    // Epochs do not matter without shuffling or augmentation.
    assert_eq!(batches, collect(&loader, 7));

    let dropping = Loader::new(set, 200).drop_last(true);
    assert_eq!(dropping.num_batches(), 2);
    assert_eq!(collect(&dropping, 0).len(), 2);
}

#[test]
fn shuffled_epoch_visits_every_image_once() {
    let set = id_images(100, 4, 4, "ids");
    let loader = Loader::new(set, 32).shuffled(5);
    for epoch in 0..3 {
        let mut seen = Vec::new();
        for (pixels, labels) in collect(&loader, epoch) {
            for (k, img) in pixels.chunks(48).enumerate() {
                let id = (img[0] * 255.0).round() as usize - 1;
                assert!(img.iter().all(|&v| v == img[0]));
                assert_eq!(labels[k] as usize, id % 10);
                seen.push(id);
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(seen, (0..100).collect::<Vec<_>>(), "actually shuffled");
    }
    assert_ne!(
        collect(&loader, 0),
        collect(&loader, 1),
        "a new order every epoch"
    );
}

#[test]
fn augmentation_is_a_zero_padded_crop() {
    // Constant images make the crop visible: the non-zero region of each channel is the overlap
    // of the window with the image, (h - |dy - pad|) x (w - |dx - pad|).
    let (h, w, pad) = (8, 6, 2);
    let set = id_images(64, h, w, "ids");
    let loader = Loader::new(set, 64)
        .shuffled(1)
        .augmented(Augmentation { pad, flip: true });
    let batches = collect(&loader, 0);
    let mut shifted = 0;
    for img in batches[0].0.chunks(3 * h * w) {
        let value = img.iter().cloned().fold(0f32, f32::max);
        assert!(img.iter().all(|&v| v == 0.0 || v == value));
        let per_channel: Vec<usize> = img
            .chunks(h * w)
            .map(|c| c.iter().filter(|&&v| v != 0.0).count())
            .collect();
        assert!(per_channel.iter().all(|&k| k == per_channel[0]));
        let ok = (h - pad..=h).any(|a| (w - pad..=w).any(|b| a * b == per_channel[0]));
        assert!(
            ok,
            "{} non-zero pixels is not a crop overlap",
            per_channel[0]
        );
        shifted += (per_channel[0] != h * w) as usize;
    }
    // P(no shift) = 1/25 per image.
    assert!(shifted > 40, "{shifted}");
}

#[test]
fn same_seed_and_epoch_give_bit_identical_batches() {
    let set = mini(Split::Train);
    let make = |seed| {
        Loader::new(set.clone(), 128)
            .shuffled(seed)
            .augmented(Augmentation::for_dataset(Dataset::Cifar10))
    };
    let a = collect(&make(42), 3);
    assert_eq!(a, collect(&make(42), 3));
    assert_ne!(a, collect(&make(42), 4));
    assert_ne!(a, collect(&make(43), 3));
    // Same order, different crops: the augmentation stream is separate from the shuffle stream.
    let plain = collect(&Loader::new(set.clone(), 128).shuffled(42), 3);
    assert_eq!(a[0].1, plain[0].1);
    assert_ne!(a[0].0, plain[0].0);

    // 96x96 images with STL-10's 12-pixel padding.
    let big = id_images(10, 96, 96, "big");
    let stl = |seed| {
        Loader::new(big.clone(), 4)
            .shuffled(seed)
            .augmented(Augmentation::for_dataset(Dataset::Stl10))
    };
    assert_eq!(collect(&stl(1), 0), collect(&stl(1), 0));
}

#[test]
fn mixed_loader_follows_rst_sampling() {
    let labeled = id_images(100, 2, 2, "labeled");
    // Pseudo-labelled ids start at 150 so the two kinds can be told apart.
    let unl_images: Vec<u8> = (0..50u32)
        .flat_map(|i| std::iter::repeat_n((i + 151) as u8, 12))
        .collect();
    let unlabeled = Arc::new(
        ImageSet::new(
            unl_images,
            (0..50).map(|i| i % 10).collect(),
            (3, 2, 2),
            10,
            "unl",
        )
        .unwrap(),
    );
    let loader = MixedLoader::new(
        labeled.clone(),
        unlabeled.clone(),
        16,
        0.5,
        9,
        Augmentation::none(),
    )
    .unwrap();
    assert_eq!(loader.unlabeled_per_batch(), 8);
    assert_eq!(
        loader.num_batches(),
        7,
        "ceil(100 / 16): an epoch passes len(labelled) images"
    );

    let mut labeled_seen = Vec::new();
    for (pixels, _) in collect(&loader, 0) {
        assert_eq!(pixels.len(), 16 * 12);
        let ids: Vec<usize> = pixels
            .chunks(12)
            .map(|img| (img[0] * 255.0).round() as usize - 1)
            .collect();
        let lab: Vec<usize> = ids.iter().copied().filter(|&i| i < 150).collect();
        assert_eq!(lab.len(), 8, "{ids:?}");
        labeled_seen.extend(lab);
    }
    // 7 x 8 = 56 labelled images from one permutation: all distinct.
    assert_eq!(labeled_seen.iter().collect::<HashSet<_>>().len(), 56);

    // Over a longer epoch the permutation restarts; the chunk cut short at its end (100 = 12 x 8
    // + 4) is topped up with pseudo-labelled images.
    let long = loader.clone().with_num_batches(20);
    let plan = long.epoch_plan(0);
    let labeled_counts: Vec<usize> = plan
        .iter()
        .map(|b| b.iter().filter(|(unl, _)| !unl).count())
        .collect();
    assert_eq!(labeled_counts[12], 4);
    assert!(labeled_counts
        .iter()
        .enumerate()
        .all(|(i, &k)| i == 12 || k == 8));
    let first_pass: HashSet<usize> = plan[..13]
        .iter()
        .flatten()
        .filter(|(unl, _)| !unl)
        .map(|&(_, i)| i)
        .collect();
    assert_eq!(
        first_pass.len(),
        100,
        "one full permutation of the labelled set"
    );
    assert!(plan.iter().all(|b| b.len() == 16));
    // Interleaving: not every batch starts with its labelled block.
    assert!(plan.iter().any(|b| b[0].0));

    // Reproducible, with augmentation, on real images.
    let make = || {
        MixedLoader::new(
            mini(Split::Train),
            mini(Split::Test),
            64,
            0.5,
            3,
            Augmentation::for_dataset(Dataset::Cifar10),
        )
        .unwrap()
    };
    assert_eq!(collect(&make(), 2), collect(&make(), 2));
    assert_ne!(collect(&make(), 2), collect(&make(), 3));
}

#[test]
fn mixed_loader_rejects_bad_arguments() {
    let a = id_images(10, 2, 2, "a");
    let b = id_images(10, 3, 3, "b");
    let none = Augmentation::none();
    let msg = |r: spat_data::Result<MixedLoader>| r.unwrap_err().to_string();
    assert!(msg(MixedLoader::new(a.clone(), a.clone(), 8, 1.0, 0, none)).contains("[0, 1)"));
    assert!(msg(MixedLoader::new(a.clone(), a.clone(), 0, 0.5, 0, none)).contains("batch size"));
    let m = msg(MixedLoader::new(a.clone(), b, 8, 0.5, 0, none));
    assert!(m.contains("do not match"), "{m}");
    let empty = Arc::new(a.first(0));
    assert!(msg(MixedLoader::new(a, empty, 8, 0.5, 0, none)).contains("empty"));
}
