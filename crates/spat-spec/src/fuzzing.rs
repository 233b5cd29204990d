//! Bodies of the attack-spec and model-name fuzz targets (`fuzz/fuzz_targets/attack_spec.rs`,
//! `model_name.rs`), here so that the committed corpora are replayed through the same code by
//! ordinary tests on stable (`tests/fuzz_corpus.rs`).

use crate::{AttackSpec, ModelName};

/// Parses the bytes (as lossy UTF-8) as one attack spec and as a list: never a panic, and every
/// spec that parses prints as a canonical name that parses back to the same spec and prints the
/// same again (the names `spat eval --json` keys its accuracies by).
pub fn attack_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let single = text.parse::<AttackSpec>();
    let list = AttackSpec::parse_list(&text);
    for spec in single.iter().chain(list.iter().flatten()) {
        let name = spec.to_string();
        let again: AttackSpec = name
            .parse()
            .unwrap_or_else(|e| panic!("canonical name `{name}` of `{text}` does not parse: {e}"));
        assert_eq!(again, *spec, "`{text}` -> `{name}`");
        assert_eq!(again.to_string(), name, "`{text}`");
    }
}

/// Parses the bytes (as lossy UTF-8) as a model name (`--model`): never a panic, and every name
/// that parses prints as a canonical name that parses back to the same network.
pub fn model_name(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = text.parse::<ModelName>() {
        let canonical = name.to_string();
        let again: ModelName = canonical.parse().unwrap_or_else(|e| {
            panic!("canonical name `{canonical}` of `{text}` does not parse: {e}")
        });
        assert_eq!(again, name, "`{text}` -> `{canonical}`");
        assert_eq!(again.to_string(), canonical, "`{text}`");
    }
}
