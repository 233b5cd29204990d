//! In `Mode::Eval` an attack's input gradients are computed on parts of the batch side by side
//! (`attack::input_gradient`). That is only sound if an image's logits and gradient do not
//! depend on the other images of its pass, bit for bit: these tests check it on spat's own
//! networks (whose CPU convolutions group small images into shared matrix products, and
//! Winograd's path chunks of images) and check that attacks give the same bits on one thread
//! and on several.

use candle_core::{Device, Tensor};
use spat_attacks::attack::whole_batch_gradient;
use spat_attacks::{Attack, AttackLoss, Pgd};
use spat_core::{Classifier, Mode};
use spat_models::{Architecture, Model};

fn images(n: usize, seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n * 3 * 32 * 32)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_vec(v, (n, 3, 32, 32), &Device::Cpu).unwrap()
}

fn labels(n: usize) -> Tensor {
    let v: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 10).collect();
    Tensor::from_vec(v, n, &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn models() -> Vec<(&'static str, Model)> {
    let d = Device::Cpu;
    vec![
        (
            "tiny",
            Model::new(&Architecture::preset("tiny", 10).unwrap(), &d, 3).unwrap(),
        ),
        (
            "resnet-18 width 8",
            Model::new(&Architecture::resnet18_width(8, 10), &d, 4).unwrap(),
        ),
        // 64 channels at 8×8: its 3×3 layers take Winograd's path, whose chunks of images
        // differ between the whole batch and its parts.
        (
            "resnet-18 width 16",
            Model::new(&Architecture::resnet18_width(16, 10), &d, 5).unwrap(),
        ),
    ]
}

#[test]
fn an_images_gradient_does_not_depend_on_the_rest_of_its_batch() {
    let (n, cut) = (40, 32);
    let x = images(n, 1);
    let y = labels(n);
    for (name, model) in models() {
        let clean =
            spat_attacks::losses::softmax(&model.logits(&images(n, 2), Mode::Eval).unwrap())
                .unwrap();
        for loss in [
            AttackLoss::CrossEntropy,
            AttackLoss::LabelSmoothed { alpha: 0.4 },
            AttackLoss::Kl,
            AttackLoss::CwMargin { kappa: 50.0 },
        ] {
            let (g, logits) =
                whole_batch_gradient(&model, &x, &y, &loss, Some(&clean), Mode::Eval).unwrap();
            let mut part_g = Vec::new();
            let mut part_logits = Vec::new();
            for (start, len) in [(0, cut), (cut, n - cut)] {
                let part = |t: &Tensor| t.narrow(0, start, len).unwrap();
                let (g, l) = whole_batch_gradient(
                    &model,
                    &part(&x),
                    &part(&y),
                    &loss,
                    Some(&part(&clean)),
                    Mode::Eval,
                )
                .unwrap();
                part_g.push(g);
                part_logits.push(l);
            }
            let parts_g = Tensor::cat(&part_g, 0).unwrap();
            let parts_logits = Tensor::cat(&part_logits, 0).unwrap();
            assert_eq!(bits(&g), bits(&parts_g), "{name}, {loss:?}: gradients");
            assert_eq!(
                bits(&logits),
                bits(&parts_logits),
                "{name}, {loss:?}: logits"
            );
            // Not vacuous: the gradient is not zero.
            assert!(
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0
            );
        }
    }
}

#[test]
fn pgd_gives_the_same_bits_on_one_thread_and_on_three() {
    let n = 48;
    let x = images(n, 5);
    let y = labels(n);
    for (name, model) in models() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut rng = spat_core::rng::host_rng(9, spat_core::rng::streams::ATTACK);
                let pgd = Pgd {
                    steps: 3,
                    ..Pgd::pgd20(8.0 / 255.0)
                };
                pgd.perturb(&model, &x, &y, &mut rng).unwrap()
            })
        };
        let one = run(1);
        let three = run(3);
        assert_eq!(bits(&one), bits(&three), "{name}");
        assert_ne!(bits(&one), bits(&x), "{name}: the attack moved nothing");
    }
}
