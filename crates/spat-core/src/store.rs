//! Named variables of a network: trainable parameters and non-trainable buffers.
//!
//! Names are the PyTorch `state_dict` keys of the reference implementation, so a saved store is a
//! safetensors file that PyTorch loads with `load_state_dict(strict=True)` and vice versa.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{Error, Result};

/// Whether a variable is optimised (parameter) or only carried along (buffer, e.g. BN running stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// Trained by the optimiser and weight-decayed.
    Parameter,
    /// Carried along and checkpointed but never given a gradient (BatchNorm running statistics,
    /// `num_batches_tracked`).
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
    /// An empty store whose variables will live on `device`.
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The device every variable lives on.
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

    /// The variable registered as `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.index.get(name).map(|&i| &self.entries[i].var)
    }

    /// Whether `name` is a parameter or a buffer; `None` if no such variable.
    pub fn kind(&self, name: &str) -> Option<VarKind> {
        self.index.get(name).map(|&i| self.entries[i].kind)
    }

    /// All variables in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var, VarKind)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), &e.var, e.kind))
    }

    /// The trainable parameters in registration order.
    pub fn parameters(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.iter()
            .filter(|(_, _, k)| *k == VarKind::Parameter)
            .map(|(n, v, _)| (n, v))
    }

    /// The buffers in registration order.
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

    /// Every variable as the bytes of a safetensors file (what [`VarStore::save`] writes).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        tensors_to_safetensors(&self.state_dict())
    }

    /// Loads a safetensors file written by spat or converted from a PyTorch `state_dict`
    /// (for any weights file, and names fitted to the network, see
    /// [`VarStore::load_checkpoint`]).
    ///
    /// Strict: every variable must be present with its exact shape and no extra tensor may be in
    /// the file (see [`VarStore::assign`]).
    pub fn load(&self, path: &Path) -> Result<()> {
        let tensors = load_tensors(path, &Device::Cpu)?;
        self.assign(tensors, path)
    }

    /// Copies `tensors` into the variables; `origin` names the source in error messages.
    ///
    /// Strict, and all-or-nothing: every variable must be present with its exact shape and no
    /// extra tensor may be given ([`Error::Mismatch`] counts and samples the differences); a
    /// float variable takes only a float tensor (cast to its dtype, e.g. f64 or f16 to f32)
    /// whose values pass [`validate`] after the cast; an integer variable (BN's
    /// `num_batches_tracked`) takes only an integer tensor. Nothing is assigned unless every
    /// tensor passes.
    pub fn assign(&self, tensors: HashMap<String, Tensor>, origin: &Path) -> Result<()> {
        let shapes: Vec<(&str, &[usize])> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.dims()))
            .collect();
        if let Some(m) = self.mismatch(&shapes, origin) {
            return Err(Error::Mismatch(Box::new(m)));
        }
        let mut ready = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let t = &tensors[&e.name];
            let (want, have) = (e.var.dtype(), t.dtype());
            let bad_kind = |what: &str| Error::Checkpoint {
                path: origin.to_path_buf(),
                message: format!(
                    "tensor `{}` is {} in the file but the network's {} is {}; refusing to \
                     convert {what}",
                    e.name,
                    have.as_str(),
                    if e.kind == VarKind::Parameter {
                        "parameter"
                    } else {
                        "buffer"
                    },
                    want.as_str()
                ),
            };
            let t = match (want.is_float(), have.is_float()) {
                (true, false) => return Err(bad_kind("integers into weights")),
                (false, true) => return Err(bad_kind("floats into a counter")),
                _ if want == have => t.clone(),
                _ => t.to_dtype(want)?,
            };
            validate(&e.name, &t, origin)?;
            ready.push(t);
        }
        for (e, t) in self.entries.iter().zip(ready) {
            e.var.set(&t.to_device(&self.device)?)?;
        }
        Ok(())
    }
}

impl VarStore {
    /// How tensors of these names and shapes (each name once) differ from the variables, if
    /// they do; `origin` names their file.
    pub fn mismatch(&self, given: &[(&str, &[usize])], origin: &Path) -> Option<Mismatch> {
        let shapes: HashMap<&str, &[usize]> = given.iter().copied().collect();
        let known: HashSet<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        let mut unexpected: Vec<String> = shapes
            .keys()
            .filter(|k| !known.contains(*k))
            .map(|k| k.to_string())
            .collect();
        unexpected.sort();
        let missing: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !shapes.contains_key(e.name.as_str()))
            .map(|e| e.name.clone())
            .collect();
        let misshaped: Vec<(String, Vec<usize>, Vec<usize>)> = self
            .entries
            .iter()
            .filter_map(|e| {
                let dims = *shapes.get(e.name.as_str())?;
                (dims != e.var.dims())
                    .then(|| (e.name.clone(), dims.to_vec(), e.var.dims().to_vec()))
            })
            .collect();
        if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
            return None;
        }
        let mut file_shapes: Vec<(String, Vec<usize>)> = shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        file_shapes.sort();
        Some(Mismatch {
            path: origin.to_path_buf(),
            missing,
            unexpected,
            misshaped,
            file_shapes,
        })
    }
}

