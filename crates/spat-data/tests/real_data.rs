//! Facts about the real CIFAR-10 files in `$SPAT_DATA_DIR/cifar-10-batches-bin` (CI sets
//! SPAT_DATA_DIR to ../shared/data), from shared/data/README.md.

use std::path::PathBuf;

use spat_data::{load, split_stats, Dataset, Split, CIFAR10_RECORD_BYTES};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("SPAT_DATA_DIR").expect(
        "SPAT_DATA_DIR is not set: point it at the folder holding cifar-10-batches-bin \
         (e.g. SPAT_DATA_DIR=../shared/data)",
    );
    PathBuf::from(dir)
}

#[test]
fn train_split_counts_and_channel_statistics() {
    let train = load(Dataset::Cifar10, &data_dir(), Split::Train).unwrap();
    let s = split_stats(&train);
    assert_eq!(s.count, 50_000);
    assert_eq!(s.per_class, vec![5_000; 10]);
    let mean = [0.4914, 0.4822, 0.4465];
    let std = [0.2470, 0.2435, 0.2616];
    for c in 0..3 {
        assert!((s.mean[c] - mean[c]).abs() < 5e-5, "mean {:?}", s.mean);
        assert!((s.std[c] - std[c]).abs() < 5e-5, "std {:?}", s.std);
    }
    // Spot values: the last record of data_batch_1.bin (record 9,999).
    let last = train.image(9_999);
    assert_eq!(&last[..3], &[62, 61, 60]);
    assert_eq!(&last[3072 - 3..], &[130, 130, 131]);
    assert_eq!(&train.labels()[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
}

#[test]
fn test_split_is_the_1000_record_prefix() {
    let test = load(Dataset::Cifar10, &data_dir(), Split::Test).unwrap();
    let s = split_stats(&test);
    assert_eq!(s.count, 1_000);
    assert_eq!(
        s.per_class,
        vec![103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
    );
    assert_eq!(
        &test.image(0)[..10],
        &[158, 159, 165, 166, 160, 156, 162, 159, 158, 159]
    );
    assert_eq!(&test.image(0)[3072 - 3..], &[124, 129, 110]);
}

/// Independent byte-level cross-check of every record: the bytes at `k * 3073` (label) and
/// `k * 3073 + 1 ..` (pixels) of each file, in file order, must be exactly what the reader
/// returns. (candle-datasets' `load_dir` was the intended reference, but as a dev-dependency it
/// pulls in ~840 crates, among them parquet/arrow, tokenizers, aws-lc-sys and zstd-sys: far too
/// heavy for this workspace's CI.)
#[test]
fn every_record_matches_the_file_bytes() {
    let root = data_dir().join("cifar-10-batches-bin");
    for (split, files) in [
        (
            Split::Train,
            (1..=5)
                .map(|k| format!("data_batch_{k}.bin"))
                .collect::<Vec<_>>(),
        ),
        (Split::Test, vec!["test_batch.bin".to_string()]),
    ] {
        let set = load(Dataset::Cifar10, &data_dir(), split).unwrap();
        let mut k = 0;
        for f in files {
            let bytes = std::fs::read(root.join(&f)).unwrap();
            assert_eq!(bytes.len() % CIFAR10_RECORD_BYTES, 0);
            let mut offset = 0;
            while offset < bytes.len() {
                assert_eq!(set.labels()[k], bytes[offset] as u32, "{f} record label");
                assert_eq!(
                    set.image(k),
                    &bytes[offset + 1..offset + CIFAR10_RECORD_BYTES],
                    "{f} record pixels"
                );
                offset += CIFAR10_RECORD_BYTES;
                k += 1;
            }
        }
        assert_eq!(k, set.len(), "{split}");
    }
}
