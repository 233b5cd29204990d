//! SGD against torch.optim.SGD (fixture from scripts/golden/sgd.py).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use spat_core::VarStore;
use spat_train::{Sgd, SgdConfig};

fn fixture() -> HashMap<String, Tensor> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sgd.safetensors");
    spat_core::store::load_tensors(&p, &Device::Cpu).unwrap()
}

fn run(case: &str, config: SgdConfig) {
    let f = fixture();
    let mut store = VarStore::new(&Device::Cpu);
    store.add_parameter("w", f["init.w"].clone()).unwrap();
    store.add_parameter("b", f["init.b"].clone()).unwrap();
    let mut opt = Sgd::new(&store, config);
    for s in 0..3 {
        // loss = sum(w * gw) + sum(b * gb): its gradients are exactly the fixture's.
        let loss = (store
            .get("w")
            .unwrap()
            .mul(&f[&format!("grad{s}.w")])
            .unwrap()
            .sum_all()
            .unwrap()
            + store
                .get("b")
                .unwrap()
                .mul(&f[&format!("grad{s}.b")])
                .unwrap()
                .sum_all()
                .unwrap())
        .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        for name in ["w", "b"] {
            let got = store
                .get(name)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let want = f[&format!("{case}.step{s}.{name}")]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{case} step {s} {name}: {got:?} vs {want:?}"
                );
            }
        }
    }
}

#[test]
fn momentum_and_weight_decay_match_pytorch() {
    run(
        "momentum",
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.01,
            decay_1d: true,
        },
    );
}

#[test]
fn nesterov_matches_pytorch() {
    run(
        "nesterov",
        SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
            weight_decay: 0.01,
            decay_1d: true,
        },
    );
}

#[test]
fn fixture_is_not_trivial() {
    // The updates must actually move the parameters, or the comparisons above prove nothing.
    let f = fixture();
    let a = f["init.w"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = f["momentum.step2.w"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() > 1e-3));
}
