//! Where a command may write: every output path is checked here before anything is created.
//!
//! spat never replaces a file it did not create. A command lists the files it will write in an
//! [`Outputs`], each with how spat recognises its own file of that kind ([`Own`]): a PNG with
//! spat's text chunk, JSON that reads back as the spat schema it writes, or text whose last line
//! is spat's [mark](mark_text). [`Outputs::check`] then refuses, creating nothing, a path with a
//! control character in it, a path below a file, a folder, a symbolic link or a device where a
//! file goes, and an existing file its recogniser does not accept; a folder that must hold a
//! command's files alone ([`Outputs::exclusive_folder`]) is refused if it holds anything else.
//! Only then does [`Outputs::prepare`] create the folders.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// How spat knows an existing file at an output path as one it wrote.
#[derive(Clone, Copy)]
pub enum Own {
    /// No existing file is replaced.
    Never,
    /// A file whose bytes the function accepts.
    Recognised(fn(&[u8]) -> bool),
    /// A file the function accepts given its path too, for a file whose folder records it (a
    /// reproduction cell's output, listed with its checksum in the cell's marker).
    RecognisedAt(fn(&Path, &[u8]) -> bool),
}

/// The start of the last line spat gives every text file it writes without a schema (markdown
/// reports), inside the comment syntax of the file.
const MARK: &str = "spat-output:";

/// Appends spat's mark to markdown `text` as its last line (an HTML comment, invisible when
/// rendered), naming the command that wrote it. A file that does not end with the mark (the
/// user's own, or one the user added to) is never replaced.
pub fn mark_text(text: &mut String, writer: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "<!-- {MARK} written by {writer}; replaced when it runs again -->\n"
    ));
}

/// Whether `bytes` are text ending with spat's [mark](mark_text).
pub fn is_marked_text(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| {
            let l = l.trim();
            l.starts_with(&format!("<!-- {MARK}")) && l.ends_with("-->")
        })
}

/// A recogniser of JSON that reads back as `T`.
pub fn is_json_of<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
    serde_json::from_slice::<T>(bytes).is_ok()
}

/// Largest file a recogniser reads: spat's outputs with a schema or a mark are far smaller, so a
/// larger file is not one of them.
const MAX_OWN_BYTES: u64 = 256 << 20;

/// The files (and folders) a command will write, checked before any is created.
pub struct Outputs {
    option: String,
    files: Vec<(PathBuf, Own)>,
    exclusive: Vec<PathBuf>,
}

/// `path` as it can be shown on one line.
pub fn shown(path: &Path) -> String {
    let s = path.display().to_string();
    if s.chars().any(char::is_control) {
        format!("{s:?}")
    } else {
        s
    }
}

impl Outputs {
    /// Outputs given by `option` (`--out`), which errors name.
    pub fn new(option: &str) -> Self {
        Outputs {
            option: option.to_string(),
            files: Vec::new(),
            exclusive: Vec::new(),
        }
    }

    /// A file the command writes, replacing an existing one only if `own` accepts it.
    pub fn file(mut self, path: impl Into<PathBuf>, own: Own) -> Self {
        self.files.push((path.into(), own));
        self
    }

