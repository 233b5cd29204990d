//! The safe pickle reader against files written by Python's own pickle
//! (scripts/fixtures/make_pickles.py -> tests/fixtures/pickle/).

use std::path::{Path, PathBuf};

use spat_data::{load_pseudo_labeled, Error};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pickle")
        .join(name)
}

/// The generating script's pixel formula for HWC position (n, y, x, c).
fn expected_pixel(n: usize, y: usize, x: usize, c: usize) -> u8 {
    ((n * 97 + y * 31 + x * 7 + c * 101) % 256) as u8
}

fn check_good(name: &str) {
    let set = load_pseudo_labeled(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(set.len(), 3, "{name}");
    assert_eq!(set.shape(), (3, 32, 32), "{name}");
    assert_eq!(set.num_classes(), 10);
    assert_eq!(set.labels(), &[3, 0, 9], "{name}");
    for n in 0..3 {
        let img = set.image(n);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    // Planar CHW out of HWC in.
                    assert_eq!(
                        img[c * 1024 + y * 32 + x],
                        expected_pixel(n, y, x, c),
                        "{name}: image {n} channel {c} pixel ({y}, {x})"
                    );
                }
            }
        }
    }
}

#[test]
fn reads_protocols_2_to_5() {
    for p in 2..=5 {
        check_good(&format!("rst_p{p}.pickle"));
    }
}

#[test]
fn reads_numpy_1_module_names() {
    check_good("rst_numpy1_names_p3.pickle");
}

fn message(name: &str) -> (Error, String) {
    let e = load_pseudo_labeled(&fixture(name)).expect_err(name);
    let m = e.to_string();
    assert!(m.contains(name), "error must name the file: {m}");
    (e, m)
}

#[test]
fn refuses_unknown_global_without_running_it() {
    let (e, m) = message("evil_os_system.pickle");
    assert!(matches!(e, Error::Pickle { .. }), "{e:?}");
    // The global is `posix.system` on Linux (os.system's real module), `nt.system` on Windows.
    assert!(m.contains("refusing global") && m.contains("system"), "{m}");
}

#[test]
fn rejects_wrong_shape_and_dtype() {
    let (e, m) = message("bad_shape.pickle");
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    assert!(
        m.contains("[3, 32, 32, 4]") && m.contains("(N, 32, 32, 3)"),
        "{m}"
    );
    let (_, m) = message("bad_dtype.pickle");
    assert!(m.contains("float32"), "{m}");
}

#[test]
fn rejects_bad_labels() {
    let (e, m) = message("bad_label.pickle");
    assert!(
        matches!(
            e,
            Error::Label {
                record: 1,
                label: 10,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(m.contains("record 1"), "{m}");
    let (_, m) = message("bad_count.pickle");
    assert!(m.contains("3 images") && m.contains("2 labels"), "{m}");
    let (_, m) = message("no_targets.pickle");
    assert!(m.contains("extrapolated_targets"), "{m}");
}

#[test]
fn truncated_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("rst_p4.pickle")).unwrap();
    let cut = dir.path().join("cut.pickle");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let m = load_pseudo_labeled(&cut).unwrap_err().to_string();
    assert!(m.contains("cut.pickle") && m.contains("truncated"), "{m}");

    let junk = dir.path().join("junk.pickle");
    std::fs::write(&junk, b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00Z").unwrap();
    let m = load_pseudo_labeled(&junk).unwrap_err().to_string();
    assert!(
        m.contains("junk.pickle") && m.contains("unsupported opcode 0x5a"),
        "{m}"
    );

    let missing = dir.path().join("ti_500K_pseudo_labeled.pickle");
    let e = load_pseudo_labeled(&missing).unwrap_err();
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("ti_500K_pseudo_labeled.pickle") && m.contains("fetch-data ti500k"),
        "{m}"
    );
}

/// Issue 13's hostile pickles, which overflowed the stack of the old reader: nested 1-tuples
/// (`b'\x80\x02)' + b'\x85' * 1_000_000 + b'.'`) and 300,000 nested lists.
#[test]
fn deeply_nested_pickles_are_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut tuples = b"\x80\x02)".to_vec();
    tuples.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    tuples.push(b'.');
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b']', 300_000));
    lists.extend(std::iter::repeat_n(b'a', 299_999));
    lists.push(b'.');
    for (name, bytes) in [("tuples.pickle", tuples), ("lists.pickle", lists)] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let m = load_pseudo_labeled(&path).unwrap_err().to_string();
        assert!(
            m.contains(name) && m.contains("nest deeper than 200 levels"),
            "{m}"
        );
    }
}
