//! Facts about real CIFAR-10 files, checked on whichever copy the tests are given:
//! `$SPAT_DATA_DIR` (CI sets it to ../shared/data: all 50,000 training records and the first 1,000
//! test records) or, when it is unset, the embedded `data/cifar-10-mini` (the first 512 records of
//! `data_batch_1.bin` and `test_batch.bin`). Every copy is a prefix of the official files, so the
//! facts below are those of official record prefixes (data/README.md, shared/data/README.md),
//! asserted for the prefix length the files actually hold. Record counts come from file sizes here,
//! independently of the reader.

use std::path::PathBuf;

use spat_data::{load, split_stats, Dataset, Split, CIFAR10_RECORD_BYTES};

fn data_dir() -> PathBuf {
    match std::env::var_os("SPAT_DATA_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini"),
    }
}

/// The folder holding the `.bin` files themselves.
fn bin_dir() -> PathBuf {
    let nested = data_dir().join("cifar-10-batches-bin");
    if nested.is_dir() {
        nested
    } else {
        data_dir()
    }
}

/// The files of a split that exist, in reading order, and their total record count from file sizes.
fn files(split: Split) -> (Vec<PathBuf>, usize) {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|k| format!("data_batch_{k}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".into()],
    };
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| bin_dir().join(n))
        .filter(|p| p.is_file())
        .collect();
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(bytes % CIFAR10_RECORD_BYTES as u64, 0, "{paths:?}");
    (paths, (bytes / CIFAR10_RECORD_BYTES as u64) as usize)
}

/// Labels per class of the official training prefixes of known length.
fn train_per_class(count: usize) -> Option<Vec<usize>> {
    match count {
        512 => Some(vec![52, 66, 45, 47, 51, 41, 53, 50, 49, 58]),
        10_000 => Some(vec![1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]),
        50_000 => Some(vec![5_000; 10]),
        _ => None,
    }
}

/// Labels per class of the official test prefixes of known length.
fn test_per_class(count: usize) -> Option<Vec<usize>> {
    match count {
        512 => Some(vec![57, 41, 51, 49, 44, 50, 56, 48, 57, 59]),
        1_000 => Some(vec![103, 89, 100, 103, 90, 86, 112, 102, 106, 109]),
        10_000 => Some(vec![1_000; 10]),
        _ => None,
    }
}

#[test]
fn train_split_counts_spot_values_and_statistics() {
    let train = load(Dataset::Cifar10, &data_dir(), Split::Train).unwrap();
    let (_, records) = files(Split::Train);
    let s = split_stats(&train);
    assert_eq!(s.count, records);
    assert_eq!(s.per_class.iter().sum::<usize>(), records);
    if let Some(per_class) = train_per_class(records) {
        assert_eq!(s.per_class, per_class);
    }
    // Record 0 (a frog) and the first labels: true of every official prefix.
    let first = train.image(0);
    assert_eq!(train.labels()[0], 6);
    assert_eq!(&first[..3], &[59, 43, 50]);
    assert_eq!(&first[3072 - 3..], &[140, 84, 72]);
    assert_eq!(&train.labels()[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    if records >= 10_000 {
        // The last record of data_batch_1.bin (record 9,999).
        let last = train.image(9_999);
        assert_eq!(&last[..3], &[62, 61, 60]);
        assert_eq!(&last[3072 - 3..], &[130, 130, 131]);
    }
    if records == 50_000 {
        // The well-known channel statistics of the whole training set.
        let mean = [0.4914, 0.4822, 0.4465];
        let std = [0.2470, 0.2435, 0.2616];
        for c in 0..3 {
            assert!((s.mean[c] - mean[c]).abs() < 5e-5, "mean {:?}", s.mean);
            assert!((s.std[c] - std[c]).abs() < 5e-5, "std {:?}", s.std);
        }
    }
}

#[test]
fn test_split_counts_and_spot_values() {
    let test = load(Dataset::Cifar10, &data_dir(), Split::Test).unwrap();
    let (_, records) = files(Split::Test);
    let s = split_stats(&test);
    assert_eq!(s.count, records);
    if let Some(per_class) = test_per_class(records) {
        assert_eq!(s.per_class, per_class);
    }
    assert_eq!(
        &test.image(0)[..10],
        &[158, 159, 165, 166, 160, 156, 162, 159, 158, 159]
    );
    assert_eq!(&test.image(0)[3072 - 3..], &[124, 129, 110]);
    assert_eq!(
        &test.labels()[..20],
        &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
}

/// Independent byte-level cross-check of every record: the bytes at `k * 3073` (label) and
/// `k * 3073 + 1 ..` (pixels) of each file, in file order, must be exactly what the reader
/// returns. (candle-datasets' `load_dir` was the intended reference, but as a dev-dependency it
/// pulls in ~840 crates, among them parquet/arrow, tokenizers, aws-lc-sys and zstd-sys: far too
/// heavy for this workspace's CI.)
#[test]
fn every_record_matches_the_file_bytes() {
    for split in [Split::Train, Split::Test] {
        let set = load(Dataset::Cifar10, &data_dir(), split).unwrap();
        let (paths, records) = files(split);
        let mut k = 0;
        for path in &paths {
            let bytes = std::fs::read(path).unwrap();
            for record in bytes.chunks_exact(CIFAR10_RECORD_BYTES) {
                let name = path.display();
                assert_eq!(set.labels()[k], record[0] as u32, "{name} record {k} label");
                assert_eq!(set.image(k), &record[1..], "{name} record {k} pixels");
                k += 1;
            }
        }
        assert_eq!((k, set.len()), (records, records), "{split}");
    }
}
