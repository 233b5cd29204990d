//! spat's SiLU against candle's on the activations of `dm-wrn-16-2-silu` at batch 200 (spat
//! eval's batch): forward alone, and forward plus the input gradient, in milliseconds of the
//! process's CPU time (best of the repeats; robust to other processes on a shared machine,
//! equal to wall time with `RAYON_NUM_THREADS=1`).
//! `cargo bench -p spat-kernels --bench silu_cpu`; `-- --repeats N`.

use candle_core::{Device, Tensor, Var};

/// `(c, h)` of each activation shape of the DeepMind WRN-16-2 (widths 32, 64, 128).
const SHAPES: &[(usize, usize)] = &[(16, 32), (32, 32), (64, 16), (128, 8)];

type Op = fn(&Tensor) -> candle_core::Result<Tensor>;

/// The process's CPU time in ms.
fn cpu_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6
}

/// Best CPU time in ms of `f` over `repeats` runs.
fn best_ms(
    repeats: usize,
    mut f: impl FnMut() -> candle_core::Result<()>,
) -> candle_core::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let start = cpu_ms();
        f()?;
        best = best.min(cpu_ms() - start);
    }
    Ok(best)
}

fn main() -> candle_core::Result<()> {
    // Inside the pool, so that the caller's wait for rayon's workers costs no CPU time.
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .map_err(candle_core::Error::wrap)?;
    pool.install(run)
}

fn run() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeats = args
        .iter()
        .position(|a| a == "--repeats")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(5);
    let ops: [(&str, Op); 2] = [("candle", |x| x.silu()), ("spat", spat_kernels::ops::silu)];
    println!(
        "| activation | candle fwd ms | spat fwd ms | candle fwd+bwd ms | spat fwd+bwd ms | ({} threads)",
        rayon::current_num_threads()
    );
    println!("|---|---:|---:|---:|---:|");
    for &(c, h) in SHAPES {
        let n = 200 * c * h * h;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7877) % 4001) as f32 / 400.0 - 5.0)
            .collect();
        let x = Var::from_vec(v, (200, c, h, h), &Device::Cpu)?;
        let mut cells = Vec::new();
        for (_, op) in ops {
            cells.push(best_ms(repeats, || op(x.as_tensor()).map(drop))?);
        }
        for (_, op) in ops {
            cells.push(best_ms(repeats, || {
                op(x.as_tensor())?.sum_all()?.backward().map(drop)
            })?);
        }
        println!(
            "| 200×{c}×{h}×{h} | {:.2} | {:.2} | {:.2} | {:.2} |",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    Ok(())
}
