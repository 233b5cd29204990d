//! Wall time of one PGD evaluation batch on CPU:
//! `cargo bench -p spat-attacks --bench pgd_timing -- resnet-18 128 20`
use std::time::Instant;

use candle_core::{Device, Tensor};
use spat_attacks::{Attack, Pgd};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench"); // cargo bench adds it
    let preset = args.next().unwrap_or_else(|| "resnet-18".into());
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(128);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let model = spat_models::build(&preset, 10, &Device::Cpu, 0)?;
    let x = spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(0, 0),
        (batch, 3, 32, 32),
        0.0,
        1.0,
        &Device::Cpu,
    )?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &Device::Cpu)?;
    let pgd = Pgd {
        steps,
        ..Pgd::pgd20(8.0 / 255.0)
    };
    let t = Instant::now();
    pgd.perturb(model.as_ref(), &x, &y, &mut spat_core::rng::host_rng(0, 1))?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "{preset}, batch {batch}, PGD-{steps}: {s:.1} s per batch ({:.2} s per step), {} threads",
        s / steps as f64,
        candle_core::utils::get_num_threads()
    );
    Ok(())
}
