//! CPU time of one 3x3 convolution forward + backward, candle's kernel against the direct one,
//! for the widths the networks use: where the direct kernel stops winning sets
//! `DIRECT_CONV_MAX_CHANNEL_PAIRS` in `conv.rs`.
//! `cargo run --release -p spat-models --example conv_crossover`
use candle_core::{Device, Tensor, Var};

/// User + system CPU seconds of this process (Linux /proc).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

fn time(reps: usize, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let start = cpu_seconds();
    for _ in 0..reps {
        f()?;
    }
    Ok((cpu_seconds() - start) * 1e3 / reps as f64)
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut rng = spat_core::rng::host_rng(0, 0);
    // (channels, spatial size, batch): each stage of a CIFAR network at batch 32.
    for (c, hw, n) in [
        (8, 32, 32),
        (16, 32, 32),
        (16, 16, 32),
        (32, 32, 32),
        (32, 16, 32),
        (32, 8, 32),
        (64, 16, 32),
        (128, 8, 32),
    ] {
        let x = Var::from_tensor(&spat_core::rng::uniform(
            &mut rng,
            (n, c, hw, hw),
            -1.0,
            1.0,
            &dev,
        )?)?;
        let w = Var::from_tensor(&spat_core::rng::uniform(
            &mut rng,
            (c, c, 3, 3),
            -0.1,
            0.1,
            &dev,
        )?)?;
        let step = |direct: bool| -> candle_core::Result<()> {
            let y: Tensor = if direct {
                spat_models::layers::direct_conv2d(x.as_tensor(), w.as_tensor(), 1, 1)?
            } else {
                x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1)?
            };
            y.sum_all()?.backward()?;
            Ok(())
        };
        let reps = (4e8 / (n * c * c * hw * hw * 9) as f64).ceil() as usize;
        let candle = time(reps, || step(false))?;
        let direct = time(reps, || step(true))?;
        println!("{c:>3} -> {c:<3} {hw:>2}x{hw:<2} batch {n}: candle {candle:7.1} ms, direct {direct:7.1} ms CPU");
    }
    Ok(())
}
