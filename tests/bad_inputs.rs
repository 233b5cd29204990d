//! The bad-input suite: hostile or broken data files, pickles, checkpoints, command-line values and
//! run folders given to the `spat` binary. Every case must end with a non-zero exit status (not a
//! signal) within [`HANG`], having used at most [`MAX_RSS_KIB`] of memory, with exactly one line
//! on stderr that names the file or option and the problem, no panic, and not one file changed,
//! added or removed anywhere under the case's folders, the shared fixtures or the embedded data
//! (hashed before and after).
//!
//! Each case is its own test, named in [`CASES`]: `cargo test --release -p spat-cli --test
//! bad_inputs -- NAME` runs one alone. Each prints `case NAME: <outcome>: <error line>`, where the
//! outcome is `clear` or the list of what went wrong (`panic`, `silent` for an exit status of 0,
//! `changed`, `hang`, ...), so a run's tally is `grep '^case '` of its `--nocapture` output.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

/// A case still running after this long is a hang (every case is refused within seconds).
const HANG: Duration = Duration::from_secs(120);
/// The most memory (peak resident set, KiB) a refusal may take: a file that declares more than
/// it holds must be refused before anything of that size is allocated.
const MAX_RSS_KIB: i64 = 512 << 10;

fn mini_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/cifar-10-mini")
}

fn mini_str() -> String {
    mini_data().to_str().unwrap().to_string()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path)
}

/// Every file under `roots`, by path, with its FNV-1a checksum.
fn snapshot(roots: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            out.insert(p, "folder".into());
        } else if !meta.is_file() {
            // Links, FIFOs and devices are recorded as what they are, never read.
            let what = match std::fs::read_link(&p) {
                Ok(to) => format!("link to {}", to.display()),
                Err(_) => format!("{:?}", meta.file_type()),
            };
            out.insert(p, what);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.insert(p, spat_spec::Fnv1a::hex_of(&bytes));
        } else {
            out.insert(p, "unreadable".into());
        }
    }
    out
}

/// What every case may use and none may change: a committed one-epoch run (standard training,
/// seconds) for the run-folder cases and its checkpoint for the command-line cases. Built once
/// per test process, under cargo's scratch folder for integration tests.
struct Shared {
    root: PathBuf,
    base: PathBuf,
    good: PathBuf,
    /// A committed one-epoch run like `base` that holds out a validation split of 16 images.
    validated: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // What earlier test processes left (a static is never dropped).
        for e in std::fs::read_dir(scratch).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("bad_inputs-shared-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let root = scratch.join(format!("bad_inputs-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let committed_run = |name: &str, extra: &[&str]| {
            let run = root.join(name);
            let out = spat()
                .args(["train", "--dataset", "cifar10", "--data-dir", &mini_str()])
                .args(["--model", "tiny", "--method", "standard", "--epochs", "2"])
                .args([
                    "--batch-size",
                    "32",
                    "--train-subset",
                    "32",
                    "--test-subset",
                    "8",
                ])
                .args(extra)
                .args(["--stop-after-epochs", "1", "--out"])
                .arg(&run)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            run
        };
        let base = committed_run("base-run", &[]);
        let validated = committed_run("validated-run", &["--val-subset", "16"]);
        let good = base.join("checkpoint-0001.safetensors");
        Shared {
            root,
            base,
            good,
            validated,
        }
    })
}

/// One case's own folder and helpers that make files in it.
struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        Scratch { _tmp: tmp, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn folder(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A copy of a committed fixture under `rel`.
    fn fixture(&self, rel: &str, fixture_path: &str) -> PathBuf {
        self.file(rel, &std::fs::read(fixture(fixture_path)).unwrap())
    }

    /// A CIFAR-10 folder holding the embedded sample's training and test files, then `edit`ed.
    fn cifar10(&self, rel: &str, edit: impl FnOnce(&Path)) -> PathBuf {
        let dir = self.folder(rel);
        for f in ["data_batch_1.bin", "test_batch.bin"] {
            std::fs::copy(mini_data().join(f), dir.join(f)).unwrap();
        }
        edit(&dir);
        dir
    }

    /// Weights of the tiny model with `edit` applied to its tensors.
    fn weights(
        &self,
        rel: &str,
        edit: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
    ) -> PathBuf {
        let model = spat_models::build("tiny", 10, &Device::Cpu, 0).unwrap();
        let mut tensors = model.var_store().state_dict();
        edit(&mut tensors);
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        spat_core::store::save_tensors(&tensors, &p).unwrap();
        p
    }

    /// A copy of the shared committed run.
    fn copy_run(&self, rel: &str) -> PathBuf {
        let dir = self.folder(rel);
        for e in std::fs::read_dir(&shared().base).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        dir
    }
}

fn spat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spat"))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

struct Case {
    args: Vec<OsString>,
    /// Substrings the one error line must contain: the file or option, and the problem.
    needles: Vec<String>,
    /// Substrings it must not contain (a misleading name or cause).
    not: Vec<String>,
    /// Paths that must not exist afterwards (what a pickle that ran code would create).
    never: Vec<PathBuf>,
    /// Kept alive while the case runs (a lock another process holds).
    _hold: Vec<Box<dyn std::any::Any>>,
}

fn case(args: Vec<OsString>, needles: &[&str]) -> Case {
    Case {
        args,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        not: Vec::new(),
        never: Vec::new(),
        _hold: Vec::new(),
    }
}

impl Case {
    fn without(mut self, not: &[&str]) -> Self {
        self.not.extend(not.iter().map(|s| s.to_string()));
        self
    }
}

/// `base` (a command and `--flag value` pairs) with the pairs of `extra` replacing those of the
/// same flag or added after them, so a case sets each option once.
fn overriding(base: &[&str], extra: &[&str]) -> Vec<OsString> {
    let mut out = vec![OsString::from(base[0])];
    let given: Vec<&str> = extra.chunks(2).map(|p| p[0]).collect();
    for pair in base[1..].chunks(2) {
        if !given.contains(&pair[0]) {
            out.extend(pair.iter().map(OsString::from));
        }
    }
    out.extend(extra.iter().map(OsString::from));
    out
}

/// `args` with paths spliced in: each `{}` is replaced by the next path.
fn with(args: &[&str], paths: &[&Path]) -> Vec<OsString> {
    let mut paths = paths.iter();
    args.iter()
        .map(|a| {
            if *a == "{}" {
                paths.next().expect("a path per {}").as_os_str().to_owned()
            } else {
                OsString::from(a)
            }
        })
        .collect()
}

/// What running a case gave.
struct Ran {
    status: Option<std::process::ExitStatus>,
    /// Peak resident set size, KiB.
    max_rss_kib: i64,
    stderr: String,
}

/// The peak resident set (KiB) of the running process `pid` so far (Linux's `VmHWM`).
fn peak_rss_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `spat args`, killing it after [`HANG`].
fn run_bounded(args: &[OsString]) -> Ran {
    let mut child = spat()
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let drain_out = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    let drain_err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let start = Instant::now();
    // The peak is sampled while the process runs (a high-water mark, so a sample late in its
    // life sees every earlier peak).
    let mut max_rss_kib = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            max_rss_kib = max_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drain_out.join().unwrap();
    Ran {
        status,
        max_rss_kib,
        stderr: drain_err.join().unwrap(),
    }
}

/// Runs one case and fails the test with every way in which it went wrong.
fn check(name: &str, s: &Scratch, c: Case) {
    let mini = mini_data();
    let roots = [s.root.as_path(), shared().root.as_path(), mini.as_path()];
    let before = snapshot(&roots);
    let ran = run_bounded(&c.args);
    let after = snapshot(&roots);
    let err = ran.stderr;
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut bad = Vec::new();
    match ran.status.map(|s| (s.code(), s)) {
        None => bad.push(format!("hang (killed after {} s)", HANG.as_secs())),
        Some((Some(0), _)) => bad.push("silent (exited 0)".to_string()),
        Some((Some(1 | 2), _)) => {}
        Some((other, status)) => bad.push(format!("panic (ended with {other:?}, {status})")),
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        bad.push("panic".into());
    }
    if ran.max_rss_kib > MAX_RSS_KIB {
        bad.push(format!(
            "allocated ({} MiB at peak, more than {} MiB)",
            ran.max_rss_kib >> 10,
            MAX_RSS_KIB >> 10
        ));
    }
    if before != after {
        let diff: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k.display().to_string())
            .chain(
                before
                    .keys()
                    .filter(|k| !after.contains_key(*k))
                    .map(|k| k.display().to_string()),
            )
            .collect();
        bad.push(format!("changed {diff:?}"));
    }
    for p in &c.never {
        if p.exists() {
            bad.push(format!("created {} (a pickle ran code)", p.display()));
        }
    }
    if err.matches("(os error").count() > 1 {
        bad.push("repeats its cause".into());
    }
    if lines.len() != 1 {
        bad.push(format!("{} stderr lines", lines.len()));
    }
    let missing: Vec<&String> = c
        .needles
        .iter()
        .filter(|n| !err.contains(n.as_str()))
        .collect();
    if !missing.is_empty() {
        bad.push(format!("lacks {missing:?}"));
    }
    let misleading: Vec<&String> = c.not.iter().filter(|n| err.contains(n.as_str())).collect();
    if !misleading.is_empty() {
        bad.push(format!("says {misleading:?}"));
    }
    let outcome = if bad.is_empty() {
        "clear".to_string()
    } else {
        bad.join("; ")
    };
    println!("case {name}: {outcome}: {}", lines.first().unwrap_or(&""));
    assert!(bad.is_empty(), "{name}: {outcome} — {}", err.trim());
}