    /// A folder that holds this command's files and nothing else: it must be absent, empty, or
    /// hold only the files listed with [`Outputs::file`] below it (and spat's temporary files of
    /// them). For outputs whose folder the user names as the result (`sweep-alpha --out`).
    pub fn exclusive_folder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.exclusive.push(dir.into());
        self
    }

    fn err(&self, path: &Path, message: impl std::fmt::Display) -> Error {
        Error::Invalid(format!("{} {}: {message}", self.option, shown(path)))
    }

    /// Checks every output, creating and changing nothing.
    pub fn check(&self) -> Result<()> {
        for dir in &self.exclusive {
            check_path(&self.option, dir)?;
            self.check_exclusive(dir)?;
        }
        for (path, own) in &self.files {
            check_path(&self.option, path)?;
            self.check_file(path, *own)?;
        }
        Ok(())
    }

    /// Writes `bytes` to the declared output `path` atomically, after checking it again (a file
    /// may have appeared there while the command computed) and creating its folder.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let Some((_, own)) = self.files.iter().find(|(p, _)| p == path) else {
            return Err(self.err(path, "is not one of the command's declared outputs"));
        };
        check_path(&self.option, path)?;
        self.check_file(path, *own)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        super::write_atomic(path, bytes)
    }

    /// [`Outputs::check`], then creates the folders the files go in.
    pub fn prepare(&self) -> Result<()> {
        self.check()?;
        for (path, _) in &self.files {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
        }
        for dir in &self.exclusive {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    fn check_file(&self, path: &Path, own: Own) -> Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(path, e)),
        };
        let what = meta.file_type();
        if what.is_dir() {
            return Err(self.err(path, "is a folder, not a file name"));
        }
        if what.is_symlink() {
            return Err(self.err(
                path,
                "is a symbolic link; spat replaces only files it wrote itself: remove it or \
                 choose another name",
            ));
        }
        if !what.is_file() {
            return Err(self.err(path, "exists and is not a regular file"));
        }
        let ours = match own {
            Own::Never => {
                return Err(self.err(path, "already exists; refusing to overwrite it"));
            }
            Own::Recognised(is_ours) => {
                meta.len() <= MAX_OWN_BYTES
                    && super::read_input(path).is_ok_and(|bytes| is_ours(&bytes))
            }
            Own::RecognisedAt(is_ours) => {
                meta.len() <= MAX_OWN_BYTES
                    && super::read_input(path).is_ok_and(|bytes| is_ours(path, &bytes))
            }
        };
        if !ours {
            return Err(self.err(
                path,
                "the file exists and was not written by this spat command; spat does not \
                 overwrite files it did not create: remove it or choose another name",
            ));
        }
        Ok(())
    }

    fn check_exclusive(&self, dir: &Path) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if dir.exists() && !dir.is_dir() => {
                return Err(self.err(dir, "exists and is not a folder"))
            }
            Err(e) => return Err(self.err(dir, e)),
        };
        let ours: Vec<String> = self
            .files
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .filter_map(|(p, _)| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect();
        let mut foreign = Vec::new();
        for entry in entries {
            let name = entry
                .map_err(|e| self.err(dir, e))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            let temp = super::temp_target(&name).is_some_and(|t| ours.iter().any(|o| o == t));
            if !ours.contains(&name) && !temp {
                foreign.push(name);
            }
        }
        if !foreign.is_empty() {
            foreign.sort();
            return Err(self.err(
                dir,
                format!(
                    "the folder holds files that are not this command's ({}); spat does not \
                     write into a folder it did not create: choose a new or empty folder",
                    foreign.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Checks that `path` is a name spat may create, creating nothing: no control character (a line
/// break in a path breaks every log and script that shows it), and no existing file where a
/// folder of it must be.
pub fn check_path(option: &str, path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() {
        return Err(Error::Invalid(format!("{option}: the path is empty")));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::Invalid(format!(
            "{option} {}: the path holds the control character {c:?}; spat does not create \
             such names",
            shown(path)
        )));
    }
    for ancestor in path.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        if let Ok(meta) = fs::metadata(ancestor) {
            if !meta.is_dir() {
                return Err(Error::Invalid(format!(
                    "{option} {}: {} is not a folder",
                    shown(path),
                    shown(ancestor)
                )));
            }
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_like(bytes: &[u8]) -> bool {
        bytes.starts_with(b"ours")
    }

    #[test]
    fn absent_or_own_files_pass_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/a.png");
        let o = Outputs::new("--out").file(&out, Own::Recognised(png_like));
        o.check().unwrap();
        assert!(!dir.path().join("new").exists());
        o.prepare().unwrap();
        assert!(dir.path().join("new").is_dir());
        fs::write(&out, b"ours, written before").unwrap();
        o.check().unwrap();
    }

    #[test]
    fn foreign_files_links_folders_and_control_characters_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("mine.png");
        fs::write(&user, b"the user's").unwrap();
        let msg = |o: Outputs| o.check().unwrap_err().to_string();
        let m = msg(Outputs::new("--out").file(&user, Own::Recognised(png_like)));
        assert!(
            m.contains("mine.png") && m.contains("not written by"),
            "{m}"
        );
        let m = msg(Outputs::new("out").file(&user, Own::Never));
        assert!(m.contains("refusing to overwrite"), "{m}");
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&user, &link).unwrap();
        let m = msg(Outputs::new("--out").file(&link, Own::Recognised(|_| true)));
        assert!(m.contains("symbolic link"), "{m}");
        let m = msg(Outputs::new("--out").file(dir.path(), Own::Recognised(|_| true)));
        assert!(m.contains("is a folder"), "{m}");
        let below = user.join("x.png");
        let m = msg(Outputs::new("--out").file(&below, Own::Recognised(|_| true)));
        assert!(m.contains("is not a folder"), "{m}");
        let newline = dir.path().join("a\nb/x.png");
        let m = msg(Outputs::new("--out").file(&newline, Own::Recognised(|_| true)));
        assert!(m.contains("control character") && !m.contains('\n'), "{m}");
        assert!(!dir.path().join("a\nb").exists());
    }

    #[test]
    fn an_exclusive_folder_holds_only_its_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("sweep");
        let outputs = || {
            Outputs::new("--out")
                .file(d.join("a.md"), Own::Recognised(is_marked_text))
                .exclusive_folder(&d)
        };
        outputs().check().unwrap();
        fs::create_dir(&d).unwrap();
        let mut text = "# a table\n".to_string();
        mark_text(&mut text, "spat test");
        fs::write(d.join("a.md"), &text).unwrap();
        fs::write(d.join("a.md.12.3.tmp"), b"half").unwrap();
        outputs().check().unwrap();
        fs::write(d.join("a.md"), text.clone() + "my own line\n").unwrap();
        let m = outputs().check().unwrap_err().to_string();
        assert!(m.contains("not written by"), "{m}");
        fs::write(d.join("a.md"), &text).unwrap();
        fs::write(d.join("notes.tex"), b"mine").unwrap();
        let m = outputs().check().unwrap_err().to_string();
        assert!(m.contains("notes.tex"), "{m}");
    }

    #[test]
    fn marks_are_recognised_only_as_the_last_line() {
        let mut t = String::from("| a | b |");
        mark_text(&mut t, "spat sweep-alpha");
        assert!(is_marked_text(t.as_bytes()));
        assert!(!is_marked_text(b"# my notes\n"));
        assert!(!is_marked_text(format!("{t}more\n").as_bytes()));
        assert!(is_marked_text(format!("{t}\n\n").as_bytes()));
    }
}
