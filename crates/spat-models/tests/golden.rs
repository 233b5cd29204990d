//! spat-models against PyTorch: fixtures made by `scripts/golden/models.py` (reference layouts
//! re-typed in PyTorch, fixed weights with perturbed BN statistics, one fixed batch) and
//! `scripts/golden/zoo.py` (RobustBench's own DeepMind and PreAct-ResNet blocks, narrowed).

mod common;
use common::max_rel_err;
use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use spat_core::{Mode, Network, Normalization, Normalized};
use spat_models::{Architecture, Model};
use spat_spec::Activation;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> HashMap<String, Tensor> {
    spat_core::store::load_tensors(&fixture(name), &Device::Cpu).unwrap()
}

fn input_grad(model: &dyn Network, x: &Tensor, y: &Tensor, mode: Mode) -> (Tensor, Tensor) {
    let xv = Var::from_tensor(x).unwrap();
    let logits = model.logits(xv.as_tensor(), mode).unwrap();
    let loss = candle_core::Tensor::log_sum_exp(&logits, 1)
        .unwrap()
        .sub(
            &logits
                .gather(&y.unsqueeze(1).unwrap(), 1)
                .unwrap()
                .squeeze(1)
                .unwrap(),
        )
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    (logits, grads.get(xv.as_tensor()).unwrap().clone())
}

fn check(name: &str, arch: Architecture) {
    let t = load(&format!("{name}.safetensors"));
    let model = Model::new(&arch, &Device::Cpu, 0).unwrap();
    let weights: HashMap<String, Tensor> = t
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("weights.")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    model
        .var_store()
        .assign(weights, &fixture(name))
        .expect("weights load strictly");
    // A network that normalises its input inside (the DeepMind ones): spat applies it around.
    let model: Box<dyn Network> = match (t.get("normalization.mean"), t.get("normalization.std")) {
        (Some(m), Some(s)) => {
            let v = |t: &Tensor| t.to_vec1::<f32>().unwrap();
            let n = Normalization::new(v(m), v(s)).unwrap();
            Box::new(Normalized::new(model, &n, &Device::Cpu).unwrap())
        }
        _ => Box::new(model),
    };
    let x = &t["input"];
    let y = t["labels"].to_dtype(DType::U32).unwrap();
    for (mode, tag) in [
        (Mode::Eval, "eval"),
        (Mode::TrainFrozenBn, "train"),
        (Mode::Train, "train"),
    ] {
        let (logits, grad) = input_grad(&*model, x, &y, mode);
        let le = max_rel_err(&logits, &t[&format!("logits_{tag}")]);
        assert!(le < 1e-4, "{name} {tag} logits rel err {le}");
        let e = max_rel_err(&grad, &t[&format!("input_grad_{tag}")]);
        // Train-mode gradients through batch statistics can be ill-conditioned; the fixture records
        // how far PyTorch's own f32 result is from f64, and we allow ten times that (other reduction orders) when it exceeds 1e-4.
        let torch_err = t["torch_f32_rel_err_train"].to_vec1::<f32>().unwrap()[0];
        let tol = if tag == "train" {
            1e-4f32.max(10.0 * torch_err)
        } else {
            1e-4
        };
        assert!(e < tol, "{name} {tag} {mode:?} input grad rel err {e}");
        eprintln!("{name} {mode:?}: logits rel err {le:.2e}, input grad rel err {e:.2e}");
    }
    // One Train forward ran above (the Eval one must not have touched the statistics).
    for (k, v) in &t {
        if let Some(n) = k.strip_prefix("after_train.") {
            let ours = model.var_store().get(n).unwrap().as_tensor().clone();
            if n.ends_with("num_batches_tracked") {
                assert_eq!(
                    ours.to_scalar::<i64>().unwrap(),
                    v.to_scalar::<i64>().unwrap(),
                    "{n}"
                );
            } else {
                let diff = (ours - v)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "{name}: running stat {n} differs by {diff}");
            }
        }
    }
}

#[test]
fn wide_resnet_matches_pytorch() {
    check("wrn_10_2_base8", Architecture::wide_resnet(10, 2, 8, 10));
}

#[test]
fn resnet18_matches_pytorch() {
    check("resnet18_base4", Architecture::resnet18_width(4, 10));
}

#[test]
fn preact_resnet18_matches_pytorch() {
    check(
        "preact_resnet18_base4",
        Architecture::preact_resnet18_width(4, 10),
    );
}

#[test]
fn resnet50_matches_pytorch() {
    check("resnet50_base2", Architecture::resnet50_width(2, 10));
}

fn dm_wrn(depth: usize, width: usize, activation: Activation, classes: usize) -> Architecture {
    Architecture::DmWideResNet(spat_models::DmWideResNetConfig {
        depth,
        width,
        base: 8,
        activation,
        num_classes: classes,
    })
}

/// Stride-1 blocks with and without a shortcut, stride-2 blocks ("SAME" padding on the bottom and
/// right only), Swish, CIFAR-10 normalisation inside the network.
#[test]
fn dm_wide_resnet_with_swish_matches_robustbench() {
    check(
        "dm_wrn_10_2_base8_swish",
        dm_wrn(10, 2, Activation::Silu, 10),
    );
}