/// Declares the cases: each `name(scratch) { ... }` block builds one [`Case`] in its own
/// [`Scratch`] and becomes the test `name`.
macro_rules! bad_inputs {
    ($($name:ident($s:ident) $body:block)*) => {
        /// Every case of the suite, by test name.
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                let $s = Scratch::new();
                let c: Case = $body;
                check(stringify!($name), &$s, c);
            }
        )*
    };
}

#[test]
fn the_suite_has_at_least_220_cases() {
    // ARCHITECTURE.md's count: a case may be added, never dropped.
    assert!(CASES.len() >= 220, "{} cases", CASES.len());
}

// ---- helpers of the cases -------------------------------------------------------------------

const RECORD: usize = 3073;

fn data_info(dir: &Path, dataset: &str) -> Vec<OsString> {
    with(
        &["data-info", "--dataset", dataset, "--data-dir", "{}"],
        &[dir],
    )
}

fn stl(s: &Scratch, rel: &str, x: usize, y: &[u8]) -> PathBuf {
    let d = s.folder(rel);
    s.file(&format!("{rel}/stl10_binary/train_X.bin"), &vec![7u8; x]);
    s.file(&format!("{rel}/stl10_binary/train_y.bin"), y);
    d
}

/// RST training on the pseudo-labelled `pickle`.
fn rst(s: &Scratch, pickle: &Path, out: &str) -> Vec<OsString> {
    let mini = mini_str();
    with(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            &mini,
            "--model",
            "tiny",
            "--method",
            "trades",
            "--epochs",
            "1",
            "--pseudo-labeled",
            "{}",
            "--out",
            "{}",
        ],
        &[pickle, &s.path(out)],
    )
}

/// A pickle of 1,000,000 nested tuples.
fn deep_tuples() -> Vec<u8> {
    let mut b = b"\x80\x02)".to_vec();
    b.extend(std::iter::repeat_n(b'\x85', 1_000_000));
    b.push(b'.');
    b
}

/// A pickle fixture given as `--pseudo-labeled`, named in the error.
fn pickle_fixture(s: &Scratch, fx: &str) -> Case {
    let p = s.fixture(&format!("pickles/{fx}"), &format!("pickle/{fx}"));
    case(rst(s, &p, &format!("runs/never-{fx}")), &[fx])
}

fn eval(ckpt: &Path, model: &str, dataset: &str) -> Vec<OsString> {
    let mini = mini_str();
    with(
        &[
            "eval",
            "--model",
            model,
            "--checkpoint",
            "{}",
            "--dataset",
            dataset,
            "--data-dir",
            &mini,
            "--attacks",
            "clean",
            "--test-subset",
            "4",
        ],
        &[ckpt],
    )
}

/// A tensor of `t`'s shape filled with `v`.
fn filled(t: &Tensor, v: f32) -> Tensor {
    let ones = Tensor::ones(t.shape(), DType::F32, &Device::Cpu).unwrap();
    (t.ones_like().unwrap() * 0.0)
        .unwrap()
        .add(&(ones * v as f64).unwrap())
        .unwrap()
}

/// A torch fixture given as `eval --checkpoint`, named in the error.
fn torch_fixture(s: &Scratch, fx: &str) -> Case {
    let p = s.fixture(&format!("ckpt/{fx}"), &format!("torch/{fx}"));
    case(eval(&p, "tiny", "cifar10"), &[fx])
}

/// Madry training of the tiny model into `out` with `extra` options.
fn train(s: &Scratch, extra: &[&str], out: &str) -> Vec<OsString> {
    let out = s.path(out);
    let mini = mini_str();
    overriding(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data-dir",
            &mini,
            "--model",
            "tiny",
            "--method",
            "madry",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        extra,
    )
}

/// `spat train` given one bad option value.
fn train_option(s: &Scratch, extra: &[&str], needles: &[&str]) -> Case {
    case(train(s, extra, "runs/cli"), needles)
}

/// `train --method standard` with `extra`.
fn train_standard(s: &Scratch, extra: &[&str]) -> Vec<OsString> {
    let mut a = os(&[
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        &mini_str(),
        "--model",
        "tiny",
        "--method",
        "standard",
    ]);
    a.extend(os(extra));
    a.push("--out".into());
    a.push(s.path("runs/std").into());
    a
}

/// `eval` of the shared checkpoint with `extra` options.
fn eval_good(extra: &[&str]) -> Vec<OsString> {
    let good = shared().good.to_str().unwrap().to_string();
    let mini = mini_str();
    overriding(
        &[
            "eval",
            "--model",
            "tiny",
            "--checkpoint",
            &good,
            "--dataset",
            "cifar10",
            "--data-dir",
            &mini,
            "--attacks",
            "clean",
            "--test-subset",
            "4",
        ],
        extra,
    )
}

/// `spat plot` of `runs` with `extra` options into `out`.
fn plot(runs: &[&Path], extra: &[&str], out: &Path) -> Vec<OsString> {
    let mut a = os(&["plot"]);
    a.extend(runs.iter().map(|r| r.as_os_str().to_owned()));
    a.extend(os(extra));
    a.push("--out".into());
    a.push(out.as_os_str().to_owned());
    a
}

fn visualize(extra: &[&str], out: &Path) -> Vec<OsString> {
    let mini = mini_str();
    let mut a = with(
        &[
            "visualize",
            "--model",
            "tiny",
            "--checkpoint",
            "{}",
            "--dataset",
            "cifar10",
            "--data-dir",
            &mini,
            "--attacks",
            "fgsm",
            "--eps",
            "8/255",
            "--out",
            "{}",
        ],
        &[&shared().good, out],
    );
    a.extend(os(extra));
    a
}

fn sweep(extra: &[&str]) -> Vec<OsString> {
    let mini = mini_str();
    let mut a = with(
        &[
            "sweep-alpha",
            "--model",
            "tiny",
            "--checkpoint",
            "{}",
            "--dataset",
            "cifar10",
            "--data-dir",
            &mini,
            "--test-subset",
            "4",
        ],
        &[&shared().good],
    );
    a.extend(os(extra));
    a
}

/// `sweep-alpha --out out`.
fn sweep_out(out: &Path) -> Vec<OsString> {
    let mut a = sweep(&["--out"]);
    a.push(out.into());
    a
}

/// `sweep-alpha --out` a folder holding only the user's `name`.
fn sweep_over(s: &Scratch, name: &str, bytes: &[u8]) -> Case {
    let d = s.folder("sweep");
    s.file(&format!("sweep/{name}"), bytes);
    case(sweep_out(&d), &[name, "not written by"])
}

/// `eval` of the shared checkpoint on the validation split of `run`, with `extra` options.
fn eval_validation_of(run: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut a = eval_good(&[
        "--validation-of",
        run.to_str().unwrap(),
        "--attacks",
        "clean",
    ]);
    // eval_good's --test-subset is refused beside --validation-of; a case that wants it adds it.
    let at = a.iter().position(|x| x == "--test-subset").unwrap();
    a.drain(at..at + 2);
    a.extend(os(extra));
    a
}

/// A copy of the shared run that holds out a validation split.
fn copy_validated_run(s: &Scratch, rel: &str) -> PathBuf {
    let dir = s.folder(rel);
    for e in std::fs::read_dir(&shared().validated).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn resume(dir: &Path) -> Vec<OsString> {
    with(&["train", "--resume", "{}"], &[dir])
}

/// A named pipe at `rel`: opening it for reading waits for a writer that never comes.
fn fifo(s: &Scratch, rel: &str) -> PathBuf {
    let p = s.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let made = Command::new("mkfifo").arg(&p).status().unwrap();
    assert!(made.success(), "mkfifo {}", p.display());
    p
}

/// A symbolic link at `rel` to `target`.
fn link(s: &Scratch, rel: &str, target: &Path) -> PathBuf {
    let p = s.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, &p).unwrap();
    p
}

