//! `cargo xtask fetch-data <cifar10|cifar100|stl10|ti500k>`: download an official archive, verify
//! its published MD5, and unpack it into `data/` (or `--out DIR`).
//!
//! Atomic: the archive is downloaded to a temporary file and its checksum checked before anything
//! is created under the output directory; it is then unpacked into a hidden staging directory
//! there and the data-set folder is renamed into place. A failure at any step removes what that
//! step wrote, so the output holds either the complete folder or nothing.
//!
//! Every URL (`https://`, `http://`, `file://`, ...) is downloaded by `curl`, which keeps TLS,
//! redirects, proxies and timeouts out of this crate; a plain path (a local mirror) is copied.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use spat_spec::Dataset;

/// An official data-set archive.
#[derive(Debug, Clone, Copy)]
pub struct Archive {
    pub name: &'static str,
    pub url: &'static str,
    /// Published MD5 of the archive.
    pub md5: &'static str,
    /// The folder the archive unpacks to.
    pub top_dir: &'static str,
}

/// Official archives and their published checksums (the CIFAR page at cs.toronto.edu lists the
/// two CIFAR MD5s; torchvision's STL10 class carries the STL-10 one).
pub const ARCHIVES: [Archive; 3] = [
    Archive {
        name: Dataset::Cifar10.as_str(),
        url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        md5: "c32a1d4ab5d03f1284b67883e8d87530",
        top_dir: Dataset::Cifar10.dir_name(),
    },
    Archive {
        name: Dataset::Cifar100.as_str(),
        url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
        md5: "03b5dce01913d631647c71ecec9e9cb8",
        top_dir: Dataset::Cifar100.dir_name(),
    },
    Archive {
        name: Dataset::Stl10.as_str(),
        url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
        md5: "91f7769df0f17e558f3565bffb0c7dfb",
        top_dir: Dataset::Stl10.dir_name(),
    },
];

pub use spat_spec::dataset::PSEUDO_LABELED_FILE as TI500K_FILE;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// cifar10 | cifar100 | stl10 | ti500k
    pub dataset: String,
    /// Directory to unpack into [default: data/ in the repository]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Download from this URL instead of the official one (a mirror); the official checksum
    /// still has to match.
    #[arg(long)]
    pub url: Option<String>,
}

pub fn default_out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("data"))
        .unwrap_or_else(|| PathBuf::from("data"))
}

pub fn run(args: Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(default_out_dir);
    if args.dataset == "ti500k" {
        print_ti500k_instructions(&out);
        return Ok(());
    }
    let Some(archive) = ARCHIVES.iter().find(|a| a.name == args.dataset) else {
        bail!(
            "unknown data set `{}` (expected one of: cifar10, cifar100, stl10, ti500k)",
            args.dataset
        );
    };
    let target = out.join(archive.top_dir);
    if target.exists() {
        eprintln!(
            "{} is already present; remove it to fetch {} again",
            target.display(),
            archive.name
        );
        return Ok(());
    }
    let url = args.url.as_deref().unwrap_or(archive.url);
    let path = fetch_archive(url, archive.md5, archive.top_dir, &out)?;
    eprintln!("{} ready at {}", archive.name, path.display());
    Ok(())
}

fn print_ti500k_instructions(out: &Path) {
    println!(
        "The 500K pseudo-labelled TinyImages of RST (Carmon et al., NeurIPS 2019) are not \
         downloadable by script.\n\
         Get {TI500K_FILE} (about 1.5 GB) from the link \"500K unlabeled data from TinyImages \
         (with pseudo-labels)\" in the README of https://github.com/yaircarmon/semisup-adv\n\
         (currently https://drive.google.com/open?id=1LTw3Sb5QoiCCN-6Y5PEKkq9C9W60w-Hi) and put \
         it at:\n  {}\n\
         spat reads it with a pickle reader that cannot execute code.",
        out.join(TI500K_FILE).display()
    );
}

