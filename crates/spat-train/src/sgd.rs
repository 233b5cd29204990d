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
    /// Learning rate (PyTorch's `lr`), > 0; a schedule changes it per epoch with [`Sgd::set_lr`].
    pub lr: f64,
    /// Momentum factor in `[0, 1)`; 0 is plain SGD.
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer, in `[0, 1]` (PyTorch's `dampening`).
    pub dampening: f64,
    /// Nesterov momentum (as PyTorch: needs momentum > 0 and dampening 0).
    pub nesterov: bool,
    /// L2 penalty coefficient added to each gradient (`grad + weight_decay * w`), ≥ 0.
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
    /// An optimiser over every parameter of `store` (buffers are never updated), with empty
    /// momentum buffers; one-dimensional parameters are decayed only if `config.decay_1d`.
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

    /// The hyper-parameters in effect (with the current learning rate).
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate of the following steps (a schedule calls it once per epoch).
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
            let p = slot.var.as_tensor();
            if let Some(buf) = &slot.buf {
                if fused::applies(&[p, grad, buf]) {
                    fused::step(&c, slot.decay, p, grad, buf)?;
                    continue;
                }
            } else if c.momentum == 0.0 && fused::applies(&[p, grad]) {
                fused::step_without_momentum(&c, slot.decay, p, grad)?;
                continue;
            }
            let (p, buf) = tensor_update(&c, slot.decay, p, grad, slot.buf.take())?;
            slot.var.set(&p)?;
            slot.buf = buf;
        }
        Ok(())
    }

    /// Momentum buffers by parameter name (parameters that have not been stepped yet are absent).
    /// Copies, so that later steps (which update the buffers in place) do not change them.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        self.slots
            .iter()
            .filter_map(|s| s.buf.as_ref().map(|b| Ok((s.name.clone(), b.copy()?))))
            .collect::<candle_core::Result<_>>()
            .map_err(Error::from)
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
                    // A copy of its own: the fused step updates it in place.
                    Some(t.to_device(slot.var.device())?.copy()?)
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

/// The update with tensor operations, for any device and dtype: the new parameter and the new
/// momentum buffer (`None` without momentum) from `p`, its gradient `g` and the buffer `buf`
/// of the previous step (`None` on the first).
fn tensor_update(
    c: &SgdConfig,
    decay: f64,
    p: &Tensor,
    g: &Tensor,
    buf: Option<Tensor>,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let p = p.detach();
    let mut d = g.detach();
    if decay != 0.0 {
        d = (d + (&p * decay)?)?;
    }
    let mut new_buf = None;
    if c.momentum != 0.0 {
        let b = match buf {
            None => d.clone(),
            Some(b) => ((b * c.momentum)? + (&d * (1.0 - c.dampening))?)?,
        };
        d = if c.nesterov {
            (d + (&b * c.momentum)?)?
        } else {
            b.clone()
        };
        new_buf = Some(b);
    }
    Ok(((p - (d * c.lr)?)?, new_buf))
}

/// The update as two in-place passes over each CPU `f32` parameter (momentum buffer, then
/// parameter) instead of about ten tensor operations, each a pass of its own with a fresh
/// tensor. Every element goes through the same `f32` operations in the same order as the
/// tensor path (candle's `x * s` is `x * s + 0`), so the two give the same bits.
mod fused {
    use candle_core::{CpuStorage, DType, InplaceOp3, Layout, Result, Tensor};
    use rayon::prelude::*;

    use super::SgdConfig;

    /// Elements per parallel task: smaller parameters are updated on the calling thread.
    pub const CHUNK: usize = 1 << 15;

    pub fn applies(tensors: &[&Tensor]) -> bool {
        tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
    }

    /// `x * s` as candle computes it.
    #[inline(always)]
    fn scaled(x: f32, s: f32) -> f32 {
        x * s + 0.0
    }

    #[derive(Clone, Copy)]
    struct Update {
        lr: f32,
        decay: Option<f32>,
        momentum: f32,
        keep: f32,
        nesterov: bool,
    }

    impl Update {
        fn new(c: &SgdConfig, decay: f64) -> Self {
            Self {
                lr: c.lr as f32,
                decay: (decay != 0.0).then_some(decay as f32),
                momentum: c.momentum as f32,
                keep: (1.0 - c.dampening) as f32,
                nesterov: c.nesterov,
            }
        }

        #[inline(always)]
        fn direction(&self, g: f32, p: f32) -> f32 {
            match self.decay {
                Some(wd) => g + scaled(p, wd),
                None => g,
            }
        }
    }

