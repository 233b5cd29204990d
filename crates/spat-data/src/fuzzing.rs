//! Bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so that the committed corpora are
//! replayed through the same code by ordinary tests on stable (`tests/fuzz_corpus.rs`).

use std::path::Path;

/// The first byte picks the reader: CIFAR-10, CIFAR-100 fine, CIFAR-100 coarse or STL-10.
pub fn image_files(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 4 == 3 {
        stl10(bytes);
        return;
    }
    let path = Path::new("fuzz.bin");
    let set = match which % 4 {
        0 => crate::parse_cifar10(bytes, path),
        1 => crate::parse_cifar100(bytes, path, false),
        _ => crate::parse_cifar100(bytes, path, true),
    };
    if let Ok(set) = set {
        assert!(set
            .labels()
            .iter()
            .all(|&l| (l as usize) < set.num_classes()));
    }
}

/// The first two bytes say where the `_X.bin` bytes end and the `_y.bin` bytes begin.
fn stl10(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = u16::from_le_bytes(*head) as usize % (rest.len() + 1);
    let (x, y) = rest.split_at(split);
    if let Ok(set) = crate::parse_stl10(x, Path::new("fuzz_X.bin"), y, Path::new("fuzz_y.bin")) {
        assert_eq!(set.len(), y.len());
    }
}

/// RST's pseudo-labelled pickle.
pub fn pseudo_labeled(data: &[u8]) {
    let _ = crate::parse_pseudo_labeled(data, Path::new("fuzz.pickle"));
}
