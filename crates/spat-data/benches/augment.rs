//! `cargo bench -p spat-data`: augmented CIFAR-sized images per second on one core.
//!
//! Builds a 50,000-image training set (the 512 real images of the embedded sample, repeated, so
//! the working set is as large as real CIFAR-10) and times shuffled, augmented (pad 4 + flip)
//! `f32` batches of 128 on the CPU: everything a training step waits for from the loader. The
//! loader is single-threaded, so this is one core.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::Device;
use spat_data::{load, Augmentation, BatchSource, Dataset, Loader, Split};

fn images_per_second(loader: &Loader, min_time: Duration) -> (f64, usize) {
    let device = Device::Cpu;
    let start = Instant::now();
    let mut images = 0usize;
    let mut epoch = 0;
    while start.elapsed() < min_time {
        for batch in loader.epoch(epoch, &device) {
            images += batch.expect("batch").len();
        }
        epoch += 1;
    }
    (images as f64 / start.elapsed().as_secs_f64(), images)
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini");
    let sample = load(Dataset::Cifar10, &dir, Split::Train).expect("embedded sample");
    let indices: Vec<usize> = (0..50_000).map(|i| i % sample.len()).collect();
    let set = Arc::new(sample.select(&indices));
    let min_time = Duration::from_secs(3);

    // Warm-up (page in the set).
    let warm = Loader::new(set.clone(), 128);
    images_per_second(&warm, Duration::from_millis(300));

    let cases = [
        (
            "augmented (pad 4 + flip), shuffled",
            Augmentation::for_dataset(Dataset::Cifar10),
        ),
        ("no augmentation, shuffled", Augmentation::none()),
    ];
    for (name, aug) in cases {
        let loader = Loader::new(set.clone(), 128).shuffled(1).augmented(aug);
        let (rate, n) = images_per_second(&loader, min_time);
        println!(
            "spat-data loader, 32x32x3, batch 128, CPU, 1 thread, {name}: {rate:.0} images/s ({n} images)"
        );
    }
}
