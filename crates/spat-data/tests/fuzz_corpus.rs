//! Replays the committed fuzz corpora of all targets and crash inputs (fuzz/corpus/<target>/,
//! fuzz/artifacts/<target>/) through the fuzz targets' bodies: on stable, in every test run,
//! every input must come back as data or an error, never a panic or an abort.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8]), at_least: usize) {
    let files = inputs(target);
    assert!(
        files.len() >= at_least,
        "fuzz/corpus/{target} holds {} inputs, expected the committed {at_least}+",
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("{} panics", f.display());
        }
    }
}

#[test]
fn pickle_corpus_replays_without_panics() {
    replay("pickle", spat_pickle::fuzzing::pickle, 5);
}

#[test]
fn torch_checkpoint_corpus_replays_without_panics() {
    replay(
        "torch_checkpoint",
        spat_pickle::fuzzing::torch_checkpoint,
        3,
    );
}

#[test]
fn torch_zip_names_corpus_reads_back() {
    replay("torch_zip_names", spat_pickle::fuzzing::torch_zip_names, 30);
}

#[test]
fn image_file_corpus_replays_without_panics() {
    replay("image_files", spat_data::fuzzing::image_files, 3);
}

#[test]
fn pickle_corpus_replays_through_the_pseudo_labeled_reader() {
    replay("pickle", spat_data::fuzzing::pseudo_labeled, 5);
}
