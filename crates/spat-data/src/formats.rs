//! Readers for the official binary layouts.
//!
//! * CIFAR-10 (`cifar-10-batches-bin`): `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`;
//!   records of 3,073 bytes: label (0..9), then 1,024 red, 1,024 green, 1,024 blue bytes, each
//!   plane 32x32 row-major.
//! * CIFAR-100 (`cifar-100-binary`): `train.bin`, `test.bin`; records of 3,074 bytes: coarse label
//!   (0..19), fine label (0..99), then the same 3,072 pixel bytes.
//! * STL-10 (`stl10_binary`): `{train,test}_X.bin` hold 96x96x3 images of 27,648 bytes, each channel
//!   a 96x96 plane stored column-major (MATLAB order); `{train,test}_y.bin` hold one byte per image,
//!   labels 1..10.
//!
//! Record counts come from file sizes, never from constants.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Split};
use crate::error::{Error, Result};
use crate::image_set::ImageSet;

pub const CIFAR10_RECORD_BYTES: usize = 1 + CIFAR_IMAGE_BYTES;
pub const CIFAR100_RECORD_BYTES: usize = 2 + CIFAR_IMAGE_BYTES;
pub const STL10_IMAGE_BYTES: usize = 3 * STL10_SIDE * STL10_SIDE;
const CIFAR_IMAGE_BYTES: usize = 3 * 32 * 32;
const STL10_SIDE: usize = 96;

/// Loads one split. `dir` is the folder that holds `cifar-10-batches-bin` / `cifar-100-binary` /
/// `stl10_binary`, or that folder itself. CIFAR-100 uses the fine labels (see [`load_cifar100`]).
pub fn load(dataset: Dataset, dir: &Path, split: Split) -> Result<ImageSet> {
    match dataset {
        Dataset::Cifar10 => load_cifar10(dir, split),
        Dataset::Cifar100 => load_cifar100(dir, split, false),
        Dataset::Stl10 => load_stl10(dir, split),
    }
}

/// CIFAR-10. The training split is `data_batch_1.bin` followed by those of `data_batch_2..5.bin`
/// that exist; a directory may hold only `data_batch_1.bin` (as the embedded `cifar-10-mini`
/// sample does), but a gap (say 1, 2 and 4 present, 3 missing) is an error.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<ImageSet> {
    let d = Dataset::Cifar10;
    let root = resolve_dir(dir, d, first_file(d, split));
    let files: Vec<PathBuf> = match split {
        Split::Test => vec![root.join("test_batch.bin")],
        Split::Train => {
            let all: Vec<PathBuf> = (1..=5)
                .map(|k| root.join(format!("data_batch_{k}.bin")))
                .collect();
            // Only data_batch_1.bin, or all five; anything else names the first missing file.
            if all[1..].iter().all(|p| !p.is_file()) {
                all[..1].to_vec()
            } else {
                all
            }
        }
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in &files {
        let bytes = read(f, d)?;
        parse_cifar(f, &bytes, 1, 0, 10, &mut images, &mut labels)?;
    }
    ImageSet::new(images, labels, d.image_shape(), 10, root)
}

/// The records of one CIFAR-10 batch file's bytes; `path` names it in errors.
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<ImageSet> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    parse_cifar(path, bytes, 1, 0, 10, &mut images, &mut labels)?;
    ImageSet::new(images, labels, Dataset::Cifar10.image_shape(), 10, path)
}

/// CIFAR-100 with fine labels (100 classes) or, if `coarse`, the 20 superclass labels.
pub fn load_cifar100(dir: &Path, split: Split, coarse: bool) -> Result<ImageSet> {
    let d = Dataset::Cifar100;
    let root = resolve_dir(dir, d, first_file(d, split));
    let file = root.join(first_file(d, split));
    let bytes = read(&file, d)?;
    parse_cifar100(&bytes, &file, coarse)
}

/// The records of a CIFAR-100 file's bytes (fine labels, or coarse if `coarse`); `path` names
/// it in errors.
pub fn parse_cifar100(bytes: &[u8], path: &Path, coarse: bool) -> Result<ImageSet> {
    let (label_index, classes) = if coarse { (0, 20) } else { (1, 100) };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    parse_cifar(
        path,
        bytes,
        2,
        label_index,
        classes,
        &mut images,
        &mut labels,
    )?;
    ImageSet::new(
        images,
        labels,
        Dataset::Cifar100.image_shape(),
        classes,
        path,
    )
}