/// A copy of the shared run whose `name` is replaced by `make(path)`.
fn run_with(s: &Scratch, rel: &str, name: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let r = s.copy_run(rel);
    std::fs::remove_file(r.join(name)).unwrap();
    make(&r.join(name));
    r
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// A hostile torch.save fixture (scripts/golden/hostile_checkpoints.py).
fn hostile(s: &Scratch, name: &str) -> PathBuf {
    s.fixture(&format!("ckpt/{name}"), &format!("torch/hostile/{name}"))
}

/// `eval` of the tiny model on `ckpt`, named in the error with `needles`.
fn eval_case(ckpt: &Path, needles: &[&str]) -> Case {
    case(eval(ckpt, "tiny", "cifar10"), needles)
}

/// The tiny model's weights with `mu` and `sigma` (1, C, 1, 1) tensors added.
fn with_normalization(s: &Scratch, rel: &str, mu: &[f32], sigma: &[f32]) -> PathBuf {
    let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), (1, v.len(), 1, 1), &Device::Cpu).unwrap();
    let (mu, sigma) = (t(mu), t(sigma));
    s.weights(rel, move |w| {
        w.insert("mu".into(), mu);
        w.insert("sigma".into(), sigma);
    })
}

/// `spat train --init FILE` of the tiny model.
fn train_init(s: &Scratch, init: &Path) -> Vec<OsString> {
    let mut a = train(s, &["--method", "standard"], "runs/init");
    a.extend(with(&["--init", "{}"], &[init]));
    a
}

fn convert(input: &Path, output: &Path) -> Vec<OsString> {
    with(&["convert", "{}", "{}"], &[input, output])
}

/// `n` comma-separated copies of `item`.
fn list_of(item: &str, n: usize) -> String {
    vec![item; n].join(",")
}

