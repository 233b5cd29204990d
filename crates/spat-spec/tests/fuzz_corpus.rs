//! Replays the committed corpora and crash inputs of the attack-spec and model-name fuzz targets
//! (fuzz/corpus/<target>/, fuzz/artifacts/<target>/) through their bodies on stable: every input
//! must parse or be refused, never panic, and every accepted spec or name must round-trip through
//! its canonical name.

use std::path::Path;

fn replay(target: &str, at_least: usize, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    assert!(
        files.len() >= at_least,
        "fuzz/corpus/{target} holds {} inputs",
        files.len()
    );
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("{} panics", f.display());
        }
    }
}

#[test]
fn attack_spec_corpus_replays_without_panics() {
    replay("attack_spec", 25, spat_spec::fuzzing::attack_spec);
}

#[test]
fn model_name_corpus_replays_without_panics() {
    replay("model_name", 25, spat_spec::fuzzing::model_name);
}
