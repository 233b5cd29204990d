//! Crash-safe file writes and typed JSON reads.
//!
//! A write goes to a temporary file beside its target, is fsynced, and is renamed over the target,
//! then the directory is fsynced: a process killed at any instant leaves the old file or the new
//! one, never half of either. Every spat crate and xtask writes its files through here.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

fn temp_path(path: &Path) -> PathBuf {
    // Unique per process and per call, so two threads writing one file never share a temp file.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

fn sync_parent(path: &Path) {
    // Directory fsync makes the rename durable; some filesystems refuse it, which is harmless.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Writes through `write` into a temporary file beside `path`, fsyncs it and renames it over
/// `path`. On failure the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| E::from(Error::io(&tmp, e)))?;
        fs::rename(&tmp, path).map_err(|e| E::from(Error::io(path, e)))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else {
        sync_parent(path);
    }
    result
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Atomically replaces `path` with `value` as pretty JSON and a final newline.
pub fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("cannot serialise ({e})"),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads `path` as JSON of type `T`; `kind` names what the file should be in the error
/// ("a run configuration (config.json)").
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, kind: &str) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_json(path, &text, kind)
}

/// Parses `text` (read from `path`) as JSON of type `T`.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    kind: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("not {kind} ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            fs::write(tmp, b"half").unwrap();
            Err(Error::Invalid("boom".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("boom"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn json_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.json");
        write_json(&p, &vec![1, 2]).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "[\n  1,\n  2\n]\n");
        assert_eq!(read_json::<Vec<u32>>(&p, "a list").unwrap(), vec![1, 2]);
        let msg = read_json::<String>(&p, "a name").unwrap_err().to_string();
        assert!(
            msg.contains("v.json") && msg.contains("not a name"),
            "{msg}"
        );
        let msg = read_json::<String>(&dir.path().join("none.json"), "x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("none.json"), "{msg}");
    }
}
