use candle_core::{DType, Device, Tensor};
use spat_core::{Classifier, Mode, Network, VarKind};
use spat_models::{build, model_info, Architecture, Model, PRESETS};

fn batch(n: usize, hw: usize) -> Tensor {
    spat_core::rng::uniform(
        &mut spat_core::rng::host_rng(9, 0),
        (n, 3, hw, hw),
        0.0,
        1.0,
        &Device::Cpu,
    )
    .unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn small_presets_forward_on_cifar_and_stl_sizes() {
    for preset in ["tiny", "wrn-16-2"] {
        let m = build(preset, 10, &Device::Cpu, 0).unwrap();
        assert_eq!(m.logits(&batch(2, 32), Mode::Eval).unwrap().dims(), [2, 10]);
        assert_eq!(m.logits(&batch(2, 96), Mode::Eval).unwrap().dims(), [2, 10]);
    }
}

#[test]
fn tiny_is_small() {
    let info = model_info("tiny", 10).unwrap();
    assert!((2_000..=100_000).contains(&info.parameters), "{info:?}");
}

/// spat-spec's table of preset sizes (what xtask plans with, never linking this crate) is what the
/// construction code counts; a model built with weights has the parameters the dry count says.
#[test]
fn size_table_matches_the_construction_code() {
    for &(preset, size) in spat_spec::MODEL_SIZES {
        assert_eq!(model_info(preset, 10).unwrap(), size, "{preset}");
    }
    let built = build("wrn-16-2", 10, &Device::Cpu, 0).unwrap();
    let size = spat_spec::model_size("wrn-16-2").unwrap();
    assert_eq!(built.var_store().parameter_count(), size.parameters);
    assert_eq!(built.var_store().buffer_count(), size.buffers);
}

/// `tiny` is WRN-10-1 with stem width 8 (widths 8, 8, 16, 32; one block per group). Its
/// multiply-accumulates for a 32x32 image, layer by layer (c_in · c_out · k² · output pixels):
#[test]
fn flops_of_tiny_are_counted_by_hand() {
    let stem = 3 * 8 * 9 * 32 * 32;
    let group1 = 2 * (8 * 8 * 9 * 32 * 32);
    let group2 = 8 * 16 * 9 * 16 * 16 + 16 * 16 * 9 * 16 * 16 + 8 * 16 * 16 * 16;
    let group3 = 16 * 32 * 9 * 8 * 8 + 32 * 32 * 9 * 8 * 8 + 16 * 32 * 8 * 8;
    let fc = 32 * 10;
    let macs: u64 = stem + group1 + group2 + group3 + fc;
    assert_eq!(model_info("tiny", 10).unwrap().flops, 2 * macs);
    let tiny = Model::new(&Architecture::preset("tiny", 10).unwrap(), &Device::Cpu, 0).unwrap();
    // On a 96x96 (STL-10) image every conv does 9x the work; the linear layer does not.
    assert_eq!(tiny.macs(96, 96), 9 * (macs - fc) + fc);
}

#[test]
fn unknown_model_lists_the_grammar() {
    let msg = build("vgg-16", 10, &Device::Cpu, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("vgg-16") && msg.contains(spat_spec::MODEL_FORMS),
        "{msg}"
    );
    for preset in PRESETS {
        assert!(model_info(preset, 10).is_ok(), "{preset}");
    }
}

#[test]
fn impossible_sizes_are_config_errors() {
    let bad = [
        Architecture::preset("tiny", 0).unwrap(),
        Architecture::wide_resnet(12, 1, 16, 10),
        Architecture::wide_resnet(16, 0, 16, 10),
        Architecture::resnet18_width(0, 10),
        Architecture::DmWideResNet(spat_models::DmWideResNetConfig {
            depth: 28,
            width: 0,
            base: 16,
            activation: spat_spec::Activation::Silu,
            num_classes: 10,
        }),
    ];
    for arch in bad {
        let msg = Model::new(&arch, &Device::Cpu, 0).unwrap_err().to_string();
        assert!(msg.contains("must") || msg.contains("6n+4"), "{msg}");
        assert!(arch.info().is_err());
    }
    assert!(model_info("tiny", 0).is_err());
    // Beyond spat_spec::limits::CLASSES (2^64 - 1 classes once wrapped to 19,495 parameters).
    for classes in [100_001, usize::MAX] {
        let msg = model_info("tiny", classes).unwrap_err().to_string();
        assert!(msg.contains("above the limit"), "{msg}");
    }
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    for preset in ["tiny", "preact-resnet-18"] {
        let a = build(preset, 10, &Device::Cpu, 5).unwrap();
        let b = build(preset, 10, &Device::Cpu, 5).unwrap();
        let c = build(preset, 10, &Device::Cpu, 6).unwrap();
        let all = |m: &dyn Network| -> Vec<(String, Vec<f32>)> {
            m.var_store()
                .iter()
                .filter(|(_, v, _)| v.dtype() == DType::F32)
                .map(|(n, v, _)| (n.to_string(), values(v.as_tensor())))
                .collect()
        };
        assert_eq!(all(a.as_ref()), all(b.as_ref()), "{preset}: same seed");
        // Every randomly initialised tensor (convolutions, linear layers) differs with the seed.
        for ((name, x), (_, y)) in all(a.as_ref()).iter().zip(all(c.as_ref())) {
            if name.contains("conv")
                || name.contains("shortcut.0")
                || name.starts_with("linear")
                || name == "fc.weight"
            {
                assert_ne!(x, &y, "{preset}: {name} ignores the seed");
            }
        }
    }
}

/// ResNet layers follow PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and
/// linear weights and the linear bias.
#[test]
fn resnet_init_follows_pytorch_defaults() {
    let m = build("resnet-18", 10, &Device::Cpu, 2).unwrap();
    let s = m.var_store();
    for (name, fan_in) in [
        ("conv1.weight", 27usize),
        ("layer3.0.conv2.weight", 256 * 9),
        ("layer2.0.shortcut.0.weight", 64),
        ("linear.weight", 512),
        ("linear.bias", 512),
    ] {
        let v = values(s.get(name).unwrap().as_tensor());
        let bound = 1.0 / (fan_in as f32).sqrt();
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound && max > 0.0,
            "{name}: max |w| {max}, bound {bound}"
        );
        if v.len() > 1000 {
            // Uniform on [-b, b]: fills the interval and has standard deviation b / sqrt(3).
            assert!(max > 0.99 * bound, "{name}: max |w| {max}, bound {bound}");
            let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
            assert!(
                (std * 3f32.sqrt() / bound - 1.0).abs() < 0.03,
                "{name}: std {std}"
            );
        }
    }
}

