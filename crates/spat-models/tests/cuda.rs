//! The CUDA paths against the CPU: convolutions (cuDNN with `--features cudnn`, candle's kernels
//! with `--features cuda`), whole networks' logits and input gradients, and the parameter
//! gradients and update of one training step.
//!
//! Every test is `#[ignore = "needs a GPU"]`: the default `cargo test` compiles them (so CI keeps
//! them building) and skips them. On a GPU machine run them with
//! `cargo test --release -p spat-models --features cudnn --test cuda -- --ignored`; each one fails,
//! never passes, where no CUDA device opens (including a build without the `cuda` feature).

use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};
use spat_core::{Classifier, Mode, Network, VarKind};
use spat_models::{Architecture, Model, Precision};

/// `set_tf32` is process-wide; tests that depend on it take turns.
static TF32_SWITCH: Mutex<()> = Mutex::new(());

fn gpu() -> Device {
    Device::new_cuda(0).unwrap_or_else(|e| {
        panic!(
            "no CUDA device opens ({e}); these tests need a GPU and a build with --features cuda \
             or cudnn"
        )
    })
}

fn uniform(seed: u64, dims: &[usize], lo: f32, hi: f32) -> Tensor {
    spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(seed, 0),
        dims,
        lo,
        hi,
        &Device::Cpu,
    )
    .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest absolute difference over the largest magnitude of the CPU reference.
fn assert_close(gpu: &Tensor, cpu: &Tensor, tol: f32, what: &str) {
    let (a, b) = (values(gpu), values(cpu));
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale;
    assert!(
        err <= tol,
        "{what}: GPU vs CPU relative error {err} > {tol}"
    );
    eprintln!("{what}: {err:.2e}");
}

/// Output, input gradient and kernel gradient of single convolutions, in strict f32 (1e-4)
/// and with TF32 allowed (2e-3: 10-bit mantissas, f32 accumulation).
#[test]
#[ignore = "needs a GPU"]
fn convolutions_match_cpu() {
    let dev = gpu();
    let _guard = TF32_SWITCH.lock().unwrap();
    // (n, cin, cout, k, stride, h)
    let cases = [
        (4, 3, 16, 3, 1, 32),
        (4, 16, 32, 3, 2, 16),
        (4, 64, 64, 3, 1, 8),
        (4, 64, 128, 1, 2, 8),
        (2, 160, 320, 3, 2, 9),
    ];
    for tf32 in [false, true] {
        spat_models::set_tf32(tf32);
        let tol = if tf32 { 2e-3 } else { 1e-4 };
        for (i, &(n, cin, cout, k, stride, h)) in cases.iter().enumerate() {
            let x = uniform(i as u64, &[n, cin, h, h], -1.0, 1.0);
            let w = uniform(100 + i as u64, &[cout, cin, k, k], -0.2, 0.2);
            let run = |device: &Device| {
                let xv = Var::from_tensor(&x.to_device(device).unwrap()).unwrap();
                let wv = Var::from_tensor(&w.to_device(device).unwrap()).unwrap();
                let y = spat_kernels::ops::conv2d(xv.as_tensor(), wv.as_tensor(), stride, k / 2)
                    .unwrap();
                let up = uniform(200 + i as u64, y.dims(), -1.0, 1.0)
                    .to_device(device)
                    .unwrap();
                let g = (&y * &up).unwrap().sum_all().unwrap().backward().unwrap();
                (
                    y,
                    g.get(xv.as_tensor()).unwrap().clone(),
                    g.get(wv.as_tensor()).unwrap().clone(),
                )
            };
            let (yc, gxc, gwc) = run(&Device::Cpu);
            let (yg, gxg, gwg) = run(&dev);
            let tag = format!("conv case {i} tf32={tf32}");
            assert_close(&yg, &yc, tol, &format!("{tag} output"));
            assert_close(&gxg, &gxc, tol, &format!("{tag} input grad"));
            assert_close(&gwg, &gwc, tol, &format!("{tag} kernel grad"));
        }
    }
    spat_models::set_tf32(true);
}

fn same_models(arch: &Architecture, dev: &Device, precision: Precision) -> (Model, Model) {
    (
        Model::new(arch, &Device::Cpu, 3).unwrap(),
        Model::new(arch, dev, 3).unwrap().with_precision(precision),
    )
}

