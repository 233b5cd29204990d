//! One runner per cell: a lock file that works on a shared (NFS) file system.
//!
//! Several runners may work on one output directory at once: the array tasks of a Slurm job, a
//! second `cargo xtask reproduce` on another machine, a re-submission while the first submission
//! still runs. Before a runner starts a cell it takes the cell's lock; a cell whose lock is held by
//! a live runner is left to that runner.
//!
//! * **Taking** the lock is `link(2)` of a complete, uniquely named file onto the lock's name: the
//!   NFS-safe exclusive create (open(2) documents `O_EXCL` over NFS as unreliable before NFSv3 and
//!   `link` as the portable way). A link whose reply was lost is recognised by the unique file's
//!   link count of 2. The lock file names its holder: host, pid and the pid's start time, the
//!   Slurm job, a random token, and the lease.
//! * **Heartbeat:** while held, a thread refreshes the lock file's modification time every tenth of
//!   the lease. It also checks that the file still names this holder; if not (another runner took
//!   it over after the lease expired), [`Lock::lost`] turns true and the runner stops its `spat`.
//! * **Stale locks** are taken over when their holder is provably gone: a process on this host
//!   that no longer exists (or is another process with the same pid), a Slurm task that Slurm has
//!   requeued (same job, higher `SLURM_RESTART_COUNT`) or ended, or a lease not refreshed for
//!   longer than the lease (a crashed machine). Breakers take a guard lock (`<lock>.break`, same
//!   protocol) so that only one of several waiters breaks a given lock, re-check under it, move the
//!   stale file aside and check that what they moved is what they judged stale.
//!
//! Assumptions: one host name is one pid namespace; clocks of the machines sharing the file system
//! agree to well within a lease (NTP); the file system supports hard links.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// How long a holder that stopped refreshing its lock is still presumed alive. Long against NFS
/// attribute caching (`acregmax`, 60 s by default) and a busy machine's scheduling hiccups, short
/// against the hours a cell takes.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// A guard lock (`<lock>.break`) older than this belongs to a breaker that died mid-way: its
/// holder does a handful of file operations.
const GUARD_STALE: Duration = Duration::from_secs(60);

/// The Slurm task a runner runs in, from the environment Slurm gives a batch script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmTask {
    /// `SLURM_JOB_ID`: one array task, unchanged when Slurm requeues it.
    pub job_id: String,
    /// `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID`, for array tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job_id: Option<String>,
    /// `SLURM_ARRAY_TASK_ID`: the task's index in its array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task_id: Option<String>,
    /// `SLURM_RESTART_COUNT`: how many times Slurm requeued the task (0 the first time).
    pub restart_count: u32,
}

impl SlurmTask {
    /// The Slurm task this process runs in, from `SLURM_*` variables; `None` outside Slurm.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(SlurmTask {
            job_id: var("SLURM_JOB_ID")?,
            array_job_id: var("SLURM_ARRAY_JOB_ID"),
            array_task_id: var("SLURM_ARRAY_TASK_ID"),
            restart_count: var("SLURM_RESTART_COUNT")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// `123_4` for an array task, `123` otherwise: what `sacct -j` and `scancel` take.
    pub fn id(&self) -> String {
        match (&self.array_job_id, &self.array_task_id) {
            (Some(j), Some(t)) => format!("{j}_{t}"),
            _ => self.job_id.clone(),
        }
    }
}

/// Who runs (or ran) something: a process on a host, maybe inside a Slurm task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    /// The host name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// The process's start time (clock ticks after boot, /proc/PID/stat field 22): with the pid,
    /// it names one process even after the pid is reused. `None` where /proc is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start: Option<u64>,
    /// The Slurm task the process runs in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmTask>,
}

impl Runner {
    /// This process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Runner {
            host: host_name(),
            pid,
            pid_start: process_status(pid).map(|s| s.start),
            slurm: SlurmTask::from_env(),
        }
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)?;
        if let Some(s) = &self.slurm {
            write!(f, " (Slurm job {}", s.id())?;
            if s.restart_count > 0 {
                write!(f, ", restart {}", s.restart_count)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The contents of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique per acquisition: whether a lock file is still this holder's.
    pub token: String,
    /// Who holds it.
    #[serde(flatten)]
    pub runner: Runner,
    /// When the lock was taken (seconds since the Unix epoch).
    pub acquired_unix: u64,
    /// The holder refreshes the lock file's modification time well within this.
    pub lease_seconds: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.runner.fmt(f)
    }
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn new_token(runner: &Runner) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}.{}.{}.{}",
        runner.host,
        runner.pid,
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct ProcessStatus {
    /// `R`, `S`, `D`, `T`, `Z` (zombie: exited, not yet reaped), ...
    state: char,
    start: u64,
}

