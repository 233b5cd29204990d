//! Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics.
//!
//! For each parameter `p` with gradient `g` (parameters without a gradient are skipped, as in
//! PyTorch):
//!
//! ```text
//! d = g + wd * p                      (coupled weight decay)
//! buf = d                             (first step)
//! buf = momentum * buf + (1 - dampening) * d   (later steps)
//! d = d + momentum * buf  if nesterov, else d = buf
//! p = p - lr * d
//! ```
//!
//! Only the store's parameters are optimised, never its buffers (BN running statistics).

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use spat_core::VarStore;

use crate::error::{Error, Result};

/// Hyper-parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Whether one-dimensional parameters (BN scales/shifts, biases) are weight-decayed too.
    /// `true` is what every reference (TRADES, MART, RST) does: `SGD(model.parameters(), ...)`.
    pub decay_1d: bool,
}

impl SgdConfig {
    /// Momentum 0.9, no dampening, no Nesterov, weight decay on every parameter.
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        Self {
            lr,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay,
            decay_1d: true,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    decay: f64,
    buf: Option<Tensor>,
}

/// SGD over the parameters of a [`VarStore`], with momentum buffers that can be saved and restored.
pub struct Sgd {
    config: SgdConfig,
    slots: Vec<Slot>,
}

impl Sgd {
    pub fn new(store: &VarStore, config: SgdConfig) -> Self {
        let slots = store
            .parameters()
            .map(|(name, var)| {
                let decay = if config.decay_1d || var.rank() > 1 {
                    config.weight_decay
                } else {
                    0.0
                };
                Slot {
                    name: name.to_string(),
                    var: var.clone(),
                    decay,
                    buf: None,
                }
            })
            .collect();
        Self { config, slots }
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// One update from the gradients of a `loss.backward()`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let c = self.config;
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let p = slot.var.as_tensor().detach();
            let mut d = grad.detach();
            if slot.decay != 0.0 {
                d = (d + (&p * slot.decay)?)?;
            }
            if c.momentum != 0.0 {
                let buf = match slot.buf.take() {
                    None => d.clone(),
                    Some(b) => ((b * c.momentum)? + (&d * (1.0 - c.dampening))?)?,
                };
                d = if c.nesterov {
                    (d + (&buf * c.momentum)?)?
                } else {
                    buf.clone()
                };
                slot.buf = Some(buf);
            }
            slot.var.set(&(p - (d * c.lr)?)?)?;
        }
        Ok(())
    }