/// Logits and input gradients of whole networks in eval and train mode (TF32 on, as by default).
#[test]
#[ignore = "needs a GPU"]
fn networks_match_cpu() {
    let dev = gpu();
    let _guard = TF32_SWITCH.lock().unwrap();
    spat_models::set_tf32(true);
    for arch in [
        Architecture::preset("tiny", 10).unwrap(),
        Architecture::resnet18_width(16, 10),
        Architecture::preset("wrn-16-2", 10).unwrap(),
        // SiLU, "SAME" padding before stride-2 convolutions, 3x3 strided shortcuts.
        Architecture::preset("dm-wrn-16-2-silu", 10).unwrap(),
        Architecture::preset("preact-resnet-18-input-shortcut-final-bn", 10).unwrap(),
    ] {
        for mode in [Mode::Eval, Mode::Train] {
            let (cpu, gpu) = same_models(&arch, &dev, Precision::F32);
            let x = uniform(5, &[16, 3, 32, 32], 0.0, 1.0);
            let up = uniform(6, &[16, 10], -1.0, 1.0);
            let run = |m: &Model, device: &Device| {
                let xv = Var::from_tensor(&x.to_device(device).unwrap()).unwrap();
                let logits = m.logits_wrt_input(xv.as_tensor(), mode).unwrap();
                let loss = (&logits * up.to_device(device).unwrap()).unwrap();
                let g = loss.sum_all().unwrap().backward().unwrap();
                (logits, g.get(xv.as_tensor()).unwrap().clone())
            };
            let (lc, gc) = run(&cpu, &Device::Cpu);
            let (lg, gg) = run(&gpu, &dev);
            let tag = format!("{arch:?} {mode:?}");
            assert_close(&lg, &lc, 2e-3, &format!("{tag} logits"));
            // Batch-statistics BN amplifies rounding in the input gradient (see precision.rs).
            let tol = if mode == Mode::Eval { 2e-3 } else { 2e-2 };
            assert_close(&gg, &gc, tol, &format!("{tag} input grad"));
            for name in ["bn1.running_mean", "bn1.running_var"] {
                if let (Some(a), Some(b)) = (gpu.var_store().get(name), cpu.var_store().get(name)) {
                    assert_close(a.as_tensor(), b.as_tensor(), 2e-3, &format!("{tag} {name}"));
                }
            }
        }
    }
}

/// Every parameter gradient of a train-mode cross-entropy step, and the weights after an SGD
/// update with them, in strict f32.
#[test]
#[ignore = "needs a GPU"]
fn training_step_matches_cpu() {
    let dev = gpu();
    let _guard = TF32_SWITCH.lock().unwrap();
    spat_models::set_tf32(false);
    let arch = Architecture::resnet18_width(16, 10);
    let (cpu, gpu) = same_models(&arch, &dev, Precision::F32);
    let x = uniform(7, &[16, 3, 32, 32], 0.0, 1.0);
    let labels: Vec<u32> = (0..16).map(|i| i % 10).collect();
    let step = |m: &Model, device: &Device| {
        let logits = m
            .logits(&x.to_device(device).unwrap(), Mode::Train)
            .unwrap();
        let y = Tensor::new(labels.as_slice(), device).unwrap();
        let log_p = log_softmax(&logits);
        let loss = log_p
            .gather(&y.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .mean_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut out = Vec::new();
        for (name, var, kind) in m.var_store().iter() {
            if kind != VarKind::Parameter {
                continue;
            }
            let g = grads.get(var.as_tensor()).unwrap().clone();
            var.set(&(var.as_tensor() - (&g * 0.1).unwrap()).unwrap())
                .unwrap();
            out.push((name.to_string(), g));
        }
        out
    };
    let gc = step(&cpu, &Device::Cpu);
    let gg = step(&gpu, &dev);
    for ((name, c), (_, g)) in gc.iter().zip(&gg) {
        assert_close(g, c, 1e-3, &format!("gradient of {name}"));
    }
    for (name, var, _) in cpu.var_store().iter() {
        let other = gpu.var_store().get(name).unwrap();
        assert_close(
            other.as_tensor(),
            var.as_tensor(),
            1e-4,
            &format!("{name} after the step"),
        );
    }
    spat_models::set_tf32(true);
}

fn log_softmax(logits: &Tensor) -> Tensor {
    let max = logits.max_keepdim(1).unwrap().detach();
    let shifted = logits.broadcast_sub(&max).unwrap();
    let lse = shifted
        .exp()
        .unwrap()
        .sum_keepdim(1)
        .unwrap()
        .log()
        .unwrap();
    shifted.broadcast_sub(&lse).unwrap()
}

/// bf16 on the GPU (cuDNN/cuBLAS tensor cores) against bf16 on the CPU (bf16 operands, f32
/// accumulation): the same arithmetic up to summation order and rounding of intermediate sums.
#[test]
#[ignore = "needs a GPU"]
fn bf16_networks_match_cpu_bf16() {
    let dev = gpu();
    let arch = Architecture::resnet18_width(16, 10);
    let cpu = Model::new(&arch, &Device::Cpu, 3)
        .unwrap()
        .with_precision(Precision::Bf16);
    let gpu = Model::new(&arch, &dev, 3)
        .unwrap()
        .with_precision(Precision::Bf16);
    let x = uniform(8, &[16, 3, 32, 32], 0.0, 1.0);
    let lc = cpu.logits(&x, Mode::Eval).unwrap();
    let lg = gpu.logits(&x.to_device(&dev).unwrap(), Mode::Eval).unwrap();
    assert_eq!(lg.dtype(), DType::F32);
    assert_close(&lg, &lc, 3e-2, "bf16 ResNet-18/16 eval logits");
}
