//! The invariants of ARCHITECTURE.md that a test can check: which spat crate may depend on which,
//! that xtask, spat-reproduce, spat-report and spat-spec never link candle, that the CLI computes nothing, and
//! that library and xtask code writes files only through spat-spec's atomic writes.
//!
//! Dependencies are read with `cargo metadata` and `cargo tree` (offline, from Cargo.lock).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(args)
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Normal (non-dev, non-build) dependencies of every workspace crate on spat crates.
fn spat_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let text = cargo(&[
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|n| n.starts_with("spat-"))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn dependencies_point_one_way() {
    let deps = spat_dependencies();
    let allowed: &[(&str, &[&str])] = &[
        ("spat-spec", &[]),
        ("spat-policy", &["spat-spec"]),
        ("spat-pickle", &[]),
        ("spat-core", &["spat-spec", "spat-pickle"]),
        ("spat-data", &["spat-spec", "spat-core", "spat-pickle"]),
        ("spat-kernels", &[]),
        ("spat-models", &["spat-spec", "spat-core", "spat-kernels"]),
        ("spat-attacks", &["spat-spec", "spat-core"]),
        (
            "spat-train",
            &[
                "spat-spec",
                "spat-policy",
                "spat-core",
                "spat-data",
                "spat-attacks",
                "spat-report",
            ],
        ),
        ("spat-report", &["spat-spec"]),
        (
            "spat-reproduce",
            &["spat-spec", "spat-policy", "spat-report"],
        ),
        ("xtask", &["spat-spec", "spat-reproduce"]),
    ];
    for (krate, may) in allowed {
        let has = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace"));
        let may: BTreeSet<String> = may.iter().map(|s| s.to_string()).collect();
        assert!(
            has.is_subset(&may),
            "{krate} depends on {has:?}; ARCHITECTURE.md allows {may:?}"
        );
    }
    assert!(deps.contains_key("spat-cli"), "the composing binary");
}

#[test]
fn xtask_reproduce_report_and_spec_link_no_candle() {
    for krate in [
        "xtask",
        "spat-reproduce",
        "spat-report",
        "spat-spec",
        "spat-policy",
        "spat-pickle",
    ] {
        let tree = cargo(&[
            "tree",
            "-p",
            krate,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ]);
        assert!(tree.lines().count() > 1, "{krate}: {tree}");
        let candle: Vec<&str> = tree.lines().filter(|l| l.starts_with("candle")).collect();
        assert!(candle.is_empty(), "{krate} links {candle:?}");
    }
}

/// Source lines of `dir`'s `.rs` files before their first `#[cfg(test)]`, without comments.
fn code_lines(dir: &Path) -> Vec<(PathBuf, usize, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("#[cfg(test)]") {
                        break;
                    }
                    if !code.starts_with("//") {
                        out.push((path.clone(), i + 1, line.to_string()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_cli_composes_and_computes_nothing() {
    // Tensor operations (candle's return a Result, hence the `?`), autograd and losses.
    let numerics = [
        ".backward(",
        ".argmax(",
        "softmax(",
        "cross_entropy(",
        ".log()?",
        ".exp()?",
        ".round()?",
        ".affine(",
        "DType::U8",
    ];
    let found: Vec<String> = code_lines(&root().join("crates/spat-cli/src"))
        .into_iter()
        .filter(|(_, _, l)| numerics.iter().any(|n| l.contains(n)))
        .map(|(p, i, l)| format!("{}:{i}: {}", p.display(), l.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "numerics in the CLI:\n{}",
        found.join("\n")
    );
}

#[test]
fn files_are_written_only_through_atomic_writes() {
    // spat-spec's fs module is the atomic write (and holds the read-only, non-blocking open of
    // inputs and the run directory's lock file); fetch.rs downloads into a temporary file and
    // renames a fully unpacked staging folder into place (its own all-or-nothing protocol);
    // lock.rs writes its files atomically too but moves a stale lock aside to break it (a lock
    // protocol, not a file's contents).
    let allowed = [
        "crates/spat-spec/src/fs/",
        "xtask/src/fetch.rs",
        "crates/spat-reproduce/src/lock.rs",
    ];
    let writes = [
        "fs::write(",
        "File::create(",
        "fs::rename(",
        "fs::copy(",
        "OpenOptions",
    ];
    let mut found = Vec::new();
    for dir in ["crates", "xtask/src"] {
        for (path, i, line) in code_lines(&root().join(dir)) {
            let rel = path
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_source = rel.contains("/src/");
            if is_source
                && !allowed.iter().any(|a| rel.starts_with(a))
                && writes.iter().any(|w| line.contains(w))
            {
                found.push(format!("{rel}:{i}: {}", line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "non-atomic writes:\n{}", found.join("\n"));
}

/// Every workspace `.rs` file under `crates/` and `xtask/`, with its path relative to the root.
fn workspace_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("crates"), root().join("xtask")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("target") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn unsafe_code_lives_in_the_listed_modules_and_every_unsafe_fn_says_its_contract() {
    let allowed = [
        "crates/spat-cli/src/malloc.rs",
        "crates/spat-kernels/src/conv/cudnn.rs",
        "crates/spat-kernels/src/conv/direct.rs",
        "crates/spat-kernels/src/cpu/data.rs",
        "crates/spat-kernels/src/cpu/gemm.rs",
        "crates/spat-kernels/src/cpu/simd.rs",
    ];
    let mut allowing = Vec::new();
    let mut undocumented = Vec::new();
    for (rel, text) in workspace_sources() {
        let allows = |l: &str| {
            let l = l.trim_start();
            l.starts_with("#![allow(unsafe_code)]") || l.starts_with("#[allow(unsafe_code)]")
        };
        if text.lines().any(allows) {
            allowing.push(rel.clone());
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let signature = line
                .trim_start()
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub ");
            if !signature.starts_with("unsafe fn ") {
                continue;
            }
            // The doc comment above the signature (attributes may stand between).
            let doc: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .skip_while(|l| l.starts_with("#["))
                .take_while(|l| l.starts_with("///"))
                .collect();
            if !doc.iter().any(|l| l.contains("# Safety")) {
                undocumented.push(format!("{rel}:{}", i + 1));
            }
        }
    }
    assert_eq!(
        allowing, allowed,
        "ARCHITECTURE.md lists where unsafe code may be"
    );
    assert!(
        undocumented.is_empty(),
        "unsafe fns without a `# Safety` section: {undocumented:?}"
    );
}

#[test]
fn models_reach_kernels_only_through_their_public_surface() {
    // spat-kernels exports `ops` and `profile` (and the TF32 switch); its kernel modules are
    // private, so this is checked by the compiler. What remains is that spat-models holds no
    // kernel of its own: no custom op implementation.
    let kernels_in_models: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(rel, _)| rel.starts_with("crates/spat-models/src/"))
        .filter(|(_, text)| {
            text.lines().map(str::trim_start).any(|l| {
                [
                    "impl CustomOp",
                    "#![allow(unsafe_code)]",
                    "#[allow(unsafe_code)]",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        kernels_in_models.is_empty(),
        "kernels belong in spat-kernels: {kernels_in_models:?}"
    );
}

#[test]
fn library_randomness_comes_from_the_seeded_host_generator() {
    // candle's own generators (`Tensor::rand`, `randn`, `rand_like`, `Device::set_seed`) are not
    // seeded by the run and not reproducible across devices; every draw goes through
    // `spat_core::rng` (seeded ChaCha streams on the host). Unit tests may use them for arbitrary
    // inputs: `code_lines` stops at `#[cfg(test)]`.
    let device_rng = ["Tensor::rand(", "Tensor::randn(", "rand_like(", "set_seed("];
    let found: Vec<String> = ["crates", "xtask/src"]
        .iter()
        .flat_map(|dir| code_lines(&root().join(dir)))
        .filter(|(path, _, _)| path.to_string_lossy().contains("/src/"))
        .filter(|(_, _, l)| device_rng.iter().any(|r| l.contains(r)))
        .map(|(p, i, l)| format!("{}:{i}: {}", p.display(), l.trim()))
        .collect();
    assert!(
        found.is_empty(),
        "device RNG in library code:\n{}",
        found.join("\n")
    );
}