/// STL-10's labelled splits (5,000 train, 8,000 test in the official files), transposed upright
/// and with labels shifted from 1..10 to 0..9.
pub fn load_stl10(dir: &Path, split: Split) -> Result<ImageSet> {
    let d = Dataset::Stl10;
    let root = resolve_dir(dir, d, first_file(d, split));
    let (x_path, y_path) = match split {
        Split::Train => (root.join("train_X.bin"), root.join("train_y.bin")),
        Split::Test => (root.join("test_X.bin"), root.join("test_y.bin")),
    };
    let x = read(&x_path, d)?;
    record_count(&x_path, x.len(), STL10_IMAGE_BYTES)?;
    let y = read(&y_path, d)?;
    parse_stl10(&x, &x_path, &y, &y_path)
}

/// STL-10 images and labels from the bytes of an `_X.bin` and a `_y.bin` file; the paths name
/// them in errors.
pub fn parse_stl10(x: &[u8], x_path: &Path, y: &[u8], y_path: &Path) -> Result<ImageSet> {
    let d = Dataset::Stl10;
    let n = record_count(x_path, x.len(), STL10_IMAGE_BYTES)?;
    if y.len() != n {
        return Err(Error::format(
            y_path,
            format!(
                "holds {} labels but {} holds {n} images",
                y.len(),
                x_path.display()
            ),
        ));
    }
    let mut labels = Vec::with_capacity(n);
    for (record, &l) in y.iter().enumerate() {
        if !(1..=10).contains(&l) {
            return Err(Error::Label {
                path: y_path.to_path_buf(),
                record,
                label: l as i64,
                expected: "1..=10 (STL-10 labels are 1-based)".into(),
            });
        }
        labels.push(l as u32 - 1);
    }
    let side = STL10_SIDE;
    let mut images = vec![0u8; x.len()];
    // Each stored plane is column-major: byte col*96 + row is pixel (row, col). Transposing each
    // plane makes it row-major, i.e. the image upright.
    for (src, dst) in x
        .chunks_exact(side * side)
        .zip(images.chunks_exact_mut(side * side))
    {
        for (col, column) in src.chunks_exact(side).enumerate() {
            for (row, &v) in column.iter().enumerate() {
                dst[row * side + col] = v;
            }
        }
    }
    ImageSet::new(images, labels, d.image_shape(), 10, x_path)
}

fn first_file(d: Dataset, split: Split) -> &'static str {
    match (d, split) {
        (Dataset::Cifar10, Split::Train) => "data_batch_1.bin",
        (Dataset::Cifar10, Split::Test) => "test_batch.bin",
        (Dataset::Cifar100, Split::Train) => "train.bin",
        (Dataset::Cifar100, Split::Test) => "test.bin",
        (Dataset::Stl10, Split::Train) => "train_X.bin",
        (Dataset::Stl10, Split::Test) => "test_X.bin",
    }
}

/// `dir/<official folder>` if that exists; `dir` itself if it holds the split's first file;
/// otherwise `dir/<official folder>`, so that the missing-file error names the expected path.
fn resolve_dir(dir: &Path, d: Dataset, probe: &str) -> PathBuf {
    let nested = dir.join(d.dir_name());
    if nested.is_dir() || !dir.join(probe).is_file() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn read(path: &Path, d: Dataset) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Missing {
            path: path.to_path_buf(),
            hint: format!(
                "download it with `cargo xtask fetch-data {d}` (unpacks into data/{}), \
                 or point the data directory at the folder that holds {}",
                d.dir_name(),
                d.dir_name()
            ),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn record_count(path: &Path, len: usize, record: usize) -> Result<usize> {
    if len == 0 {
        return Err(Error::format(path, "file is empty (no records)"));
    }
    if len % record != 0 {
        return Err(Error::format(
            path,
            format!(
                "size {len} bytes is not a multiple of the {record}-byte record size \
                 ({} whole records and {} stray bytes: truncated or not this format)",
                len / record,
                len % record
            ),
        ));
    }
    Ok(len / record)
}

/// Appends the records of a CIFAR file with `label_bytes` leading label bytes, using the label at
/// `label_index`, to `images` / `labels`.
fn parse_cifar(
    path: &Path,
    bytes: &[u8],
    label_bytes: usize,
    label_index: usize,
    classes: usize,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let record = label_bytes + CIFAR_IMAGE_BYTES;
    let n = record_count(path, bytes.len(), record)?;
    images.reserve(n * CIFAR_IMAGE_BYTES);
    labels.reserve(n);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[label_index];
        if label as usize >= classes {
            return Err(Error::Label {
                path: path.to_path_buf(),
                record: i,
                label: label as i64,
                expected: format!("0..{classes}"),
            });
        }
        labels.push(label as u32);
        images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(())
}