/// Removes a path (file or directory tree) when dropped, unless disarmed.
struct Cleanup {
    path: PathBuf,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.path).or_else(|_| fs::remove_file(&self.path));
        }
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Downloads `url`, checks its MD5 against `expected_md5`, and unpacks the `top_dir` folder of the
/// `.tar.gz` into `out/top_dir`. Returns that path. Nothing is created under `out` unless the
/// checksum matches, and a failed unpack leaves nothing behind.
pub fn fetch_archive(url: &str, expected_md5: &str, top_dir: &str, out: &Path) -> Result<PathBuf> {
    let target = out.join(top_dir);
    if target.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            target.display()
        );
    }
    let download =
        std::env::temp_dir().join(format!("spat-fetch-{}-{top_dir}.tar.gz", unique_suffix()));
    let _download_guard = Cleanup {
        path: download.clone(),
        armed: true,
    };
    eprintln!("downloading {url}");
    fetch_to_file(url, &download)?;
    let (digest, size) = md5_file(&download)?;
    if !digest.eq_ignore_ascii_case(expected_md5) {
        bail!(
            "checksum mismatch for {url}: expected MD5 {expected_md5}, got {digest} \
             ({size} bytes); nothing was written to {}",
            out.display()
        );
    }
    eprintln!("MD5 {digest} verified ({size} bytes); unpacking");

    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let staging = out.join(format!(".{top_dir}.fetch-{}.tmp", unique_suffix()));
    let _staging_guard = Cleanup {
        path: staging.clone(),
        armed: true,
    };
    fs::create_dir(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let file =
        File::open(&download).with_context(|| format!("cannot open {}", download.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    tar.unpack(&staging)
        .with_context(|| format!("cannot unpack the archive from {url} (not a .tar.gz?)"))?;
    let staged = staging.join(top_dir);
    if !staged.is_dir() {
        bail!("the archive from {url} does not contain the folder {top_dir}/; nothing was written");
    }
    fs::rename(&staged, &target)
        .with_context(|| format!("cannot move {} to {}", staged.display(), target.display()))?;
    Ok(target)
}

/// MD5 (lower-case hex) and size of a file.
pub fn md5_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, size))
}

/// Downloads `url` into `dest`: a URL through curl, a plain path (a local mirror) by copying it.
fn fetch_to_file(url: &str, dest: &Path) -> Result<()> {
    if url.contains("://") {
        return curl(url, dest);
    }
    fs::copy(url, dest).with_context(|| format!("cannot copy {url}"))?;
    Ok(())
}

/// How long curl may take to connect, and the slowest transfer it keeps going at: under
/// `STALL_BYTES_PER_SECOND` for `STALL_SECONDS`, it gives up (a stalled server), while a slow but
/// moving download of a multi-gigabyte archive is left to finish.
const CONNECT_TIMEOUT_SECONDS: &str = "30";
const STALL_BYTES_PER_SECOND: &str = "1000";
const STALL_SECONDS: &str = "60";

/// `curl` downloads `url` (any scheme it reads: https, http, file, ...) into `dest`: it follows
/// up to 5 redirects, retries transient failures 3 times, fails on an HTTP error status instead
/// of saving the error page, and uses the proxy its environment names (`https_proxy`,
/// `http_proxy`, `ALL_PROXY`, `NO_PROXY`, as curl reads them). Its progress meter and errors go
/// to stderr.
fn curl(url: &str, dest: &Path) -> Result<()> {
    let out = Command::new("curl")
        .args(["--fail", "--location", "--max-redirs", "5", "--retry", "3"])
        .args(["--connect-timeout", CONNECT_TIMEOUT_SECONDS])
        .args([
            "--speed-limit",
            STALL_BYTES_PER_SECOND,
            "--speed-time",
            STALL_SECONDS,
        ])
        .args(["--write-out", "%{http_code}", "--output"])
        .arg(dest)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("downloads need `curl` on PATH")?;
    if out.status.success() {
        return Ok(());
    }
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match code.parse::<u16>() {
        Ok(status) if status >= 400 => bail!("{url}: HTTP {status} (curl: {})", out.status),
        _ => bail!("curl could not download {url} ({})", out.status),
    }
}
