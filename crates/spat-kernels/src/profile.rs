//! Opt-in wall-clock accounting of spat's own kernels (convolutions in each direction, batch
//! norm), per operation and layer shape, so a benchmark can say where a step's time goes.
//!
//! Off by default: then each instrumented call costs one relaxed atomic load. When on, every
//! call takes four clock reads and a mutex; the kernels it brackets run for tens of microseconds
//! at the least, so the accounting hardly changes what it measures. Each span records the wall
//! time of the calling thread (the kernels parallelise inside) and the CPU time of the whole
//! process meanwhile: kernels run one after another, so that is theirs, and on a machine shared
//! with other jobs it is the figure that does not depend on their load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATS: Mutex<BTreeMap<(&'static str, String), Totals>> = Mutex::new(BTreeMap::new());

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    calls: u64,
    seconds: f64,
    cpu_seconds: f64,
    flops: f64,
}

/// Time spent in one operation on one shape since the last [`take`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// `conv-forward`, `conv-input-grad`, `conv-weight-grad`, `bn-forward`, `bn-backward`.
    pub op: &'static str,
    /// Input and kernel shape with stride (convolutions) or the tensor shape (batch norm).
    pub shape: String,
    /// How many times the operation ran on this shape.
    pub calls: u64,
    /// Wall time.
    pub seconds: f64,
    /// CPU time of the process (all threads) meanwhile; 0 where it cannot be read.
    pub cpu_seconds: f64,
    /// Floating-point operations done (2 per multiply-add; 0 where not counted).
    pub flops: f64,
}

/// Turns the accounting on or off (process-wide).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The totals gathered so far, sorted by operation then shape, and a fresh start.
pub fn take() -> Vec<OpTime> {
    let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *stats)
        .into_iter()
        .map(|((op, shape), t)| OpTime {
            op,
            shape,
            calls: t.calls,
            seconds: t.seconds,
            cpu_seconds: t.cpu_seconds,
            flops: t.flops,
        })
        .collect()
}

/// Records the time until it is dropped under `(op, shape)`; made by [`span`].
pub struct Span {
    op: &'static str,
    shape: String,
    flops: f64,
    start: Instant,
    cpu_start: f64,
}

/// CPU time (user + system, all threads, including ended ones) this process has used.
pub fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// A [`Span`] if accounting is on; `shape` is only formatted then.
pub fn span(op: &'static str, flops: f64, shape: impl FnOnce() -> String) -> Option<Span> {
    ENABLED.load(Ordering::Relaxed).then(|| Span {
        op,
        shape: shape(),
        flops,
        cpu_start: cpu_seconds().unwrap_or(0.0),
        start: Instant::now(),
    })
}

impl Drop for Span {
    fn drop(&mut self) {
        let seconds = self.start.elapsed().as_secs_f64();
        let cpu_seconds = cpu_seconds().map_or(0.0, |now| now - self.cpu_start);
        let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
        let t = stats
            .entry((self.op, std::mem::take(&mut self.shape)))
            .or_default();
        t.calls += 1;
        t.seconds += seconds;
        t.cpu_seconds += cpu_seconds;
        t.flops += self.flops;
    }
}

/// `n×c×h×w * o×c×k×k /s` (the shape key of a convolution) and its multiply-adds × 2.
pub(crate) fn conv_key(x: &[usize], kernel: &[usize], stride: usize) -> String {
    format!(
        "{}x{}x{}x{} * {}x{}x{}x{} /{stride}",
        x[0], x[1], x[2], x[3], kernel[0], kernel[1], kernel[2], kernel[3]
    )
}

/// Floating-point operations of a convolution (each direction costs the same).
pub(crate) fn conv_flops(x: &[usize], kernel: &[usize], stride: usize, padding: usize) -> f64 {
    let k = kernel[2];
    let oh = (x[2] + 2 * padding - k) / stride + 1;
    let ow = (x[3] + 2 * padding - k) / stride + 1;
    2.0 * (x[0] * kernel[0] * kernel[1] * k * k * oh * ow) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_recorded_only_when_enabled() {
        set_enabled(false);
        drop(span("test-op", 1.0, || "off".into()));
        set_enabled(true);
        drop(span("test-op", 2.0, || "on".into()));
        drop(span("test-op", 2.0, || "on".into()));
        set_enabled(false);
        let mine: Vec<OpTime> = take().into_iter().filter(|t| t.op == "test-op").collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!((mine[0].shape.as_str(), mine[0].calls), ("on", 2));
        assert_eq!(mine[0].flops, 4.0);
    }
}
