//! An exclusive lock on a folder one process writes (a run directory).
//!
//! The lock is the OS's advisory lock (`flock`) on a lock file in the folder, taken without
//! waiting. The kernel drops it when its holder exits in any way, `kill -9` included, so a killed
//! process never leaves a lock that blocks the next one; the file itself stays (removing it would
//! let a process that opened it before the removal lock a file nobody else sees). On NFS, Linux
//! emulates `flock` with byte-range locks that the server arbitrates, so two machines sharing the
//! folder exclude each other too.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// Takes the lock of `dir` (the file `dir/name`, created if absent), or returns `None` at
    /// once if another process (or another handle in this one) holds it. `dir` must exist.
    pub fn try_acquire(dir: &Path, name: &str) -> Result<Option<FolderLock>> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FolderLock { _file: file, path })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::try_acquire(dir.path(), "run.lock")
            .unwrap()
            .unwrap();
        assert!(FolderLock::try_acquire(dir.path(), "run.lock")
            .unwrap()
            .is_none());
        drop(first);
        assert!(FolderLock::try_acquire(dir.path(), "run.lock")
            .unwrap()
            .is_some());
    }
}
