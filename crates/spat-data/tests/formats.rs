//! Binary readers: the embedded real CIFAR-10 sample, and small files written here in the exact
//! official CIFAR-100 / STL-10 layouts (documented next to each writer), plus every bad input.

use std::path::{Path, PathBuf};

use spat_data::{load, load_cifar100, load_stl10, split_stats, Dataset, Error, Split};

fn mini() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

#[test]
fn embedded_sample_matches_published_values() {
    // Spot values from shared/data/README.md, which agree with published dumps of the official
    // pickles.
    let train = load(Dataset::Cifar10, &mini(), Split::Train).unwrap();
    assert_eq!(train.len(), 512);
    assert_eq!(&train.labels()[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    let img = train.image(0);
    assert_eq!(&img[..3], &[59, 43, 50], "red plane starts");
    assert_eq!(&img[3072 - 3..], &[140, 84, 72], "blue plane ends");
    assert_eq!(
        split_stats(&train).per_class,
        vec![52, 66, 45, 47, 51, 41, 53, 50, 49, 58]
    );

    let test = load(Dataset::Cifar10, &mini(), Split::Test).unwrap();
    assert_eq!(test.len(), 512);
    assert_eq!(
        &test.labels()[..20],
        &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    assert_eq!(
        &test.image(0)[..10],
        &[158, 159, 165, 166, 160, 156, 162, 159, 158, 159]
    );
    assert_eq!(&test.image(0)[3072 - 3..], &[124, 129, 110]);
    assert_eq!(
        split_stats(&test).per_class,
        vec![57, 41, 51, 49, 44, 50, 56, 48, 57, 59]
    );
}

#[test]
fn parent_directory_and_dataset_directory_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&nested).unwrap();
    std::fs::copy(mini().join("test_batch.bin"), nested.join("test_batch.bin")).unwrap();
    let a = load(Dataset::Cifar10, dir.path(), Split::Test).unwrap();
    let b = load(Dataset::Cifar10, &nested, Split::Test).unwrap();
    assert_eq!(a.images(), b.images());
    assert_eq!(a.len(), 512);
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// One CIFAR-10 record: label byte, then 3,072 pixel bytes (R plane, G plane, B plane, each 32x32
/// row-major).
fn cifar10_record(label: u8, fill: u8) -> Vec<u8> {
    let mut r = vec![label];
    r.extend((0..3072).map(|i| (i as u8).wrapping_add(fill)));
    r
}

#[test]
fn cifar10_bad_inputs_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Missing: the error names the expected path and the fetch command.
    let e = load(Dataset::Cifar10, d, Split::Test).unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("cifar-10-batches-bin/test_batch.bin")
            && m.contains("cargo xtask fetch-data cifar10"),
        "{m}"
    );

    // Size not a multiple of 3,073 (a truncated file).
    let mut bytes = cifar10_record(1, 0);
    bytes.extend(cifar10_record(2, 5));
    bytes.truncate(3073 + 100);
    write(&d.join("test_batch.bin"), &bytes);
    let e = load(Dataset::Cifar10, d, Split::Test).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("test_batch.bin") && m.contains("not a multiple of the 3073-byte"),
        "{m}"
    );

    // Empty file.
    write(&d.join("test_batch.bin"), &[]);
    let m = load(Dataset::Cifar10, d, Split::Test)
        .unwrap_err()
        .to_string();
    assert!(m.contains("test_batch.bin") && m.contains("empty"), "{m}");

    // Label out of range, in the second record.
    let mut bytes = cifar10_record(1, 0);
    bytes.extend(cifar10_record(10, 5));
    write(&d.join("test_batch.bin"), &bytes);
    let e = load(Dataset::Cifar10, d, Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Label {
                record: 1,
                label: 10,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("test_batch.bin"), "{e}");

    // Counts come from sizes: two good records load as two.
    let mut bytes = cifar10_record(1, 0);
    bytes.extend(cifar10_record(9, 5));
    write(&d.join("test_batch.bin"), &bytes);
    let set = load(Dataset::Cifar10, d, Split::Test).unwrap();
    assert_eq!(set.labels(), &[1, 9]);
    assert_eq!(set.image(1)[0], 5);

    // A gap in the training files names the first missing one.
    write(&d.join("data_batch_1.bin"), &cifar10_record(0, 0));
    write(&d.join("data_batch_2.bin"), &cifar10_record(0, 0));
    let m = load(Dataset::Cifar10, d, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("data_batch_3.bin") && m.contains("not found"),
        "{m}"
    );
}

/// One CIFAR-100 record (`cifar-100-binary/{train,test}.bin`): byte 0 coarse label (0..19),
/// byte 1 fine label (0..99), then 3,072 pixel bytes laid out as in CIFAR-10.
fn cifar100_record(coarse: u8, fine: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![coarse, fine];
    r.extend((0..3072u32).map(|i| (i * 7 + seed as u32) as u8));
    r
}