#[test]
fn dm_wide_resnet_with_relu_matches_robustbench() {
    check(
        "dm_wrn_10_1_base8_relu_c100",
        dm_wrn(10, 1, Activation::Relu, 100),
    );
}

/// 3×3 strided shortcuts of the padded raw input, PyTorch's `nn.SiLU`.
#[test]
fn dm_preact_resnet_with_silu_matches_robustbench() {
    check(
        "dm_preact_resnet18_base4_silu",
        Architecture::DmPreActResNet(spat_models::DmPreActResNetConfig {
            depth: 18,
            base: 4,
            activation: Activation::Silu,
            num_classes: 10,
        }),
    );
}

fn preact(block: spat_models::BlockKind, base: usize, final_bn: bool) -> Architecture {
    Architecture::ResNet(spat_models::ResNetConfig {
        block,
        layers: [2, 2, 2, 2],
        base,
        num_classes: 10,
        final_bn,
    })
}

/// Wong et al. 2020 / Andriushchenko et al. 2020 (RobustBench's `PreActBlock`).
#[test]
fn preact_resnet18_with_input_shortcut_matches_robustbench() {
    use spat_models::BlockKind::PreActInputShortcut;
    check(
        "preact_resnet18_base4_input_shortcut",
        preact(PreActInputShortcut, 4, false),
    );
    check(
        "preact_resnet18_base2_input_shortcut_final_bn",
        preact(PreActInputShortcut, 2, true),
    );
}

/// Rice et al. 2020 (RobustBench's `PreActBlockV2` with `bn_before_fc`).
#[test]
fn preact_resnet18_with_final_bn_matches_robustbench() {
    check(
        "preact_resnet18_base4_final_bn",
        preact(spat_models::BlockKind::PreAct, 4, true),
    );
}

#[derive(serde::Deserialize)]
struct Reference {
    shapes: HashMap<String, HashMap<String, Vec<usize>>>,
    parameters: HashMap<String, usize>,
    macs: HashMap<String, u64>,
}

fn reference() -> Reference {
    serde_json::from_str(&std::fs::read_to_string(fixture("state_dict_shapes.json")).unwrap())
        .unwrap()
}

/// Figures printed by `scripts/golden/models.py` (PyTorch 2.x): parameters and multiply-accumulates
/// of one 3x32x32 forward, the latter measured with forward hooks on every conv and linear layer.
const PRINTED: [(&str, usize, u64); 7] = [
    ("wrn-34-10", 46_160_474, 6_658_906_368),
    ("wrn-28-10", 36_479_194, 5_243_328_768),
    ("wrn-16-2", 691_674, 101_106_944),
    ("resnet-18", 11_173_962, 555_422_720),
    ("resnet-50", 23_520_842, 1_297_829_888),
    ("preact-resnet-18", 11_171_146, 555_422_720),
    ("tiny", 19_858, 3_236_160),
];

/// Every preset: each `state_dict` key and shape equals PyTorch's (so `load_state_dict(strict=True)`
/// accepts spat's files), and parameter counts and FLOPs equal what PyTorch printed.
#[test]
fn presets_have_pytorch_names_shapes_counts_and_flops() {
    let r = reference();
    assert_eq!(PRINTED.len(), spat_models::PRESETS.len());
    for (preset, params, macs) in PRINTED {
        assert_eq!(r.parameters[preset], params, "fixture vs printed figure");
        assert_eq!(r.macs[preset], macs, "fixture vs printed figure");
        let info = spat_models::model_info(preset, 10).unwrap();
        assert_eq!(info.parameters, params, "{preset} parameter count");
        assert_eq!(info.flops, 2 * macs, "{preset} flops");
        let ours: HashMap<String, Vec<usize>> = Architecture::preset(preset, 10)
            .unwrap()
            .variables()
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.shape))
            .collect();
        assert_eq!(&ours, &r.shapes[preset], "{preset} state_dict names/shapes");
    }
}

/// The dry count (no weights drawn) describes exactly the network that is built: same names,
/// shapes, kinds and order, same counts and MACs.
#[test]
fn dry_layout_and_counts_equal_the_built_model() {
    let archs = [
        Architecture::preset("tiny", 10).unwrap(),
        Architecture::preset("wrn-16-2", 100).unwrap(),
        Architecture::preset("resnet-18", 10).unwrap(),
        Architecture::resnet50_width(8, 7),
        Architecture::preact_resnet18_width(8, 10),
    ];
    for arch in archs {
        let model = Model::new(&arch, &Device::Cpu, 0).unwrap();
        let store = model.var_store();
        let built: Vec<(String, Vec<usize>, spat_core::VarKind)> = store
            .iter()
            .map(|(n, v, k)| (n.to_string(), v.dims().to_vec(), k))
            .collect();
        let dry: Vec<(String, Vec<usize>, spat_core::VarKind)> = arch
            .variables()
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.shape, d.kind))
            .collect();
        assert_eq!(built, dry, "{arch:?}");
        let info = arch.info().unwrap();
        assert_eq!(info.parameters, store.parameter_count(), "{arch:?}");
        assert_eq!(info.buffers, store.buffer_count(), "{arch:?}");
        assert_eq!(info.flops, 2 * model.macs(32, 32), "{arch:?}");
    }
}
