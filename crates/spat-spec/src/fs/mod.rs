//! The file rules: crash-safe writes, reads of regular files only ([`input`]), output paths
//! checked before anything is created ([`output`]), folder locks ([`lock`]) and typed JSON reads.
//!
//! A write goes to a temporary file beside its target, is fsynced, and is renamed over the target,
//! then the directory is fsynced: a process killed at any instant leaves the old file or the new
//! one, never half of either (and, if killed before the rename, a temporary file that
//! [`temp_target`] recognises, so its owner can remove it). Every spat crate and xtask writes its
//! files through here. [`write_atomic_observed`] reports each [`WriteStage`] to a callback, which
//! is where a caller hangs its fault-injection points.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

pub mod input;
pub mod lock;
pub mod output;

pub use input::{open_input, present, read_input, read_input_text};
pub use lock::FolderLock;
pub use output::{check_path, is_json_of, is_marked_text, mark_text, Outputs, Own};

/// The steps of an atomic write, in the order [`write_atomic_observed`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteStage {
    /// Nothing written yet.
    Start,
    /// The temporary file holds the new contents, not yet fsynced.
    TempWritten,
    /// The temporary file is fsynced.
    TempSynced,
    /// The temporary file has been renamed over the target.
    Renamed,
    /// The directory is fsynced: the rename is durable.
    DirSynced,
}

impl WriteStage {
    /// Every stage, in the order a write passes them.
    pub const ALL: [WriteStage; 5] = [
        WriteStage::Start,
        WriteStage::TempWritten,
        WriteStage::TempSynced,
        WriteStage::Renamed,
        WriteStage::DirSynced,
    ];

    /// The stage's name (`temp_written`, ...), as fault points name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            WriteStage::Start => "start",
            WriteStage::TempWritten => "temp_written",
            WriteStage::TempSynced => "temp_synced",
            WriteStage::Renamed => "renamed",
            WriteStage::DirSynced => "dir_synced",
        }
    }
}

/// The file name a temporary file of [`write_atomic`] stands for (`state.json` for
/// `state.json.4242.7.tmp`), or `None` if `name` is not one.
pub fn temp_target(name: &str) -> Option<&str> {
    let rest = name.strip_suffix(".tmp")?;
    let (rest, counter) = rest.rsplit_once('.')?;
    let (target, pid) = rest.rsplit_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(counter) && digits(pid) && !target.is_empty()).then_some(target)
}

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
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir);
    }
}

/// Fsyncs a directory, making renames and removals in it durable; some filesystems refuse it,
/// which is harmless.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes through `write` into a temporary file beside `path`, fsyncs it and renames it over
/// `path`. On failure the temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    write_atomic_observed(path, write, &mut |_| {})
}

/// [`write_atomic_with`], calling `observe` at each [`WriteStage`] it reaches.
pub fn write_atomic_observed<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
    observe: &mut dyn FnMut(WriteStage),
) -> std::result::Result<(), E> {
    let tmp = temp_path(path);
    observe(WriteStage::Start);
    let result = write(&tmp).and_then(|()| {
        observe(WriteStage::TempWritten);
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| E::from(Error::io(&tmp, e)))?;
        observe(WriteStage::TempSynced);
        fs::rename(&tmp, path).map_err(|e| E::from(Error::io(path, e)))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else {
        observe(WriteStage::Renamed);
        sync_parent(path);
        observe(WriteStage::DirSynced);
    }
    result
}

/// [`write_atomic`], calling `observe` at each [`WriteStage`] it reaches.
pub fn write_bytes_observed(
    path: &Path,
    bytes: &[u8],
    observe: &mut dyn FnMut(WriteStage),
) -> Result<()> {
    write_atomic_observed(
        path,
        |tmp| {
            let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
            f.write_all(bytes).map_err(|e| Error::io(tmp, e))
        },
        observe,
    )
}

/// Atomically replaces `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_bytes_observed(path, bytes, &mut |_| {})
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
    let text = read_input_text(path).map_err(|e| Error::io(path, e))?;
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
    fn stages_are_reported_in_order_and_temp_names_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let mut seen = Vec::new();
        let mut temps = Vec::new();
        write_bytes_observed(&p, b"x", &mut |s| {
            seen.push(s);
            for e in fs::read_dir(dir.path()).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if let Some(t) = temp_target(&name) {
                    temps.push(t.to_string());
                }
            }
        })
        .unwrap();
        assert_eq!(seen, WriteStage::ALL);
        // The temporary file exists after the write and before the rename, and names its target.
        assert_eq!(temps, ["state.json", "state.json"]);
        assert_eq!(temp_target("a.b.json.12.0.tmp"), Some("a.b.json"));
        for not_temp in [
            "x.tmp",
            "state.json",
            "a.1.tmp",
            "a.x.1.tmp",
            ".1.2.tmp",
            "a.1..tmp",
        ] {
            assert_eq!(temp_target(not_temp), None, "{not_temp}");
        }
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