bad_inputs! {
    // ---- data files -----------------------------------------------------------------------
    cifar10_truncated_batch(s) {
        let d = s.cifar10("data/truncated", |d| {
            let b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
            std::fs::write(d.join("data_batch_1.bin"), &b[..RECORD * 2 + 17]).unwrap();
        });
        case(data_info(&d, "cifar10"), &["data_batch_1.bin", "not a multiple"])
    }
    cifar10_empty_batch(s) {
        let d = s.cifar10("data/empty", |d| {
            std::fs::write(d.join("data_batch_1.bin"), b"").unwrap()
        });
        case(data_info(&d, "cifar10"), &["data_batch_1.bin", "empty"])
    }
    cifar10_label_10(s) {
        let d = s.cifar10("data/label", |d| {
            let mut b = std::fs::read(d.join("test_batch.bin")).unwrap();
            b[RECORD * 5] = 10;
            std::fs::write(d.join("test_batch.bin"), b).unwrap();
        });
        case(data_info(&d, "cifar10"), &["test_batch.bin", "record 5", "label 10"])
    }
    cifar10_label_255(s) {
        let d = s.cifar10("data/label255", |d| {
            let mut b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
            b[0] = 255;
            std::fs::write(d.join("data_batch_1.bin"), b).unwrap();
        });
        case(data_info(&d, "cifar10"), &["data_batch_1.bin", "label 255"])
    }
    cifar10_data_batch_is_a_folder(s) {
        let d = s.cifar10("data/batch-is-folder", |d| {
            std::fs::remove_file(d.join("data_batch_1.bin")).unwrap();
            std::fs::create_dir(d.join("data_batch_1.bin")).unwrap();
        });
        case(data_info(&d, "cifar10"), &["data_batch_1.bin", "is a folder"])
    }
    cifar10_test_batch_is_a_folder(s) {
        let d = s.cifar10("data/test-is-folder", |d| {
            std::fs::remove_file(d.join("test_batch.bin")).unwrap();
            std::fs::create_dir(d.join("test_batch.bin")).unwrap();
        });
        case(data_info(&d, "cifar10"), &["test_batch.bin", "is a folder"])
    }
    cifar10_data_batch_3_missing_among_five(s) {
        let d = s.cifar10("data/gap", |d| {
            for f in ["data_batch_2.bin", "data_batch_4.bin", "data_batch_5.bin"] {
                std::fs::copy(d.join("data_batch_1.bin"), d.join(f)).unwrap();
            }
        });
        case(data_info(&d, "cifar10"), &["data_batch_3.bin", "not found"])
    }
    cifar10_test_file_missing(s) {
        let d = s.cifar10("data/no-test", |d| {
            std::fs::remove_file(d.join("test_batch.bin")).unwrap()
        });
        case(
            data_info(&d, "cifar10"),
            &["test_batch.bin", "not found", "fetch-data cifar10"],
        )
    }
    data_folder_missing(s) {
        case(data_info(&s.path("data/nowhere"), "cifar10"), &["nowhere", "not found"])
    }
    data_folder_is_a_file(s) {
        let f = s.file("data/a-file", b"not a folder");
        case(data_info(&f, "cifar10"), &["a-file", "is a file, not the folder"])
    }
    cifar100_truncated(s) {
        let d = s.folder("data/c100");
        s.file("data/c100/cifar-100-binary/train.bin", &[0u8; 3074 * 3 + 1]);
        case(data_info(&d, "cifar100"), &["train.bin", "not a multiple"])
    }
    cifar100_fine_label_100(s) {
        let mut b = vec![0u8; 3074 * 2];
        b[3074 + 1] = 100;
        let d = s.folder("data/c100-label");
        s.file("data/c100-label/cifar-100-binary/train.bin", &b);
        s.file("data/c100-label/cifar-100-binary/test.bin", &vec![0u8; 3074]);
        case(data_info(&d, "cifar100"), &["train.bin", "record 1", "label 100"])
    }
    cifar100_missing(s) {
        case(
            data_info(&s.folder("data/c100-none"), "cifar100"),
            &["cifar-100-binary/train.bin", "fetch-data cifar100"],
        )
    }
    stl10_images_truncated(s) {
        let d = stl(&s, "data/stl-size", 96 * 96 * 3 + 5, &[1]);
        case(data_info(&d, "stl10"), &["train_X.bin", "not a multiple"])
    }
    stl10_label_count(s) {
        let d = stl(&s, "data/stl-count", 96 * 96 * 3 * 2, &[1]);
        case(data_info(&d, "stl10"), &["train_y.bin", "1 labels", "2 images"])
    }
    stl10_label_0(s) {
        let d = stl(&s, "data/stl-label", 96 * 96 * 3, &[0]);
        case(data_info(&d, "stl10"), &["train_y.bin", "label 0", "1-based"])
    }
    train_on_a_truncated_batch(s) {
        let d = s.cifar10("data/train-bad", |d| {
            let b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
            std::fs::write(d.join("data_batch_1.bin"), &b[..100]).unwrap();
        });
        case(
            with(
                &[
                    "train", "--dataset", "cifar10", "--data-dir", "{}", "--model", "tiny",
                    "--method", "madry", "--out", "{}",
                ],
                &[&d, &s.path("runs/never1")],
            ),
            &["data_batch_1.bin", "not a multiple"],
        )
    }

    // ---- pickles (--pseudo-labeled) -----------------------------------------------------------
    pickle_nesting_1000000_tuples(s) {
        let p = s.file("pickles/deep_tuples.pickle", &deep_tuples());
        case(rst(&s, &p, "runs/never2"), &["deep_tuples.pickle", "pickle"])
    }
    pickle_nesting_300000_lists(s) {
        let mut deep_lists = b"\x80\x02".to_vec();
        deep_lists.extend(std::iter::repeat_n(b']', 300_000));
        deep_lists.extend(std::iter::repeat_n(b'a', 299_999));
        deep_lists.push(b'.');
        let p = s.file("pickles/deep_lists.pickle", &deep_lists);
        case(rst(&s, &p, "runs/never3"), &["deep_lists.pickle", "pickle"])
    }
    pickle_of_200000_dicts_on_the_stack(s) {
        let mut deep_dicts = b"\x80\x02".to_vec();
        deep_dicts.extend(std::iter::repeat_n(b'}', 200_000));
        deep_dicts.push(b'.');
        let p = s.file("pickles/many_dicts.pickle", &deep_dicts);
        case(rst(&s, &p, "runs/never4"), &["many_dicts.pickle", "pickle"])
    }
    pickle_calling_os_system(s) {
        let marker = s.path("pickles/PWNED");
        let evil = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
        let p = s.file("pickles/evil.pickle", evil.as_bytes());
        let mut c = case(rst(&s, &p, "runs/never5"), &["evil.pickle", "os"]);
        c.never.push(marker);
        c
    }
    pickle_fixture_evil_os_system(s) { pickle_fixture(&s, "evil_os_system.pickle") }
    pickle_fixture_bad_count(s) { pickle_fixture(&s, "bad_count.pickle") }
    pickle_fixture_bad_dtype(s) { pickle_fixture(&s, "bad_dtype.pickle") }
    pickle_fixture_bad_label(s) { pickle_fixture(&s, "bad_label.pickle") }
    pickle_fixture_bad_shape(s) { pickle_fixture(&s, "bad_shape.pickle") }
    pickle_fixture_no_targets(s) { pickle_fixture(&s, "no_targets.pickle") }
    pickle_truncated(s) {
        let p = s.file(
            "pickles/truncated.pickle",
            &std::fs::read(fixture("pickle/rst_p2.pickle")).unwrap()[..200],
        );
        case(rst(&s, &p, "runs/never6"), &["truncated.pickle", "pickle"])
    }
    pickle_empty(s) {
        let p = s.file("pickles/empty.pickle", b"");
        case(rst(&s, &p, "runs/never7"), &["empty.pickle"])
    }
    pickle_declaring_an_8_eib_string(s) {
        let p = s.file(
            "pickles/huge_string.pickle",
            b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.",
        );
        case(rst(&s, &p, "runs/never8"), &["huge_string.pickle"])
    }
    pickle_of_a_list(s) {
        let p = s.file("pickles/a_list.pickle", b"\x80\x02]q\x00(K\x01K\x02e.");
        case(rst(&s, &p, "runs/never9"), &["a_list.pickle"])
    }
    pickle_missing(s) {
        case(
            rst(&s, &s.path("pickles/none.pickle"), "runs/never10"),
            &["none.pickle", "not found"],
        )
    }
    pickle_is_a_folder(s) {
        case(
            rst(&s, &s.folder("pickles/folder.pickle"), "runs/never11"),
            &["folder.pickle", "directory"],
        )
    }

    // ---- checkpoints (eval --checkpoint) ------------------------------------------------------
    checkpoint_missing(s) {
        case(
            eval(&s.path("ckpt/none.safetensors"), "tiny", "cifar10"),
            &["none.safetensors", "not found"],
        )
    }
    checkpoint_is_a_folder(s) {
        case(
            eval(&s.folder("ckpt/folder.safetensors"), "tiny", "cifar10"),
            &["folder.safetensors", "is a folder"],
        )
    }
    checkpoint_garbage(s) {
        let p = s.file("ckpt/garbage.safetensors", b"this is not a weights file at all");
        case(eval(&p, "tiny", "cifar10"), &["garbage.safetensors"])
    }
    checkpoint_empty(s) {
        let p = s.file("ckpt/empty.safetensors", b"");
        case(eval(&p, "tiny", "cifar10"), &["empty.safetensors"])
    }
    checkpoint_truncated(s) {
        let g = std::fs::read(&shared().good).unwrap();
        let p = s.file("ckpt/truncated.safetensors", &g[..g.len() / 2]);
        case(eval(&p, "tiny", "cifar10"), &["truncated.safetensors"])
    }
    checkpoint_header_length_2_64_minus_1(s) {
        let mut hdr = std::fs::read(&shared().good).unwrap();
        hdr[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let p = s.file("ckpt/huge_header.safetensors", &hdr);
        case(eval(&p, "tiny", "cifar10"), &["huge_header.safetensors"])
    }
    checkpoint_with_nan_weights(s) {
        let p = s.weights("ckpt/nan.safetensors", |t| {
            let w = t["fc.weight"].clone();
            t.insert("fc.weight".into(), filled(&w, f32::NAN));
        });
        case(eval(&p, "tiny", "cifar10"), &["nan.safetensors", "fc.weight", "non-finite"])
    }
    checkpoint_with_inf_weights(s) {
        let p = s.weights("ckpt/inf.safetensors", |t| {
            let w = t["conv1.weight"].clone();
            t.insert("conv1.weight".into(), filled(&w, f32::INFINITY));
        });
        case(eval(&p, "tiny", "cifar10"), &["inf.safetensors", "conv1.weight", "non-finite"])
    }
    checkpoint_with_an_i64_float_parameter(s) {
        let p = s.weights("ckpt/i64.safetensors", |t| {
            let w = t["fc.weight"].to_dtype(DType::I64).unwrap();
            t.insert("fc.weight".into(), w);
        });
        case(eval(&p, "tiny", "cifar10"), &["i64.safetensors", "fc.weight"])
    }
    checkpoint_with_a_u8_float_parameter(s) {
        let p = s.weights("ckpt/u8.safetensors", |t| {
            let w = t["fc.bias"].to_dtype(DType::U8).unwrap();
            t.insert("fc.bias".into(), w);
        });
        case(eval(&p, "tiny", "cifar10"), &["u8.safetensors", "fc.bias"])
    }
    checkpoint_missing_a_tensor(s) {
        let p = s.weights("ckpt/missing.safetensors", |t| {
            t.remove("fc.bias");
        });
        case(eval(&p, "tiny", "cifar10"), &["missing.safetensors", "fc.bias"])
    }
    checkpoint_with_an_unexpected_tensor(s) {
        let p = s.weights("ckpt/extra.safetensors", |t| {
            t.insert(
                "fc2.weight".into(),
                Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
            );
        });
        case(eval(&p, "tiny", "cifar10"), &["extra.safetensors", "fc2.weight"])
    }
    checkpoint_with_a_mis_shaped_tensor(s) {
        let p = s.weights("ckpt/shape.safetensors", |t| {
            t.insert(
                "fc.bias".into(),
                Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
            );
        });
        case(eval(&p, "tiny", "cifar10"), &["shape.safetensors", "fc.bias"])
    }
    checkpoint_of_another_model(_s) {
        case(
            eval(&shared().good, "wrn-16-2", "cifar10"),
            &["checkpoint-0001.safetensors", "missing", "tiny"],
        )
    }
    checkpoint_for_another_class_count(_s) {
        case(
            eval(&shared().good, "tiny", "cifar100"),
            &["checkpoint-0001.safetensors", "fc"],
        )
    }
    robustbench_name_of_two_networks(_s) {
        case(
            eval(&shared().good, "rb:Rice2020Overfitting", "cifar10"),
            &["rb:cifar10/Linf/Rice2020Overfitting", "rb:cifar10/L2/Rice2020Overfitting"],
        )
    }
    robustbench_entry_spat_does_not_build(_s) {
        case(
            eval(&shared().good, "rb:Kang2021Stable", "cifar10"),
            &["Kang2021Stable", "SODEF"],
        )
    }
    robustbench_entry_of_another_data_set(_s) {
        case(
            eval(&shared().good, "rb:Carmon2019Unlabeled", "cifar100"),
            &["rb:Carmon2019Unlabeled", "cifar100", "rb:cifar10/Linf/Carmon2019Unlabeled"],
        )
    }
    torch_fixture_evil_pt(s) { torch_fixture(&s, "evil.pt") }
    torch_fixture_nan_pt(s) { torch_fixture(&s, "nan.pt") }
    torch_fixture_int_weight_pt(s) { torch_fixture(&s, "int_weight.pt") }
    torch_fixture_whole_model_pt(s) { torch_fixture(&s, "whole_model.pt") }
    torch_legacy_checkpoint_nesting_1000000_tuples(s) {
        let p = s.file("ckpt/deep.pt", &deep_tuples());
        case(eval(&p, "tiny", "cifar10"), &["deep.pt"])
    }
    torch_zip_checkpoint_with_a_broken_header(s) {
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend([0xffu8; 60]);
        let p = s.file("ckpt/broken.pt", &zip);
        case(eval(&p, "tiny", "cifar10"), &["broken.pt"])
    }

    // ---- command-line values --------------------------------------------------------------------
    train_lr_negative(s) { train_option(&s, &["--lr", "-1"], &["--lr", "positive"]) }
    train_lr_zero(s) { train_option(&s, &["--lr", "0"], &["--lr", "positive"]) }
    train_lr_nan(s) { train_option(&s, &["--lr", "nan"], &["--lr", "finite"]) }
    train_lr_inf(s) { train_option(&s, &["--lr", "inf"], &["--lr", "finite"]) }
    train_weight_decay_negative(s) {
        train_option(&s, &["--weight-decay", "-1"], &["--weight-decay", "negative"])
    }
    train_weight_decay_nan(s) {
        train_option(&s, &["--weight-decay", "nan"], &["--weight-decay", "finite"])
    }
    train_weight_decay_text(s) {
        train_option(&s, &["--weight-decay", "lots"], &["--weight-decay", "finite"])
    }
    train_epochs_zero(s) { train_option(&s, &["--epochs", "0"], &["--epochs", "positive"]) }
    train_batch_size_zero(s) {
        train_option(&s, &["--batch-size", "0"], &["--batch-size", "positive"])
    }
    train_batch_size_negative(s) { train_option(&s, &["--batch-size", "-3"], &["--batch-size"]) }
    train_train_subset_zero(s) {
        train_option(&s, &["--train-subset", "0"], &["--train-subset", "positive"])
    }
    train_test_subset_zero(s) {
        train_option(&s, &["--test-subset", "0"], &["--test-subset", "positive"])
    }
    train_eps_above_1(s) { train_option(&s, &["--eps", "2"], &["--eps", "[0, 1]"]) }
    train_eps_nan(s) { train_option(&s, &["--eps", "nan"], &["--eps", "[0, 1]"]) }
    train_eps_division_by_zero(s) {
        train_option(&s, &["--eps", "8/0"], &["--eps", "division by zero"])
    }
    train_eps_negative(s) { train_option(&s, &["--eps", "-8/255"], &["--eps", "[0, 1]"]) }
    train_norm_l1(s) { train_option(&s, &["--norm", "l1"], &["--norm", "linf or l2"]) }
    train_l2_eps_negative(s) {
        train_option(&s, &["--norm", "l2", "--eps", "-0.5"], &["--eps", "L2", ">= 0"])
    }
    train_l2_eps_nan(s) {
        train_option(&s, &["--norm", "l2", "--eps", "nan"], &["--eps", "L2", ">= 0"])
    }
    train_l2_eps_beyond_the_image_cube(s) {
        train_option(&s, &["--norm", "l2", "--eps", "60"], &["--eps", "√3072"])
    }
    train_l2_step_beyond_the_image_cube(s) {
        train_option(
            &s,
            &["--norm", "l2", "--attack-step-size", "100"],
            &["--attack-step-size", "√3072"],
        )
    }
    train_step_above_1_in_linf(s) {
        train_option(&s, &["--attack-step-size", "2"], &["--attack-step-size", "[0, 1]"])
    }
    train_spat_alpha_above_1(s) {
        train_option(&s, &["--spat-alpha", "1.5"], &["--spat-alpha", "[0, 1]"])
    }
    train_spat_alpha_nan(s) {
        train_option(&s, &["--spat-alpha", "nan"], &["--spat-alpha", "[0, 1]"])
    }
    train_unlabeled_fraction_without_pseudo_labels(s) {
        train_option(&s, &["--unlabeled-fraction", "5"], &["--unlabeled-fraction"])
    }
    train_unlabeled_fraction_without_pseudo_labels_in_range(s) {
        train_option(&s, &["--unlabeled-fraction", "0.3"], &["--pseudo-labeled"])
    }
    train_pseudo_labels_with_madry(s) {
        train_option(&s, &["--pseudo-labeled", "x.pickle"], &["pseudo-labelled", "madry"])
    }
    train_seed_negative(s) { train_option(&s, &["--seed", "-1"], &["--seed"]) }
    train_precision_fp16(s) { train_option(&s, &["--precision", "fp16"], &["fp16"]) }
    train_device_tpu(s) { train_option(&s, &["--device", "tpu"], &["--device", "tpu"]) }
    train_device_cuda_without_cuda(s) {
        train_option(&s, &["--device", "cuda:0"], &["cuda", "without CUDA"])
    }
    train_standard_with_spat_alpha(s) {
        case(train_standard(&s, &["--spat-alpha", "0.1"]), &["spat_alpha", "standard"])
    }
    unlabeled_fraction_0(s) {
        let p = s.fixture("pickles/rst_p2.pickle", "pickle/rst_p2.pickle");
        let mut a = rst(&s, &p, "runs/frac0");
        a.extend(os(&["--unlabeled-fraction", "0"]));
        case(a, &["--unlabeled-fraction", "between 0 and 1"])
    }
    unlabeled_fraction_1(s) {
        let p = s.fixture("pickles/rst_p2.pickle", "pickle/rst_p2.pickle");
        let mut a = rst(&s, &p, "runs/frac1");
        a.extend(os(&["--unlabeled-fraction", "1"]));
        case(a, &["--unlabeled-fraction", "between 0 and 1"])
    }
    train_impossible_wide_resnet_depth(s) {
        case(train(&s, &["--model", "wrn-99-1"], "runs/m"), &["wrn-99-1", "6n + 4"])
    }
    train_unknown_model(s) {
        case(train(&s, &["--model", "vgg-16"], "runs/m"), &["vgg-16", "dm-wrn-D-W"])
    }
    train_unknown_activation(s) {
        case(
            train(&s, &["--model", "dm-wrn-28-10-gelu"], "runs/m"),
            &["gelu", "relu, silu or swish"],
        )
    }
    train_unknown_data_set(s) {
        case(train(&s, &["--dataset", "imagenet"], "runs/imagenet"), &["imagenet"])
    }
    train_unknown_method(s) {
        case(train(&s, &["--method", "fgsm-at"], "runs/fgsm-at"), &["fgsm-at", "standard"])
    }
    eval_unknown_attack(_s) { case(eval_good(&["--attacks", "clean,fgsm9"]), &["fgsm9"]) }
    eval_pgd_ls_alpha_1_5(_s) {
        case(eval_good(&["--attacks", "pgd-ls:1.5"]), &["pgd-ls:1.5", "[0, 1]"])
    }
    eval_batch_size_0(_s) {
        case(eval_good(&["--batch-size", "0"]), &["--batch-size", "positive"])
    }
    eval_eps_negative(_s) { case(eval_good(&["--eps", "-0.1"]), &["--eps", "[0, 1]"]) }
    eval_eps_above_1_in_linf(_s) {
        case(eval_good(&["--eps", "0.5/0.25"]), &["--eps", "L∞", "[0, 1]"])
    }
    eval_l2_eps_negative(_s) {
        case(eval_good(&["--norm", "l2", "--eps", "-0.1"]), &["--eps", "L2", ">= 0"])
    }
    eval_l2_eps_infinite(_s) {
        case(eval_good(&["--norm", "l2", "--eps", "inf"]), &["--eps", "L2", ">= 0"])
    }
    eval_l2_eps_beyond_the_image_cube(_s) {
        case(eval_good(&["--norm", "l2", "--eps", "56"]), &["--eps", "√3072"])
    }
    eval_unknown_norm(_s) {
        case(eval_good(&["--norm", "linf2"]), &["--norm", "linf2", "linf or l2"])
    }
    visualize_linf_eps_above_one(s) {
        case(
            visualize(&["--eps", "0.5,2"], &s.path("vis/e.png")),
            &["--eps", "2", "L∞ radius must lie in [0, 1]"],
        )
    }
    visualize_l2_eps_beyond_the_image_cube(s) {
        case(
            visualize(&["--norm", "l2", "--eps", "56"], &s.path("vis/f.png")),
            &["--eps", "56", "√3072"],
        )
    }
    visualize_unknown_norm(s) {
        case(visualize(&["--norm", "l1"], &s.path("vis/g.png")), &["--norm", "l1"])
    }
    visualize_scale_0(s) {
        case(visualize(&["--scale", "0"], &s.path("vis/a.png")), &["--scale", "0"])
    }
    visualize_scale_huge(s) {
        case(visualize(&["--scale", "100000"], &s.path("vis/b.png")), &["--scale", "100000"])
    }
    visualize_unknown_class(s) {
        case(
            visualize(&["--classes", "unicorn"], &s.path("vis/c.png")),
            &["--classes", "unicorn"],
        )
    }
    visualize_index_outside_the_test_set(s) {
        case(
            visualize(&["--indices", "99999"], &s.path("vis/d.png")),
            &["--indices", "99999"],
        )
    }
    visualize_over_a_users_file(s) {
        let user_png = s.file("vis/holiday.png", b"\x89PNG\r\n\x1a\nmy own picture");
        case(visualize(&[], &user_png), &["holiday.png", "not written by"])
    }
    plot_over_a_users_file(s) {
        let run = s.copy_run("runs/a");
        let user_png = s.file("fig/holiday.png", b"\x89PNG\r\n\x1a\nmy own picture");
        case(plot(&[&run], &[], &user_png), &["holiday.png", "not written by"])
    }
    plot_beside_a_users_json(s) {
        let run = s.copy_run("runs/a");
        s.file("fig/curves.json", b"{\"my\": \"numbers\"}");
        case(plot(&[&run], &[], &s.path("fig/curves.png")), &["curves.json", "not written by"])
    }
    plot_out_not_a_png(s) {
        let run = s.copy_run("runs/a");
        case(plot(&[&run], &[], &s.path("fig/curves.txt")), &["curves.txt", ".png"])
    }
    plot_a_folder_without_a_run(s) {
        let dir = s.folder("not-a-run");
        case(plot(&[&dir], &[], &s.path("fig/a.png")), &["not-a-run", "not a spat run"])
    }
    plot_a_run_with_a_broken_state(s) {
        let run = s.copy_run("runs/a");
        std::fs::write(run.join("state.json"), b"{").unwrap();
        case(plot(&[&run], &[], &s.path("fig/a.png")), &["state.json"])
    }
    plot_unknown_metric(s) {
        let run = s.copy_run("runs/a");
        case(
            plot(&[&run], &["--metric", "accuracy"], &s.path("fig/a.png")),
            &["accuracy", "robust-acc"],
        )
    }
    sweep_alpha_2(_s) { case(sweep(&["--alphas", "0.1,2"]), &["alpha `2`", "[0, 1]"]) }
    sweep_steps_0(_s) { case(sweep(&["--steps", "0"]), &["--steps", "positive"]) }
    sweep_l2_eps_beyond_the_image_cube(_s) {
        case(sweep(&["--norm", "l2", "--eps", "100"]), &["--eps", "√3072"])
    }
    sweep_into_a_users_folder(s) {
        let user_dir = s.folder("sweep-user");
        s.file("sweep-user/sweep.md", b"# my notes");
        s.file("sweep-user/thesis.tex", b"\\documentclass{article}");
        case(sweep_out(&user_dir), &["sweep-user", "thesis.tex"])
    }
    bench_over_a_users_file(s) {
        let user_json = s.file("bench/results.json", b"{\"mine\": true}");
        let mut a = os(&[
            "bench", "--models", "tiny", "--batch", "2", "--repeats", "1", "--warmup", "0",
            "--json",
        ]);
        a.push(user_json.into());
        case(a, &["results.json", "not written by"])
    }

    // ---- run folders ------------------------------------------------------------------------
    train_out_a_users_folder_of_spat_named_files(s) {
        s.folder("runs/user-folder");
        for f in ["metrics.jsonl", "model.safetensors", "best.safetensors", "summary.json"] {
            s.file(
                &format!("runs/user-folder/{f}"),
                format!("the user's own {f}").as_bytes(),
            );
        }
        case(
            train(&s, &[], "runs/user-folder"),
            &["user-folder", "not empty", "best.safetensors"],
        )
    }
    train_out_a_non_empty_folder(s) {
        s.file("runs/notes/notes.txt", b"mine");
        case(train(&s, &[], "runs/notes"), &["notes", "not empty", "notes.txt"])
    }
    train_out_a_folder_with_a_foreign_config_json(s) {
        s.file("runs/user-config/config.json", b"{\"learning_rate\": 3}");
        case(train(&s, &[], "runs/user-config"), &["config.json", "not a spat run"])
    }
    train_out_an_existing_file(s) {
        s.file("runs/a-file", b"a file");
        case(train(&s, &[], "runs/a-file"), &["a-file", "not a folder"])
    }
    train_out_an_existing_run_without_resume(s) {
        case(
            train(&s, &["--out", shared().base.to_str().unwrap()], "unused"),
            &["base-run", "already holds a run", "--resume"],
        )
    }
    resume_a_missing_folder(s) {
        case(resume(&s.path("runs/none")), &["none", "no such run directory"])
    }
    resume_a_folder_without_config_json(s) {
        case(resume(&s.folder("runs/empty")), &["empty", "config.json"])
    }
    resume_with_a_garbage_config_json(s) {
        let r = s.copy_run("runs/garbage-config");
        std::fs::write(r.join("config.json"), b"{ nope").unwrap();
        case(resume(&r), &["config.json", "not"])
    }
    resume_with_a_garbage_state_json(s) {
        let r = s.copy_run("runs/garbage-state");
        std::fs::write(r.join("state.json"), b"[]").unwrap();
        case(resume(&r), &["state.json", "not a run state"])
    }
    resume_with_a_changed_checkpoint(s) {
        let r = s.copy_run("runs/corrupt-ckpt");
        let mut b = std::fs::read(r.join("checkpoint-0001.safetensors")).unwrap();
        let n = b.len();
        b[n - 3] ^= 0x55;
        std::fs::write(r.join("checkpoint-0001.safetensors"), b).unwrap();
        case(resume(&r), &["checkpoint-0001.safetensors", "checksum"])
    }
    resume_with_the_optimizer_file_missing(s) {
        let r = s.copy_run("runs/no-optimizer");
        std::fs::remove_file(r.join("optimizer-0001.safetensors")).unwrap();
        case(resume(&r), &["optimizer-0001.safetensors", "No such file"])
    }
    resume_with_state_json_naming_another_file(s) {
        let r = s.copy_run("runs/state-path");
        let text = std::fs::read_to_string(r.join("state.json")).unwrap();
        std::fs::write(
            r.join("state.json"),
            text.replace("checkpoint-0001.safetensors", "../../etc/passwd"),
        )
        .unwrap();
        case(resume(&r), &["state.json", "../../etc/passwd"])
    }
    resume_with_an_edited_config_json(s) {
        let r = s.copy_run("runs/edited-config");
        let text = std::fs::read_to_string(r.join("config.json")).unwrap();
        std::fs::write(r.join("config.json"), text.replace("\"epochs\": 2", "\"epochs\": 3"))
            .unwrap();
        case(resume(&r), &["config.json", "changed after the run started"])
    }
    resume_with_best_safetensors_changed(s) {
        let r = s.copy_run("runs/best-changed");
        std::fs::write(r.join("best.safetensors"), b"someone else's weights").unwrap();
        let state = std::fs::read_to_string(shared().base.join("state.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&state).unwrap();
        // An older best epoch than the last: best.safetensors cannot be rebuilt, so a change is
        // refused.
        v["best_fnv1a64"] = serde_json::json!("0123456789abcdef");
        std::fs::write(r.join("state.json"), serde_json::to_string_pretty(&v).unwrap()).unwrap();
        case(resume(&r), &["best.safetensors", "checksum"])
    }
    resume_on_other_test_data(s) {
        let other = s.cifar10("data/other", |d| {
            let b = std::fs::read(d.join("test_batch.bin")).unwrap();
            std::fs::write(d.join("test_batch.bin"), &b[..RECORD * 100]).unwrap();
        });
        let r = s.copy_run("runs/other-data");
        let mut a = resume(&r);
        a.extend(with(&["--data-dir", "{}"], &[&other]));
        case(a, &["state.json", "test data"])
    }
    resume_with_a_setting(_s) {
        let mut a = resume(&shared().base);
        a.extend(os(&["--epochs", "5"]));
        case(a, &["--epochs", "--resume"])
    }

    // ---- outputs: nothing spat did not write is replaced, nothing is created before a refusal
    sweep_into_a_folder_holding_a_foreign_sweep_md(s) {
        sweep_over(&s, "sweep.md", b"# my notes on the sweep")
    }
    sweep_into_a_folder_holding_a_foreign_sweep_json(s) {
        sweep_over(&s, "sweep.json", b"{\"mine\": 1}")
    }
    sweep_into_a_folder_holding_a_foreign_sweep_png(s) {
        sweep_over(&s, "sweep.png", b"\x89PNG\r\n\x1a\nmy plot")
    }
    sweep_out_with_a_line_break(s) {
        case(sweep_out(&s.path("sweep\nout")), &["--out", "control character"])
    }
    sweep_out_is_a_file(s) {
        let f = s.file("sweep-file", b"mine");
        case(sweep_out(&f), &["sweep-file", "not a folder"])
    }
    visualize_out_with_a_line_break(s) {
        case(visualize(&[], &s.path("vis\n/a.png")), &["--out", "control character"])
    }
    visualize_out_a_link_to_a_users_file(s) {
        let user = s.file("vis/mine.png", b"\x89PNG\r\n\x1a\nmine");
        let l = link(&s, "vis/link.png", &user);
        case(visualize(&[], &l), &["link.png", "symbolic link"])
    }
    visualize_out_below_a_file(s) {
        let f = s.file("vis/a-file", b"mine");
        case(visualize(&[], &f.join("x.png")), &["a-file", "is not a folder"])
    }
    gradients_over_a_users_file(s) {
        let user = s.file("grad/mine.png", b"\x89PNG\r\n\x1a\nmine");
        let mini = mini_str();
        case(
            with(
                &[
                    "gradients", "--model", "tiny", "--checkpoint", "{}", "--dataset", "cifar10",
                    "--data-dir", &mini, "--out", "{}",
                ],
                &[&shared().good, &user],
            ),
            &["mine.png", "not written by"],
        )
    }
    bench_json_with_a_line_break(s) {
        let mut a = os(&[
            "bench", "--models", "tiny", "--batch", "2", "--repeats", "1", "--warmup", "0",
            "--json",
        ]);
        a.push(s.path("bench\nresults.json").into());
        case(a, &["--json", "control character"])
    }
    convert_over_an_existing_file(s) {
        let out = s.file("conv/out.safetensors", b"the user's file");
        case(convert(&shared().good, &out), &["out.safetensors", "refusing to overwrite"])
    }
    convert_output_with_a_line_break(s) {
        case(
            convert(&shared().good, &s.path("conv\n.safetensors")),
            &["output", "control character"],
        )
    }
    train_out_with_a_line_break(s) {
        case(train(&s, &[], "runs/a\nb"), &["--out", "control character"])
    }
    train_out_below_a_file(s) {
        s.file("runs/a-file", b"mine");
        case(train(&s, &[], "runs/a-file/run"), &["a-file", "is not a folder"])
    }

    // ---- the commit point of a run is never mistaken for an absent one -------------------------
    resume_with_state_json_a_dangling_link(s) {
        let r = run_with(&s, "runs/dangling", "state.json", |p| {
            std::os::unix::fs::symlink("/nonexistent/state.json", p).unwrap()
        });
        case(resume(&r), &["state.json", "symbolic link", "does not exist"])
    }
    resume_with_state_json_a_link_loop(s) {
        let r = run_with(&s, "runs/loop", "state.json", |p| {
            std::os::unix::fs::symlink("state.json", p).unwrap()
        });
        case(resume(&r), &["state.json", "loop of symbolic links"])
    }
    resume_with_state_json_a_folder(s) {
        let r = run_with(&s, "runs/state-folder", "state.json", |p| {
            std::fs::create_dir(p).unwrap()
        });
        case(resume(&r), &["state.json", "folder"])
    }
    resume_with_state_json_a_fifo(s) {
        let r = run_with(&s, "runs/state-fifo", "state.json", mkfifo);
        case(resume(&r), &["state.json", "FIFO"])
    }
    resume_with_config_json_a_dangling_link(s) {
        let r = run_with(&s, "runs/config-dangling", "config.json", |p| {
            std::os::unix::fs::symlink("/nonexistent/config.json", p).unwrap()
        });
        case(resume(&r), &["config.json", "symbolic link"])
    }
    resume_with_the_checkpoint_a_fifo(s) {
        let r = run_with(&s, "runs/ckpt-fifo", "checkpoint-0001.safetensors", mkfifo);
        case(resume(&r), &["checkpoint-0001.safetensors", "FIFO"])
    }
    resume_while_another_process_holds_the_run(s) {
        let r = s.copy_run("runs/held");
        let held = spat_spec::fs::FolderLock::try_acquire(&r, "run.lock")
            .unwrap()
            .expect("nobody else holds the copy");
        let mut c = case(resume(&r), &["held", "another spat process", "run.lock"]);
        c._hold.push(Box::new(held));
        c
    }

    // ---- absurd work: every count is bounded, only regular files are read ----------------------
    eval_pgd_with_4294967296_steps(_s) {
        case(eval_good(&["--attacks", "pgd4294967296"]), &["pgd4294967296", "above the limit"])
    }
    eval_pgd_with_5000_restarts(_s) {
        case(eval_good(&["--attacks", "pgd20x5000"]), &["pgd20x5000", "restarts", "limit"])
    }
    eval_square_with_200000_queries(_s) {
        case(eval_good(&["--attacks", "square200000"]), &["square200000", "above the limit"])
    }
    eval_apgd_t_with_100000_targets(_s) {
        case(
            eval_good(&["--attacks", "apgd-t@targets=100000"]),
            &["apgd-t@targets=100000", "above the limit"],
        )
    }
    eval_1001_attacks(_s) {
        case(eval_good(&["--attacks", &list_of("fgsm", 1001)]), &["attacks", "1001", "limit"])
    }
    eval_batch_size_above_the_limit(_s) {
        case(eval_good(&["--batch-size", "1000000"]), &["--batch-size", "above the limit"])
    }
    eval_test_subset_beyond_any_integer(_s) {
        case(
            eval_good(&["--test-subset", "99999999999999999999999"]),
            &["--test-subset", "above the limit"],
        )
    }
    sweep_steps_4000000000(_s) {
        case(sweep(&["--steps", "4000000000"]), &["--steps", "above the limit"])
    }
    sweep_1001_alphas(_s) {
        case(sweep(&["--alphas", &list_of("0.1", 1001)]), &["--alphas", "1001", "limit"])
    }
    train_epochs_above_the_limit(s) {
        train_option(&s, &["--epochs", "1000000"], &["--epochs", "above the limit"])
    }
    train_batch_size_above_the_limit(s) {
        train_option(&s, &["--batch-size", "1000000"], &["--batch-size", "above the limit"])
    }
    train_train_subset_beyond_any_integer(s) {
        train_option(
            &s,
            &["--train-subset", "99999999999999999999999"],
            &["--train-subset", "above the limit"],
        )
    }
    model_info_classes_2_64_minus_1(_s) {
        case(
            os(&["model-info", "tiny", "--classes", "18446744073709551615"]),
            &["--classes", "above the limit"],
        )
    }
    model_info_classes_0(_s) {
        case(os(&["model-info", "tiny", "--classes", "0"]), &["--classes", "positive"])
    }
    bench_repeats_above_the_limit(_s) {
        case(
            os(&["bench", "--models", "tiny", "--repeats", "100000000"]),
            &["--repeats", "above the limit"],
        )
    }
    bench_warmup_above_the_limit(_s) {
        case(
            os(&["bench", "--models", "tiny", "--warmup", "100000000"]),
            &["--warmup", "above the limit"],
        )
    }
    bench_unknown_model(_s) {
        case(
            os(&["bench", "--models", "tiny,wrn-16-2-gelu"]),
            &["--models", "wrn-16-2-gelu"],
        )
    }
    bench_unknown_activation_of_a_deepmind_network(_s) {
        case(
            os(&["bench", "--models", "dm-wrn-16-2-gelu"]),
            &["--models", "unknown activation `gelu`"],
        )
    }
    visualize_1001_indices(s) {
        case(
            visualize(&["--indices", &list_of("1", 1001)], &s.path("vis/i.png")),
            &["--indices", "1001", "limit"],
        )
    }
    convert_a_fifo(s) {
        let f = fifo(&s, "ckpt/weights.pt");
        case(convert(&f, &s.path("conv/out.safetensors")), &["weights.pt", "FIFO"])
    }
    convert_dev_zero(s) {
        case(
            convert(Path::new("/dev/zero"), &s.path("conv/out.safetensors")),
            &["/dev/zero", "character device"],
        )
    }
    eval_checkpoint_a_fifo(s) {
        eval_case(&fifo(&s, "ckpt/weights.safetensors"), &["weights.safetensors", "FIFO"])
    }
    eval_checkpoint_dev_zero(_s) {
        eval_case(Path::new("/dev/zero"), &["/dev/zero", "character device"])
    }
    train_pseudo_labeled_a_fifo(s) {
        let f = fifo(&s, "pickles/ti.pickle");
        case(rst(&s, &f, "runs/never-fifo"), &["ti.pickle", "FIFO"])
    }
    data_info_batch_a_fifo(s) {
        let d = s.cifar10("data/fifo", |d| {
            std::fs::remove_file(d.join("data_batch_1.bin")).unwrap();
            mkfifo(&d.join("data_batch_1.bin"));
        });
        case(data_info(&d, "cifar10"), &["data_batch_1.bin", "FIFO"])
    }
    train_init_a_fifo(s) {
        let f = fifo(&s, "ckpt/init.pt");
        case(train_init(&s, &f), &["--init", "init.pt", "FIFO"])
    }
    bench_reference_a_fifo(s) {
        let f = fifo(&s, "bench/reference.json");
        let mut a = os(&["bench", "--models", "tiny", "--reference"]);
        a.push(f.into());
        case(a, &["reference.json", "FIFO"])
    }
    eval_a_1_gib_broadcast_checkpoint(s) {
        // 1.6 KB on disk, 1 GiB if its tensor were materialised: refused on its shape first.
        eval_case(&hostile(&s, "broadcast_1gib.pt"), &["broadcast_1gib.pt", "fc.weight"])
    }

    // ---- nonsense weights: one validation whatever the path ------------------------------------
    eval_pt_with_sigma_zero(s) {
        eval_case(&hostile(&s, "sigma_zero.pt"), &["sigma_zero.pt", "`sigma`", "> 0"])
    }
    eval_pt_with_mu_nan(s) {
        eval_case(&hostile(&s, "mu_nan.pt"), &["mu_nan.pt", "`mu`", "not finite"])
    }
    eval_pt_with_a_negative_running_var(s) {
        eval_case(
            &hostile(&s, "negative_running_var.pt"),
            &["negative_running_var.pt", "block1.layer.0.bn1.running_var", "negative"],
        )
    }
    eval_safetensors_with_sigma_negative(s) {
        let p = with_normalization(&s, "ckpt/sigma.safetensors", &[0.5; 3], &[0.2, -0.2, 0.2]);
        eval_case(&p, &["sigma.safetensors", "`sigma`", "> 0"])
    }
    eval_safetensors_with_mu_nan(s) {
        let p = with_normalization(&s, "ckpt/mu.safetensors", &[0.5, f32::NAN, 0.5], &[0.2; 3]);
        eval_case(&p, &["mu.safetensors", "`mu`", "not finite"])
    }
    eval_safetensors_with_a_negative_running_var(s) {
        let p = s.weights("ckpt/var.safetensors", |t| {
            let v = t["bn1.running_var"].clone();
            t.insert("bn1.running_var".into(), filled(&v, -0.5));
        });
        eval_case(&p, &["var.safetensors", "bn1.running_var", "negative"])
    }
    eval_pt_with_a_key_twice(s) {
        // The state dict of scripts/golden/torch_zip_names.py with its key `b` renamed `w`.
        let pkl: Vec<u8> = {
            let mut p = spat_pickle::fuzzing::NAMES_STATE_PKL.to_vec();
            let at = p.windows(6).position(|w| w == b"X\x01\x00\x00\x00b").unwrap();
            p[at + 5] = b'w';
            p
        };
        let mut records = spat_pickle::fuzzing::names_state_records(b"0", true);
        records[0].1 = pkl;
        let borrowed: Vec<(&str, &[u8])> =
            records.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        let p = s.file("ckpt/twice.pt", &spat_pickle::fuzzing::torch_zip("twice", &borrowed));
        eval_case(&p, &["twice.pt", "tensor `w`", "twice"])
    }
    eval_safetensors_with_a_key_twice(s) {
        let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 8]);
        let p = s.file("ckpt/twice.safetensors", &bytes);
        eval_case(&p, &["twice.safetensors", "tensor `w`", "twice"])
    }
    train_init_with_sigma_zero(s) {
        let p = hostile(&s, "sigma_zero.pt");
        case(train_init(&s, &p), &["--init", "sigma_zero.pt", "`sigma`", "> 0"])
    }
    train_init_with_a_negative_running_var(s) {
        let p = hostile(&s, "negative_running_var.pt");
        case(train_init(&s, &p), &["--init", "negative_running_var.pt", "negative"])
    }
    convert_a_negative_running_var(s) {
        let p = hostile(&s, "negative_running_var.pt");
        case(
            convert(&p, &s.path("conv/out.safetensors")),
            &["negative_running_var.pt", "running_var", "negative"],
        )
    }
    eval_normalize_std_zero(_s) {
        case(eval_good(&["--normalize", "0.5,0"]), &["--normalize", "> 0"])
    }
    eval_normalize_mean_nan(_s) {
        case(eval_good(&["--normalize", "nan,0.2"]), &["--normalize", "not finite"])
    }

    // ---- silent and unclear ------------------------------------------------------------------
    eval_step_given_twice(_s) {
        case(
            eval_good(&["--attacks", "pgd20@step=0.01@step=0.02"]),
            &["pgd20@step=0.01@step=0.02", "given twice"],
        )
    }
    eval_eot_given_twice(_s) {
        case(
            eval_good(&["--attacks", "apgd-ce@eot=2@eot=3"]),
            &["apgd-ce@eot=2@eot=3", "given twice"],
        )
    }
    eval_safetensors_with_mu_of_five_channels(s) {
        let p = with_normalization(&s, "ckpt/five.safetensors", &[0.5; 5], &[0.2; 5]);
        eval_case(&p, &["five.safetensors", "`mu`/`sigma`", "3 channels"])
            .without(&["--normalize", "compatible"])
    }
    eval_normalize_of_five_channels(_s) {
        case(
            eval_good(&["--normalize", "0.1,0.2,0.3,0.4,0.5,0.2,0.2,0.2,0.2,0.2"]),
            &["--normalize", "3 channels"],
        )
        .without(&["compatible"])
    }
    train_val_subset_larger_than_the_data(s) {
        train_option(&s, &["--val-subset", "512"], &["--val-subset", "512"])
    }

    // ---- a run's validation split (eval --validation-of) and runs in segments ----------------
    eval_validation_of_a_missing_folder(s) {
        case(
            eval_validation_of(&s.path("runs/none"), &[]),
            &["--validation-of", "none", "no such run directory"],
        )
    }
    eval_validation_of_a_file(s) {
        let f = s.file("runs/a-file", b"not a run");
        case(eval_validation_of(&f, &[]), &["--validation-of", "a-file", "no such run directory"])
    }
    eval_validation_of_a_folder_without_config_json(s) {
        case(
            eval_validation_of(&s.folder("runs/empty"), &[]),
            &["--validation-of", "config.json", "not a spat training run"],
        )
    }
    eval_validation_of_a_garbage_config_json(s) {
        let r = copy_validated_run(&s, "runs/garbage-config");
        std::fs::write(r.join("config.json"), b"{ nope").unwrap();
        case(eval_validation_of(&r, &[]), &["config.json", "not a run configuration"])
    }
    eval_validation_of_a_foreign_config_json(s) {
        let r = s.folder("runs/foreign");
        s.file("runs/foreign/config.json", br#"{"model": "resnet50", "lr": 0.1}"#);
        case(eval_validation_of(&r, &[]), &["config.json", "not a run configuration"])
    }
    eval_validation_of_a_config_json_with_val_subset_zero(s) {
        let r = copy_validated_run(&s, "runs/val-zero");
        let text = std::fs::read_to_string(r.join("config.json")).unwrap();
        std::fs::write(
            r.join("config.json"),
            text.replace("\"val_subset\": 16", "\"val_subset\": 0"),
        )
        .unwrap();
        case(eval_validation_of(&r, &[]), &["config.json", "val_subset"])
    }
    eval_validation_of_a_run_without_a_validation_split(_s) {
        case(
            eval_validation_of(&shared().base, &[]),
            &["--validation-of", "base-run", "no val_subset", "--val-subset"],
        )
    }
    eval_validation_of_a_run_of_another_dataset(_s) {
        let mut a = eval_validation_of(&shared().validated, &[]);
        let at = a.iter().position(|x| x == "cifar10").unwrap();
        a[at] = "cifar100".into();
        case(a, &["--dataset cifar100", "trained on cifar10", "config.json"])
    }
    eval_validation_of_other_training_images(s) {
        let other = s.cifar10("data/other-train", |d| {
            let mut b = std::fs::read(d.join("data_batch_1.bin")).unwrap();
            // One pixel of every image changed: another copy of the data set, not the run's.
            for record in b.chunks_mut(RECORD) {
                record[100] ^= 0x40;
            }
            std::fs::write(d.join("data_batch_1.bin"), b).unwrap();
        });
        let mut a = eval_validation_of(&shared().validated, &[]);
        let at = a.iter().position(|x| x == "--data-dir").unwrap();
        a[at + 1] = other.into();
        case(
            a,
            &["--data-dir", "other-train", "not those the run trained on", "state.json"],
        )
    }
    eval_validation_of_with_test_subset(_s) {
        case(
            eval_validation_of(&shared().validated, &["--test-subset", "4"]),
            &["--validation-of", "--test-subset"],
        )
    }
    train_stop_after_epochs_negative(s) {
        train_option(&s, &["--stop-after-epochs", "-1"], &["--stop-after-epochs", "-1"])
    }
    train_stop_after_epochs_not_a_number(s) {
        train_option(&s, &["--stop-after-epochs", "two"], &["--stop-after-epochs", "two"])
    }
    train_stop_after_epochs_beyond_the_limit(s) {
        train_option(
            &s,
            &["--stop-after-epochs", "100000000"],
            &["--stop-after-epochs", "100000000"],
        )
    }
}
