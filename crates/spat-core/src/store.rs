//! Named variables of a network: trainable parameters and non-trainable buffers.
//!
//! Names are the PyTorch `state_dict` keys of the reference implementation, so a saved store is a
//! safetensors file that PyTorch loads with `load_state_dict(strict=True)` and vice versa.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{Device, Tensor, Var};

use crate::error::{Error, Result};

/// Whether a variable is optimised (parameter) or only carried along (buffer, e.g. BN running stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    Parameter,
    Buffer,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    var: Var,
    kind: VarKind,
}

/// Ordered collection of named [`Var`]s. Cloning a `Var` shares its storage, so a network keeps
/// clones of the vars it registered and sees every update made through the store (loading,
/// optimiser steps).
#[derive(Debug, Clone)]
pub struct VarStore {
    device: Device,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl VarStore {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn add(&mut self, name: String, init: Tensor, kind: VarKind) -> Result<Var> {
        if self.index.contains_key(&name) {
            return Err(Error::Msg(format!("variable `{name}` registered twice")));
        }
        let var = Var::from_tensor(&init.to_device(&self.device)?)?;
        self.index.insert(name.clone(), self.entries.len());
        self.entries.push(Entry {
            name,
            var: var.clone(),
            kind,
        });
        Ok(var)
    }

    /// Registers a trainable parameter initialised to `init`.
    pub fn add_parameter(&mut self, name: impl Into<String>, init: Tensor) -> Result<Var> {
        self.add(name.into(), init, VarKind::Parameter)
    }

    /// Registers a buffer (never given gradients, never weight-decayed, always saved).
    pub fn add_buffer(&mut self, name: impl Into<String>, init: Tensor) -> Result<Var> {
        self.add(name.into(), init, VarKind::Buffer)
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.entries[i].var)
    }

    pub fn kind(&self, name: &str) -> Option<VarKind> {
        self.index.get(name).map(|&i| self.entries[i].kind)
    }

    /// All variables in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var, VarKind)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), &e.var, e.kind))
    }

    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.iter()
            .filter(|(_, _, k)| *k == VarKind::Parameter)
            .map(|(n, v, _)| (n, v))
    }

    pub fn buffers(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.iter()
            .filter(|(_, _, k)| *k == VarKind::Buffer)
            .map(|(n, v, _)| (n, v))
    }

    /// Number of scalar parameters (what PyTorch's `sum(p.numel() for p in model.parameters())` gives).
    pub fn parameter_count(&self) -> usize {
        self.parameters().map(|(_, v)| v.elem_count()).sum()
    }

    /// Number of scalar buffer elements.
    pub fn buffer_count(&self) -> usize {
        self.buffers().map(|(_, v)| v.elem_count()).sum()
    }

    /// Snapshot of every variable as a plain tensor (a `state_dict`).
    pub fn state_dict(&self) -> HashMap<String, Tensor> {
        self.entries
            .iter()
            .map(|e| (e.name.clone(), e.var.as_tensor().detach()))
            .collect()
    }

    /// Writes every variable to a safetensors file, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors(&self.state_dict(), path)
    }

    /// Loads a safetensors file written by spat or converted from a PyTorch `state_dict`.
    ///
    /// Strict: every variable must be present with its exact shape and no extra tensor may be in
    /// the file; all mismatches are listed by name. Floating tensors are cast to the variable's dtype.
    pub fn load(&self, path: &Path) -> Result<()> {
        let tensors = load_tensors(path, &self.device)?;
        self.assign(tensors, path)
    }

    /// Copies `tensors` into the variables (strict, as [`VarStore::load`]); `origin` names the
    /// source in error messages.
    pub fn assign(&self, tensors: HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        let mut problems = Vec::new();
        let known: HashSet<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .collect();
        unexpected.sort();
        let missing: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| !tensors.contains_key(&e.name))
            .map(|e| e.name.as_str())
            .collect();
        for e in &self.entries {
            if let Some(t) = tensors.get(&e.name) {
                if t.dims() != e.var.dims() {
                    problems.push(format!(
                        "`{}` has shape {:?} in the file but {:?} in the network",
                        e.name,
                        t.dims(),
                        e.var.dims()
                    ));
                }
            }
        }
        if !missing.is_empty() {
            problems.push(format!("missing tensors: {}", missing.join(", ")));
        }
        if !unexpected.is_empty() {
            let names: Vec<&str> = unexpected.iter().map(|s| s.as_str()).collect();
            problems.push(format!("unexpected tensors: {}", names.join(", ")));
        }
        if !problems.is_empty() {
            return Err(Error::Checkpoint {
                path: origin.to_path_buf(),
                message: problems.join("; "),
            });
        }
        for e in &self.entries {
            let t = &tensors[&e.name];
            let t = if t.dtype() == e.var.dtype() {
                t.clone()
            } else {
                t.to_dtype(e.var.dtype())?
            };
            e.var.set(&t.to_device(&self.device)?)?;
        }
        Ok(())
    }
}

/// Atomically writes named tensors as a safetensors file.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    spat_spec::fs::write_atomic_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| Error::Checkpoint {
            path: tmp.to_path_buf(),
            message: format!("cannot write safetensors: {e}"),
        })
    })
}

/// Reads every tensor of a safetensors file, with errors that name the file.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not a readable safetensors file ({e})"),
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let t =
            candle_core::safetensors::Load::load(&view, device).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("tensor `{name}` cannot be read ({e})"),
            })?;
        out.insert(name, t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    fn store() -> VarStore {
        let mut s = VarStore::new(&Device::Cpu);
        s.add_parameter(
            "fc.weight",
            Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap();
        s.add_buffer(
            "bn.running_mean",
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap();
        s.add_buffer(
            "bn.num_batches_tracked",
            Tensor::new(0i64, &Device::Cpu).unwrap(),
        )
        .unwrap();
        s
    }

    #[test]
    fn counts_and_kinds() {
        let mut s = store();
        assert_eq!(s.parameter_count(), 6);
        assert_eq!(s.buffer_count(), 4);
        assert_eq!(s.kind("bn.running_mean"), Some(VarKind::Buffer));
        assert!(s
            .add_parameter(
                "fc.weight",
                Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap()
            )
            .is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let a = store();
        a.get("fc.weight")
            .unwrap()
            .set(
                &Tensor::arange(0f32, 6., &Device::Cpu)
                    .unwrap()
                    .reshape((2, 3))
                    .unwrap(),
            )
            .unwrap();
        a.save(&p).unwrap();
        let b = store();
        b.load(&p).unwrap();
        assert_eq!(
            b.get("fc.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            vec![0., 1., 2., 3., 4., 5.]
        );
    }

    #[test]
    fn mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let mut t = store().state_dict();
        t.remove("bn.running_mean");
        t.insert(
            "fc.weight".into(),
            Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        t.insert(
            "extra".into(),
            Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        );
        save_tensors(&t, &p).unwrap();
        let msg = store().load(&p).unwrap_err().to_string();
        assert!(msg.contains("w.safetensors"), "{msg}");
        assert!(msg.contains("`fc.weight` has shape [3, 3]"), "{msg}");
        assert!(msg.contains("missing tensors: bn.running_mean"), "{msg}");
        assert!(msg.contains("unexpected tensors: extra"), "{msg}");
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        std::fs::write(&p, b"definitely not safetensors").unwrap();
        let msg = store().load(&p).unwrap_err().to_string();
        assert!(msg.contains("bad.safetensors") && msg.contains("not a readable safetensors"));
    }
}
