//! Times one forward + backward pass (CE-like loss, gradients for weights and input) of a preset.
//! `cargo bench -p spat-models --bench forward_timing -- tiny 128 [32]`
//!
//! Prints wall time and the process's CPU time (user + system, from /proc on Linux): on a shared
//! machine wall time depends on the load, CPU time much less so; on an idle machine with `p`
//! cores the wall time is at best CPU time / p.
use std::time::Instant;

use candle_core::{Device, Var};
use spat_core::{Classifier, Mode};

/// User + system CPU seconds of this process so far (None off Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench"); // cargo bench adds it
    let preset = args.next().unwrap_or_else(|| "tiny".into());
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    let size: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);
    let model = spat_models::build(&preset, 10, &Device::Cpu, 0)?;
    let x = spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(0, 0),
        (batch, 3, size, size),
        0.0,
        1.0,
        &Device::Cpu,
    )?;
    let step = || -> candle_core::Result<()> {
        let xv = Var::from_tensor(&x)?;
        let logits = model.logits(xv.as_tensor(), Mode::Train)?;
        let _grads = logits.sqr()?.sum_all()?.backward()?;
        Ok(())
    };
    step()?; // warm-up
    let reps = 5;
    let mut times = Vec::new();
    let cpu0 = cpu_seconds();
    for _ in 0..reps {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| (b - a) / reps as f64);
    let mut fwd = Vec::new();
    for mode in [Mode::Eval, Mode::Train] {
        let t = Instant::now();
        let _ = model.logits(&x, mode)?;
        fwd.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "forward only: eval {:.1} ms, train {:.1} ms (wall)",
        fwd[0], fwd[1]
    );
    println!(
        "{preset} batch {batch} {size}x{size}: forward+backward wall median {:.1} ms, min {:.1} ms; CPU time {}",
        times[reps / 2] * 1e3,
        times[0] * 1e3,
        cpu.map_or("n/a".into(), |c| format!("{:.1} ms per pass", c * 1e3)),
    );
    Ok(())
}
