//! The gradients of candle's backward pass as patched for spat (`vendor/candle-core`): first
//! gradients stored as they are, later ones added, against closed forms.

use candle_core::{Device, Tensor, Var};

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn gradients_through_shared_strided_and_broadcast_paths_match_closed_forms() {
    let d = Device::Cpu;
    let x = Var::new(&[[1f32, -2.0, 3.0], [0.5, 4.0, -1.5]], &d).unwrap();
    let c = Tensor::new(&[[2f32, -1.0], [0.25, 3.0], [1.0, -4.0]], &d).unwrap();
    let row = Tensor::new(&[[10f32, 20.0, 30.0]], &d).unwrap();
    let xt = x.as_tensor();
    // x is used four times: through a transposed (strided) view, squared, summed, and
    // broadcast-multiplied by a row, so its gradient is a sum of four first-or-later terms.
    let loss = ((xt.t().unwrap() * &c).unwrap().sum_all().unwrap()
        + xt.sqr().unwrap().sum_all().unwrap()
        + xt.sum_all().unwrap()
        + xt.broadcast_mul(&row).unwrap().sum_all().unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    let g = grads.get(xt).unwrap();
    assert_eq!(g.dims(), &[2, 3]);
    assert!(g.is_contiguous());
    let xs = values(xt);
    let ct = values(&c.t().unwrap().contiguous().unwrap());
    let rows = [10f32, 20.0, 30.0];
    let expected: Vec<f32> = (0..6)
        .map(|i| ct[i] + 2.0 * xs[i] + 1.0 + rows[i % 3])
        .collect();
    assert_eq!(values(g), expected);
}

#[test]
fn a_single_use_gradient_is_the_upstream_one() {
    let d = Device::Cpu;
    let x = Var::new(&[-0.0f32, 2.0, -3.0], &d).unwrap();
    let w = Tensor::new(&[-0.0f32, 0.5, -0.25], &d).unwrap();
    let grads = (x.as_tensor() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = values(grads.get(x.as_tensor()).unwrap());
    assert_eq!(g, vec![0.0, 0.5, -0.25]);
    // d(x·w)/dx = w exactly, sign of zero included (no `0 + g` in between).
    assert!(g[0].is_sign_negative());
}
