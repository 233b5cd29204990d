//! The checkout the harness runs from: its root, its commit, and the binaries it builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context as _, Result};

/// The workspace root (this crate's manifest is two levels below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("spat-reproduce lives inside the workspace")
        .to_path_buf()
}

/// The `spat` binary: $SPAT_BIN, else `cargo build --release -p spat-cli` in the default target
/// dir (with CUDA when `cuda`).
pub fn spat_binary(cuda: bool) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SPAT_BIN") {
        let p = PathBuf::from(p);
        ensure!(p.is_file(), "SPAT_BIN={} is not a file", p.display());
        return Ok(p);
    }
    let features = cuda.then(|| std::env::var("SPAT_FEATURES").unwrap_or_else(|_| "cuda".into()));
    workspace_binary("spat-cli", "spat", features.as_deref())
}

/// The binary `name` of the workspace's `package`, built by `cargo build --release` (with
/// `features`) in the default target dir ($CARGO_TARGET_DIR, else `target/`).
pub fn workspace_binary(package: &str, name: &str, features: Option<&str>) -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", package]);
    if let Some(features) = features {
        cmd.args(["--features", features]);
    }
    eprintln!("xtask: building {name}: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("running cargo build for {package}"))?;
    ensure!(
        status.success(),
        "`cargo build --release -p {package}` failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target
        .join("release")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.is_file(),
        "cargo built {package} but {} is not there",
        bin.display()
    );
    Ok(bin)
}

/// The commit of the checkout at the workspace root (`-dirty` with uncommitted changes to tracked
/// files); `None` outside a git checkout.
pub fn checkout_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
