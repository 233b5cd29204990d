//! Times one forward + backward pass (CE loss, gradients for weights and input) of a preset.
//! `cargo run --release -p spat-models --example forward_timing -- tiny 128`
use std::time::Instant;

use candle_core::{Device, Var};
use spat_core::{Classifier, Mode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let preset = args.next().unwrap_or_else(|| "tiny".into());
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    let model = spat_models::build(&preset, 10, &Device::Cpu, 0)?;
    let x = spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(0, 0),
        (batch, 3, 32, 32),
        0.0,
        1.0,
        &Device::Cpu,
    )?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let xv = Var::from_tensor(&x)?;
        let logits = model.logits(xv.as_tensor(), Mode::Train)?;
        let _grads = logits.sqr()?.sum_all()?.backward()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let mut fwd = Vec::new();
    for mode in [Mode::Eval, Mode::Train] {
        let t = Instant::now();
        let _ = model.logits(&x, mode)?;
        fwd.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "forward only: eval {:.1} ms, train {:.1} ms",
        fwd[0], fwd[1]
    );
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{preset} batch {batch}: forward+backward median {:.1} ms",
        times[2] * 1e3
    );
    Ok(())
}
