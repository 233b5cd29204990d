//! Each direction of spat's CPU convolution on every distinct layer shape of the `tiny`,
//! `wrn-16-2` and `resnet-18` presets at batch 32, in GFLOP/s of wall time (best of the
//! repeats). Threads: `RAYON_NUM_THREADS`. `cargo bench -p spat-kernels --bench conv_cpu`;
//! `-- --repeats N`, `-- --filter SUBSTRING` (matched against the shape key), `-- --batch N`
//! (16 is the part an evaluation-mode attack differentiates on each thread).
//!
//! The forward runs twice per repeat: with a constant kernel (an attack's pass: from the second
//! repeat on, Winograd's layers find its transform in the cache) and with a tracked one (a
//! training pass: transformed on every call). The input gradient is an attack's (constant
//! kernel), the weight gradient a training pass's.
//!
//! The `spat` binary keeps freed memory in the process (glibc's `mallopt`, spat-cli's
//! `malloc.rs`); for the same allocator behaviour here, run with
//! `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824`.

use candle_core::{Device, Tensor, Var};
use spat_kernels::{ops::conv2d, profile};

/// `(c_in, h, c_out, k, stride, padding)` of every distinct convolution of the three presets.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (3, 32, 16, 3, 1, 1),
    (3, 32, 64, 3, 1, 1),
    (16, 32, 32, 3, 1, 1),
    (32, 32, 32, 3, 1, 1),
    (32, 32, 64, 3, 2, 1),
    (64, 16, 64, 3, 1, 1),
    (64, 32, 64, 3, 1, 1),
    (64, 32, 128, 3, 2, 1),
    (64, 32, 128, 1, 2, 0),
    (128, 16, 128, 3, 1, 1),
    (128, 16, 256, 3, 2, 1),
    (128, 16, 256, 1, 2, 0),
    (256, 8, 256, 3, 1, 1),
    (256, 8, 512, 3, 2, 1),
    (256, 8, 512, 1, 2, 0),
    (512, 4, 512, 3, 1, 1),
];

fn values(dims: &[usize], seed: u64) -> candle_core::Result<Tensor> {
    let len: usize = dims.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let repeats: usize = flag("--repeats").map_or(5, |r| r.parse().unwrap_or(5));
    let filter = flag("--filter").unwrap_or_default();
    let batch: usize = flag("--batch").map_or(32, |b| b.parse().unwrap_or(32));
    println!(
        "| layer (n×c×h×w * o×c×k×k /stride) | forward GFLOP/s | forward, tracked kernel | input grad | weight grad | ({} threads)",
        rayon::current_num_threads()
    );
    println!("|---|---:|---:|---:|---:|");
    let mut totals = [0f64; 4];
    let mut flops_total = 0f64;
    for &(cin, h, cout, k, stride, padding) in SHAPES {
        // The same key as the kernel profile's.
        if !format!("{batch}x{cin}x{h}x{h} * {cout}x{cin}x{k}x{k} /{stride}").contains(&filter) {
            continue;
        }
        let x = values(&[batch, cin, h, h], 1)?;
        let w = values(&[cout, cin, k, k], 2)?;
        let xv = Var::from_tensor(&x)?;
        let wv = Var::from_tensor(&w)?;
        let mut best = [f64::INFINITY; 4];
        let mut key = String::new();
        let mut flops = 0.0;
        // Times the kernels `pass` runs; a forward counts as `forward` (its column).
        let mut timed = |forward: usize, pass: &mut dyn FnMut() -> candle_core::Result<()>| {
            profile::set_enabled(true);
            let _ = profile::take();
            pass()?;
            profile::set_enabled(false);
            for t in profile::take() {
                let i = match t.op {
                    "conv-forward" => forward,
                    "conv-input-grad" => 2,
                    "conv-weight-grad" => 3,
                    _ => continue,
                };
                let per_call = t.seconds / t.calls as f64;
                best[i] = best[i].min(per_call);
                flops = t.flops / t.calls as f64;
                key = t.shape;
            }
            Ok::<_, candle_core::Error>(())
        };
        for _ in 0..repeats {
            // Input gradient only (constant kernel), then kernel gradient only (constant input).
            timed(0, &mut || {
                conv2d(xv.as_tensor(), &w, stride, padding)?
                    .sum_all()?
                    .backward()
                    .map(drop)
            })?;
            timed(1, &mut || {
                conv2d(&x, wv.as_tensor(), stride, padding)?
                    .sum_all()?
                    .backward()
                    .map(drop)
            })?;
        }
        let g = |s: f64| flops / s / 1e9;
        println!(
            "| {key} | {:.1} | {:.1} | {:.1} | {:.1} |",
            g(best[0]),
            g(best[1]),
            g(best[2]),
            g(best[3])
        );
        for (t, b) in totals.iter_mut().zip(best) {
            *t += b;
        }
        flops_total += flops;
    }
    let g = |s: f64| flops_total / s / 1e9;
    println!(
        "| all shapes, one call each | {:.1} | {:.1} | {:.1} | {:.1} |",
        g(totals[0]),
        g(totals[1]),
        g(totals[2]),
        g(totals[3])
    );
    Ok(())
}
