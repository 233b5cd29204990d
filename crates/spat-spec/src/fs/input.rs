//! Reading files spat did not write: regular files only, refused at once otherwise.
//!
//! Every file spat reads (data sets, pickles, checkpoints, run files, reports) is opened here. A
//! FIFO would block the read forever, `/dev/zero` would never end and a folder cannot be read, so
//! anything but a regular file (or a symbolic link to one) is an error that says what the path
//! is, before a byte is read. The open itself never waits: it is non-blocking, and the type is
//! checked on the opened file, so a path swapped between a look and the open cannot slip through.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a path that is not a regular file is, for an error message.
fn describe(file_type: fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a folder (directory)"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The error of an open that failed, said plainly for symbolic links whose target is missing or
/// that loop (the OS reports them as "not found" or "too many levels").
fn open_error(path: &Path, e: io::Error) -> io::Error {
    const ELOOP: i32 = 40;
    let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if link && e.raw_os_error() == Some(ELOOP) {
        return io::Error::other("is a loop of symbolic links");
    }
    if link && e.kind() == io::ErrorKind::NotFound {
        let target = fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
        return io::Error::new(
            io::ErrorKind::NotFound,
            format!("is a symbolic link to `{target}`, which does not exist (not found)"),
        );
    }
    e
}

/// Opens `path` for reading if it is a regular file (a symbolic link to one is followed).
/// Anything else is an error of kind `InvalidInput` naming what it is; a missing file keeps the
/// kind `NotFound`, so callers can add how to get it.
pub fn open_input(path: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        // A FIFO opens at once instead of waiting for a writer; reads of regular files ignore it.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file; spat reads only regular files",
                describe(file_type)
            ),
        ));
    }
    Ok(file)
}

/// The whole of the regular file `path` (see [`open_input`]).
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_input(path)?;
    let mut bytes = Vec::with_capacity(file.metadata()?.len().try_into().unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_input`] as UTF-8 text.
pub fn read_input_text(path: &Path) -> io::Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

/// Whether anything is at `path`: a file, a folder, or a symbolic link even if it leads nowhere.
/// Only "no such entry" is `false`; any other failure to look (a folder that may not be searched)
/// is an error, so that a caller never mistakes an unreadable file for an absent one.
pub fn present(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: io::Result<Vec<u8>>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn regular_files_and_links_to_them_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        fs::write(&f, b"abc").unwrap();
        std::os::unix::fs::symlink(&f, dir.path().join("link")).unwrap();
        assert_eq!(read_input(&f).unwrap(), b"abc");
        assert_eq!(read_input(&dir.path().join("link")).unwrap(), b"abc");
        assert!(present(&f).unwrap());
        assert!(!present(&dir.path().join("none")).unwrap());
    }

    #[test]
    fn anything_else_is_refused_at_once_saying_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Would block forever without the non-blocking open: no writer ever comes.
        assert!(message(read_input(&fifo)).contains("named pipe (FIFO)"));
        assert!(message(read_input(Path::new("/dev/zero"))).contains("character device"));
        assert!(message(read_input(dir.path())).contains("a folder"));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).unwrap();
        let e = read_input(&dangling).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("symbolic link to"), "{e}");
        assert!(present(&dangling).unwrap());
        let looping = dir.path().join("loop");
        std::os::unix::fs::symlink(&looping, &looping).unwrap();
        assert!(message(read_input(&looping)).contains("loop of symbolic links"));
        assert!(present(&looping).unwrap());
        let missing = read_input(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