    fn slices<'a>(what: &str, s: &'a CpuStorage, l: &Layout, len: usize) -> Result<&'a [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) if b - a == len => Ok(&v[a..b]),
            _ => candle_core::bail!("sgd: {what} is not a contiguous f32 tensor of {len} elements"),
        }
    }

    fn dst_slice<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
            _ => candle_core::bail!("sgd: the updated tensor is not a contiguous f32 tensor"),
        }
    }

    /// `buf ← momentum·buf + (1 − dampening)·d`, with `d = g + wd·p`.
    struct Momentum(Update);

    impl InplaceOp3 for Momentum {
        fn name(&self) -> &'static str {
            "sgd-momentum"
        }

        fn cpu_fwd(
            &self,
            dst: &mut CpuStorage,
            dst_l: &Layout,
            gs: &CpuStorage,
            gl: &Layout,
            ps: &CpuStorage,
            pl: &Layout,
        ) -> Result<()> {
            let u = self.0;
            let buf = dst_slice(dst, dst_l)?;
            let g = slices("gradient", gs, gl, buf.len())?;
            let p = slices("parameter", ps, pl, buf.len())?;
            buf.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(p.par_chunks(CHUNK))
                .for_each(|((b, g), p)| {
                    for ((b, &g), &p) in b.iter_mut().zip(g).zip(p) {
                        *b = scaled(*b, u.momentum) + scaled(u.direction(g, p), u.keep);
                    }
                });
            Ok(())
        }
    }

    /// `p ← p − lr·step`, with `step = buf`, `d + momentum·buf` (Nesterov) or `d` (no
    /// momentum; `buf` is then the gradient itself).
    struct Parameter {
        update: Update,
        with_momentum: bool,
    }

    impl InplaceOp3 for Parameter {
        fn name(&self) -> &'static str {
            "sgd-parameter"
        }

        fn cpu_fwd(
            &self,
            dst: &mut CpuStorage,
            dst_l: &Layout,
            gs: &CpuStorage,
            gl: &Layout,
            bs: &CpuStorage,
            bl: &Layout,
        ) -> Result<()> {
            let (u, with_momentum) = (self.update, self.with_momentum);
            let p = dst_slice(dst, dst_l)?;
            let g = slices("gradient", gs, gl, p.len())?;
            let buf = slices("momentum buffer", bs, bl, p.len())?;
            p.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(buf.par_chunks(CHUNK))
                .for_each(|((p, g), buf)| {
                    for ((p, &g), &b) in p.iter_mut().zip(g).zip(buf) {
                        let step = match (with_momentum, u.nesterov) {
                            (false, _) => u.direction(g, *p),
                            (true, false) => b,
                            (true, true) => u.direction(g, *p) + scaled(b, u.momentum),
                        };
                        *p -= scaled(step, u.lr);
                    }
                });
            Ok(())
        }
    }

    pub fn step(c: &SgdConfig, decay: f64, p: &Tensor, g: &Tensor, buf: &Tensor) -> Result<()> {
        let update = Update::new(c, decay);
        buf.inplace_op3(g, p, &Momentum(update))?;
        p.inplace_op3(
            g,
            buf,
            &Parameter {
                update,
                with_momentum: true,
            },
        )
    }

    pub fn step_without_momentum(c: &SgdConfig, decay: f64, p: &Tensor, g: &Tensor) -> Result<()> {
        p.inplace_op3(
            g,
            g,
            &Parameter {
                update: Update::new(c, decay),
                with_momentum: false,
            },
        )
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
        assert_eq!(opt.state().unwrap().len(), 2);
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
        let st = opt.state().unwrap();
        let mut fresh = Sgd::new(&s, SgdConfig::new(0.1, 0.0));
        fresh
            .load_state(st.clone(), Path::new("opt.safetensors"))
            .unwrap();
        assert_eq!(fresh.state().unwrap().len(), 2);
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

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// The fused in-place update gives the bits of the tensor path (`tensor_update`), over
    /// several steps, for every combination of decay, dampening, Nesterov and momentum
    /// (including signed zeros and a parameter large enough to be split into parallel chunks).
    #[test]
    fn fused_update_is_bit_identical_to_the_tensor_path() {
        let d = Device::Cpu;
        let n = 3 * fused::CHUNK + 17;
        let wave = |seed: f32| -> Vec<f32> {
            (0..n)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => ((i as f32 * 0.7311 + seed).sin() * 3.7).powi(3),
                })
                .collect()
        };
        let configs = [
            (0.1, 0.9, 0.0, false, 5e-4),
            (0.05, 0.9, 0.1, true, 2e-4),
            (0.3, 0.5, 0.0, true, 0.0),
            (0.01, 0.0, 0.0, false, 1e-3),
            (0.02, 0.0, 0.0, false, 0.0),
        ];
        for (lr, momentum, dampening, nesterov, wd) in configs {
            let cfg = SgdConfig {
                lr,
                momentum,
                dampening,
                nesterov,
                weight_decay: wd,
                decay_1d: true,
            };
            let mut store = VarStore::new(&d);
            store
                .add_parameter("w", Tensor::from_vec(wave(0.0), n, &d).unwrap())
                .unwrap();
            let mut opt = Sgd::new(&store, cfg);
            let var = store.get("w").unwrap().clone();
            let (mut p_ref, mut buf_ref) = (var.as_tensor().copy().unwrap(), None);
            for step in 0..4 {
                let g = Tensor::from_vec(wave(step as f32 + 1.0), n, &d).unwrap();
                let loss = (var.as_tensor() * &g).unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
                (p_ref, buf_ref) = tensor_update(&cfg, wd, &p_ref, &g, buf_ref).unwrap();
                assert_eq!(bits(var.as_tensor()), bits(&p_ref), "{cfg:?}, step {step}");
                if let Some(b) = &buf_ref {
                    assert_eq!(
                        bits(&opt.state().unwrap()["w"]),
                        bits(b),
                        "{cfg:?}, step {step}"
                    );
                }
            }
        }
    }
}