#[test]
fn cifar100_fine_and_coarse_labels() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cifar-100-binary");
    std::fs::create_dir(&root).unwrap();
    let mut bytes = cifar100_record(4, 0, 1);
    bytes.extend(cifar100_record(19, 99, 2));
    bytes.extend(cifar100_record(0, 57, 3));
    write(&root.join("train.bin"), &bytes);

    let fine = load(Dataset::Cifar100, dir.path(), Split::Train).unwrap();
    assert_eq!(fine.labels(), &[0, 99, 57]);
    assert_eq!(fine.num_classes(), 100);
    assert_eq!(fine.image(2), &cifar100_record(0, 57, 3)[2..]);
    let coarse = load_cifar100(dir.path(), Split::Train, true).unwrap();
    assert_eq!(coarse.labels(), &[4, 19, 0]);
    assert_eq!(coarse.num_classes(), 20);
    assert_eq!(coarse.images(), fine.images());

    // 3,073-byte records (a CIFAR-10 file under the CIFAR-100 name) are not a multiple of 3,074.
    write(
        &root.join("test.bin"),
        &[cifar10_record(1, 0), cifar10_record(1, 0)].concat(),
    );
    let m = load(Dataset::Cifar100, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(m.contains("test.bin") && m.contains("3074-byte"), "{m}");

    // Fine label 100 / coarse label 20 are out of range.
    write(&root.join("test.bin"), &cifar100_record(3, 100, 0));
    let e = load(Dataset::Cifar100, dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Label {
                record: 0,
                label: 100,
                ..
            }
        ),
        "{e:?}"
    );
    write(&root.join("test.bin"), &cifar100_record(20, 1, 0));
    let e = load_cifar100(dir.path(), Split::Test, true).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Label {
                record: 0,
                label: 20,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("test.bin"));
}

/// STL-10 layout (`stl10_binary/`): `*_X.bin` is N images of 3 x 96 x 96 bytes; within an image
/// the channels come one after another (R, G, B) and each 96 x 96 channel is stored column-major
/// (byte `col * 96 + row` is pixel (row, col)), as MATLAB writes arrays. `*_y.bin` is one byte
/// per image, labels 1..10.
fn stl10_file(images: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for img in images {
        // img is planar CHW, row-major (upright): write each plane column by column.
        for c in 0..3 {
            for col in 0..96 {
                for row in 0..96 {
                    out.push(img[c * 9216 + row * 96 + col]);
                }
            }
        }
    }
    out
}

#[test]
fn stl10_images_come_out_upright_with_zero_based_labels() {
    // An asymmetric image: a bright vertical bar near the left edge of the red plane and a
    // horizontal bar near the top of the green plane, plus a gradient in blue.
    let mut img = vec![0u8; 3 * 96 * 96];
    for row in 0..96 {
        img[row * 96 + 5] = 255; // red: column 5
        img[9216 + 7 * 96 + row] = 200; // green: row 7
        for col in 0..96 {
            img[2 * 9216 + row * 96 + col] = (row * 2 + col / 3) as u8;
        }
    }
    let other: Vec<u8> = (0..3 * 9216).map(|i| (i % 253) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stl10_binary");
    std::fs::create_dir(&root).unwrap();
    write(
        &root.join("test_X.bin"),
        &stl10_file(&[img.clone(), other.clone()]),
    );
    write(&root.join("test_y.bin"), &[1, 10]);

    let set = load_stl10(dir.path(), Split::Test).unwrap();
    assert_eq!(set.shape(), (3, 96, 96));
    assert_eq!(set.labels(), &[0, 9]);
    assert_eq!(set.image(0), &img[..]);
    assert_eq!(set.image(1), &other[..]);
    // Spelled out: red is bright at (row 40, col 5) and dark at (row 5, col 40).
    assert_eq!(set.image(0)[40 * 96 + 5], 255);
    assert_eq!(set.image(0)[5 * 96 + 40], 0);

    // Label 0 (labels are 1-based in the file) and 11 are errors naming the label file.
    write(&root.join("test_y.bin"), &[1, 0]);
    let e = load_stl10(dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Label {
                record: 1,
                label: 0,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("test_y.bin"), "{e}");
    write(&root.join("test_y.bin"), &[11, 1]);
    assert!(matches!(
        load_stl10(dir.path(), Split::Test).unwrap_err(),
        Error::Label {
            record: 0,
            label: 11,
            ..
        }
    ));

    // Label count must match the image count.
    write(&root.join("test_y.bin"), &[1, 2, 3]);
    let m = load_stl10(dir.path(), Split::Test).unwrap_err().to_string();
    assert!(
        m.contains("test_y.bin") && m.contains("3 labels") && m.contains("2 images"),
        "{m}"
    );

    // Truncated image file.
    let mut x = stl10_file(&[img]);
    x.pop();
    write(&root.join("test_X.bin"), &x);
    let m = load_stl10(dir.path(), Split::Test).unwrap_err().to_string();
    assert!(m.contains("test_X.bin") && m.contains("27648-byte"), "{m}");

    // Missing training files.
    let e = load(Dataset::Stl10, dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("stl10_binary/train_X.bin") && m.contains("fetch-data stl10"),
        "{m}"
    );
}
