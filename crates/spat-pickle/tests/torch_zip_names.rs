//! torch.save zip files under archive names of every length: the layout of the records (each
//! local header padded so that its data starts on a 64-byte boundary; the central directory; the
//! ZIP64 end record and locator PyTorch's writer always adds) depends on the name's length, and
//! one length (21) once made a valid file unreadable. Files made by `torch.save`
//! (`scripts/golden/torch_zip_names.py`) are read, and rebuilt byte for byte by
//! `spat_pickle::fuzzing::torch_zip`, which then makes every length from 1 to 255 (the fuzz
//! target `torch_zip_names` draws names at random).

use std::path::{Path, PathBuf};

use spat_pickle::fuzzing::{
    names_state_reads_back, names_state_records, torch_zip, torch_zip_names, NAMES_STATE_PKL,
};

const NAME_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

/// The archive name of length `n` the script uses.
fn name_of(n: usize) -> String {
    NAME_CHARS.chars().cycle().take(n).collect()
}

/// The records of a zip file in central-directory order, as `(name in the archive, data)`.
fn records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            (f.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// Checks a file `torch.save` wrote as `<dir>/<name>.pt`: spat reads it, and `torch_zip`
/// rebuilds it byte for byte from its records.
fn check_torch_made(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let label = path.display().to_string();
    names_state_reads_back(&bytes, &label);
    let archive = path.file_stem().unwrap().to_str().unwrap();
    let recs = records(&bytes);
    let names: Vec<(String, &[u8])> = recs
        .iter()
        .map(|(n, b)| {
            let rel = n.strip_prefix(&format!("{archive}/")).unwrap();
            (rel.to_string(), b.as_slice())
        })
        .collect();
    assert_eq!(
        names[0],
        ("data.pkl".to_string(), NAMES_STATE_PKL),
        "{label}"
    );
    let borrowed: Vec<(&str, &[u8])> = names.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    assert!(
        torch_zip(archive, &borrowed) == bytes,
        "{label}: torch_zip does not lay the records out as torch.save did"
    );
    let id = names.last().unwrap().1;
    let ours = names_state_records(id, false);
    let ours: Vec<(&str, &[u8])> = ours.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    assert_eq!(ours, borrowed, "{label}: the records torch.save wrote");
}

fn committed() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch/names");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn files_torch_save_wrote_are_read_and_rebuilt_byte_for_byte() {
    let files = committed();
    let lengths: Vec<usize> = files.iter().map(|p| p.file_stem().unwrap().len()).collect();
    // 21 is the length that was refused; 20 and 22 its neighbours.
    for n in [1, 2, 20, 21, 22, 64] {
        assert!(lengths.contains(&n), "no committed file of length {n}");
    }
    for f in &files {
        check_torch_made(f);
    }
}

#[test]
fn every_name_length_from_1_to_255_reads_back() {
    for n in 1..=255 {
        for legacy in [false, true] {
            let records = names_state_records(b"0561108523619670529417794104306544782707", legacy);
            let borrowed: Vec<(&str, &[u8])> =
                records.iter().map(|(r, b)| (*r, b.as_slice())).collect();
            let bytes = torch_zip(&name_of(n), &borrowed);
            names_state_reads_back(&bytes, &format!("length {n}, legacy records {legacy}"));
        }
    }
}

#[test]
fn the_fuzz_body_reads_names_of_several_byte_characters() {
    for len in [1u8, 21, 64, 200, 255] {
        for fill in [0u8, 6, 7, 255] {
            let mut data = vec![len];
            data.extend(std::iter::repeat_n(fill, len as usize + 1));
            torch_zip_names(&data);
        }
    }
}

/// All 64 lengths from `torch.save` itself (64 files are kept out of the repository):
/// `/tmp/tv/bin/python scripts/golden/torch_zip_names.py DIR $(seq 1 64)`, then this test with
/// `SPAT_TORCH_NAMES_DIR=DIR`.
#[test]
#[ignore = "needs torch.save's files of every length in $SPAT_TORCH_NAMES_DIR (see the doc comment)"]
fn every_length_torch_save_wrote_is_rebuilt_byte_for_byte() {
    let dir =
        PathBuf::from(std::env::var_os("SPAT_TORCH_NAMES_DIR").expect("SPAT_TORCH_NAMES_DIR"));
    for n in 1..=64 {
        check_torch_made(&dir.join(format!("{}.pt", name_of(n))));
    }
}
