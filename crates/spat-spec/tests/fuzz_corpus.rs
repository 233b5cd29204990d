//! Replays the committed corpus and crash inputs of the attack-spec fuzz target
//! (fuzz/corpus/attack_spec/, fuzz/artifacts/attack_spec/) through its body on stable: every
//! input must parse or be refused, never panic, and every accepted spec must round-trip through
//! its canonical name.

use std::path::Path;

#[test]
fn attack_spec_corpus_replays_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "artifacts"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join("attack_spec")) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    assert!(
        files.len() >= 25,
        "fuzz/corpus/attack_spec holds {} inputs",
        files.len()
    );
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap();
        if std::panic::catch_unwind(|| spat_spec::fuzzing::attack_spec(&data)).is_err() {
            panic!("{} panics", f.display());
        }
    }
}
