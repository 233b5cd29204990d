//! Networks by name against RobustBench's PyTorch classes: sizes of full-size networks
//! (`scripts/golden/zoo.py`, counted on the meta device) and the `state_dict` layout of every
//! RobustBench entry spat builds (`scripts/robustbench_zoo.py`). Everything here is counted by
//! dry builds: no weight is drawn.

use std::collections::HashMap;
use std::path::PathBuf;

use spat_models::{model_info, Architecture};
use spat_spec::robustbench::{entries, EntryNetwork};
use spat_spec::{Fnv1a, ModelName};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(serde::Deserialize)]
struct Size {
    parameters: usize,
    buffers: usize,
    macs: u64,
}

/// The counts the issue names, as PyTorch prints them for RobustBench's classes.
const PRINTED: [(&str, usize); 6] = [
    ("dm-wrn-28-10", 36_479_194),
    ("dm-wrn-70-16-swish", 266_796_506),
    ("dm-preact-resnet-18", 12_548_426),
    ("wrn-34-15", 103_819_674),
    ("wrn-34-20", 184_531_674),
    ("wrn-70-16", 266_796_506),
];

#[test]
fn sizes_by_name_equal_pytorchs() {
    let sizes: HashMap<String, Size> = serde_json::from_str(&fixture("zoo_sizes.json")).unwrap();
    for (name, parameters) in PRINTED {
        assert_eq!(
            sizes[name].parameters, parameters,
            "fixture vs printed {name}"
        );
    }
    assert!(sizes.len() >= 16);
    for (name, want) in &sizes {
        let got = model_info(name, 10).unwrap();
        assert_eq!(got.parameters, want.parameters, "{name} parameters");
        assert_eq!(got.buffers, want.buffers, "{name} buffers");
        assert_eq!(got.flops, 2 * want.macs, "{name} flops");
    }
}

#[derive(serde::Deserialize)]
struct Layout {
    architecture: String,
    classes: usize,
    parameters: usize,
    layout_fnv1a64: String,
}

/// FNV-1a of the sorted `name:d0,d1,...` lines, as `scripts/robustbench_zoo.py` hashes
/// RobustBench's `state_dict` (less `mu`, `sigma` and `sub_block1.*`, which spat's loader takes
/// out of a file).
fn layout_digest(arch: &Architecture) -> String {
    let mut lines: Vec<String> = arch
        .variables()
        .unwrap()
        .into_iter()
        .map(|d| {
            let dims: Vec<String> = d.shape.iter().map(usize::to_string).collect();
            format!("{}:{}\n", d.name, dims.join(","))
        })
        .collect();
    lines.sort();
    let mut h = Fnv1a::new();
    for l in &lines {
        h.update(l.as_bytes());
    }
    h.hex()
}

#[test]
fn every_robustbench_entry_spat_builds_has_robustbenchs_layout() {
    let layouts: HashMap<String, Layout> =
        serde_json::from_str(&fixture("robustbench_layouts.json")).unwrap();
    let supported: Vec<_> = entries()
        .iter()
        .filter(|e| matches!(e.network, EntryNetwork::Supported { .. }))
        .collect();
    assert_eq!(supported.len(), layouts.len());
    for e in supported {
        let key = e.key();
        let want = &layouts[&key];
        let name: ModelName = format!("rb:{key}").parse().unwrap();
        assert_eq!(
            name.architecture(None).unwrap().to_string(),
            want.architecture,
            "{key}"
        );
        assert_eq!(e.dataset.num_classes(), want.classes, "{key}");
        let arch = Architecture::from_name(&name, Some(e.dataset), want.classes).unwrap();
        assert_eq!(
            arch.info().unwrap().parameters,
            want.parameters,
            "{key} parameters"
        );
        assert_eq!(
            layout_digest(&arch),
            want.layout_fnv1a64,
            "{key} names and shapes"
        );
    }
}
