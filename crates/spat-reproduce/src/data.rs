//! Where each data set is read from, and the clear error for an id whose data is absent.

use std::path::{Path, PathBuf};

use spat_spec::dataset::PSEUDO_LABELED_FILE;
use spat_spec::{Dataset, Split};

use crate::matrix::{self, Scale};
use crate::workspace::workspace_root;

/// Where each data set is read from, resolved once.
#[derive(Debug, Clone)]
pub struct DataDirs {
    /// The folder of every data set but CIFAR-10 (`--data-dir`, else `$SPAT_DATA_DIR`, else
    /// `data/`), and of the pseudo-labelled file.
    pub root: PathBuf,
    /// CIFAR-10's folder: the embedded `data/cifar-10-mini` at the smoke scale unless `--data-dir`
    /// is given, else `root`.
    pub cifar10: PathBuf,
}

impl DataDirs {
    /// The folders for `scale`, from `--data-dir` (`args_dir`) or the environment.
    pub fn resolve(args_dir: Option<&Path>, scale: Scale) -> Self {
        let ws = workspace_root();
        let root = args_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SPAT_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| ws.join("data"));
        let cifar10 = if scale == Scale::Smoke && args_dir.is_none() {
            ws.join("data/cifar-10-mini")
        } else {
            root.clone()
        };
        DataDirs { root, cifar10 }
    }

    /// The folder data set `d` is read from.
    pub fn dir(&self, d: Dataset) -> &Path {
        match d {
            Dataset::Cifar10 => &self.cifar10,
            _ => &self.root,
        }
    }

    /// RST's pseudo-labelled TinyImages file, in `root`.
    pub fn pseudo_labeled(&self) -> PathBuf {
        self.root.join(PSEUDO_LABELED_FILE)
    }
}

/// Files a data set needs, relative to its official folder, and that folder's name. The smoke
/// scale reads CIFAR-10's first training file only (the embedded sample has no other).
fn required_files(d: Dataset, scale: Scale) -> (&'static str, Vec<&'static str>) {
    let train = d.files(Split::Train);
    let train = if d == Dataset::Cifar10 && scale == Scale::Smoke {
        &train[..1]
    } else {
        train
    };
    let files = train.iter().chain(d.files(Split::Test)).copied().collect();
    (d.dir_name(), files)
}

/// The files of data set `d` that `scale` reads and that are absent from its folder in `dirs`.
pub fn missing_files(d: Dataset, scale: Scale, dirs: &DataDirs) -> Vec<String> {
    let dir = dirs.dir(d);
    let (folder, files) = required_files(d, scale);
    // spat reads the official folder or the folder above it; accept either.
    let base = if files.iter().all(|f| dir.join(f).is_file()) {
        dir.to_path_buf()
    } else {
        dir.join(folder)
    };
    files
        .iter()
        .map(|f| base.join(f))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect()
}

/// The files an id needs that are absent, as one message naming them and the fetch command.
pub fn missing_data(id: &str, scale: Scale, dirs: &DataDirs) -> Option<String> {
    let d = matrix::dataset_of(id);
    let mut missing = missing_files(d, scale, dirs);
    let mut fetch = vec![format!("cargo xtask fetch-data {d}")];
    if matrix::needs_pseudo_labeled(id) && !dirs.pseudo_labeled().is_file() {
        missing.push(dirs.pseudo_labeled().display().to_string());
        fetch.push("cargo xtask fetch-data ti500k (prints where to get it)".into());
    }
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "{id} needs data that is not here: missing {}; get it with `{}` (into data/), or point --data-dir or \
         SPAT_DATA_DIR at a folder that holds it",
        missing.join(", "),
        fetch.join("` and `")
    ))
}