    /// Momentum buffers by parameter name (parameters that have not been stepped yet are absent).
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .filter_map(|s| s.buf.as_ref().map(|b| (s.name.clone(), b.clone())))
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`]; `origin` names the file in errors.
    pub fn load_state(&mut self, mut state: HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        let bad = |message: String| Error::Checkpoint {
            path: origin.to_path_buf(),
            message,
        };
        for slot in &mut self.slots {
            slot.buf = match state.remove(&slot.name) {
                None => None,
                Some(t) => {
                    if t.dims() != slot.var.dims() || t.dtype() != slot.var.dtype() {
                        return Err(bad(format!(
                            "momentum buffer `{}` is {:?} {:?}, the parameter is {:?} {:?}",
                            slot.name,
                            t.dtype(),
                            t.dims(),
                            slot.var.dtype(),
                            slot.var.dims()
                        )));
                    }
                    Some(t.to_device(slot.var.device())?)
                }
            };
        }
        if !state.is_empty() {
            let mut names: Vec<String> = state.into_keys().collect();
            names.sort();
            return Err(bad(format!(
                "momentum buffers for unknown parameters: {}",
                names.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn store() -> VarStore {
        let d = Device::Cpu;
        let mut s = VarStore::new(&d);
        s.add_parameter("w", Tensor::new(&[[1.0f32, -2.0]], &d).unwrap())
            .unwrap();
        s.add_parameter("b", Tensor::new(&[0.5f32], &d).unwrap())
            .unwrap();
        s.add_buffer("running_mean", Tensor::new(&[3.0f32], &d).unwrap())
            .unwrap();
        s
    }

    /// loss = sum(w * c) + b * cb, so the gradients are the constants.
    fn grads(s: &VarStore, c: [f32; 2], cb: f32) -> GradStore {
        let d = Device::Cpu;
        let w = s.get("w").unwrap().as_tensor();
        let b = s.get("b").unwrap().as_tensor();
        let rm = s.get("running_mean").unwrap().as_tensor();
        let loss = ((w
            .mul(&Tensor::new(&[c], &d).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            + (b * cb as f64).unwrap().sum_all().unwrap())
        .unwrap()
            + rm.sum_all().unwrap())
        .unwrap();
        loss.backward().unwrap()
    }

    fn get(s: &VarStore, n: &str) -> Vec<f32> {
        s.get(n)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn two_steps_match_hand_computation_and_leave_buffers_alone() {
        let s = store();
        let mut opt = Sgd::new(&s, SgdConfig::new(0.1, 0.01));
        // Step 1: d = g + 0.01 p; w: g = (1, 1) -> d = (1.01, 0.98); buf = d; w = w - 0.1 d
        opt.step(&grads(&s, [1.0, 1.0], 2.0)).unwrap();
        let w1 = get(&s, "w");
        assert!(
            (w1[0] - 0.899).abs() < 1e-6 && (w1[1] - -2.098).abs() < 1e-6,
            "{w1:?}"
        );
        // b: g = 2, d = 2.005, b = 0.5 - 0.2005 = 0.2995
        assert!((get(&s, "b")[0] - 0.2995).abs() < 1e-6);
        // Step 2 (g = 1 again): d = 1 + 0.00899 = 1.00899; buf = 0.9 * 1.01 + 1.00899 = 1.91799
        // w0 = 0.899 - 0.191799 = 0.707201
        opt.step(&grads(&s, [1.0, 1.0], 2.0)).unwrap();
        assert!((get(&s, "w")[0] - 0.707_201).abs() < 1e-6);
        assert_eq!(get(&s, "running_mean"), vec![3.0]);
        assert_eq!(opt.state().len(), 2);
    }

    #[test]
    fn nesterov_and_excluded_1d_decay() {
        let s = store();
        let mut cfg = SgdConfig::new(0.1, 0.5);
        cfg.nesterov = true;
        cfg.decay_1d = false;
        let mut opt = Sgd::new(&s, cfg);
        opt.step(&grads(&s, [0.0, 0.0], 1.0)).unwrap();
        // b (1-D) not decayed: d = 1, buf = 1, nesterov d = 1 + 0.9 = 1.9, b = 0.5 - 0.19
        assert!((get(&s, "b")[0] - 0.31).abs() < 1e-6);
        // w decayed: d = 0.5 * (1, -2) = (0.5, -1); nesterov d = 1.9 d; w = w - 0.19 d
        let w = get(&s, "w");
        assert!(
            (w[0] - 0.905).abs() < 1e-6 && (w[1] - -1.81).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn state_round_trip_and_mismatch_is_named() {
        let s = store();
        let mut opt = Sgd::new(&s, SgdConfig::new(0.1, 0.0));
        opt.step(&grads(&s, [1.0, 2.0], 3.0)).unwrap();
        let st = opt.state();
        let mut fresh = Sgd::new(&s, SgdConfig::new(0.1, 0.0));
        fresh
            .load_state(st.clone(), Path::new("opt.safetensors"))
            .unwrap();
        assert_eq!(fresh.state().len(), 2);
        let mut bad = st;
        bad.insert(
            "w".into(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        );
        let msg = fresh
            .load_state(bad, Path::new("opt.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("opt.safetensors") && msg.contains("`w`"),
            "{msg}"
        );
    }
}