#[test]
fn wrn_init_follows_reference() {
    let m = build("wrn-16-2", 10, &Device::Cpu, 1).unwrap();
    let s = m.var_store();
    // Kaiming normal, fan-out: std = sqrt(2 / (3·3·128)) for the 128→128 3×3 conv of the last group.
    let w = values(s.get("block3.layer.0.conv2.weight").unwrap().as_tensor());
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    let expected = (2.0f32 / (9.0 * 128.0)).sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.03,
        "std {std} vs {expected}"
    );
    assert!(values(s.get("fc.bias").unwrap().as_tensor())
        .iter()
        .all(|&v| v == 0.0));
    assert!(values(s.get("bn1.weight").unwrap().as_tensor())
        .iter()
        .all(|&v| v == 1.0));
    assert_eq!(s.kind("bn1.running_var"), Some(VarKind::Buffer));
    assert_eq!(s.kind("bn1.weight"), Some(VarKind::Parameter));
}

#[test]
fn only_train_mode_moves_running_statistics() {
    let m = build("tiny", 10, &Device::Cpu, 0).unwrap();
    let stat = |m: &dyn Network| values(m.var_store().get("bn1.running_mean").unwrap().as_tensor());
    let x = batch(8, 32);
    let before = stat(m.as_ref());
    m.logits(&x, Mode::Eval).unwrap();
    m.logits(&x, Mode::TrainFrozenBn).unwrap();
    assert_eq!(stat(m.as_ref()), before);
    m.logits(&x, Mode::Train).unwrap();
    assert_ne!(stat(m.as_ref()), before);
    let tracked = m
        .var_store()
        .get("bn1.num_batches_tracked")
        .unwrap()
        .as_tensor()
        .to_scalar::<i64>()
        .unwrap();
    assert_eq!(tracked, 1);
}

#[test]
fn frozen_bn_uses_batch_statistics() {
    let m = build("tiny", 10, &Device::Cpu, 0).unwrap();
    let x = batch(8, 32);
    let frozen = values(&m.logits(&x, Mode::TrainFrozenBn).unwrap());
    let eval = values(&m.logits(&x, Mode::Eval).unwrap());
    let train = values(&m.logits(&x, Mode::Train).unwrap());
    assert_eq!(frozen, train, "TrainFrozenBn normalises exactly like Train");
    assert_ne!(frozen, eval);
}

#[test]
fn save_load_round_trip_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.safetensors");
    let a = build("tiny", 10, &Device::Cpu, 1).unwrap();
    a.logits(&batch(8, 32), Mode::Train).unwrap(); // non-default running stats
    a.var_store().save(&path).unwrap();
    let b = build("tiny", 10, &Device::Cpu, 2).unwrap();
    spat_models::load_weights(b.as_ref(), &path).unwrap();
    let x = batch(3, 32);
    assert_eq!(
        values(&a.logits(&x, Mode::Eval).unwrap()),
        values(&b.logits(&x, Mode::Eval).unwrap())
    );

    let mut sd = a.var_store().state_dict();
    let w = sd.remove("fc.weight").unwrap();
    sd.insert("fc.weights".into(), w);
    sd.insert(
        "bn1.running_mean".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let bad = dir.path().join("bad.safetensors");
    spat_core::store::save_tensors(&sd, &bad).unwrap();
    let msg = spat_models::load_weights(b.as_ref(), &bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bad.safetensors"), "{msg}");
    assert!(
        msg.contains("1 missing, 1 unexpected, 1 mis-shaped tensors"),
        "{msg}"
    );
    assert!(msg.contains("missing fc.weight"), "{msg}");
    assert!(msg.contains("unexpected fc.weights"), "{msg}");
    assert!(
        msg.contains("bn1.running_mean [3] in the file vs [32]"),
        "{msg}"
    );
    assert!(msg.contains("no architecture's layout fits"), "{msg}");
}