/// State and start time of a process on this host; `None` if there is no such process or no /proc.
fn process_status(pid: u32) -> Option<ProcessStatus> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcessStatus {
        state: fields.first()?.chars().next()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `runner`'s process is gone, as far as this host can tell: only a process on this
/// host can be checked, and only where /proc exists.
fn process_gone(runner: &Runner, me: &Runner) -> bool {
    if runner.host != me.host || !Path::new("/proc/self/stat").exists() {
        return false;
    }
    match process_status(runner.pid) {
        None => true,
        Some(s) => matches!(s.state, 'Z' | 'X') || runner.pid_start.is_some_and(|t| t != s.start),
    }
}

/// Slurm's word on a job: its state, if `squeue` knows it.
fn slurm_job_state(job_id: &str) -> Option<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%T", "-j", job_id])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!state.is_empty()).then_some(state)
}

/// Why `holder`'s lock may be taken over by `me`, or `None` if its holder may still be working.
/// `age` is the time since the holder last refreshed the lock.
pub fn stale_reason(holder: &Holder, age: Duration, me: &Runner) -> Option<String> {
    if process_gone(&holder.runner, me) {
        return Some(format!("{} no longer exists", holder.runner));
    }
    if let (Some(theirs), Some(mine)) = (&holder.runner.slurm, &me.slurm) {
        if theirs.job_id == mine.job_id && theirs.restart_count < mine.restart_count {
            return Some(format!(
                "Slurm requeued job {} (restart {} holds the lock, this is restart {})",
                mine.id(),
                theirs.restart_count,
                mine.restart_count
            ));
        }
    }
    if age > Duration::from_secs(holder.lease_seconds) {
        return Some(format!(
            "{} has not refreshed it for {} s (lease {} s)",
            holder.runner,
            age.as_secs(),
            holder.lease_seconds
        ));
    }
    if let Some(theirs) = &holder.runner.slurm {
        // A job that Slurm says is pending (requeued) or finished has no process left.
        if let Some(state) = slurm_job_state(&theirs.job_id) {
            let ended = [
                "PENDING",
                "COMPLETED",
                "CANCELLED",
                "FAILED",
                "TIMEOUT",
                "NODE_FAIL",
                "PREEMPTED",
                "BOOT_FAIL",
                "DEADLINE",
                "OUT_OF_MEMORY",
            ];
            if ended.contains(&state.as_str()) {
                return Some(format!(
                    "{} is not running (Slurm says {state})",
                    holder.runner
                ));
            }
        }
    }
    None
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The holder named by a lock file (`None` inside if the file is not one) and the time since its
/// last refresh; `None` if there is no lock file.
fn read_holder(path: &Path) -> Result<Option<(Option<Holder>, Duration)>> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading the lock {}", path.display())),
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let holder = match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).ok(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading the lock {}", path.display())),
    };
    Ok(Some((holder, age)))
}

/// Links a complete file naming `holder` onto `path`: true if this call created `path`.
fn link_exclusive(path: &Path, holder: &Holder) -> Result<bool> {
    let unique = sibling(path, &format!(".{}", holder.token));
    spat_spec::fs::write_json(&unique, holder)?;
    let created = match fs::hard_link(&unique, path) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Over NFS the reply to a successful link can be lost and the retried call fail.
            use std::os::unix::fs::MetadataExt as _;
            fs::metadata(&unique).is_ok_and(|m| m.nlink() == 2)
        }
        Err(e) => {
            let _ = fs::remove_file(&unique);
            return Err(e).with_context(|| {
                format!(
                    "creating the lock {} (it needs a file system with hard links)",
                    path.display()
                )
            });
        }
    };
    let _ = fs::remove_file(&unique);
    Ok(created)
}

/// Removes `path` if it still names `token`.
fn remove_own(path: &Path, token: &str) {
    if let Ok(Some((Some(h), _))) = read_holder(path) {
        if h.token == token {
            let _ = fs::remove_file(path);
        }
    }
}