/// How a set of named tensors differs from a network's variables.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// The file the tensors came from.
    pub path: std::path::PathBuf,
    /// Variables the tensors lack, in the network's order.
    pub missing: Vec<String>,
    /// Tensors no variable has, sorted.
    pub unexpected: Vec<String>,
    /// (name, shape in the file, shape in the network).
    pub misshaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Every tensor given, with its shape, sorted by name (to find a network that fits).
    pub file_shapes: Vec<(String, Vec<usize>)>,
}

/// How many names of each kind a mismatch message shows.
const SHOWN: usize = 3;

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the weights do not fit this network: {} missing, {} unexpected, {} mis-shaped \
             tensors",
            self.path.display(),
            self.missing.len(),
            self.unexpected.len(),
            self.misshaped.len()
        )?;
        let few = |names: &mut dyn Iterator<Item = String>, total: usize| {
            let mut s = names.take(SHOWN).collect::<Vec<_>>().join(", ");
            if total > SHOWN {
                s += ", …";
            }
            s
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let names = few(&mut self.missing.iter().cloned(), self.missing.len());
            parts.push(format!("missing {names}"));
        }
        if !self.unexpected.is_empty() {
            let names = few(&mut self.unexpected.iter().cloned(), self.unexpected.len());
            parts.push(format!("unexpected {names}"));
        }
        if !self.misshaped.is_empty() {
            let names = few(
                &mut self
                    .misshaped
                    .iter()
                    .map(|(n, file, net)| format!("{n} {file:?} in the file vs {net:?}")),
                self.misshaped.len(),
            );
            parts.push(format!("mis-shaped {names}"));
        }
        write!(f, " ({})", parts.join("; "))
    }
}

/// The validation of a weight, the same for every file and path it comes from: a float tensor
/// must hold only finite values, and a batch-norm running variance (`*.running_var`) none
/// below 0 (a variance cannot be negative; its square root would be NaN). Errors name the
/// tensor, the first bad element and `origin`.
pub fn validate(name: &str, t: &Tensor, origin: &Path) -> Result<()> {
    if !t.dtype().is_float() {
        return Ok(());
    }
    let values = t
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let refuse = |message: String| Error::Checkpoint {
        path: origin.to_path_buf(),
        message,
    };
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        return Err(refuse(format!(
            "tensor `{name}` holds {bad} non-finite values (element {i} is {v}); refusing \
             weights that make every output meaningless"
        )));
    }
    if name == "running_var" || name.ends_with(".running_var") {
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v < 0.0) {
            let bad = values.iter().filter(|v| **v < 0.0).count();
            return Err(refuse(format!(
                "tensor `{name}` holds {bad} negative batch-norm variances (element {i} is \
                 {v}); a variance is never negative, so the weights are damaged"
            )));
        }
    }
    Ok(())
}

/// Named tensors as the bytes of a safetensors file, byte for byte what [`save_tensors`] writes.
pub fn tensors_to_safetensors(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    safetensors::tensor::serialize(tensors.iter(), None)
        .map_err(|e| Error::Msg(format!("cannot serialise tensors as safetensors: {e}")))
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

/// Parses safetensors `bytes` read from `path`, refusing a header that names a tensor twice
/// (the parsed file would keep one of them, silently).
pub(crate) fn deserialize_safetensors<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<safetensors::SafeTensors<'a>> {
    let fail = |e: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not a readable safetensors file ({e})"),
    };
    let header = bytes
        .get(..8)
        .map(|n| u64::from_le_bytes(n.try_into().expect("8 bytes")))
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?));
    if let Some(names) = header.and_then(|h| header_names(h).ok()) {
        check_unique(names.iter().map(String::as_str), path)?;
    }
    safetensors::SafeTensors::deserialize(bytes).map_err(|e| fail(e.to_string()))
}

/// The keys of a safetensors JSON header, duplicates kept, `__metadata__` left out.
fn header_names(header: &[u8]) -> serde_json::Result<Vec<String>> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(k);
                    }
                    Ok(Keys(keys))
                }
            }
            d.deserialize_map(Visitor)
        }
    }
    let Keys(keys) = serde_json::from_slice(header)?;
    Ok(keys.into_iter().filter(|k| k != "__metadata__").collect())
}

/// Refuses a tensor name present twice: a dict (torch.save) or a JSON header (safetensors) that
/// holds a key twice was edited or damaged, and which value was meant cannot be known.
pub(crate) fn check_unique<'n>(names: impl Iterator<Item = &'n str>, path: &Path) -> Result<()> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "tensor `{name}` is in the file twice; a state dict holds each name once \
                     (the file was edited or is damaged), so which one is meant cannot be known"
                ),
            });
        }
    }
    Ok(())
}

/// Reads every tensor of a safetensors file, with errors that name the file.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = spat_spec::fs::read_input(path).map_err(|e| Error::io(path, e))?;
    parse_safetensors(&bytes, path, device)
}

/// The tensors of safetensors `bytes` read from `path`.
pub(crate) fn parse_safetensors(
    bytes: &[u8],
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let st = deserialize_safetensors(bytes, path)?;
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
        assert_eq!(std::fs::read(&p).unwrap(), a.to_safetensors().unwrap());
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
        assert!(
            msg.contains("1 missing, 1 unexpected, 1 mis-shaped"),
            "{msg}"
        );
        assert!(
            msg.contains("fc.weight [3, 3] in the file vs [2, 3]"),
            "{msg}"
        );
        assert!(msg.contains("missing bn.running_mean"), "{msg}");
        assert!(msg.contains("unexpected extra"), "{msg}");
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
