//! Readers for the official binary layouts (described, with their names and sizes, in
//! [`spat_spec::dataset`]). Record counts come from file sizes, never from constants.

use std::path::{Path, PathBuf};

use spat_spec::dataset::{CIFAR_IMAGE_BYTES, STL10_IMAGE_BYTES, STL10_SIDE};
use spat_spec::{Dataset, Split};

use crate::error::{Error, Result};
use crate::image_set::ImageSet;

/// Loads one split. `dir` is the folder that holds `cifar-10-batches-bin` / `cifar-100-binary` /
/// `stl10_binary`, or that folder itself. CIFAR-100 uses the fine labels (see [`load_cifar100`]).
pub fn load(dataset: Dataset, dir: &Path, split: Split) -> Result<ImageSet> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::format(
            dir,
            format!("is a file, not the folder of the {dataset} files"),
        ));
    }
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
    let all: Vec<PathBuf> = d.files(split).iter().map(|f| root.join(f)).collect();
    // Only data_batch_1.bin, or all five; anything else names the first missing file.
    let files = if all[1..].iter().all(|p| !p.exists()) {
        &all[..1]
    } else {
        &all[..]
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
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
    let (x_path, y_path) = match d.files(split) {
        [x, y] => (root.join(x), root.join(y)),
        other => unreachable!("STL-10 splits are an image and a label file, not {other:?}"),
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

/// The first file of a split: its presence tells the data set's folder.
fn first_file(d: Dataset, split: Split) -> &'static str {
    d.files(split)[0]
}

/// `dir/<official folder>` if that exists; `dir` itself if it holds the split's first file;
/// otherwise `dir/<official folder>`, so that the missing-file error names the expected path.
fn resolve_dir(dir: &Path, d: Dataset, probe: &str) -> PathBuf {
    let nested = dir.join(d.dir_name());
    // `exists`, not `is_file`: a folder named like the file is reported where it is.
    if nested.is_dir() || !dir.join(probe).exists() {
        nested
    } else {
        dir.to_path_buf()
    }
}

fn read(path: &Path, d: Dataset) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(Error::format(
            path,
            format!("is a folder, not a {d} data file"),
        ));
    }
    match spat_spec::fs::read_input(path) {
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
    if !len.is_multiple_of(record) {
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