/// A lock this process holds; released (its file removed) when dropped.
pub struct Lock {
    path: PathBuf,
    holder: Holder,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

/// What [`acquire`] found.
pub enum Acquired {
    /// This runner holds the lock now; dropping it releases the lock.
    Held(Lock),
    /// Another runner holds the lock and may still be working.
    Busy(Holder),
}

/// Takes the lock at `path` if it is free or stale.
pub fn acquire(path: &Path, lease: Duration) -> Result<Acquired> {
    let runner = Runner::current();
    // A few rounds: a stale lock is broken, then taken in the next round (unless another waiter
    // took it first).
    for _ in 0..4 {
        let holder = Holder {
            token: new_token(&runner),
            runner: runner.clone(),
            acquired_unix: unix_now(),
            lease_seconds: lease.as_secs().max(1),
        };
        if link_exclusive(path, &holder)? {
            return Ok(Acquired::Held(Lock::start(path, holder, lease)));
        }
        let Some((current, age)) = read_holder(path)? else {
            continue; // released meanwhile
        };
        let Some(current) = current else {
            // Never a file of this protocol (it only ever links complete files): not ours to remove.
            bail!(
                "{} is not a lock file of cargo xtask reproduce (remove it if no runner is using \
                 this directory)",
                path.display()
            );
        };
        match stale_reason(&current, age, &runner) {
            None => return Ok(Acquired::Busy(current)),
            Some(why) => break_stale(path, &current.token, &why, &holder)?,
        }
    }
    match read_holder(path)? {
        Some((Some(h), _)) => Ok(Acquired::Busy(h)),
        _ => bail!(
            "could not take the lock {}: other runners keep taking it",
            path.display()
        ),
    }
}

/// Removes the stale lock at `path` whose token is `stale`, under the guard lock `<path>.break`.
fn break_stale(path: &Path, stale: &str, why: &str, me: &Holder) -> Result<()> {
    let guard = sibling(path, ".break");
    if !link_exclusive(&guard, me)? {
        // Another waiter is breaking it; clear the guard of a breaker that died mid-way.
        if let Some((g, age)) = read_holder(&guard)? {
            let dead = g
                .as_ref()
                .is_some_and(|g| process_gone(&g.runner, &me.runner));
            if age > GUARD_STALE || dead {
                let _ = fs::remove_file(&guard);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        return Ok(());
    }
    let result = (|| -> Result<()> {
        // Judge again under the guard: the holder may have refreshed or released it meanwhile.
        let Some((Some(current), age)) = read_holder(path)? else {
            return Ok(());
        };
        if current.token != stale || stale_reason(&current, age, &me.runner).is_none() {
            return Ok(());
        }
        // Only breakers remove another's lock and they hold the guard, but a lease-expired holder
        // may release its own and a new one take its place: move it aside, then check what moved.
        let aside = sibling(path, &format!(".stale.{}", me.token));
        match fs::rename(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(e).with_context(|| format!("moving the stale lock {}", path.display()))
            }
        }
        let moved = read_holder(&aside)?.and_then(|(h, _)| h).map(|h| h.token);
        if moved.as_deref() == Some(stale) {
            eprintln!("xtask: taking over the lock {}: {why}", path.display());
        } else {
            // Someone's fresh lock: put it back. If a third runner took the free name meanwhile,
            // the moved holder finds its lock gone at its next heartbeat and stops.
            let _ = fs::hard_link(&aside, path);
        }
        let _ = fs::remove_file(&aside);
        Ok(())
    })();
    remove_own(&guard, &me.token);
    result
}

impl Lock {
    fn start(path: &Path, holder: Holder, lease: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, wake) = mpsc::channel::<()>();
        let interval = (lease / 10).max(Duration::from_millis(100));
        let heartbeat = {
            let path = path.to_path_buf();
            let token = holder.token.clone();
            let lost = Arc::clone(&lost);
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = wake.recv_timeout(interval) {
                    match read_holder(&path) {
                        Ok(Some((Some(h), _))) if h.token == token => {
                            // Refresh the lease; a failure here (a file server away for a moment)
                            // is retried at the next beat, and the lease covers ten of them.
                            let _ =
                                File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
                        }
                        // A read error is a file server away for a moment: the next beat retries.
                        Err(_) => {}
                        _ => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        };
        Lock {
            path: path.to_path_buf(),
            holder,
            lost,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }

    /// Whether another runner took this lock over (this holder's lease had expired).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// What the lock file says about its holder (this runner).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        remove_own(&self.path, &self.holder.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(a: Acquired) -> Lock {
        match a {
            Acquired::Held(l) => l,
            Acquired::Busy(h) => panic!("busy: held by {h}"),
        }
    }

    fn busy(a: Acquired) -> Holder {
        match a {
            Acquired::Held(l) => panic!("took the lock {}", l.path().display()),
            Acquired::Busy(h) => h,
        }
    }

    fn write_lock(path: &Path, h: &Holder, age: Duration) {
        std::fs::write(path, serde_json::to_string(h).unwrap()).unwrap();
        File::open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    fn foreign(host: &str, pid: u32, lease: u64) -> Holder {
        Holder {
            token: format!("{host}.{pid}.0.0"),
            runner: Runner {
                host: host.into(),
                pid,
                pid_start: None,
                slurm: None,
            },
            acquired_unix: unix_now(),
            lease_seconds: lease,
        }
    }

    #[test]
    fn one_of_many_racing_threads_gets_it_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let barrier = std::sync::Barrier::new(8);
        let locks: Vec<Acquired> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        acquire(&path, DEFAULT_LEASE).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let held: Vec<&Lock> = locks
            .iter()
            .filter_map(|a| match a {
                Acquired::Held(l) => Some(l),
                Acquired::Busy(_) => None,
            })
            .collect();
        assert_eq!(held.len(), 1, "exactly one holder");
        let token = held[0].holder().token.clone();
        for a in &locks {
            if let Acquired::Busy(h) = a {
                assert_eq!(h.token, token, "the losers see the winner");
            }
        }
        drop(locks);
        assert!(!path.exists(), "released");
        // Only the lock's own files were ever created beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        held_then_free(&path);
    }

    fn held_then_free(path: &Path) {
        let l = held(acquire(path, DEFAULT_LEASE).unwrap());
        let h: Holder = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(&h, l.holder());
        assert_eq!(h.runner.pid, std::process::id());
        drop(l);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_process_on_this_host_loses_its_lock_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let me = Runner::current();
        let mut dead = foreign(&me.host, pid, 3600);
        dead.runner.pid_start = Some(1);
        write_lock(&path, &dead, Duration::ZERO);
        let l = held(acquire(&path, DEFAULT_LEASE).unwrap());
        assert_eq!(l.holder().runner.pid, std::process::id());
    }

    #[test]
    fn a_live_holder_keeps_its_lock_and_a_reused_pid_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let me = Runner::current();
        // This very process, as another runner would record it: alive, so busy.
        let mut alive = foreign(&me.host, me.pid, 3600);
        alive.runner.pid_start = me.pid_start;
        write_lock(&path, &alive, Duration::ZERO);
        assert_eq!(busy(acquire(&path, DEFAULT_LEASE).unwrap()), alive);
        // The same pid with another start time is another process: the holder is gone.
        alive.runner.pid_start = me.pid_start.map(|t| t + 1);
        write_lock(&path, &alive, Duration::ZERO);
        held(acquire(&path, DEFAULT_LEASE).unwrap());
    }

    #[test]
    fn another_hosts_lock_is_taken_only_after_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let other = foreign("some-other-node", 4242, 60);
        write_lock(&path, &other, Duration::from_secs(30));
        assert_eq!(busy(acquire(&path, DEFAULT_LEASE).unwrap()), other);
        write_lock(&path, &other, Duration::from_secs(61));
        let _mine = held(acquire(&path, DEFAULT_LEASE).unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["LOCK"], "no guard or aside file is left behind");
    }

    #[test]
    fn a_requeued_slurm_task_takes_over_its_previous_incarnation() {
        let task = |restart| SlurmTask {
            // Ids no real Slurm here has handed out, so squeue has no say.
            job_id: "999999977".into(),
            array_job_id: Some("999999970".into()),
            array_task_id: Some("7".into()),
            restart_count: restart,
        };
        let mut old = foreign("node-a", 10, 3600);
        old.runner.slurm = Some(task(0));
        let mut me = foreign("node-b", 20, 3600).runner;
        me.slurm = Some(task(1));
        let why = stale_reason(&old, Duration::ZERO, &me).unwrap();
        assert!(why.contains("requeued job 999999970_7"), "{why}");
        me.slurm = Some(SlurmTask {
            job_id: "999999978".into(),
            ..task(1)
        });
        assert_eq!(stale_reason(&old, Duration::ZERO, &me), None);
    }

    #[test]
    fn the_heartbeat_keeps_a_lock_alive_past_its_lease_and_notices_a_takeover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let lease = Duration::from_secs(1);
        let l = held(acquire(&path, lease).unwrap());
        std::thread::sleep(Duration::from_millis(2500));
        let (_, age) = read_holder(&path).unwrap().unwrap();
        assert!(age < lease, "refreshed: {age:?}");
        // Seen from another host, the lock is fresh.
        let holder = l.holder().clone();
        let elsewhere = foreign("some-other-node", 1, 1).runner;
        assert_eq!(stale_reason(&holder, age, &elsewhere), None);
        assert!(!l.lost());
        // Another runner replaces the file (as a takeover after an expired lease would).
        let usurper = foreign("some-other-node", 1, 3600);
        write_lock(&path, &usurper, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(400));
        assert!(l.lost());
        drop(l);
        let left: Holder = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(left, usurper, "releasing never removes another's lock");
    }

    #[test]
    fn a_file_that_is_not_a_lock_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        std::fs::write(&path, "my notes").unwrap();
        File::open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(86_400))
            .unwrap();
        let err = acquire(&path, DEFAULT_LEASE).err().unwrap().to_string();
        assert!(err.contains("is not a lock file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "my notes");
    }
}
