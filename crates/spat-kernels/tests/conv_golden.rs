//! spat's convolution (`spat_kernels::ops::conv2d`, on the CPU its GEMM kernels) against PyTorch:
//! output, input gradient and kernel gradient of `torch.nn.functional.conv2d` for every kind of
//! layer the presets have, from `scripts/golden/conv.py` (float64 reference on float32 inputs).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};

fn fixture() -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conv.safetensors");
    spat_core::store::load_tensors(&path, &Device::Cpu).unwrap()
}

fn max_rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = b.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0f32, f32::max)
}

#[test]
fn convolution_and_both_gradients_match_pytorch() {
    let t = fixture();
    let cases = t.keys().filter(|k| k.ends_with(".geometry")).count();
    assert_eq!(cases, 7, "fixture cases");
    for i in 0..cases {
        let get = |name: &str| t[&format!("{i}.{name}")].clone();
        let geometry = get("geometry").to_vec1::<i64>().unwrap();
        let (stride, padding) = (geometry[0] as usize, geometry[1] as usize);
        let x = Var::from_tensor(&get("input")).unwrap();
        let kernel = Var::from_tensor(&get("kernel")).unwrap();
        let y =
            spat_kernels::ops::conv2d(x.as_tensor(), kernel.as_tensor(), stride, padding).unwrap();
        let grads = (&y * &get("upstream"))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (what, ours, theirs) in [
            ("output", y.clone(), get("output")),
            (
                "input grad",
                grads.get(x.as_tensor()).unwrap().clone(),
                get("input_grad"),
            ),
            (
                "kernel grad",
                grads.get(kernel.as_tensor()).unwrap().clone(),
                get("kernel_grad"),
            ),
        ] {
            let err = max_rel_err(&ours, &theirs);
            assert!(err < 1e-5, "case {i} {what}: relative error {err}");
        }
    }
}
